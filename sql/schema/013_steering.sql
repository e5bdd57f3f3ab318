-- Steering the output language (Kojima et al. 2024; Gurgurov et al. 2024; `neurons steer`): a causal LM
-- generates from each prompt with one language's LAPE neurons set to their mean activation on that language's
-- sentences (optionally the other languages' neurons zeroed), without steering, and with random neuron sets of
-- the same size per layer; the language of every output is identified.
CREATE TABLE steerings (
    steer_id        USMALLINT NOT NULL,
    run_id          USMALLINT NOT NULL,  -- the run (ffn, active) whose LAPE neurons steer
    model           VARCHAR   NOT NULL,
    language        VARCHAR   NOT NULL,  -- the language steered towards
    n_neurons       INTEGER   NOT NULL,
    settings        VARCHAR   NOT NULL,  -- JSON: every option
    created_at      TIMESTAMP NOT NULL,
    toolkit_version VARCHAR   NOT NULL
);

CREATE TABLE steering_outputs (
    steer_id     USMALLINT NOT NULL,
    condition    VARCHAR   NOT NULL,  -- 'unsteered', 'steered' or 'control'
    set_index    INTEGER   NOT NULL,  -- 0 for unsteered and steered, 1.. for the controls
    prompt_index INTEGER   NOT NULL,
    prompt       VARCHAR   NOT NULL,
    output       VARCHAR   NOT NULL,  -- the generated continuation alone
    identified   VARCHAR              -- ISO 639-1 code of its language (lingua), NULL when none is found
);
