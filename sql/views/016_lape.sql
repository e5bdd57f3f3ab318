-- Language-specific neurons by activation probability entropy, LAPE (Tang et al. 2024, "Language-Specific
-- Neurons: The Key to Multilingual Capabilities in Large Language Models", Section 2; docs/definitions.md,
-- definition 12). It reads runs of feed-forward activations pooled with `active` (`neurons extract --site
-- ffn --pooling active`), whose value is the share of a sentence's tokens on which the neuron fires (> 0).

-- Definition 12, Tang et al. Eq. 1: the activation probability of neuron n in language L, the share of all the
-- language's tokens on which it fires, p[L, n] = sum over the language's sentences of (active share x
-- n_tokens) / sum of n_tokens.
CREATE OR REPLACE VIEW activation_probability AS
SELECT r.name AS run, a.layer, a.language, a.neuron,
       sum(a.value * a.n_tokens) / sum(a.n_tokens) AS probability, count(*) AS n_sentences
FROM labelled_activations AS a
JOIN runs AS r USING (run_id)
WHERE r.status = 'complete' AND r.pooling = 'active' AND a.n_tokens > 0
GROUP BY r.name, a.layer, a.language, a.neuron;

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

-- Definition 12, Tang et al.'s selection: neurons whose entropy is in the lowest ENTROPY_QUANTILE of the
-- layer's neurons, specific to each language L where p[L, n] exceeds the PROBABILITY_QUANTILE of all the
-- layer's probabilities (a neuron may be specific to several languages). Quantiles interpolate linearly.
CREATE OR REPLACE MACRO language_specific_neurons(entropy_quantile := 0.01, probability_quantile := 0.95) AS TABLE
WITH e AS (SELECT * FROM language_entropy()),
entropy_cut AS (
    SELECT run, layer, quantile_cont(entropy, entropy_quantile) AS entropy_cut
    FROM (SELECT DISTINCT run, layer, neuron, entropy FROM e WHERE entropy IS NOT NULL)
    GROUP BY run, layer
),
probability_cut AS (
    SELECT run, layer, quantile_cont(probability, probability_quantile) AS probability_cut
    FROM e
    GROUP BY run, layer
)
SELECT e.run, e.layer, e.neuron, e.language, e.probability, e.entropy
FROM e
JOIN entropy_cut AS c USING (run, layer)
JOIN probability_cut AS p USING (run, layer)
WHERE e.entropy <= c.entropy_cut AND e.probability > p.probability_cut;
