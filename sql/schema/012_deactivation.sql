-- The LAPE causal test (Tang et al. 2024, Section 3; `neurons ablate --lape`): each language's
-- language-specific neurons are zeroed at every position of a decoder, and every language's mean next-token
-- NLL is measured, against the unablated model and random sets of the same size per layer.
CREATE TABLE deactivations (
    deactivation_id USMALLINT NOT NULL,
    run_id          USMALLINT NOT NULL,  -- the run (ffn, active) whose LAPE neurons were deactivated
    model           VARCHAR   NOT NULL,
    data_file       VARCHAR   NOT NULL,
    n_sentences     INTEGER   NOT NULL,
    n_controls      INTEGER   NOT NULL,
    seed            BIGINT    NOT NULL,
    settings        VARCHAR   NOT NULL,  -- JSON: every option, the LAPE parameters included
    created_at      TIMESTAMP NOT NULL,
    toolkit_version VARCHAR   NOT NULL
);

CREATE TABLE deactivation_sets (
    deactivation_id USMALLINT   NOT NULL,
    set_index       INTEGER     NOT NULL,  -- 0: nothing deactivated
    kind            VARCHAR     NOT NULL,  -- 'baseline', 'language' or 'control'
    language        VARCHAR,               -- the language whose neurons (or whose set's sizes) these are
    layers          UTINYINT[]  NOT NULL,  -- FFN layer of each deactivated neuron
    neurons         USMALLINT[] NOT NULL
);

CREATE TABLE deactivation_nll (
    deactivation_id USMALLINT NOT NULL,
    set_index       INTEGER   NOT NULL,
    language        VARCHAR   NOT NULL,  -- the language evaluated
    nll_sum         DOUBLE    NOT NULL,  -- summed NLL of every predicted token (natural log)
    n_tokens        BIGINT    NOT NULL   -- predicted tokens
);
