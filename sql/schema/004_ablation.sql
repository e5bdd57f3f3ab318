-- Causal tests (paper Section 4 and Limitations: "targeted ablations"): one row per `neurons ablate`
-- call, its neuron sets (baseline, target, random controls) and every prediction made under each set.
CREATE TABLE ablations (
    ablation_id     USMALLINT NOT NULL,
    run_id          USMALLINT NOT NULL,  -- the run whose layer, neurons and means were used
    model           VARCHAR   NOT NULL,
    data_file       VARCHAR   NOT NULL,
    layer           UTINYINT  NOT NULL,
    mode            VARCHAR   NOT NULL,  -- 'zero' or 'mean'
    mean_scope      VARCHAR,             -- 'language' or 'pooled' (mode 'mean')
    positions       VARCHAR   NOT NULL,  -- 'cls' or 'all'
    selection       VARCHAR   NOT NULL,  -- how the target set was chosen (--neurons / --query / --top-variance)
    n_controls      INTEGER   NOT NULL,
    seed            BIGINT    NOT NULL,
    n_sentences     INTEGER   NOT NULL,
    settings        VARCHAR   NOT NULL,  -- JSON of every option
    created_at      TIMESTAMP NOT NULL,
    toolkit_version VARCHAR   NOT NULL
);

CREATE TABLE ablation_sets (
    ablation_id USMALLINT   NOT NULL,
    set_index   INTEGER     NOT NULL,  -- 0 baseline (nothing ablated), 1 target, 2.. controls
    kind        VARCHAR     NOT NULL,  -- 'baseline', 'target' or 'control'
    neurons     USMALLINT[] NOT NULL
);

CREATE TABLE ablation_predictions (
    ablation_id USMALLINT NOT NULL,
    set_index   INTEGER   NOT NULL,
    sentence_id UINTEGER  NOT NULL,  -- row of the data file
    language    VARCHAR   NOT NULL,
    gold        VARCHAR   NOT NULL,
    predicted   VARCHAR   NOT NULL
);
