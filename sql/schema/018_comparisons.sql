-- Comparisons of two runs (`neurons compare`; docs/definitions.md, definition 19): one row per comparison with
-- how its sentences were matched, and linear CKA, plain and debiased, for every pair of their layers.
CREATE TABLE comparisons (
    comparison_id   USMALLINT NOT NULL,
    run_a           USMALLINT NOT NULL,
    run_b           USMALLINT NOT NULL,
    matched_by      VARCHAR   NOT NULL,  -- 'id' (the data's id column) or 'text'
    n_shared        INTEGER   NOT NULL,  -- sentences both runs hold
    settings        VARCHAR   NOT NULL,  -- JSON
    created_at      TIMESTAMP NOT NULL,
    toolkit_version VARCHAR   NOT NULL
);

CREATE TABLE comparison_cka (
    comparison_id USMALLINT NOT NULL,
    layer_a       UTINYINT  NOT NULL,
    layer_b       UTINYINT  NOT NULL,
    cka           DOUBLE,              -- plain linear CKA (biased upwards with many neurons for the sentences)
    cka_debiased  DOUBLE               -- from unbiased HSIC estimates: about 0 for unrelated representations
);
