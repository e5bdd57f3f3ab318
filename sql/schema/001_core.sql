-- Core tables of the warehouse (README, "The warehouse"; paper Section 2.2, "Neuron Activation Extraction").
-- Long format is the logical model; it is stored normalised: sentence metadata once in `sentences`,
-- numeric facts in `activations` with small integer keys. Strings (language, label) live only in the
-- small `sentences` table, where DuckDB dictionary-compresses them.

-- One row per run: an extraction of one model over one data file, or an imported long table.
CREATE TABLE runs (
    run_id          USMALLINT NOT NULL,
    name            VARCHAR   NOT NULL,
    status          VARCHAR   NOT NULL,  -- 'incomplete' until every batch is committed, then 'complete'
    source          VARCHAR   NOT NULL,  -- 'extract', 'load', or 'lake' (attached from a lake; activations read in place)
    model           VARCHAR,             -- checkpoint directory or hub id
    model_type      VARCHAR,             -- config.model_type, e.g. 'xlm-roberta'
    data_file       VARCHAR   NOT NULL,
    data_sha256     VARCHAR   NOT NULL,
    layers          USMALLINT[] NOT NULL, -- hidden_states indices: 0 = embeddings, k = block k
    pooling         VARCHAR,             -- 'cls', 'mean' or 'active' (ffn token shares); NULL for imported tables
    hidden_size     INTEGER   NOT NULL,  -- neurons per layer
    n_sentences     INTEGER   NOT NULL,
    n_languages     INTEGER   NOT NULL,
    n_labels        INTEGER   NOT NULL,
    n_truncated     INTEGER,             -- sentences cut at max_length
    class_names     VARCHAR[],           -- id2label of the classification head, in id order
    settings        VARCHAR   NOT NULL,  -- JSON: every option the run was made with
    created_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP,
    toolkit_version VARCHAR   NOT NULL
);

-- One row per sentence of a run, written together with its activations: during an extraction the rows
-- present are exactly the sentences already committed (what `--resume` skips). sentence_id is the 0-based row of the data file (before any split
-- filter), or the id given in an imported table; source_id keeps the data's own id column as text.
CREATE TABLE sentences (
    run_id          USMALLINT NOT NULL,
    sentence_id     UINTEGER  NOT NULL,
    source_id       VARCHAR,
    text            VARCHAR,
    language        VARCHAR   NOT NULL,
    label           VARCHAR   NOT NULL,
    split           VARCHAR,
    n_tokens        INTEGER,             -- tokens fed to the model, after truncation
    truncated       BOOLEAN,
    predicted_label VARCHAR,             -- argmax of the classification head, when the model has one
    probabilities   FLOAT[]              -- softmax over runs.class_names
);

-- One row per (sentence, layer, neuron). Written in chunks ordered by (layer, neuron, sentence), so
-- DuckDB's per-row-group min/max indexes prune scans by run and layer.
CREATE TABLE activations (
    run_id      USMALLINT NOT NULL,
    sentence_id UINTEGER  NOT NULL,
    layer       UTINYINT  NOT NULL,
    neuron      USMALLINT NOT NULL,
    value       FLOAT     NOT NULL
);
