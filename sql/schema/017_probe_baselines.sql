-- Baselines that say whether a probe learnt anything (docs/definitions.md, definition 14): the accuracy of always
-- answering the training sentences' most frequent label, per train x test language and for the pooled held-out
-- sentences of the top-k test; the probe on every neuron on those pooled sentences; and how many random k-sets
-- scored at least the top-k set (its permutation p-value). Probes stored before this version have NULLs.
ALTER TABLE probe_results ADD COLUMN majority_accuracy DOUBLE;
ALTER TABLE probe_topk_results ADD COLUMN full_accuracy DOUBLE;
ALTER TABLE probe_topk_results ADD COLUMN majority_accuracy DOUBLE;
ALTER TABLE probe_topk_results ADD COLUMN controls_at_least INTEGER;
ALTER TABLE probe_topk_results ADD COLUMN n_test INTEGER;  -- the pooled held-out sentences
