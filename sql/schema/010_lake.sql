-- Runs attached from a Delta Lake (README, "Beyond one machine"): their activations stay in the lake's Parquet
-- files and are read through the view `lake_activations` (sql/views/000_activations_long.sql), which lists
-- exactly the files below: the Delta snapshot (table version) current when the run was attached.
CREATE TABLE lake_runs (
    run_id      USMALLINT NOT NULL,
    lake        VARCHAR   NOT NULL,  -- the lake folder, absolute
    run         VARCHAR   NOT NULL,  -- the run's name in the lake
    version     BIGINT    NOT NULL,  -- the activations table's Delta version that was attached
    n_shards    INTEGER   NOT NULL,
    attached_at TIMESTAMP NOT NULL
);

CREATE TABLE lake_files (
    run_id     USMALLINT NOT NULL,
    kind       VARCHAR   NOT NULL,  -- 'activations' or 'moments' (the shards' partial moments)
    layer      UTINYINT,            -- activations: the file's layer partition
    path       VARCHAR   NOT NULL,  -- absolute path of a Parquet file of the Delta snapshot
    size_bytes BIGINT    NOT NULL
);
