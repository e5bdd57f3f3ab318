-- Sentence length as a confound of the label statistics (docs/definitions.md, definition 25; the paper's
-- Section 2.3 ranks neurons by between-label variance and leaves open what else differs between labels).
-- Where labels differ in length, a neuron that tracks length separates them without reading the label.
-- Length is x = ln(n_tokens), the tokens fed to the model, centred within language; only runs whose every
-- sentence has a token count are covered (a run imported with `neurons load` may have none).

-- Per sentence: its token count and x, ln(n_tokens) minus its language's mean of ln(n_tokens); exactly 0 where all
-- the language's sentences have one length (the difference would leave rounding noise that a correlation
-- would read as signal).
CREATE OR REPLACE VIEW sentence_lengths AS
SELECT r.name AS run, s.run_id, s.sentence_id, s.language, s.label, s.n_tokens,
       CASE WHEN min(s.n_tokens) OVER w = max(s.n_tokens) OVER w THEN 0.0
            ELSE ln(s.n_tokens) - avg(ln(s.n_tokens)) OVER w END AS x
FROM sentences AS s
JOIN runs AS r USING (run_id)
WHERE s.run_id NOT IN (SELECT run_id FROM sentences WHERE n_tokens IS NULL OR n_tokens < 1)
WINDOW w AS (PARTITION BY r.name, s.language);

-- Definition 25 (lengths): per language x label, the sentences, their mean token count and mean x; per
-- language (repeated on its labels), eta_squared, the share of the variance of x between its labels
-- (SS_between / SS_total of x; 0 where labels do not differ in length).
CREATE OR REPLACE VIEW label_lengths AS
WITH cells AS (
    SELECT run, language, label, count(*) AS n_sentences, avg(n_tokens) AS mean_tokens, avg(x) AS mean_x,
           sum(x * x) AS ss
    FROM sentence_lengths
    GROUP BY run, language, label
)
SELECT run, language, label, n_sentences, mean_tokens, mean_x,
       coalesce(sum(n_sentences * mean_x * mean_x) OVER w / nullif(sum(ss) OVER w, 0), 0.0) AS eta_squared
FROM cells
WINDOW w AS (PARTITION BY run, language);

