-- Records of `neurons finetune ... --db` (paper Section 2.1): how each checkpoint was made and how it scored
-- epoch by epoch; the same JSON is saved in the checkpoint as neurons-finetune.json.
CREATE TABLE finetunes (
    finetune_id     USMALLINT NOT NULL,
    checkpoint      VARCHAR   NOT NULL,  -- the folder written
    base_model      VARCHAR   NOT NULL,
    data_file       VARCHAR,
    data_sha256     VARCHAR,
    record          JSON      NOT NULL,  -- options, per-epoch losses and held-out scores, labels, head
    created_at      TIMESTAMP NOT NULL,
    toolkit_version VARCHAR   NOT NULL
);
