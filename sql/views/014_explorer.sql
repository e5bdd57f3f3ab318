-- The neuron explorer (report and `neurons neuron`): what a single neuron responds to.

-- Per run, layer, neuron and language: the sentences that activate the neuron most (rank 1, 2, ...) and
-- least (rank -1 = the lowest value, -2, ...), by the raw activation (within a language z is a monotone
-- function of it, so the order is the same); ties broken by sentence_id. Every sentence has both ranks'
-- rows here; filter with abs(rank) <= k.
CREATE OR REPLACE VIEW top_sentences AS
WITH ranked AS (
    SELECT a.run_id, a.layer, a.neuron, s.language, a.sentence_id, s.text, s.label, a.value,
           row_number() OVER (PARTITION BY a.run_id, a.layer, a.neuron, s.language
                              ORDER BY a.value DESC, a.sentence_id) AS top_rank,
           row_number() OVER (PARTITION BY a.run_id, a.layer, a.neuron, s.language
                              ORDER BY a.value ASC, a.sentence_id) AS bottom_rank
    FROM activations AS a
    JOIN sentences AS s USING (run_id, sentence_id)
)
SELECT r.name AS run, k.layer, k.neuron, k.language, k.sentence_id, k.text, k.label, k.value,
       CASE WHEN k.top_rank <= k.bottom_rank THEN k.top_rank ELSE -k.bottom_rank END AS rank
FROM ranked AS k
JOIN runs AS r USING (run_id)
WHERE r.status = 'complete';
