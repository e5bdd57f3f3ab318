-- Keys the engine enforces (README, "Long jobs and readers"): a run's id and its name once, each of a run's
-- sentences once. A chunk's sentences and vectors are committed in one transaction, so whatever a second
-- writer might do (the run claims prevent it), a chunk written twice is refused whole by the engine itself.
ALTER TABLE runs ADD PRIMARY KEY (run_id);
CREATE UNIQUE INDEX runs_name ON runs (name);
ALTER TABLE sentences ADD PRIMARY KEY (run_id, sentence_id);
