-- Language-specific neurons by activation probability entropy, LAPE (Tang et al. 2024, "Language-Specific
-- Neurons: The Key to Multilingual Capabilities in Large Language Models", Section 2; docs/definitions.md,
-- definition 12). It reads runs of feed-forward activations pooled with `active` (`neurons extract --site
-- ffn --pooling active`), whose value is the share of a sentence's tokens on which the neuron fires (> 0).

-- Definition 12, Tang et al. Eq. 1: the activation probability of neuron n in language L, the share of all the
-- language's tokens on which it fires. From a run of per-sentence token shares, p[L, n] = sum over the
-- language's sentences of (active share x n_tokens) / sum of n_tokens; from a run of corpus counts
-- (`--aggregate`, their `activation.py`), p[L, n] = fired[L, n] / n_tokens[L], as `identify.py` divides
-- `over_zero` by `n`. n_sentences: the data rows read.
CREATE OR REPLACE VIEW activation_probability AS
SELECT r.name AS run, a.layer, a.language, a.neuron,
       sum(a.value * a.n_tokens) / sum(a.n_tokens) AS probability, count(*) AS n_sentences
FROM labelled_activations AS a
JOIN runs AS r USING (run_id)
WHERE r.status = 'complete' AND r.pooling = 'active' AND a.n_tokens > 0
GROUP BY r.name, a.layer, a.language, a.neuron
UNION ALL
SELECT r.name AS run, f.layer, f.language, f.neuron, f.fired / t.n_tokens AS probability, t.n_sentences
FROM fired_tokens AS f
JOIN language_tokens AS t USING (run_id, language)
JOIN runs AS r USING (run_id)
WHERE r.status = 'complete' AND t.n_tokens > 0;

-- Definition 12, Tang et al. Eq. 2: the probabilities normalised over languages, q[L, n] = p[L, n] / sum over
-- L of p[L, n], and their entropy LAPE[n] = -sum over L of q log q (natural log; 0 log 0 = 0). A neuron that
-- never fires has no entropy (NULL).
CREATE OR REPLACE MACRO language_entropy() AS TABLE
WITH p AS (
    SELECT *, sum(probability) OVER (PARTITION BY run, layer, neuron) AS total FROM activation_probability
),
q AS (
    SELECT run, layer, language, neuron, probability,
           CASE WHEN total > 0 THEN probability / total END AS normalized
    FROM p
)
SELECT run, layer, neuron, language, probability, normalized,
       -sum(CASE WHEN normalized > 0 THEN normalized * ln(normalized) ELSE 0.0 END)
           OVER (PARTITION BY run, layer, neuron)
       + CASE WHEN bool_or(normalized IS NULL) OVER (PARTITION BY run, layer, neuron) THEN NULL ELSE 0.0 END
         AS entropy
FROM q;

-- Definition 12, Tang et al.'s selection exactly as their code (`identify.py`, RUCAIBox/Language-Specific-Neurons)
-- makes it, over all the run's stored layers at once (the model, with `--layers all`):
--   1. the filter value is the k-th smallest of all the run's probabilities p[L, n] (torch `kthvalue`, 1-based,
--      no interpolation) at k = round(N x FILTER_RATE), N = layers x neurons x languages; round() is Python's,
--      half to even, on the double product;
--   2. a neuron none of whose probabilities exceeds it gets entropy +inf (as does one that never fires);
--   3. the round(neurons x TOP_RATE) neurons of lowest entropy are selected (torch `topk`; ties in layer and
--      neuron order), so exactly that share of the model's neurons, wherever they are;
--   4. each selected neuron is specific to every language whose p exceeds the activation bar, the k-th smallest
--      probability at k = round(N x ACTIVATION_BAR_RATIO). A selected neuron above no bar has no language.
-- PER_LAYER := true takes every cut within each layer instead (not the paper's: it forces neurons into every
-- layer). Ranks of the selection come back as `entropy_rank` (1 = lowest entropy of the scope).
CREATE OR REPLACE MACRO language_specific_neurons(
    top_rate := 0.01, filter_rate := 0.95, activation_bar_ratio := 0.95, per_layer := false
) AS TABLE
WITH e AS (
    SELECT *, CASE WHEN per_layer THEN layer ELSE -1 END AS scope FROM language_entropy()
),
ranked_probability AS (
    SELECT run, scope, probability,
           row_number() OVER (PARTITION BY run, scope ORDER BY probability) AS k,
           count(*) OVER (PARTITION BY run, scope) AS n
    FROM e
),
cuts AS (
    SELECT run, scope,
           max(probability) FILTER (WHERE k = greatest(1, round_even(n::DOUBLE * filter_rate::DOUBLE, 0))) AS filter_value,
           max(probability) FILTER (WHERE k = greatest(1, round_even(n::DOUBLE * activation_bar_ratio::DOUBLE, 0)))
               AS activation_bar
    FROM ranked_probability
    GROUP BY run, scope
),
neuron_entropy AS (
    SELECT e.run, e.scope, e.layer, e.neuron,
           CASE WHEN bool_or(e.probability > c.filter_value) AND any_value(e.entropy) IS NOT NULL
                THEN any_value(e.entropy) ELSE 'inf'::DOUBLE END AS entropy
    FROM e JOIN cuts AS c USING (run, scope)
    GROUP BY e.run, e.scope, e.layer, e.neuron
),
selected AS (
    SELECT *, row_number() OVER (PARTITION BY run, scope ORDER BY entropy, layer, neuron) AS entropy_rank,
           count(*) OVER (PARTITION BY run, scope) AS n_neurons
    FROM neuron_entropy
)
SELECT e.run, e.layer, e.neuron, e.language, e.probability, e.entropy, s.entropy_rank
FROM selected AS s
JOIN e USING (run, scope, layer, neuron)
JOIN cuts AS c USING (run, scope)
WHERE s.entropy_rank <= round_even(s.n_neurons::DOUBLE * top_rate::DOUBLE, 0) AND e.probability > c.activation_bar;
