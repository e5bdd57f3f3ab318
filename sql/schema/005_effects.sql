-- Calibrated intervals and effect sizes for `neurons significance` (docs/definitions.md, definitions 10
-- and 11). Analyses stored before this version keep their percentile intervals, marked as such.
ALTER TABLE significance ADD COLUMN min_effect DOUBLE DEFAULT 0.0;             -- eta squared a sensitive neuron needs
ALTER TABLE significance ADD COLUMN interval_method VARCHAR DEFAULT 'percentile';
ALTER TABLE significance_neurons ADD COLUMN eta_squared DOUBLE;                -- pooled eta squared (label_anova)
ALTER TABLE significance_correlation ADD COLUMN bias DOUBLE;                   -- bootstrap mean minus estimate
ALTER TABLE significance_correlation ADD COLUMN min_cell INTEGER;              -- smallest cell behind the interval
