-- Results of `neurons significance` (paper Sections 3.2-4, tested against chance): one row in
-- `significance` per run and layer with every setting, and its result tables keyed by analysis_id.
CREATE TABLE significance (
    analysis_id     USMALLINT NOT NULL,
    run_id          USMALLINT NOT NULL,
    layer           UTINYINT  NOT NULL,
    permutations    INTEGER   NOT NULL,
    bootstraps      INTEGER   NOT NULL,
    seed            BIGINT    NOT NULL,
    threshold       DOUBLE    NOT NULL,
    absolute        BOOLEAN   NOT NULL,
    alpha           DOUBLE    NOT NULL,  -- q-value cut for "label-sensitive" neurons
    n_sentences     INTEGER   NOT NULL,
    n_neurons       INTEGER   NOT NULL,
    seconds         DOUBLE    NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    toolkit_version VARCHAR   NOT NULL
);

-- Permutation null of the class counts: per label and class (language NULL), and the monolingual count
-- per language (label NULL). p = (1 + #null >= observed) / (1 + permutations).
CREATE TABLE significance_counts (
    analysis_id  USMALLINT NOT NULL,
    label        VARCHAR,
    language     VARCHAR,
    neuron_class VARCHAR   NOT NULL,
    observed     INTEGER   NOT NULL,
    null_mean    DOUBLE    NOT NULL,
    null_low     DOUBLE    NOT NULL,  -- 2.5 % quantile of the null
    null_high    DOUBLE    NOT NULL,  -- 97.5 % quantile
    p_value      DOUBLE    NOT NULL
);

-- Permutation p-value of each neuron's between-label variance, and its Benjamini-Hochberg q-value.
CREATE TABLE significance_neurons (
    analysis_id USMALLINT NOT NULL,
    neuron      USMALLINT NOT NULL,
    variance    DOUBLE    NOT NULL,
    p_value     DOUBLE    NOT NULL,
    q_value     DOUBLE    NOT NULL
);

-- Bootstrap 95 % intervals of Spearman's rho per label and pair, and of the pair mean (label NULL).
CREATE TABLE significance_correlation (
    analysis_id USMALLINT NOT NULL,
    label       VARCHAR,
    language_a  VARCHAR   NOT NULL,
    language_b  VARCHAR   NOT NULL,
    spearman    DOUBLE,
    low         DOUBLE,
    high        DOUBLE
);

-- One-way ANOVA across labels per neuron (F and eta squared from the view `label_anova`), with the
-- p-value of F from its F distribution.
CREATE TABLE significance_anova (
    analysis_id USMALLINT NOT NULL,
    language    VARCHAR,             -- NULL: pooled over languages
    neuron      USMALLINT NOT NULL,
    f           DOUBLE,
    eta_squared DOUBLE,
    df_between  BIGINT    NOT NULL,
    df_within   BIGINT    NOT NULL,
    p_value     DOUBLE
);
