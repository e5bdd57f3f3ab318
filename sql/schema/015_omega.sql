-- Unbiased effect sizes and per-language label sensitivity (docs/definitions.md, definition 10): a sensitive
-- neuron now needs omega squared >= min_effect (eta squared is biased upwards: pure noise gives about
-- (k - 1) / (N - 1)). Analyses stored before this version keep the eta squared criterion they were made with.
ALTER TABLE significance ADD COLUMN effect_measure VARCHAR DEFAULT 'eta_squared';  -- what min_effect bounds
ALTER TABLE significance_neurons ADD COLUMN omega_squared DOUBLE;                  -- pooled (label_anova)
ALTER TABLE significance_anova ADD COLUMN omega_squared DOUBLE;
