-- The statistics of the paper, each defined once here (docs/definitions.md, definitions 1-7, 10 and 15; paper Sections 2.2-3.3).
-- Every view has a `run` column (the run's name) and covers every complete run and layer in the file.
-- They read the per-run `moments` cache (sql/schema/002_moments.sql) except `zscores`, which joins it
-- back to each activation.

-- Partial moments (docs/definitions.md, definition 15, the inputs of definition 1; paper Section 2.2): count, mean, population
-- variance, minimum and maximum of the raw activation per run x layer x language x label x neuron, and per
-- language x neuron (label NULL), in parts that `moments_source` merges. A run stored in the warehouse has one
-- part per cell, computed here in one pass; a run attached from a lake brings the cell parts of every chunk its
-- shards committed (`lake_moment_parts`, sql/views/000_activations_long.sql; each shard computes them with
-- this view). A language's parts are its label parts again, to be merged over the labels. Keyed by run_id, so
-- a run filter reaches the scan.
CREATE OR REPLACE VIEW moment_parts AS
WITH cells AS (
    SELECT a.run_id, a.layer, a.language, a.label, a.neuron, count(*) AS n_sentences,
           avg(a.value::DOUBLE) AS mean, var_pop(a.value::DOUBLE) AS variance,
           min(a.value::DOUBLE) AS minimum, max(a.value::DOUBLE) AS maximum
    FROM labelled_activations AS a
    WHERE a.run_id NOT IN (SELECT p.run_id FROM lake_moment_parts AS p)
    GROUP BY a.run_id, a.layer, a.language, a.label, a.neuron
),
parts AS (
    SELECT run_id, layer, language, label, neuron, n_sentences, mean, variance, minimum, maximum FROM cells
    UNION ALL
    SELECT run_id, layer, language, label, neuron, n_sentences, mean, variance, minimum, maximum
    FROM lake_moment_parts
)
SELECT run_id, layer, language, label, neuron, n_sentences, mean, variance, minimum, maximum FROM parts
UNION ALL
SELECT run_id, layer, language, NULL, neuron, n_sentences, mean, variance, minimum, maximum FROM parts;

-- Definition 15. Source of the `moments` cache: the parts of each key merged exactly (Chan et al.'s parallel variance,
-- N var = sum over parts of n (var + (mean - pooled mean)^2)); a key whose values are all equal has that
-- value as its mean and variance exactly 0, so a constant neuron never gets a rounding-noise std.
-- (Python copies this view into the table one run_id at a time, when the run completes or is attached.)
CREATE OR REPLACE VIEW moments_source AS
WITH parts AS (
    SELECT p.run_id, p.layer, p.language, p.label, p.neuron, p.n_sentences, p.mean, p.variance, p.minimum,
           p.maximum,
           sum(p.n_sentences * p.mean) OVER k / sum(p.n_sentences) OVER k AS pooled_mean
    FROM moment_parts AS p
    WINDOW k AS (PARTITION BY p.run_id, p.layer, p.language, p.label, p.neuron)
)
SELECT run_id, layer, language, label, neuron, sum(n_sentences)::BIGINT AS n_sentences,
       CASE WHEN min(minimum) = max(maximum) THEN min(minimum) ELSE max(pooled_mean) END AS mean,
       CASE WHEN min(minimum) = max(maximum) THEN 0.0
            ELSE sum(n_sentences * (variance + (mean - pooled_mean) * (mean - pooled_mean))) / sum(n_sentences)
       END AS variance
FROM parts
GROUP BY run_id, layer, language, label, neuron;

-- Definition 1, paper Section 2.2 ("z-score normalized within each language"): the language's mean and
-- population standard deviation of each neuron, over all its sentences.
CREATE OR REPLACE VIEW language_stats AS
SELECT r.name AS run, m.layer, m.language, m.neuron, m.n_sentences, m.mean, sqrt(m.variance) AS std
FROM moments AS m
JOIN runs AS r USING (run_id)
WHERE m.label IS NULL;

-- Mean activation of each neuron per language, and pooled over all the run's sentences (language NULL):
-- the values `neurons ablate --mode mean` writes into the model.
CREATE OR REPLACE VIEW activation_means AS
SELECT r.name AS run, m.layer, m.language, m.neuron, m.mean
FROM moments AS m
JOIN runs AS r USING (run_id)
WHERE m.label IS NULL
UNION ALL
SELECT r.name, m.layer, NULL, m.neuron, sum(m.n_sentences * m.mean) / sum(m.n_sentences)
FROM moments AS m
JOIN runs AS r USING (run_id)
WHERE m.label IS NULL
GROUP BY r.name, m.layer, m.neuron;

-- Definition 1: z[s,n] = (a[s,n] - mean_L(n)) / std_L(n) for the sentence's language L; a neuron with
-- std 0 in a language has z = 0 there.
CREATE OR REPLACE VIEW zscores AS
SELECT r.name AS run, a.layer, a.sentence_id, a.language, a.label, a.neuron,
       CASE WHEN m.variance > 0 THEN (a.value - m.mean) / sqrt(m.variance) ELSE 0.0 END AS z
FROM labelled_activations AS a
JOIN moments AS m
  ON m.run_id = a.run_id AND m.layer = a.layer AND m.language = a.language AND m.neuron = a.neuron
 AND m.label IS NULL
JOIN runs AS r ON r.run_id = a.run_id;

-- Per language x label x neuron: the mean and the population variance of z over the cell's sentences.
-- z is affine in the activation within a language, so both follow exactly from the cell's moments:
-- mean_z = (mean_cell - mean_L) / std_L and var_z = var_cell / std_L^2 (0 where std_L = 0).
CREATE OR REPLACE VIEW label_cells AS
SELECT c.run_id, c.layer, c.language, c.label, c.neuron, c.n_sentences,
       CASE WHEN l.variance > 0 THEN (c.mean - l.mean) / sqrt(l.variance) ELSE 0.0 END AS mean_z,
       CASE WHEN l.variance > 0 THEN c.variance / l.variance ELSE 0.0 END AS var_z
FROM moments AS c
JOIN moments AS l
  ON l.run_id = c.run_id AND l.layer = c.layer AND l.language = c.language AND l.neuron = c.neuron
 AND l.label IS NULL
WHERE c.label IS NOT NULL;

-- Definition 2, paper Section 2.2 ("aggregated per label and per language"): the label profile
-- P[L, l, n] = mean of z over the sentences of language L with label l, with the sentence count.
CREATE OR REPLACE VIEW label_profiles AS
SELECT r.name AS run, c.layer, c.language, c.label, c.neuron, c.mean_z, c.n_sentences
FROM label_cells AS c
JOIN runs AS r USING (run_id);

-- Per label x neuron, pooled over the label's languages: sentence count, mean and population variance
-- of z (cells combined exactly: N var = sum over cells of n (var_z + (mean_z - pooled mean)^2)).
CREATE OR REPLACE VIEW label_pooled AS
WITH means AS (
    SELECT run_id, layer, label, neuron, sum(n_sentences)::BIGINT AS n_sentences,
           sum(n_sentences * mean_z) / sum(n_sentences) AS mean_z
    FROM label_cells
    GROUP BY run_id, layer, label, neuron
)
SELECT m.run_id, m.layer, m.label, m.neuron, m.n_sentences, m.mean_z,
       sum(c.n_sentences * (c.var_z + (c.mean_z - m.mean_z) * (c.mean_z - m.mean_z))) / m.n_sentences AS var_z
FROM means AS m
JOIN label_cells AS c USING (run_id, layer, label, neuron)
GROUP BY m.run_id, m.layer, m.label, m.neuron, m.n_sentences, m.mean_z;

-- Definition 3, paper Section 2.3 ("Variance Analysis Across Labels"): per neuron, the population
-- variance across labels of the label mean of z pooled over all languages; rank 1 = highest variance
-- (ties broken by neuron id), the "emotion neurons". A neuron constant in every language (z = 0 for every
-- sentence, e.g. every neuron of an embedding layer's [CLS] vector) says nothing about labels: it is marked
-- `constant` and has no rank.
CREATE OR REPLACE VIEW between_label_variance AS
WITH v AS (
    SELECT run_id, layer, neuron, var_pop(mean_z) AS variance, bool_and(mean_z = 0 AND var_z = 0) AS constant
    FROM label_pooled
    GROUP BY run_id, layer, neuron
)
SELECT r.name AS run, v.layer, v.neuron, v.variance, v.constant,
       CASE WHEN NOT v.constant
            THEN row_number() OVER (PARTITION BY r.name, v.layer, v.constant ORDER BY v.variance DESC, v.neuron)
       END AS rank
FROM v
JOIN runs AS r USING (run_id);

-- Definition 4, paper Figure 1 ("variance of each neuron's activations ... for the labels"): per label
-- and neuron, the population variance of z over that label's sentences, all languages together.
CREATE OR REPLACE VIEW label_variance AS
SELECT r.name AS run, p.layer, p.label, p.neuron, p.var_z AS variance
FROM label_pooled AS p
JOIN runs AS r USING (run_id);

-- One-way ANOVA of z across labels per neuron (a test of Section 2.3's label sensitivity), within each
-- language and pooled over languages (language NULL): F = (SSB / (k - 1)) / (SSW / (N - k)),
-- eta squared = SSB / (SSB + SSW) and omega squared = (SSB - (k - 1) MSW) / (SSB + SSW + MSW) with
-- MSW = SSW / (N - k) (Hays 1963; docs/definitions.md, definition 10), from the cells' counts, means and
-- variances. eta squared is biased upwards (noise alone gives about (k - 1) / (N - 1)); omega squared is
-- about 0 under no effect, and negative values mean none.
CREATE OR REPLACE VIEW label_anova AS
WITH cells AS (
    SELECT run_id, layer, language, label, neuron, n_sentences, mean_z, var_z FROM label_cells
    UNION ALL
    SELECT run_id, layer, NULL, label, neuron, n_sentences, mean_z, var_z FROM label_pooled
),
groups AS (
    SELECT run_id, layer, language, neuron, count(*) AS k, sum(n_sentences)::BIGINT AS n,
           sum(n_sentences * mean_z) / sum(n_sentences) AS grand_mean
    FROM cells
    GROUP BY run_id, layer, language, neuron
),
ss AS (
    SELECT g.run_id, g.layer, g.language, g.neuron, g.k, g.n,
           sum(c.n_sentences * (c.mean_z - g.grand_mean) * (c.mean_z - g.grand_mean)) AS ss_between,
           sum(c.n_sentences * c.var_z) AS ss_within
    FROM groups AS g
    JOIN cells AS c
      ON c.run_id = g.run_id AND c.layer = g.layer AND c.neuron = g.neuron
     AND c.language IS NOT DISTINCT FROM g.language
    GROUP BY g.run_id, g.layer, g.language, g.neuron, g.k, g.n
)
SELECT r.name AS run, ss.layer, ss.language, ss.neuron, ss.k - 1 AS df_between, ss.n - ss.k AS df_within,
       ss.ss_between, ss.ss_within,
       (ss.ss_between / nullif(ss.k - 1, 0)) / nullif(ss.ss_within / nullif(ss.n - ss.k, 0), 0) AS f,
       ss.ss_between / nullif(ss.ss_between + ss.ss_within, 0) AS eta_squared,
       (ss.ss_between - (ss.k - 1) * ss.ss_within / nullif(ss.n - ss.k, 0))
           / nullif(ss.ss_between + ss.ss_within + ss.ss_within / nullif(ss.n - ss.k, 0), 0) AS omega_squared
FROM ss
JOIN runs AS r USING (run_id);

-- The profiles of definition 25, moved to each language's mean sentence length: sql/views/013_length.sql
-- defines them; this empty one stands where that file is not read (Spark reads this file alone).
CREATE OR REPLACE VIEW length_adjusted_profiles AS
SELECT run, layer, language, label, neuron, mean_z, n_sentences FROM label_profiles WHERE false;

-- Definition 5, paper Section 3.2 and Figure 2 ("Cross-Lingual Consistency"): for each label and each
-- unordered language pair (language_a < language_b) that both have the label, Spearman's rho between
-- P[a, l, :] and P[b, l, :] over neurons (Pearson correlation of average ranks, so ties get the mean of
-- the ranks they span) and their cosine similarity. A constant profile has no rank order: rho is NULL (undefined).
-- With at_equal_length := true, the same of the length-adjusted profiles P~ (definition 25).
CREATE OR REPLACE MACRO profile_correlation(at_equal_length := false) AS TABLE
WITH ranked AS (
    SELECT run, layer, language, label, neuron, mean_z,
           rank() OVER (PARTITION BY run, layer, language, label ORDER BY mean_z)
             + (count(*) OVER (PARTITION BY run, layer, language, label, mean_z) - 1) / 2.0 AS avg_rank
    FROM (
        SELECT run, layer, language, label, neuron, mean_z FROM label_profiles WHERE NOT at_equal_length
        UNION ALL
        SELECT run, layer, language, label, neuron, mean_z FROM length_adjusted_profiles WHERE at_equal_length
    ) AS p
)
SELECT a.run, a.layer, a.label, a.language AS language_a, b.language AS language_b,
       CASE WHEN var_pop(a.avg_rank) > 0 AND var_pop(b.avg_rank) > 0 THEN corr(a.avg_rank, b.avg_rank) END AS spearman,
       sum(a.mean_z * b.mean_z)
         / nullif(sqrt(sum(a.mean_z * a.mean_z)) * sqrt(sum(b.mean_z * b.mean_z)), 0.0) AS cosine,
       count(*) AS n_neurons
FROM ranked AS a
JOIN ranked AS b
  ON a.run = b.run AND a.layer = b.layer AND a.label = b.label AND a.neuron = b.neuron
 AND a.language < b.language
GROUP BY a.run, a.layer, a.label, a.language, b.language;

-- Definition 5 on the profiles themselves.
CREATE OR REPLACE VIEW crosslingual_correlation AS SELECT * FROM profile_correlation();

-- Definition 5, pair summary (paper Section 3.2, the mean rho per language pair): averages over labels.
CREATE OR REPLACE VIEW language_pair_summary AS
SELECT run, layer, language_a, language_b,
       avg(spearman) AS mean_spearman, avg(cosine) AS mean_cosine, count(*) AS n_labels
FROM crosslingual_correlation
GROUP BY run, layer, language_a, language_b;

-- Definition 6, paper Section 3.3 ("Polyglot vs. Monolingual Neurons"): for label l, over the languages
-- that have it, count those where P[L, l, n] > threshold (|P| with absolute := true). All of them (at
-- least two) = polyglot; exactly one = monolingual (language set); none = inactive; otherwise shared.
CREATE OR REPLACE MACRO classify_neurons(threshold, absolute := false) AS TABLE
WITH p AS (
    SELECT run, layer, language, label, neuron,
           (CASE WHEN absolute THEN abs(mean_z) ELSE mean_z END) > threshold AS active
    FROM label_profiles
),
c AS (
    SELECT run, layer, label, neuron,
           count(*) FILTER (WHERE active) AS n_active_languages,
           count(*) AS n_languages,
           min(language) FILTER (WHERE active) AS active_language
    FROM p
    GROUP BY run, layer, label, neuron
)
SELECT run, layer, label, neuron, n_active_languages, n_languages,
       CASE WHEN n_active_languages = n_languages AND n_languages >= 2 THEN 'polyglot'
            WHEN n_active_languages = 1 THEN 'monolingual'
            WHEN n_active_languages = 0 THEN 'inactive'
            ELSE 'shared' END AS neuron_class,
       CASE WHEN n_active_languages = 1 THEN active_language END AS language
FROM c;

-- Definition 6 at the paper's threshold, 0.5.
CREATE OR REPLACE VIEW neuron_classes AS SELECT * FROM classify_neurons(0.5);

-- Paper Section 4's "emotion-sensitive neurons", made principled (definition 10): neurons whose
-- between-label variance has a permutation q-value (Benjamini-Hochberg) below the analysis' alpha AND
-- whose pooled omega squared (label_anova; eta squared for analyses stored before it) reaches the analysis'
-- min_effect (`neurons significance`). With thousands of sentences a tiny effect is significant: q alone says
-- nothing about size.
CREATE OR REPLACE VIEW sensitive_neurons AS
SELECT r.name AS run, s.layer, n.neuron, n.variance, n.eta_squared, n.omega_squared, n.p_value, n.q_value
FROM significance_neurons AS n
JOIN significance AS s USING (analysis_id)
JOIN runs AS r USING (run_id)
WHERE n.q_value < s.alpha
  AND coalesce(CASE s.effect_measure WHEN 'omega_squared' THEN n.omega_squared ELSE n.eta_squared END, 0.0)
      >= s.min_effect;

-- Paper Section 4 (shares of polyglot and monolingual neurons per label): neurons of each class per
-- label and their share of the label's neurons; every class appears, with 0 where it is empty. With
-- sensitive := true, only the label-sensitive neurons count (shares among them, as in the paper).
CREATE OR REPLACE MACRO count_classes(threshold, absolute := false, sensitive := false) AS TABLE
WITH c AS (
    SELECT k.* FROM classify_neurons(threshold, absolute := absolute) AS k
    LEFT JOIN sensitive_neurons AS x ON x.run = k.run AND x.layer = k.layer AND x.neuron = k.neuron
    WHERE NOT sensitive OR x.neuron IS NOT NULL
),
cells AS (
    SELECT DISTINCT c.run, c.layer, c.label, k.neuron_class
    FROM c CROSS JOIN (VALUES ('polyglot'), ('shared'), ('monolingual'), ('inactive')) AS k(neuron_class)
),
n AS (
    SELECT run, layer, label, neuron_class, count(*) AS n_neurons
    FROM c
    GROUP BY run, layer, label, neuron_class
)
SELECT cells.run, cells.layer, cells.label, cells.neuron_class, coalesce(n.n_neurons, 0) AS n_neurons,
       coalesce(n.n_neurons, 0) / sum(coalesce(n.n_neurons, 0)) OVER (PARTITION BY cells.run, cells.layer, cells.label) AS share
FROM cells
LEFT JOIN n USING (run, layer, label, neuron_class);

-- Neurons per class and label at the paper's threshold, 0.5.
CREATE OR REPLACE VIEW class_counts AS SELECT * FROM count_classes(0.5);

-- Paper Section 4 (monolingual neurons per language): the number of distinct neurons that are
-- monolingual in that language for at least one label; every language appears, with 0 where none.
CREATE OR REPLACE MACRO count_monolingual(threshold, absolute := false) AS TABLE
WITH languages AS (
    SELECT DISTINCT run, layer, language FROM label_profiles
),
m AS (
    SELECT run, layer, language, count(DISTINCT neuron) AS n_neurons
    FROM classify_neurons(threshold, absolute := absolute)
    WHERE neuron_class = 'monolingual'
    GROUP BY run, layer, language
)
SELECT languages.run, languages.layer, languages.language, coalesce(m.n_neurons, 0) AS n_neurons
FROM languages
LEFT JOIN m USING (run, layer, language);

-- Monolingual neurons per language at the paper's threshold, 0.5.
CREATE OR REPLACE VIEW monolingual_counts AS SELECT * FROM count_monolingual(0.5);

-- Definition 7, paper Figure 3 ("top neurons ... highlighted separately for each language"): per
-- language and label, neurons ranked by |P| descending (ties by neuron id).
CREATE OR REPLACE VIEW top_neurons AS
SELECT run, layer, language, label, neuron, mean_z,
       row_number() OVER (PARTITION BY run, layer, language, label ORDER BY abs(mean_z) DESC, neuron) AS rank
FROM label_profiles;

-- Layer sweep (paper Section 2.1 chose layer 11; this checks the choice): per run and layer, the shares
-- of polyglot and monolingual (label, neuron) pairs, the top between-label variance, the mean over
-- language pairs of the label-averaged Spearman and cosine, and the neurons constant in every language
-- (n_constant; a layer of only constant neurons, such as the embedding layer's [CLS], says nothing).
CREATE OR REPLACE MACRO summarize_layers(threshold, absolute := false) AS TABLE
WITH classes AS (
    SELECT run, layer,
           avg(CASE WHEN neuron_class = 'polyglot' THEN 1.0 ELSE 0.0 END) AS polyglot_share,
           avg(CASE WHEN neuron_class = 'monolingual' THEN 1.0 ELSE 0.0 END) AS monolingual_share
    FROM classify_neurons(threshold, absolute := absolute)
    GROUP BY run, layer
),
variance AS (
    SELECT run, layer, max(variance) AS top_variance, count(*) FILTER (WHERE constant) AS n_constant
    FROM between_label_variance
    GROUP BY run, layer
),
pairs AS (
    SELECT run, layer, avg(mean_spearman) AS mean_spearman, avg(mean_cosine) AS mean_cosine
    FROM language_pair_summary
    GROUP BY run, layer
)
SELECT classes.run, classes.layer, classes.polyglot_share, classes.monolingual_share, variance.top_variance,
       pairs.mean_spearman, pairs.mean_cosine, variance.n_constant
FROM classes
JOIN variance USING (run, layer)
LEFT JOIN pairs USING (run, layer);

-- The layer sweep at the paper's threshold, 0.5.
CREATE OR REPLACE VIEW layer_summary AS SELECT * FROM summarize_layers(0.5);
