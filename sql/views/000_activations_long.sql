-- The logical long format (README, "The warehouse"; paper Section 2.2): one row per sentence, layer and
-- neuron with the sentence's language and label. Only complete runs are shown.
CREATE OR REPLACE VIEW activations_long AS
SELECT r.name AS run, a.sentence_id, s.text, s.language, s.label, a.layer, a.neuron, a.value
FROM activations AS a
JOIN sentences AS s USING (run_id, sentence_id)
JOIN runs AS r USING (run_id)
WHERE r.status = 'complete';
