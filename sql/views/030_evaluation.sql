-- Per-language evaluation of predictions (paper Section 2.1: macro-F1 per language), defined once for
-- the predictions stored by `extract` and for those made under each ablation set.

-- Every prediction with its source: an extracted run (ablation_id and set_index NULL) or an ablation set.
CREATE OR REPLACE VIEW prediction_rows AS
SELECT r.name AS run, NULL::USMALLINT AS ablation_id, NULL::INTEGER AS set_index, s.language,
       s.label AS gold, s.predicted_label AS predicted
FROM sentences AS s
JOIN runs AS r USING (run_id)
WHERE r.status = 'complete' AND s.predicted_label IS NOT NULL
UNION ALL
SELECT r.name, p.ablation_id, p.set_index, p.language, p.gold, p.predicted
FROM ablation_predictions AS p
JOIN ablations AS a USING (ablation_id)
JOIN runs AS r ON r.run_id = a.run_id;

-- Confusion counts per language: gold label x predicted label.
CREATE OR REPLACE VIEW confusion AS
SELECT run, language, gold, predicted, count(*) AS n
FROM prediction_rows
WHERE ablation_id IS NULL
GROUP BY run, language, gold, predicted;

-- Precision, recall and F1 per label of the prediction rows of table or view SOURCE (columns run, ablation_id,
-- set_index, language, gold, predicted), over the labels present in gold or predictions of that language
-- (a label never predicted has precision 0; one never gold has recall 0; F1 is 0 when both are 0).
CREATE OR REPLACE MACRO label_scores_of(source) AS TABLE
WITH rows AS (SELECT * FROM query_table(source)),
counts AS (  -- one pass over the rows per side: true positives and gold counts by gold label, predictions by label
    SELECT run, ablation_id, set_index, language, label, sum(tp) AS tp, sum(n_gold) AS n_gold,
           sum(n_predicted) AS n_predicted
    FROM (
        SELECT run, ablation_id, set_index, language, gold AS label,
               count(*) FILTER (WHERE gold = predicted) AS tp, count(*) AS n_gold, 0 AS n_predicted
        FROM rows
        GROUP BY run, ablation_id, set_index, language, gold
        UNION ALL
        SELECT run, ablation_id, set_index, language, predicted, 0, 0, count(*)
        FROM rows
        GROUP BY run, ablation_id, set_index, language, predicted
    )
    GROUP BY run, ablation_id, set_index, language, label
),
pr AS (
    SELECT *, CASE WHEN n_predicted > 0 THEN tp / n_predicted ELSE 0.0 END AS precision,
              CASE WHEN n_gold > 0 THEN tp / n_gold ELSE 0.0 END AS recall
    FROM counts
)
SELECT run, ablation_id, set_index, language, label, tp, n_gold, n_predicted, precision, recall,
       CASE WHEN precision + recall > 0 THEN 2 * precision * recall / (precision + recall) ELSE 0.0 END AS f1
FROM pr;

CREATE OR REPLACE VIEW label_scores AS SELECT * FROM label_scores_of('prediction_rows');

