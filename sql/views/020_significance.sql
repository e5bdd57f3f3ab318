-- Results of `neurons significance` with run names and settings (tables in sql/schema/003_significance.sql).

-- Permutation tests of the class counts (labels shuffled within each language, label counts kept):
-- per label and class (language NULL), and monolingual neurons per language (label NULL).
CREATE OR REPLACE VIEW class_significance AS
SELECT r.name AS run, s.layer, c.label, c.language, c.neuron_class, c.observed, c.null_mean, c.null_low,
       c.null_high, c.p_value, s.permutations, s.seed, s.threshold, s.absolute
FROM significance_counts AS c
JOIN significance AS s USING (analysis_id)
JOIN runs AS r USING (run_id);

-- Permutation p-values and Benjamini-Hochberg q-values of each neuron's between-label variance.
CREATE OR REPLACE VIEW neuron_significance AS
SELECT r.name AS run, s.layer, n.neuron, n.variance, n.p_value, n.q_value, n.q_value < s.alpha AS sensitive,
       s.permutations, s.seed, s.alpha
FROM significance_neurons AS n
JOIN significance AS s USING (analysis_id)
JOIN runs AS r USING (run_id);

-- Bootstrap 95 % percentile intervals (sentences resampled within each language x label cell) of
-- Spearman's rho per label and language pair, and of the pair's mean over labels (label NULL).
CREATE OR REPLACE VIEW correlation_intervals AS
SELECT r.name AS run, s.layer, c.label, c.language_a, c.language_b, c.spearman, c.low, c.high,
       s.bootstraps, s.seed
FROM significance_correlation AS c
JOIN significance AS s USING (analysis_id)
JOIN runs AS r USING (run_id);

-- One-way ANOVA across labels per neuron, within each language and pooled (language NULL), with the
-- p-value of F.
CREATE OR REPLACE VIEW anova_significance AS
SELECT r.name AS run, s.layer, a.language, a.neuron, a.f, a.eta_squared, a.df_between, a.df_within, a.p_value
FROM significance_anova AS a
JOIN significance AS s USING (analysis_id)
JOIN runs AS r USING (run_id);
