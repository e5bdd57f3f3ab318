-- How well the tokenizer serves each language of a run (docs/definitions.md, definition 18): per run and
-- language, the counts that the unknown share and subword fertility are computed from, written with the run's
-- record by an extraction (NULL n_unknown: the tokenizer has no unknown token). Runs imported from a table, made
-- before this version or attached from a lake have no rows here.
CREATE TABLE tokenization (
    run_id        USMALLINT NOT NULL,
    language      VARCHAR   NOT NULL,
    n_texts       INTEGER   NOT NULL,  -- texts of the language
    n_tokens      BIGINT    NOT NULL,  -- their non-special tokens (after any cut at max length)
    n_unknown     BIGINT,              -- of which the tokenizer's unknown token
    n_whole       INTEGER   NOT NULL,  -- texts not cut at max length: fertility reads these only
    n_words       BIGINT    NOT NULL,  -- their words (definition 18)
    n_word_tokens BIGINT    NOT NULL,  -- their non-special tokens
    n_chars       BIGINT    NOT NULL,  -- their characters other than white space
    n_unspaced    BIGINT    NOT NULL,  -- of which characters of scripts written without spaces between words
    PRIMARY KEY (run_id, language)
);