-- Definition 25 (slopes): per language and neuron, the pooled within-label least-squares slope of z on x
-- (analysis of covariance): sum over the language's cells of sum((z - P[L, l]) (x - mean_x[L, l])) divided by
-- the same of (x - mean_x[L, l])^2, computed as (sum(z x) - sum_l n P mean_x) / (sum(x x) - sum_l n mean_x^2),
-- with sum(z x) = sum(a x) / std_L (x sums to 0 within the language). It measures how the neuron follows length
-- among sentences of one label, so a label effect that merely coincides with longer sentences is not taken for
-- length. 0 for a neuron constant in the language; NULL where no cell's sentences differ in length. length_r
-- (the same on each language's row) is the neuron's pooled within-language correlation of z and x,
-- sum(z x) / sqrt(sum(z z) sum(x x)) over every language's sentences (sum(z z) = N for a live neuron).
CREATE OR REPLACE VIEW length_slopes AS
WITH zx AS (
    SELECT l.run, a.layer, a.language, a.neuron, sum(a.value * l.x) AS ax
    FROM labelled_activations AS a
    JOIN sentence_lengths AS l USING (run_id, sentence_id)
    GROUP BY l.run, a.layer, a.language, a.neuron
),
xx AS (
    SELECT run, language, sum(x * x) AS sxx FROM sentence_lengths GROUP BY run, language
),
sums AS (
    SELECT zx.run, zx.layer, zx.language, zx.neuron, s.n_sentences, xx.sxx,
           CASE WHEN s.std > 0 THEN s.n_sentences ELSE 0 END AS szz,
           CASE WHEN s.std > 0 THEN zx.ax / s.std ELSE 0.0 END AS szx
    FROM zx
    JOIN language_stats AS s USING (run, layer, language, neuron)
    JOIN xx USING (run, language)
),
between_labels AS (   -- the cells' means' part of each sum
    SELECT p.run, p.layer, p.language, p.neuron, sum(p.n_sentences * p.mean_z * g.mean_x) AS bzx,
           sum(p.n_sentences * g.mean_x * g.mean_x) AS bxx
    FROM label_profiles AS p
    JOIN label_lengths AS g USING (run, language, label)
    GROUP BY p.run, p.layer, p.language, p.neuron
)
SELECT run, layer, language, neuron, n_sentences,
       CASE WHEN sxx - bxx > 1e-9 * sxx THEN (szx - bzx) / (sxx - bxx) END AS slope,
       sum(szx) OVER n / nullif(sqrt(sum(szz) OVER n * sum(sxx) OVER n), 0) AS length_r
FROM sums
JOIN between_labels USING (run, layer, language, neuron)
WINDOW n AS (PARTITION BY run, layer, neuron);

-- Definition 25 (adjusted profiles): P~[L, l, n] = P[L, l, n] - slope[L, n] * mean_x[L, l], each cell's mean z
-- at its language's mean length (x = 0), with the cell's sentences; it replaces the empty definition of
-- sql/views/010_statistics.sql, so profile_correlation(at_equal_length := true) reads it.
CREATE OR REPLACE VIEW length_adjusted_profiles AS
SELECT p.run, p.layer, p.language, p.label, p.neuron,
       (p.mean_z - coalesce(s.slope, 0.0) * g.mean_x)::DOUBLE AS mean_z, p.n_sentences, s.length_r
FROM label_profiles AS p
JOIN length_slopes AS s USING (run, layer, language, neuron)
JOIN label_lengths AS g USING (run, language, label);

-- Definition 25: per neuron, its between-label variance (definition 3) beside the same variance of the
-- length-adjusted profiles (pooled over languages by sentences as definition 3 pools), length_share =
-- 1 - adjusted_variance / variance (the share of the label differences that length accounts for; negative
-- where length hides them), length_driven where that share is half or more, and length_r (above).
CREATE OR REPLACE VIEW length_confound AS
WITH adjusted AS (   -- length_slopes is read once (through length_adjusted_profiles): two reads compute it twice
    SELECT run, layer, label, neuron, any_value(length_r) AS length_r,
           sum(n_sentences * mean_z) / sum(n_sentences) AS mean_z
    FROM length_adjusted_profiles
    GROUP BY run, layer, label, neuron
),
v AS (
    SELECT run, layer, neuron, var_pop(mean_z) AS adjusted_variance, any_value(length_r) AS length_r
    FROM adjusted
    GROUP BY run, layer, neuron
)
SELECT b.run, b.layer, b.neuron, b.variance, b.rank, v.adjusted_variance,
       CASE WHEN b.variance > 0 THEN 1 - v.adjusted_variance / b.variance END AS length_share,
       coalesce(b.variance > 0 AND v.adjusted_variance <= b.variance / 2, false) AS length_driven, v.length_r
FROM between_label_variance AS b
JOIN v USING (run, layer, neuron);

-- Definition 25 (pairs): per language pair, definition 5's mean Spearman over labels beside the same of the
-- length-adjusted profiles (profile_correlation(at_equal_length := true)). Where labels differ in length alike
-- in two languages, neurons that follow length agree across them for that reason alone. length_carried: the
-- pair agrees (mean Spearman at least 0.1) and a fifth or more of it is gone at equal length.
CREATE OR REPLACE VIEW length_pair_summary AS
WITH adjusted AS (
    SELECT run, layer, language_a, language_b, avg(spearman) AS mean_spearman_at_equal_length
    FROM profile_correlation(at_equal_length := true)
    GROUP BY run, layer, language_a, language_b
)
SELECT s.run, s.layer, s.language_a, s.language_b, s.mean_spearman, a.mean_spearman_at_equal_length,
       coalesce(s.mean_spearman >= 0.1 AND a.mean_spearman_at_equal_length <= 0.8 * s.mean_spearman, false)
         AS length_carried,
       s.n_labels
FROM language_pair_summary AS s
JOIN adjusted AS a USING (run, layer, language_a, language_b);
