-- Noise ceilings of the cross-lingual correlations (docs/definitions.md, definitions 8 and 9; they read the
-- paper's Section 3.2 and Figure 2 against the noise of each label profile, which the paper leaves open).
-- A low rho between two languages' profiles means disagreement only when both profiles are reliable.

-- Definition 8: split-half reliability of each language x label profile P[L, l, :] over neurons. For
-- each of SPLITS seeded splits, every cell's sentences are ordered by hash(sentence_id, split) and dealt
-- alternately into two halves, so each half holds half of every cell of the language. In each half the
-- profiles are computed as definitions 1-2 compute them on the full data (z within the half's sentences of
-- the language, population std), so the two half-profiles of a cell have independent noise, each twice the
-- full profile's (a cell is part of its language's mean: z from the full data would tie the halves
-- together and bias the estimate). The half-profiles are correlated by Spearman (average ranks for ties),
-- and r_half is Spearman-Brown corrected to the full data, r = 2 r_half / (1 + r_half). reliability is the
-- mean of r over the splits; cells with fewer than 4 sentences, and splits where a half-profile is
-- constant, give none (NULL).
CREATE OR REPLACE MACRO split_half_reliability(splits := 10) AS TABLE
WITH assignment AS NOT MATERIALIZED (   -- keyed by the run's name throughout, so a filter on run and layer reaches the scans
    SELECT r.name AS run, s.run_id, s.sentence_id, s.language, s.label, k.split,
           row_number() OVER (PARTITION BY r.name, s.language, s.label, k.split
                              ORDER BY hash(s.sentence_id, k.split), s.sentence_id) % 2 AS half,
           count(*) OVER (PARTITION BY r.name, s.language, s.label, k.split) AS n_cell
    FROM sentences AS s
    JOIN runs AS r ON r.run_id = s.run_id AND r.status = 'complete'
    CROSS JOIN range(splits) AS k(split)
),
cell_halves AS NOT MATERIALIZED (   -- count, mean and population variance of each cell's half
    SELECT a.run, a.layer, a.language, a.label, a.split, a.half, a.neuron, any_value(a.n_cell) AS n_cell,
           count(*) AS n, avg(a.value::DOUBLE) AS mean, var_pop(a.value::DOUBLE) AS variance
    FROM (   -- each sentence's vector joined to its splits before it is unnested (a join per sentence, not per value)
        SELECT h.run, v.layer, h.language, h.label, h.split, h.half, h.n_cell, unnest(n.neurons) AS neuron,
               unnest(v.vector) AS value
        FROM activation_vectors AS v
        JOIN layer_neurons AS n USING (run_id, layer)
        JOIN assignment AS h ON h.run_id = v.run_id AND h.sentence_id = v.sentence_id
        UNION ALL   -- runs attached from a lake: one row per value already
        SELECT h.run, l.layer, h.language, h.label, h.split, h.half, h.n_cell, l.neuron, l.value
        FROM lake_activations AS l
        JOIN assignment AS h ON h.run_id = l.run_id AND h.sentence_id = l.sentence_id
    ) AS a
    GROUP BY a.run, a.layer, a.language, a.label, a.split, a.half, a.neuron
),
language_halves AS NOT MATERIALIZED (   -- the half's language mean and std, the cells combined exactly
    SELECT c.run, c.layer, c.language, c.split, c.half, c.neuron, m.mean,
           sqrt(sum(c.n * (c.variance + (c.mean - m.mean) * (c.mean - m.mean))) / sum(c.n)) AS std
    FROM cell_halves AS c
    JOIN (SELECT run, layer, language, split, half, neuron, sum(n * mean) / sum(n) AS mean
          FROM cell_halves GROUP BY run, layer, language, split, half, neuron) AS m
      USING (run, layer, language, split, half, neuron)
    GROUP BY c.run, c.layer, c.language, c.split, c.half, c.neuron, m.mean
),
ranked AS NOT MATERIALIZED (
    SELECT h.run, h.layer, h.language, h.label, h.split, h.half, h.neuron, h.n_cell,
           rank() OVER w_order + (count(*) OVER w_ties - 1) / 2.0 AS avg_rank
    FROM (
        SELECT c.run, c.layer, c.language, c.label, c.split, c.half, c.neuron, c.n_cell,
               CASE WHEN l.std > 0 THEN (c.mean - l.mean) / l.std ELSE 0.0 END AS mean_z
        FROM cell_halves AS c
        JOIN language_halves AS l USING (run, layer, language, split, half, neuron)
        WHERE c.n_cell >= 4
    ) AS h
    WINDOW w_order AS (PARTITION BY h.run, h.layer, h.language, h.label, h.split, h.half ORDER BY h.mean_z),
           w_ties AS (PARTITION BY h.run, h.layer, h.language, h.label, h.split, h.half, h.mean_z)
),
split_r AS NOT MATERIALIZED (
    SELECT a.run, a.layer, a.language, a.label, a.split, any_value(a.n_cell) AS n_sentences,
           corr(a.avg_rank, b.avg_rank) AS r_half
    FROM ranked AS a
    JOIN ranked AS b
      ON b.run = a.run AND b.layer = a.layer AND b.language = a.language AND b.label = a.label
     AND b.split = a.split AND b.neuron = a.neuron AND a.half = 0 AND b.half = 1
    GROUP BY a.run, a.layer, a.language, a.label, a.split
)
SELECT run, layer, language, label, n_sentences,
       avg(CASE WHEN NOT isnan(r_half) AND r_half > -1 THEN 2 * r_half / (1 + r_half) END) AS reliability,
       count(CASE WHEN NOT isnan(r_half) AND r_half > -1 THEN 1 END) AS n_splits
