-- Linear probes (`neurons probe`; NeuroX, Dalvi et al. 2019; control tasks, Hewitt & Liang 2019): one row per
-- probing analysis of a run and layer with its settings, and its results keyed by probe_id.
CREATE TABLE probes (
    probe_id        USMALLINT NOT NULL,
    run_id          USMALLINT NOT NULL,
    layer           UTINYINT  NOT NULL,
    settings        VARCHAR   NOT NULL,  -- JSON: every option
    seconds         DOUBLE    NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    toolkit_version VARCHAR   NOT NULL
);

-- Accuracy and macro-F1 of the probe trained on train_language ('all': every train language together) on the
-- held-out sentences of test_language, with the control task's accuracy (labels drawn at random per sentence).
CREATE TABLE probe_results (
    probe_id         USMALLINT NOT NULL,
    train_language   VARCHAR   NOT NULL,
    test_language    VARCHAR   NOT NULL,
    n_sentences      BIGINT    NOT NULL,
    accuracy         DOUBLE    NOT NULL,
    macro_f1         DOUBLE    NOT NULL,
    control_accuracy DOUBLE
);

-- Each neuron's weight mass (sum over classes of |w|) in the probe trained on train_language, and its rank.
CREATE TABLE probe_weights (
    probe_id       USMALLINT NOT NULL,
    train_language VARCHAR   NOT NULL,
    neuron         USMALLINT NOT NULL,
    weight_mass    DOUBLE    NOT NULL,
    rank           INTEGER   NOT NULL
);

-- A probe retrained on the top-k neurons of the 'all' probe's ranking, against random k-sets of the layer.
CREATE TABLE probe_topk_results (
    probe_id     USMALLINT NOT NULL,
    k            INTEGER   NOT NULL,
    accuracy     DOUBLE    NOT NULL,
    control_mean DOUBLE,
    control_min  DOUBLE,
    control_max  DOUBLE,
    n_controls   INTEGER   NOT NULL
);
