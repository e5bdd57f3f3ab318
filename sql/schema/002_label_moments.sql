-- Per-run cache of the per-cell moments of z (DESIGN.md definitions 1-4; paper Sections 2.2-2.3).
-- Filled from the view `label_moments_source` (sql/views/010_statistics.sql) when a run completes, so
-- every statistic view reads a few thousand rows instead of re-scanning the activations.
CREATE TABLE label_moments (
    run_id      USMALLINT NOT NULL,
    layer       UTINYINT  NOT NULL,
    language    VARCHAR   NOT NULL,
    label       VARCHAR   NOT NULL,
    neuron      USMALLINT NOT NULL,
    n_sentences BIGINT    NOT NULL,
    sum_z       DOUBLE    NOT NULL,  -- sum of z over the cell's sentences
    sum_z2      DOUBLE    NOT NULL   -- sum of z^2
);
ALTER TABLE runs ADD COLUMN materialized_at TIMESTAMP;  -- when label_moments was filled for the run