FROM split_r
GROUP BY run, layer, language, label, n_sentences
UNION ALL   -- cells too small to split: no reliability
SELECT r.name, m.layer, m.language, m.label, m.n_sentences, NULL, 0
FROM moments AS m
JOIN runs AS r USING (run_id)
WHERE m.label IS NOT NULL AND m.n_sentences < 4
GROUP BY r.name, m.layer, m.language, m.label, m.n_sentences;

-- Definition 8 with 10 seeded splits.
CREATE OR REPLACE VIEW profile_reliability AS
SELECT run, layer, language, label, reliability, n_sentences, n_splits FROM split_half_reliability(splits := 10);

-- Definition 9: each label x pair's Spearman (definition 5) beside its noise ceiling sqrt(r_a r_b) and
-- the disattenuated correlation rho / sqrt(r_a r_b) (NULL where either reliability is <= 0 or missing;
-- values beyond ±1 are kept as they are). interpretable is false where either reliability is below 0.3:
-- such a rho says more about noise than about the languages.
CREATE OR REPLACE VIEW crosslingual_ceiling AS
WITH paired AS (   -- both reliabilities of a pair from one reference to profile_reliability: a self-join computes it twice
    SELECT c.run, c.layer, c.label, c.language_a, c.language_b, c.spearman,
           any_value(r.reliability) FILTER (WHERE r.language = c.language_a) AS reliability_a,
           any_value(r.reliability) FILTER (WHERE r.language = c.language_b) AS reliability_b,
           count(*) AS n_cells
    FROM crosslingual_correlation AS c
    JOIN profile_reliability AS r
      ON r.run = c.run AND r.layer = c.layer AND r.label = c.label AND r.language IN (c.language_a, c.language_b)
    GROUP BY c.run, c.layer, c.label, c.language_a, c.language_b, c.spearman
)
SELECT run, layer, label, language_a, language_b, spearman, reliability_a, reliability_b,
       CASE WHEN reliability_a > 0 AND reliability_b > 0 THEN sqrt(reliability_a * reliability_b) END AS ceiling,
       CASE WHEN reliability_a > 0 AND reliability_b > 0 THEN spearman / sqrt(reliability_a * reliability_b)
       END AS disattenuated,
       coalesce(reliability_a >= 0.3 AND reliability_b >= 0.3, false) AS interpretable
