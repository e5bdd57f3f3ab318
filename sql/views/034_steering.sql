-- Steering the output language (docs/definitions.md, definition 17): per steering and condition, the share
-- of outputs identified as the language steered towards; controls are pooled over their random sets.
CREATE OR REPLACE VIEW steering_summary AS
SELECT r.name AS run, s.steer_id, s.language, o.condition, s.n_neurons,
       count(*) AS n_outputs,
       count(DISTINCT o.set_index) AS n_sets,
       avg(CASE WHEN o.identified = s.language THEN 1.0 ELSE 0.0 END) AS share_in_language
FROM steering_outputs AS o
JOIN steerings AS s USING (steer_id)
JOIN runs AS r USING (run_id)
GROUP BY ALL;
