-- Activations of runs attached from a Delta Lake (sql/schema/010_lake.sql), one row per value with the
-- sentence's language, label and token count, read in place from the lake's Parquet files. This definition
-- is the empty one; `neurons lake attach` replaces it by one that lists the attached runs' files (and the
-- package's own read-only sessions read those files through Arrow instead).
CREATE OR REPLACE VIEW lake_activations AS
SELECT NULL::USMALLINT AS run_id, NULL::UINTEGER AS sentence_id, NULL::UTINYINT AS layer, NULL::VARCHAR AS language,
       NULL::VARCHAR AS label, NULL::INTEGER AS n_tokens, NULL::USMALLINT AS neuron, NULL::FLOAT AS value
WHERE false;

-- The partial moments of attached runs (count, mean, population variance, minimum and maximum per language x
-- label cell and chunk of a shard), the same way.
CREATE OR REPLACE VIEW lake_moment_parts AS
SELECT NULL::USMALLINT AS run_id, NULL::UTINYINT AS layer, NULL::VARCHAR AS language, NULL::VARCHAR AS label,
       NULL::USMALLINT AS neuron, NULL::BIGINT AS n_sentences, NULL::DOUBLE AS mean, NULL::DOUBLE AS variance,
       NULL::DOUBLE AS minimum, NULL::DOUBLE AS maximum
WHERE false;

-- One row per run, sentence, layer and neuron, unnested from the compact `activation_vectors` (the two lists
-- of a row are unnested side by side), and the lake's. Every statistic reads activations through this view; a
-- filter on run_id or layer reaches the table scan.
CREATE OR REPLACE VIEW activations AS
SELECT v.run_id, v.sentence_id, v.layer, unnest(n.neurons) AS neuron, unnest(v.vector) AS value
FROM activation_vectors AS v
JOIN layer_neurons AS n USING (run_id, layer)
UNION ALL
SELECT run_id, sentence_id, layer, neuron, value FROM lake_activations;

-- The same rows with each sentence's language and label, joined before the lists are unnested (a join per
-- sentence and layer, not per value): what the statistics cache and z-scores read.
CREATE OR REPLACE VIEW labelled_activations AS
SELECT v.run_id, v.sentence_id, v.layer, s.language, s.label, s.n_tokens, unnest(n.neurons) AS neuron,
       unnest(v.vector) AS value
FROM activation_vectors AS v
JOIN layer_neurons AS n USING (run_id, layer)
JOIN sentences AS s USING (run_id, sentence_id)
UNION ALL
SELECT run_id, sentence_id, layer, language, label, n_tokens, neuron, value FROM lake_activations;

-- The logical long format (README, "The warehouse"; paper Section 2.2): one row per sentence, layer and
-- neuron with the sentence's language and label. Only complete runs are shown.
CREATE OR REPLACE VIEW activations_long AS
SELECT r.name AS run, a.sentence_id, s.text, s.language, s.label, a.layer, a.neuron, a.value
FROM activations AS a
JOIN sentences AS s USING (run_id, sentence_id)
JOIN runs AS r USING (run_id)
WHERE r.status = 'complete';
