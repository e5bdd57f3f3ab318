-- Definition 18's limit on a language's fertility ratio (see tokenizer_fitness).
CREATE OR REPLACE MACRO fertility_limit() AS 1.5;

-- Tokenizer fitness per language (docs/definitions.md, definition 18; the paper reads XLM-R's tokenizer as
-- serving its four languages alike, which a run cannot assume for any model). Unknown tokens catch a tokenizer
-- that cannot spell a script; fertility, the non-special tokens per word of the texts not cut at max length,
-- catches one that spells it in pieces: an English WordPiece vocabulary reads Finnish with no unknown token
-- at all, but with 1.76 times the tokens per word it spends on English, and Russian with 3.29 times.
-- A language is underserved when its fertility exceeds fertility_limit() times the run's best-served
-- language's: the lowest fertility among the languages written with spaces (the scripts where a word is a
-- word), or among all languages when none is.
CREATE OR REPLACE VIEW tokenizer_fitness AS
WITH measured AS (
    SELECT r.name AS run, t.language, t.n_texts, t.n_whole,
           t.n_unknown / nullif(t.n_tokens, 0) AS unknown_share,
           t.n_word_tokens / nullif(t.n_words, 0) AS fertility,
           t.n_word_tokens / nullif(t.n_chars, 0) AS tokens_per_char,
           t.n_unspaced > 0.5 * t.n_chars AS unspaced
    FROM tokenization AS t
    JOIN runs AS r USING (run_id)
),
referenced AS (
    SELECT *, first_value(language) OVER best AS reference_language, first_value(fertility) OVER best AS reference
    FROM measured
    WINDOW best AS (PARTITION BY run ORDER BY fertility IS NULL, unspaced, fertility, language
                    ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
)
SELECT run, language, n_texts, n_whole, unknown_share, fertility, tokens_per_char, unspaced, reference_language,
       fertility / nullif(reference, 0) AS fertility_ratio,
       coalesce(fertility / nullif(reference, 0) > fertility_limit(), false) AS underserved
FROM referenced;
