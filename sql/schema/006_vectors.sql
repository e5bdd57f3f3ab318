-- Compact activations (README, "The warehouse"): one row per run, sentence and layer holding the layer's
-- activations as a FLOAT list, instead of one row per value. The keys then cost nothing per value, and the
-- values compress as one float column; the view `activations` (sql/views/000_activations_long.sql) unnests
-- them back to the long rows every statistic reads. `layer_neurons` names the neuron of each list position.
CREATE TABLE activation_vectors (
    run_id      USMALLINT NOT NULL,
    sentence_id UINTEGER  NOT NULL,
    layer       UTINYINT  NOT NULL,
    vector      FLOAT[]   NOT NULL  -- position i holds the neuron layer_neurons.neurons[i]
);

CREATE TABLE layer_neurons (
    run_id  USMALLINT   NOT NULL,
    layer   UTINYINT    NOT NULL,
    neurons USMALLINT[] NOT NULL    -- ascending neuron ids of the layer's vectors
);

INSERT INTO layer_neurons
SELECT run_id, layer, list(DISTINCT neuron ORDER BY neuron) FROM activations GROUP BY run_id, layer;

INSERT INTO activation_vectors
SELECT run_id, sentence_id, layer, list(value ORDER BY neuron)
FROM activations
GROUP BY run_id, sentence_id, layer
ORDER BY run_id, layer, sentence_id;

DROP TABLE activations;
