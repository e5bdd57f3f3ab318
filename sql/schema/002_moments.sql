-- Per-run cache of activation moments (docs/definitions.md, definitions 1-4; paper Sections 2.2-2.3), filled in
-- one pass from the view `moments_source` (sql/views/010_statistics.sql) when a run completes, so every
-- statistic view reads a few hundred thousand rows instead of re-scanning the activations.
CREATE TABLE moments (
    run_id      USMALLINT NOT NULL,
    layer       UTINYINT  NOT NULL,
    language    VARCHAR   NOT NULL,
    label       VARCHAR,             -- NULL: all sentences of the language (definition 1's mean and std)
    neuron      USMALLINT NOT NULL,
    n_sentences BIGINT    NOT NULL,
    mean        DOUBLE    NOT NULL,  -- mean activation
    variance    DOUBLE    NOT NULL   -- population variance of the activation
);
ALTER TABLE runs ADD COLUMN materialized_at TIMESTAMP;  -- when `moments` was filled for the run
