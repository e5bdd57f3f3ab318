-- LAPE's counts over a corpus too large to keep per sentence (Tang et al. 2024, Section 2, Eq. 1; their
-- `activation.py` keeps `over_zero` and `n`; `neurons extract --aggregate`, docs/definitions.md definition 12):
-- per language, FFN layer and neuron, the number of tokens on which the neuron fired (> 0), and per language the
-- number of tokens read. A run made this way has no `sentences` or `activations` rows.
ALTER TABLE runs ADD COLUMN aggregated BOOLEAN DEFAULT false;  -- true: counts in fired_tokens, no sentences

CREATE TABLE fired_tokens (
    run_id   USMALLINT NOT NULL,
    language VARCHAR   NOT NULL,
    layer    UTINYINT  NOT NULL,  -- FFN block 1..n
    neuron   USMALLINT NOT NULL,
    fired    BIGINT    NOT NULL   -- tokens of the language on which the neuron's activation is > 0
);

CREATE TABLE language_tokens (
    run_id      USMALLINT NOT NULL,
    language    VARCHAR   NOT NULL,
    n_tokens    BIGINT    NOT NULL,  -- tokens counted (a decoder's BOS is not one; every position of a window is)
    n_sentences BIGINT    NOT NULL,  -- data rows read
    n_windows   BIGINT    NOT NULL,  -- --window: windows run (0 when sentences were run one by one)
    PRIMARY KEY (run_id, language)
);

-- One row per committed chunk, written in the chunk's transaction: the key makes every chunk count exactly once,
-- and `--resume` skips the chunks listed here.
CREATE TABLE aggregate_chunks (
    run_id       USMALLINT NOT NULL,
    chunk        INTEGER   NOT NULL,  -- 1-based position in the run's chunk plan
    n_sentences  BIGINT    NOT NULL,
    n_tokens     BIGINT    NOT NULL,
    committed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, chunk)
);
