-- Definition 19: linear CKA between every layer of run_a and every layer of run_b on the sentences both hold,
-- the plain estimate and the debiased one (Kornblith et al. 2019; unbiased HSIC, Song et al. 2012, as Nguyen et
-- al. 2021 use it), from the latest comparison of each ordered pair of runs.
CREATE OR REPLACE VIEW run_comparison AS
SELECT a.name AS run_a, b.name AS run_b, c.comparison_id, c.matched_by, c.n_shared, k.layer_a, k.layer_b, k.cka,
       k.cka_debiased
FROM comparisons AS c
JOIN comparison_cka AS k USING (comparison_id)
JOIN runs AS a ON a.run_id = c.run_a
JOIN runs AS b ON b.run_id = c.run_b
WHERE c.comparison_id = (SELECT max(d.comparison_id) FROM comparisons AS d WHERE d.run_a = c.run_a AND d.run_b = c.run_b);

-- Definition 19, neuron by neuron, for two runs of one architecture (base against fine-tuned; the same layer
-- and neuron index in both): the Pearson correlation of the neuron's label profiles P[L, l, n] (definition 2)
-- over the language x label cells both runs have, its between-label variance rank in each run (definition 3)
-- and the change (negative: it rose), and the labels whose class (definition 6, at threshold and absolute)
-- differs between the runs.
CREATE OR REPLACE MACRO neuron_changes(run_a, run_b, threshold := 0.5, absolute := false) AS TABLE
WITH profiles AS (
    SELECT a.layer, a.neuron, corr(a.mean_z, b.mean_z) AS profile_correlation, count(*) AS n_cells
    FROM label_profiles AS a
    JOIN label_profiles AS b USING (layer, language, label, neuron)
    WHERE a.run = run_a AND b.run = run_b
    GROUP BY a.layer, a.neuron
),
ranks AS (
    SELECT a.layer, a.neuron, a.rank AS rank_a, b.rank AS rank_b, b.rank - a.rank AS rank_change
    FROM between_label_variance AS a
    JOIN between_label_variance AS b USING (layer, neuron)
    WHERE a.run = run_a AND b.run = run_b
),
named AS (  -- a monolingual class names its language: moving from one language to another is a change
    SELECT run, layer, label, neuron, neuron_class || coalesce(' (' || language || ')', '') AS class
    FROM classify_neurons(threshold, absolute := absolute)
    WHERE run IN (run_a, run_b)
),
classes AS (
    SELECT a.layer, a.neuron,
           list(a.label || ': ' || a.class || ' -> ' || b.class ORDER BY a.label) FILTER (WHERE a.class <> b.class)
               AS class_changes,
           count(*) FILTER (WHERE a.class <> b.class) AS n_class_changes
    FROM named AS a
    JOIN named AS b USING (layer, label, neuron)
    WHERE a.run = run_a AND b.run = run_b
    GROUP BY a.layer, a.neuron
)
SELECT run_a AS run_a, run_b AS run_b, layer, neuron, p.profile_correlation, p.n_cells, r.rank_a, r.rank_b, r.rank_change,
       coalesce(c.n_class_changes, 0) AS n_class_changes, c.class_changes
FROM profiles AS p
JOIN ranks AS r USING (layer, neuron)
LEFT JOIN classes AS c USING (layer, neuron);

-- Definition 19, per layer: neuron_changes summed up for `neurons compare` and the report. The neurons of the
-- layer, the median correlation of their label profiles, those whose class changed for at least one label, and
-- those whose variance rank moved by more than a tenth of the layer's ranked neurons.
CREATE OR REPLACE MACRO neuron_change_summary(run_a, run_b, threshold := 0.5, absolute := false) AS TABLE
WITH c AS (
    SELECT *, count(rank_a) OVER (PARTITION BY layer) AS ranked
    FROM neuron_changes(run_a, run_b, threshold := threshold, absolute := absolute)
)
SELECT layer, count(*) AS neurons, median(profile_correlation) AS median_profile_correlation,
       count(*) FILTER (WHERE n_class_changes > 0) AS class_changed,
       count(*) FILTER (WHERE abs(rank_change) > 0.1 * ranked) AS rank_moved_10pct
FROM c
GROUP BY layer;
