-- One row per run, sentence, layer and neuron, unnested from the compact `activation_vectors` (the two lists
-- of a row are unnested side by side). Every statistic reads activations through this view; a filter on
-- run_id or layer reaches the table scan.
CREATE OR REPLACE VIEW activations AS
SELECT v.run_id, v.sentence_id, v.layer, unnest(n.neurons) AS neuron, unnest(v.vector) AS value
FROM activation_vectors AS v
JOIN layer_neurons AS n USING (run_id, layer);

-- The same rows with each sentence's language and label, joined before the lists are unnested (a join per
-- sentence and layer, not per value): what the statistics cache and z-scores read.
CREATE OR REPLACE VIEW labelled_activations AS
SELECT v.run_id, v.sentence_id, v.layer, s.language, s.label, s.n_tokens, unnest(n.neurons) AS neuron,
       unnest(v.vector) AS value
FROM activation_vectors AS v
JOIN layer_neurons AS n USING (run_id, layer)
JOIN sentences AS s USING (run_id, sentence_id);

-- The logical long format (README, "The warehouse"; paper Section 2.2): one row per sentence, layer and
-- neuron with the sentence's language and label. Only complete runs are shown.
CREATE OR REPLACE VIEW activations_long AS
SELECT r.name AS run, a.sentence_id, s.text, s.language, s.label, a.layer, a.neuron, a.value
FROM activations AS a
JOIN sentences AS s USING (run_id, sentence_id)
JOIN runs AS r USING (run_id)
WHERE r.status = 'complete';
