-- The LAPE causal test (Tang et al. 2024, Section 3, Figure 3; docs/definitions.md, definition 16): per
-- deactivated language (its language-specific neurons zeroed at every position) and evaluated language, the
-- mean next-token NLL (summed NLL of every predicted token over their number; a BOS is context, never
-- predicted), the unablated model's, their difference, and the mean difference under random neuron sets of the
-- same size per layer.
CREATE OR REPLACE VIEW deactivation_matrix AS
WITH nll AS (
    SELECT n.deactivation_id, n.set_index, s.kind, s.language AS deactivated_language, n.language AS evaluated_language,
           len(s.neurons) AS n_neurons, n.nll_sum / n.n_tokens AS nll
    FROM deactivation_nll AS n
    JOIN deactivation_sets AS s USING (deactivation_id, set_index)
),
base AS (SELECT deactivation_id, evaluated_language, nll AS baseline_nll FROM nll WHERE kind = 'baseline'),
controls AS (
    SELECT c.deactivation_id, c.deactivated_language, c.evaluated_language,
           avg(c.nll - b.baseline_nll) AS control_delta, count(*) AS n_controls
    FROM nll AS c JOIN base AS b USING (deactivation_id, evaluated_language)
    WHERE c.kind = 'control'
    GROUP BY ALL
)
SELECT r.name AS run, t.deactivation_id, t.deactivated_language, t.evaluated_language, t.n_neurons,
       t.nll, b.baseline_nll, t.nll - b.baseline_nll AS delta, c.control_delta, coalesce(c.n_controls, 0) AS n_controls
FROM nll AS t
JOIN base AS b USING (deactivation_id, evaluated_language)
LEFT JOIN controls AS c USING (deactivation_id, deactivated_language, evaluated_language)
JOIN deactivations AS d USING (deactivation_id)
JOIN runs AS r USING (run_id)
WHERE t.kind = 'language';