-- Accuracy and macro-F1 (unweighted mean of the labels' F1) per language and prediction source of SOURCE.
CREATE OR REPLACE MACRO prediction_scores_of(source) AS TABLE
SELECT run, ablation_id, set_index, language, sum(n_gold)::BIGINT AS n_sentences,
       sum(tp) / sum(n_gold) AS accuracy, avg(f1) AS macro_f1
FROM label_scores_of(source)
GROUP BY run, ablation_id, set_index, language;

CREATE OR REPLACE VIEW prediction_scores AS SELECT * FROM prediction_scores_of('prediction_rows');

-- Chance for macro-F1 (docs/definitions.md, definition 13): a model that ignores its input makes predictions
-- independent of the gold labels, whatever either's label shares. Draws 1..200: each language's gold labels
-- permuted against its predictions (both label shares kept; the permutation of draw d orders the rows by
-- hash(d, row), so every draw is fixed and the test is repeatable), as set_index.
CREATE OR REPLACE VIEW permuted_predictions AS
WITH base AS (
    SELECT run, language, gold, predicted,
           row_number() OVER (PARTITION BY run, language ORDER BY gold, predicted) AS i
    FROM prediction_rows
    WHERE ablation_id IS NULL
),
draws AS (
    SELECT b.run, b.language, d.range AS draw, b.predicted,
           row_number() OVER (PARTITION BY b.run, b.language, d.range ORDER BY hash(d.range, b.i), b.i) AS j
    FROM base AS b
    CROSS JOIN range(1, 201) AS d
)
SELECT d.run, NULL::USMALLINT AS ablation_id, d.draw::INTEGER AS set_index, d.language, g.gold, d.predicted
FROM draws AS d
JOIN base AS g ON g.run = d.run AND g.language = d.language AND g.i = d.j;

-- Definition 13's bound of guessing: with K gold labels a guess is right with probability 1/K; the upper end of
-- the 95 % binomial interval of that proportion over N sentences (normal approximation).
CREATE OR REPLACE MACRO guessing_bound(k, n) AS 1.0 / k + 1.959964 * sqrt((1.0 / k) * (1.0 - 1.0 / k) / n);

-- The null distribution of accuracy and macro-F1 per language: one row per draw.
CREATE OR REPLACE VIEW chance_scores AS
SELECT run, language, set_index AS draw, accuracy, macro_f1 FROM prediction_scores_of('permuted_predictions');

-- The paper's table (Section 2.1, macro-F1 per language) for a run: accuracy and macro-F1 per language of the
-- predictions stored with the run, each with a chance test for that metric (definition 13):
--   accuracy: with k gold labels a guess is right with probability 1/k; accuracy_chance_high is the upper end
--     of the 95 % binomial interval of that proportion over the language's n sentences (normal approximation,
--     1/k + 1.96 sqrt((1/k)(1 - 1/k)/n)); accuracy_at_chance: accuracy within it.
--   macro-F1: its own null, the 200 draws of chance_scores; macro_f1_null_high is their 95th percentile and
--     macro_f1_p = (1 + #draws >= observed) / 201; macro_f1_at_chance: p > 0.05 (chance not rejected).
-- at_chance: macro-F1 at chance, so the language's neurons describe a model that has not learnt the task.
CREATE OR REPLACE VIEW evaluation AS
WITH k AS (
    SELECT run, language, count(DISTINCT gold) AS n_labels
    FROM prediction_rows
    WHERE ablation_id IS NULL
    GROUP BY run, language
),
observed AS (SELECT * FROM prediction_scores WHERE ablation_id IS NULL),
null_f1 AS (
    SELECT c.run, c.language, quantile_cont(c.macro_f1, 0.95) AS macro_f1_null_high,
           (1 + count(*) FILTER (WHERE c.macro_f1 >= o.macro_f1 - 1e-12)) / (1 + count(*)) AS macro_f1_p
    FROM chance_scores AS c
    JOIN observed AS o USING (run, language)
    GROUP BY c.run, c.language
),
tested AS (
    SELECT p.run, p.language, p.n_sentences, p.accuracy, p.macro_f1, k.n_labels, 1.0 / k.n_labels AS chance,
           guessing_bound(k.n_labels, p.n_sentences) AS accuracy_chance_high,
           n.macro_f1_null_high, n.macro_f1_p
    FROM observed AS p
    JOIN k USING (run, language)
    JOIN null_f1 AS n USING (run, language)
)
SELECT run, language, n_sentences, accuracy, macro_f1, n_labels, chance, accuracy_chance_high,
       accuracy <= accuracy_chance_high AS accuracy_at_chance, macro_f1_null_high, macro_f1_p,
       macro_f1_p > 0.05 AS macro_f1_at_chance, macro_f1_p > 0.05 AS at_chance
FROM tested;

-- Each ablation set's scores per language, and its change against the unablated baseline.
CREATE OR REPLACE VIEW ablation_scores AS
SELECT s.run, s.ablation_id, s.set_index, k.kind, s.language, s.n_sentences, s.accuracy, s.macro_f1,
       s.accuracy - b.accuracy AS delta_accuracy, s.macro_f1 - b.macro_f1 AS delta_macro_f1
FROM prediction_scores AS s
JOIN ablation_sets AS k USING (ablation_id, set_index)
JOIN prediction_scores AS b
  ON b.ablation_id = s.ablation_id AND b.set_index = 0 AND b.language = s.language
WHERE s.ablation_id IS NOT NULL;

-- Per ablation and language: the target set's change in macro-F1 and accuracy beside the random
-- controls' (mean, min, max), and the target's rank among target + controls by drop in macro-F1
-- (1 = the largest drop; ties count against the target). baseline_at_chance: the unablated model's accuracy on
-- these sentences is within definition 13's bound of guessing (baseline_accuracy_chance_high), so no drop can
-- show there and the ablation says nothing about the neurons in that language.
CREATE OR REPLACE VIEW ablation_summary AS
WITH t AS (SELECT * FROM ablation_scores WHERE kind = 'target'),
c AS (SELECT * FROM ablation_scores WHERE kind = 'control'),
guess AS (
    SELECT ablation_id, language, guessing_bound(count(DISTINCT gold), count(*)) AS bound
    FROM prediction_rows
    WHERE ablation_id IS NOT NULL AND set_index = 0
    GROUP BY ablation_id, language
)
SELECT t.run, t.ablation_id, t.language, t.n_sentences,
       t.macro_f1 - t.delta_macro_f1 AS baseline_macro_f1, t.macro_f1 AS target_macro_f1,
       t.delta_macro_f1, avg(c.delta_macro_f1) AS control_mean_delta_macro_f1,
       min(c.delta_macro_f1) AS control_min_delta_macro_f1, max(c.delta_macro_f1) AS control_max_delta_macro_f1,
       t.accuracy - t.delta_accuracy AS baseline_accuracy, t.accuracy AS target_accuracy, t.delta_accuracy,
       avg(c.delta_accuracy) AS control_mean_delta_accuracy,
       1 + count(*) FILTER (WHERE c.delta_macro_f1 <= t.delta_macro_f1) AS target_rank,
       count(c.set_index) AS n_controls, g.bound AS baseline_accuracy_chance_high,
       t.accuracy - t.delta_accuracy <= g.bound AS baseline_at_chance
FROM t
JOIN guess AS g ON g.ablation_id = t.ablation_id AND g.language = t.language
LEFT JOIN c ON c.ablation_id = t.ablation_id AND c.language = t.language
GROUP BY t.run, t.ablation_id, t.language, t.n_sentences, t.macro_f1, t.delta_macro_f1, t.accuracy, t.delta_accuracy,
         g.bound;

-- Per ablation, language and gold label: recall under the target set and the controls against the
-- baseline, so "ablating sadness neurons hurts sadness most" can be read off.
CREATE OR REPLACE VIEW ablation_recall AS
WITH base AS (SELECT * FROM label_scores WHERE set_index = 0 AND ablation_id IS NOT NULL),
sets AS (
    SELECT l.*, k.kind FROM label_scores AS l JOIN ablation_sets AS k USING (ablation_id, set_index)
    WHERE l.set_index > 0
)
SELECT b.run, b.ablation_id, b.language, b.label, b.n_gold, b.recall AS baseline_recall,
       any_value(s.recall) FILTER (WHERE s.kind = 'target') AS target_recall,
       any_value(s.recall) FILTER (WHERE s.kind = 'target') - b.recall AS delta_recall,
       avg(s.recall) FILTER (WHERE s.kind = 'control') - b.recall AS control_mean_delta_recall
FROM base AS b
JOIN sets AS s ON s.ablation_id = b.ablation_id AND s.language = b.language AND s.label = b.label
WHERE b.n_gold > 0
GROUP BY b.run, b.ablation_id, b.language, b.label, b.n_gold, b.recall;
