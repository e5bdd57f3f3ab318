-- Definition 21: examples across a neuron's range. Per language, the neuron's pooled values are cut into BINS
-- bins of (as near as can be) equal counts, lowest first (ntile over value, then sentence id); each bin's example
-- is its middle sentence, the lower one of two. With the top sentences (view top_sentences) these are the
-- sentences `neurons neuron --tokens` reruns to show token values.
CREATE OR REPLACE MACRO quantile_examples(run_name, layer_no, neuron_ids, bins := 5) AS TABLE
WITH binned AS (
    SELECT a.neuron, a.language, a.sentence_id, a.value,
           ntile(bins) OVER (PARTITION BY a.neuron, a.language ORDER BY a.value, a.sentence_id) AS bin
    FROM labelled_activations AS a
    JOIN runs AS r USING (run_id)
    WHERE r.name = run_name AND a.layer = layer_no AND list_contains(neuron_ids, a.neuron)
),
placed AS (
    SELECT *, row_number() OVER (PARTITION BY neuron, language, bin ORDER BY value, sentence_id) AS i,
           count(*) OVER (PARTITION BY neuron, language, bin) AS n
    FROM binned
)
SELECT neuron, language, bin, sentence_id, value FROM placed WHERE i = (n + 1) // 2;

-- Definition 22: activation density. Per language, the share of its sentences whose pooled value is above
-- ABOVE (default 0: a hidden unit on its positive side; an FFN value that fired; with --pooling active, a
-- sentence with at least one token that fired), with the sentence count.
CREATE OR REPLACE MACRO neuron_density(run_name, layer_no, neuron_ids, above := 0) AS TABLE
SELECT a.neuron, a.language, count(*) AS n_sentences, avg((a.value > above)::DOUBLE) AS density
FROM labelled_activations AS a
JOIN runs AS r USING (run_id)
WHERE r.name = run_name AND a.layer = layer_no AND list_contains(neuron_ids, a.neuron)
GROUP BY a.neuron, a.language;

-- Definition 22: the histogram of a neuron's pooled values per language, over BINS equal-width bins spanning
-- the neuron's range in all languages (bin b covers [lo + b·w, lo + (b+1)·w), the last one closed; a constant
-- neuron has one bin). Bins no sentence falls in are absent.
CREATE OR REPLACE MACRO neuron_histogram(run_name, layer_no, neuron_ids, bins := 20) AS TABLE
WITH v AS (
    SELECT a.neuron, a.language, a.value
    FROM labelled_activations AS a
    JOIN runs AS r USING (run_id)
    WHERE r.name = run_name AND a.layer = layer_no AND list_contains(neuron_ids, a.neuron)
),
span AS (SELECT neuron, min(value) AS lo, max(value) AS hi FROM v GROUP BY neuron)
SELECT v.neuron, v.language,
       least(coalesce(floor((v.value - s.lo) / nullif(s.hi - s.lo, 0) * bins), 0), bins - 1)::INTEGER AS bin,
       any_value(s.lo) AS lo, any_value(s.hi) AS hi, count(*) AS n
FROM v JOIN span AS s USING (neuron)
GROUP BY ALL;

-- Definition 21: stored token evidence in the long format, one row per token: the neuron's value at each token
-- of a sentence as `neurons tokens` stored it, with the piece, where it lies in the text, whether it is a special
-- token and whether the run's pooling reads it, and is_max: the sentence's word piece (not a special token) with
-- the largest value, the first of ties. With cls pooling the stored value is the [CLS] token's; the word pieces
-- show where in the sentence the neuron responds.
CREATE OR REPLACE VIEW token_evidence AS
WITH long AS (
    SELECT v.run_id, v.layer, v.neuron, v.sentence_id,
           unnest(generate_series(0, len(v.vector) - 1)) AS position,
           unnest(t.tokens) AS token, unnest(t.starts) AS start_char, unnest(t.ends) AS end_char,
           unnest(t.special) AS special, unnest(t.pooled) AS pooled, unnest(v.vector) AS value
    FROM token_values AS v
    JOIN sentence_tokens AS t USING (run_id, sentence_id)
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY run_id, layer, neuron, sentence_id
                                 ORDER BY special, value DESC, position) AS top
    FROM long
)
SELECT r.name AS run, k.layer, k.neuron, k.sentence_id, s.language, s.label, k.position, k.token, k.start_char,
       k.end_char, k.special, k.pooled, k.value, k.top = 1 AND NOT k.special AS is_max
FROM ranked AS k
JOIN runs AS r USING (run_id)
JOIN sentences AS s USING (run_id, sentence_id);
