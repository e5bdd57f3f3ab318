-- Probing results (sql/schema/009_probes.sql) by run name, the latest probing analysis of each run and layer,
-- and how the field's neuron criteria agree (docs/definitions.md, definition 14).

CREATE OR REPLACE VIEW latest_probes AS
SELECT p.*, r.name AS run
FROM probes AS p
JOIN runs AS r USING (run_id)
WHERE p.probe_id = (SELECT max(q.probe_id) FROM probes AS q WHERE q.run_id = p.run_id AND q.layer = p.layer);

-- Cross-lingual transfer of a neuron-level probe: accuracy and macro-F1 per train x test language, and its
-- selectivity (accuracy minus the control task's accuracy, Hewitt & Liang 2019), beside the accuracy of always
-- answering the most frequent training label (majority_accuracy): a probe below it has learnt nothing there.
CREATE OR REPLACE VIEW probe_scores AS
SELECT p.run, p.layer, p.probe_id, s.train_language, s.test_language, s.n_sentences, s.accuracy, s.macro_f1,
       s.control_accuracy, s.accuracy - s.control_accuracy AS selectivity, s.majority_accuracy
FROM probe_results AS s
JOIN latest_probes AS p USING (probe_id);

-- Neurons ranked by their weight mass in each probe (rank 1 = the largest), NeuroX's ranking.
CREATE OR REPLACE VIEW probe_rankings AS
SELECT p.run, p.layer, p.probe_id, w.train_language, w.neuron, w.weight_mass, w.rank
FROM probe_weights AS w
JOIN latest_probes AS p USING (probe_id);

-- Accuracy of a probe on the top-k neurons only, beside random k-sets (mean, min, max) and its permutation
-- p-value among them, (1 + #random sets scoring at least as well) / (1 + #random sets). informative: the probe on
-- every neuron beats always answering the most frequent training label on the same n_test held-out sentences by
-- more than chance allows, full_accuracy > m + 1.645 sqrt(m (1 - m) / n_test) (one-sided 95 %, normal
-- approximation as definition 13's accuracy bound; no predictor that ignores its input beats m on average). When it
-- does not, the probe may have fit noise (too many neurons for the sentences, too weak a penalty): its weight
-- ranking is then noise, and its top-k sets score like random ones, below their mean about half the time.
CREATE OR REPLACE VIEW probe_topk AS
SELECT p.run, p.layer, p.probe_id, t.k, t.accuracy, t.control_mean, t.control_min, t.control_max, t.n_controls,
       (1 + t.controls_at_least) / (1 + t.n_controls) AS p_value, t.full_accuracy, t.majority_accuracy, t.n_test,
       t.full_accuracy > t.majority_accuracy + 1.645 * sqrt(t.majority_accuracy * (1 - t.majority_accuracy) / t.n_test)
           AS informative
FROM probe_topk_results AS t
JOIN latest_probes AS p USING (probe_id);

-- Definition 14: the neuron criteria of the field as rankings of one layer's neurons (rank 1 = most
-- label-related): between-label variance (definition 3), pooled ANOVA eta squared (definition 10) and the
-- weight mass of the probe trained on every train language (NeuroX). A neuron a criterion cannot score
-- (constant, or eta squared undefined) is not ranked by it: a constant layer has no rankings at all.
CREATE OR REPLACE VIEW criterion_rankings AS
SELECT run, layer, 'variance' AS criterion, neuron, rank FROM between_label_variance WHERE rank IS NOT NULL
UNION ALL
SELECT run, layer, 'eta_squared', neuron,
       row_number() OVER (PARTITION BY run, layer ORDER BY eta_squared DESC, neuron)
FROM label_anova WHERE language IS NULL AND eta_squared IS NOT NULL
UNION ALL
SELECT run, layer, 'probe', neuron, rank FROM probe_rankings WHERE train_language = 'all';

-- Definition 14: for each pair of criteria and k in (10, 50, 100), the Jaccard index of their top-k sets and
-- the Spearman correlation of their full rankings (k NULL); for the language question, the Jaccard index of
-- the neurons monolingual for at least one label (definition 6) and the LAPE language-specific neurons
-- (definition 12, default quantiles), where the run has activation probabilities. by_construction: the pair
-- (eta squared, variance) ranks neurons identically when every language x label cell of the run holds as many
-- sentences (z has unit variance in each language, so the total sum of squares is the same for every neuron and
-- eta squared is the between-label variance times a constant): their agreement is then no finding.
CREATE OR REPLACE VIEW criteria_agreement AS
WITH pairs AS (
    SELECT a.run, a.layer, a.criterion AS criterion_a, b.criterion AS criterion_b, a.rank AS rank_a, b.rank AS rank_b
    FROM criterion_rankings AS a
    JOIN criterion_rankings AS b
      ON b.run = a.run AND b.layer = a.layer AND b.neuron = a.neuron AND a.criterion < b.criterion
),
agg AS MATERIALIZED (  -- one pass: the rank correlation and the top-k intersections and unions
    SELECT run, layer, criterion_a, criterion_b, count(*) AS n, corr(rank_a, rank_b) AS spearman,
           list_value(
               count(*) FILTER (WHERE rank_a <= 10 AND rank_b <= 10) / nullif(count(*) FILTER (WHERE rank_a <= 10 OR rank_b <= 10), 0)::DOUBLE,
               count(*) FILTER (WHERE rank_a <= 50 AND rank_b <= 50) / nullif(count(*) FILTER (WHERE rank_a <= 50 OR rank_b <= 50), 0)::DOUBLE,
               count(*) FILTER (WHERE rank_a <= 100 AND rank_b <= 100) / nullif(count(*) FILTER (WHERE rank_a <= 100 OR rank_b <= 100), 0)::DOUBLE
           ) AS jaccards
    FROM pairs
    GROUP BY run, layer, criterion_a, criterion_b
),
balanced AS (  -- runs whose language x label cells all exist and hold the same number of sentences
    SELECT r.name AS run,
           min(c.n) = max(c.n) AND count(*) = count(DISTINCT c.language) * count(DISTINCT c.label) AS balanced
    FROM (SELECT run_id, language, label, count(*) AS n FROM sentences GROUP BY ALL) AS c
    JOIN runs AS r USING (run_id)
    GROUP BY r.name
),
rows AS (
    SELECT run, layer, criterion_a, criterion_b, NULL::INTEGER AS k, NULL::DOUBLE AS jaccard, spearman FROM agg
    UNION ALL
    SELECT g.run, g.layer, g.criterion_a, g.criterion_b, k.k, g.jaccards[k.i], NULL
    FROM agg AS g
    CROSS JOIN (VALUES (10, 1), (50, 2), (100, 3)) AS k(k, i)
    WHERE k.k <= g.n
)
SELECT rows.*,
       coalesce(rows.criterion_a = 'eta_squared' AND rows.criterion_b = 'variance' AND b.balanced, false)
           AS by_construction
FROM rows
LEFT JOIN balanced AS b USING (run)
UNION ALL
SELECT m.run, m.layer, 'lape', 'monolingual', NULL,
       count(*) FILTER (WHERE m.mono AND m.lape) / nullif(count(*) FILTER (WHERE m.mono OR m.lape), 0)::DOUBLE,
       NULL, false
FROM (
    SELECT coalesce(a.run, b.run) AS run, coalesce(a.layer, b.layer) AS layer, coalesce(a.neuron, b.neuron) AS neuron,
           a.neuron IS NOT NULL AS mono, b.neuron IS NOT NULL AS lape
    FROM (SELECT DISTINCT run, layer, neuron FROM neuron_classes
          WHERE neuron_class = 'monolingual' AND run IN (SELECT name FROM runs WHERE pooling = 'active')) AS a
    FULL JOIN (SELECT DISTINCT run, layer, neuron FROM language_specific_neurons()) AS b
      ON a.run = b.run AND a.layer = b.layer AND a.neuron = b.neuron
) AS m
GROUP BY m.run, m.layer;
