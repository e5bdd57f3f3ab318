-- Results of `neurons significance` with run names and settings (tables in sql/schema/003_significance.sql).

-- Permutation tests of the class counts (labels shuffled within each language, label counts kept):
-- per label and class (language NULL), and monolingual neurons per language (label NULL).
CREATE OR REPLACE VIEW class_significance AS
SELECT r.name AS run, s.layer, c.label, c.language, c.neuron_class, c.observed, c.null_mean, c.null_low,
       c.null_high, c.p_value, s.permutations, s.seed, s.threshold, s.absolute
FROM significance_counts AS c
JOIN significance AS s USING (analysis_id)
JOIN runs AS r USING (run_id);

-- Permutation p-values and Benjamini-Hochberg q-values of each neuron's between-label variance, its pooled
-- eta and omega squared, and both criteria of definition 10: q < alpha alone (q_significant) and q < alpha
-- with the effect size (effect_measure: omega squared; eta squared in analyses stored before it) >= min_effect
-- (sensitive, the neurons of the view sensitive_neurons).
CREATE OR REPLACE VIEW neuron_significance AS
SELECT r.name AS run, s.layer, n.neuron, n.variance, n.eta_squared, n.omega_squared, n.p_value, n.q_value,
       n.q_value < s.alpha AS q_significant,
       n.q_value < s.alpha
           AND coalesce(CASE s.effect_measure WHEN 'omega_squared' THEN n.omega_squared ELSE n.eta_squared END, 0.0)
               >= s.min_effect AS sensitive,
       s.permutations, s.seed, s.alpha, s.min_effect, s.effect_measure
FROM significance_neurons AS n
JOIN significance AS s USING (analysis_id)
JOIN runs AS r USING (run_id);

-- Label sensitivity per language (definition 10, per language): a pooled count can come from one language
-- alone. Each language's one-way ANOVA across labels (label_anova, stored by `neurons significance`), its
-- F-test p-values corrected by Benjamini-Hochberg over the language's neurons (q_(i) = min over j >= i of
-- p_(j) m / j), and the language's omega squared; sensitive: q < alpha AND omega squared >= min_effect.
-- A neuron constant in a language has no test there and no row.
CREATE OR REPLACE VIEW language_sensitivity AS
WITH tested AS (
    SELECT s.analysis_id, r.name AS run, s.layer, a.language, a.neuron, a.f, a.p_value, a.eta_squared,
           a.omega_squared, s.alpha, s.min_effect,
           count(*) OVER (PARTITION BY s.analysis_id, a.language) AS m,
           row_number() OVER (PARTITION BY s.analysis_id, a.language ORDER BY a.p_value, a.neuron) AS i
    FROM significance_anova AS a
    JOIN significance AS s USING (analysis_id)
    JOIN runs AS r USING (run_id)
    WHERE a.language IS NOT NULL AND a.p_value IS NOT NULL
),
corrected AS (
    SELECT *, least(1.0, min(p_value * m / i) OVER (
               PARTITION BY analysis_id, language ORDER BY i DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
           )) AS q_value
    FROM tested
)
SELECT run, layer, language, neuron, f, p_value, q_value, eta_squared, omega_squared,
       q_value < alpha AND coalesce(omega_squared, 0.0) >= min_effect AS sensitive, alpha, min_effect
FROM corrected;

-- Per language: neurons tested, label-sensitive, and their share (language_sensitivity).
CREATE OR REPLACE VIEW language_sensitive_counts AS
SELECT run, layer, language, count(*) AS n_tested, count(*) FILTER (WHERE sensitive) AS n_sensitive,
       count(*) FILTER (WHERE sensitive) / count(*) AS share
FROM language_sensitivity
GROUP BY run, layer, language;

-- Bootstrap 95 % intervals (sentences resampled within each language x label cell) of Spearman's rho per
-- label and language pair, and of the pair's mean over labels (label NULL), definition 11: basic
-- bootstrap intervals [2 rho - q97.5, 2 rho - q2.5] (Davison & Hinkley 1997, Bootstrap Methods and their
-- Application, eq. 5.6), which reflect the bootstrap distribution around the estimate and so undo the
-- attenuation that resampling adds to a correlation of noisy profiles (percentile intervals sit below
-- the truth there), cut to [-1, 1]. bias = mean of the bootstrap draws - estimate. min_cell is the smallest cell behind
-- the interval: below 20 sentences coverage falls under the nominal 95 % (docs/definitions.md, 11).
-- corrected: the bias-corrected estimate, spearman - bias = 2 rho - mean of the draws, cut to [-1, 1]: the
-- point the basic interval is built around. spearman itself is attenuated by the profiles' noise and may lie
-- outside its own interval; report corrected beside the interval, and spearman as what the data show.
CREATE OR REPLACE VIEW correlation_intervals AS
SELECT r.name AS run, s.layer, c.label, c.language_a, c.language_b, c.spearman,
       greatest(-1.0, least(1.0, c.spearman - c.bias)) AS corrected, c.low, c.high, c.bias,
       c.min_cell, s.interval_method, s.bootstraps, s.seed
FROM significance_correlation AS c
JOIN significance AS s USING (analysis_id)
JOIN runs AS r USING (run_id);

-- One-way ANOVA across labels per neuron, within each language and pooled (language NULL), with the
-- p-value of F.
CREATE OR REPLACE VIEW anova_significance AS
SELECT r.name AS run, s.layer, a.language, a.neuron, a.f, a.eta_squared, a.omega_squared, a.df_between,
       a.df_within, a.p_value
FROM significance_anova AS a
JOIN significance AS s USING (analysis_id)
JOIN runs AS r USING (run_id);
