-- The neuron explorer (report and `neurons neuron`): what a single neuron responds to.

-- Per run, layer, neuron and language: the sentences that activate the neuron most (rank 1, 2, ...) and
-- least (rank -1 = the lowest value, -2, ...), by the raw activation (within a language z is a monotone
-- function of it, so the order is the same); ties broken by sentence_id. z is the sentence's z-score in its
-- language (definition 1), the scale of the profiles on the same card: the raw value of a neuron that is
-- negative everywhere says little, its z says above or below the language's mean. Every sentence has both
-- ranks' rows here; filter with abs(rank) <= k.
CREATE OR REPLACE VIEW top_sentences AS
WITH ranked AS (   -- partitioned by the run's name, so a filter on run, layer and neuron reaches the scan
    SELECT r.name AS run, a.layer, a.neuron, a.language, a.sentence_id, a.value,
           row_number() OVER (PARTITION BY r.name, a.layer, a.neuron, a.language
                              ORDER BY a.value DESC, a.sentence_id) AS top_rank,
           row_number() OVER (PARTITION BY r.name, a.layer, a.neuron, a.language
                              ORDER BY a.value ASC, a.sentence_id) AS bottom_rank
    FROM labelled_activations AS a
    JOIN runs AS r USING (run_id)
    WHERE r.status = 'complete'
)
SELECT k.run, k.layer, k.neuron, k.language, k.sentence_id, s.text, s.label, k.value,
       (k.value - m.mean) / nullif(m.std, 0) AS z,
       CASE WHEN k.top_rank <= k.bottom_rank THEN k.top_rank ELSE -k.bottom_rank END AS rank
FROM ranked AS k
JOIN runs AS r ON r.name = k.run
JOIN sentences AS s ON s.run_id = r.run_id AND s.sentence_id = k.sentence_id
JOIN language_stats AS m ON m.run = k.run AND m.layer = k.layer AND m.language = k.language AND m.neuron = k.neuron;