FROM paired
WHERE n_cells = 2;   -- both languages' cells have a reliability row, as an inner join on each would require

-- P(Z > x) for a standard normal Z: Abramowitz & Stegun 7.1.26 for erfc (absolute error under 1e-7 here),
-- reflected for x < 0. DuckDB has no normal distribution function.
CREATE OR REPLACE MACRO erfc_polynomial(u) AS
    u * (0.254829592 + u * (-0.284496736 + u * (1.421413741 + u * (-1.453152027 + u * 1.061405429))));
CREATE OR REPLACE MACRO normal_sf(x) AS
    CASE WHEN x >= 0 THEN 0.5 * exp(-x * x / 2) * erfc_polynomial(1 / (1 + 0.3275911 * x / sqrt(2)))
         ELSE 1 - 0.5 * exp(-x * x / 2) * erfc_polynomial(1 / (1 - 0.3275911 * x / sqrt(2))) END;

-- Definition 24: the chance level of definition 6's classes (paper Section 3.3 counts profiles past a
-- threshold; how many would pass with no label effect at all is left open). With none, a profile P[L, l, n] is
-- the mean of z over the cell's n sentences drawn at random from the language's N: mean 0 and standard
-- deviation sqrt((N - n) / (n (N - 1))) (drawn without replacement from values of mean 0 and variance 1),
-- about normal. Per language: its profiles (labels x neurons), how many pass the threshold (n_past), and how
-- many would pass by chance alone (n_chance, expected; a constant neuron has z = 0 and passes only a negative
-- threshold). mostly_chance: at least one profile is expected to pass by chance and fewer than twice as many
-- pass, so half or more of those that do may be noise; the language's classes and monolingual count then say
-- little without a test against chance (class_significance).
CREATE OR REPLACE MACRO profile_chance(threshold, absolute := false) AS TABLE
WITH cells AS (
    SELECT p.run, p.layer, p.language, p.label, any_value(p.n_sentences) AS n, count(*) AS n_neurons,
           count(*) FILTER (WHERE s.std > 0) AS n_live, any_value(s.n_sentences) AS n_language,
           count(*) FILTER (WHERE (CASE WHEN absolute THEN abs(p.mean_z) ELSE p.mean_z END) > threshold) AS n_past
    FROM label_profiles AS p
    JOIN language_stats AS s USING (run, layer, language, neuron)
    GROUP BY p.run, p.layer, p.language, p.label
),
noise AS (
    SELECT *, CASE WHEN n < n_language THEN sqrt((n_language - n) / (n * (n_language - 1.0))) ELSE 0.0 END AS noise_sd
    FROM cells
),
chance AS (   -- the probability that one live neuron's profile passes by chance, and that a constant one does
    SELECT *,
           CASE WHEN noise_sd = 0 OR (absolute AND threshold < 0) THEN (0 > threshold)::DOUBLE
                WHEN absolute THEN 2 * normal_sf(threshold / noise_sd)
                ELSE normal_sf(threshold / noise_sd) END AS p_live,
           (0 > threshold)::DOUBLE AS p_constant
    FROM noise
)
SELECT *, n_chance >= 1 AND n_past < 2 * n_chance AS mostly_chance
FROM (
    SELECT run, layer, language, any_value(n_language) AS n_sentences, count(*) AS n_labels, min(n) AS min_cell,
           max(n) AS max_cell, max(noise_sd) AS max_noise_sd, sum(n_neurons)::BIGINT AS n_profiles,
           sum(n_past)::BIGINT AS n_past, sum(n_live * p_live + (n_neurons - n_live) * p_constant) AS n_chance
    FROM chance
    GROUP BY run, layer, language
);
