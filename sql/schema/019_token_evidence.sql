-- Token-level evidence for the neuron explorer (`neurons tokens`; docs/definitions.md, definition 21): the
-- run's model run again on a few sentences per neuron, each token's value kept, so the report can highlight the
-- words that drive a neuron without the model. For a decoder's FFN run also the tokens each neuron writes
-- towards (definition 20).
CREATE TABLE sentence_tokens (
    run_id      USMALLINT NOT NULL,
    sentence_id UINTEGER  NOT NULL,
    tokens      VARCHAR[] NOT NULL,  -- the tokenizer's pieces in order, special tokens included
    starts      INTEGER[] NOT NULL,  -- where each piece starts in the text (NULL: a special token, or no offsets)
    ends        INTEGER[] NOT NULL,  -- where it ends (exclusive)
    special     BOOLEAN[] NOT NULL,  -- a special token ([CLS], <s>, a BOS, padding markers)
    pooled      BOOLEAN[] NOT NULL   -- whether the run's pooling reads the token (cls: the first; last: the last)
);

CREATE TABLE token_values (
    run_id      USMALLINT NOT NULL,
    layer       UTINYINT  NOT NULL,
    neuron      USMALLINT NOT NULL,
    sentence_id UINTEGER  NOT NULL,
    vector      FLOAT[]   NOT NULL   -- the neuron's value at each token of sentence_tokens.tokens
);

CREATE TABLE logit_effects (
    run_id    USMALLINT NOT NULL,
    layer     UTINYINT  NOT NULL,
    neuron    USMALLINT NOT NULL,
    direction VARCHAR   NOT NULL,    -- 'promotes' or 'suppresses'
    rank      UTINYINT  NOT NULL,    -- 1 = the largest effect that way
    token_id  INTEGER   NOT NULL,
    token     VARCHAR   NOT NULL,
    effect    DOUBLE    NOT NULL     -- (W_U . W_down[:, n])[token]
);
