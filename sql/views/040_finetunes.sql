-- Fine-tuning records (sql/schema/007_finetunes.sql) epoch by epoch: the training loss and, when the run had
-- a held-out split, accuracy and macro-F1 per language (scored by the views of 030_evaluation.sql).
CREATE OR REPLACE VIEW finetune_epochs AS
WITH epochs AS (
    SELECT f.finetune_id, f.checkpoint, unnest(from_json(f.record->'history',
           '[{"epoch": "INTEGER", "loss": "DOUBLE", "scores": [{"language": "VARCHAR", "n_sentences": "BIGINT", "accuracy": "DOUBLE", "macro_f1": "DOUBLE"}]}]')) AS e
    FROM finetunes AS f
)
SELECT finetune_id, checkpoint, e.epoch, e.loss, s.language, s.n_sentences, s.accuracy, s.macro_f1
FROM epochs
LEFT JOIN LATERAL (SELECT unnest(e.scores) AS s) ON true;
