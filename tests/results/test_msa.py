"""MSA statistics against independent counterparts: statsmodels, the AIAG manual's worked examples, sampling theory.

Published data and results used:

* AIAG, *Measurement Systems Analysis Reference Manual*, 4th ed. (2010), ch. III §B: the gauge study of 10 parts ×
  3 appraisers (A, B, C) × 3 trials (Table III-B 6 data sheet), its ANOVA table (Table III-B 7: SS Appraiser
  3.1673, Parts 88.3619, Appraiser by Part 0.3590, Equipment 2.7589, Total 94.6471; F 79.41, 492.29, 0.434) and
  its "ANOVA analysis % variation & contribution" (Table III-B 8: σ² EV 0.039973, AV 0.051455, INT 0, GRR
  0.09143, PV 1.086446; %TV 18.4, 20.9, 0, 27.9, 96.0; %contribution 3.4, 4.4, 0, 7.8, 92.2). The same data are
  reproduced in SAS/QC's GAGE documentation lineage and in McNeese, "Three Ways to Analyze a Gage R&R Study"
  (SPC for Excel, 2015), Table 1.
* The same manual's linearity example (Table III-B 4 readings, Table III-B 5 / Figure III-B 3 results): five parts
  of reference 2, 4, 6, 8, 10 measured 12 times; bias = 0.736667 − 0.131667 · reference, R² = 71.4 %,
  t(slope) = 12.043, t(intercept) = 10.158, and the bias = 0 line is *not* inside the 95 % band.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm

from rig.results import msa

ANOVA_TOL = 1e-9  # relative agreement with statsmodels: both are exact sums of squares in float64

AIAG_GRR = {
    ("A", 1): [0.29, -0.56, 1.34, 0.47, -0.80, 0.02, 0.59, -0.31, 2.26, -1.36],
    ("A", 2): [0.41, -0.68, 1.17, 0.50, -0.92, -0.11, 0.75, -0.20, 1.99, -1.25],
    ("A", 3): [0.64, -0.58, 1.27, 0.64, -0.84, -0.21, 0.66, -0.17, 2.01, -1.31],
    ("B", 1): [0.08, -0.47, 1.19, 0.01, -0.56, -0.20, 0.47, -0.63, 1.80, -1.68],
    ("B", 2): [0.25, -1.22, 0.94, 1.03, -1.20, 0.22, 0.55, 0.08, 2.12, -1.62],
    ("B", 3): [0.07, -0.68, 1.34, 0.20, -1.28, 0.06, 0.83, -0.34, 2.19, -1.50],
    ("C", 1): [0.04, -1.38, 0.88, 0.14, -1.46, -0.29, 0.02, -0.46, 1.77, -1.49],
    ("C", 2): [-0.11, -1.13, 1.09, 0.20, -1.07, -0.67, 0.01, -0.56, 1.45, -1.77],
    ("C", 3): [-0.15, -0.96, 0.67, 0.11, -1.45, -0.49, 0.21, -0.49, 1.87, -2.16],
}

AIAG_LINEARITY_REFERENCE = [2.0, 4.0, 6.0, 8.0, 10.0]
AIAG_LINEARITY_READINGS = [
    [2.70, 2.50, 2.40, 2.50, 2.70, 2.30, 2.50, 2.50, 2.40, 2.40, 2.60, 2.40],
    [5.10, 3.90, 4.20, 5.00, 3.80, 3.90, 3.90, 3.90, 3.90, 4.00, 4.10, 3.80],
    [5.80, 5.70, 5.90, 5.90, 6.00, 6.10, 6.00, 6.10, 6.40, 6.30, 6.00, 6.10],
    [7.60, 7.70, 7.80, 7.70, 7.80, 7.80, 7.80, 7.70, 7.80, 7.50, 7.60, 7.70],
    [9.10, 9.30, 9.50, 9.30, 9.40, 9.50, 9.50, 9.50, 9.60, 9.20, 9.30, 9.40],
]


def aiag_study() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"part": part + 1, "appraiser": appraiser, "trial": trial, "value": value}
            for (appraiser, trial), values in AIAG_GRR.items()
            for part, value in enumerate(values)
        ]
    )


def synthetic_study(
    rng: np.random.Generator,
    *,
    parts: int,
    appraisers: int,
    trials: int,
    sigma_part: float,
    sigma_appraiser: float,
    sigma_interaction: float,
    sigma_repeat: float,
) -> pd.DataFrame:
    """Readings from the random-effects model y = μ + Pᵢ + Aⱼ + (PA)ᵢⱼ + ε with the given σ."""
    part_effect = rng.normal(0.0, sigma_part, parts)
    appraiser_effect = rng.normal(0.0, sigma_appraiser, appraisers)
    interaction = rng.normal(0.0, sigma_interaction, (parts, appraisers))
    noise = rng.normal(0.0, sigma_repeat, (parts, appraisers, trials))
    y = 10.0 + part_effect[:, None, None] + appraiser_effect[None, :, None] + interaction[:, :, None] + noise
    p, a, t = np.meshgrid(np.arange(parts), np.arange(appraisers), np.arange(trials), indexing="ij")
    return pd.DataFrame(
        {"part": p.ravel(), "appraiser": [f"op{j}" for j in a.ravel()], "trial": t.ravel() + 1, "value": y.ravel()}
    )


# --------------------------------------------------------------------------------------------- published: AIAG


def test_aiag_anova_table_matches_table_iii_b7() -> None:
    result = msa.gauge_rr(aiag_study())
    full = {row.source: row for row in result.anova.full_rows}
    assert full["Appraiser"].sum_sq == pytest.approx(3.1673, abs=5e-5)
    assert full["Part"].sum_sq == pytest.approx(88.3619, abs=5e-5)
    assert full["Part x Appraiser"].sum_sq == pytest.approx(0.3590, abs=5e-5)
    assert full["Repeatability"].sum_sq == pytest.approx(2.7589, abs=5e-5)
    assert full["Total"].sum_sq == pytest.approx(94.6471, abs=5e-5)
    assert [full[s].df for s in ("Appraiser", "Part", "Part x Appraiser", "Repeatability", "Total")] == [
        2,
        9,
        18,
        60,
        89,
    ]
    assert full["Appraiser"].f_value == pytest.approx(79.41, abs=5e-3)
    assert full["Part"].f_value == pytest.approx(492.29, abs=5e-3)
    assert full["Part x Appraiser"].f_value == pytest.approx(0.434, abs=5e-4)
    # The manual pools the interaction (not significant); p = 0.974 > 0.25.
    assert result.anova.interaction_pooled
    assert result.anova.interaction_p_value > msa.INTERACTION_POOLING_P


def test_aiag_variance_components_and_percentages_match_table_iii_b8() -> None:
    result = msa.gauge_rr(aiag_study())
    c = result.components
    assert c.repeatability_var == pytest.approx(0.039973, abs=5e-7)
    assert c.appraiser_var == pytest.approx(0.051455, abs=5e-7)
    assert c.interaction_var == 0.0
    assert c.grr_var == pytest.approx(0.09143, abs=5e-6)
    assert c.part_var == pytest.approx(1.086446, abs=1e-6)  # the manual truncates 1.0864466
    published_tv = {"EV": 18.4, "AV": 20.9, "INT": 0.0, "GRR": 27.9, "PV": 96.0}
    published_contribution = {"EV": 3.4, "AV": 4.4, "INT": 0.0, "GRR": 7.8, "PV": 92.2}
    for name, pct in published_tv.items():
        assert result.pct_study_variation[name] == pytest.approx(pct, abs=0.05), name
    for name, pct in published_contribution.items():
        assert result.pct_contribution[name] == pytest.approx(pct, abs=0.05), name
    # ndc from the published σ's: 1.41 · 1.042327 / 0.302373 = 4.86, truncated to 4.
    assert result.ndc == pytest.approx(1.41 * 1.042327 / 0.302373, abs=1e-4)
    assert result.ndc_int == 4
    assert result.verdict is msa.GrrVerdict.CONDITIONAL


def test_aiag_linearity_example_matches_table_iii_b5() -> None:
    reference = np.repeat(AIAG_LINEARITY_REFERENCE, 12)
    readings = np.concatenate(AIAG_LINEARITY_READINGS)
    result = msa.bias_linearity(reference, readings)
    assert result.slope == pytest.approx(-0.131667, abs=5e-7)
    assert result.intercept == pytest.approx(0.736667, abs=5e-7)
    assert result.r_squared == pytest.approx(0.714, abs=5e-4)
    assert list(result.mean_bias_per_reference.round(6)) == [0.491667, 0.125, 0.025, -0.291667, -0.616667]
    t_slope = stats.t.isf(result.slope_p_value / 2, 58)
    t_intercept = stats.t.isf(result.intercept_p_value / 2, 58)
    assert t_slope == pytest.approx(12.043, abs=5e-3)
    assert t_intercept == pytest.approx(10.158, abs=5e-3)
    assert not result.zero_bias_within_band  # "the bias = 0 line intersects the confidence bounds"


# --------------------------------------------------------------------------------------------- statsmodels


@pytest.mark.parametrize("sigma_interaction", [0.0, 0.4], ids=["pooled", "with-interaction"])
def test_anova_table_equals_statsmodels_anova_lm(sigma_interaction: float) -> None:
    study = synthetic_study(
        np.random.default_rng(18),
        parts=8,
        appraisers=3,
        trials=3,
        sigma_part=1.0,
        sigma_appraiser=0.3,
        sigma_interaction=sigma_interaction,
        sigma_repeat=0.2,
    )
    result = msa.gauge_rr(study)
    reference = anova_lm(smf.ols("value ~ C(part) * C(appraiser)", data=study).fit(), typ=2)
    full = {row.source: row for row in result.anova.full_rows}
    names = {"Part": "C(part)", "Appraiser": "C(appraiser)", "Part x Appraiser": "C(part):C(appraiser)"}
    for ours, theirs in {**names, "Repeatability": "Residual"}.items():
        assert full[ours].sum_sq == pytest.approx(reference.loc[theirs, "sum_sq"], rel=ANOVA_TOL)
        assert full[ours].df == reference.loc[theirs, "df"]
    interaction = full["Part x Appraiser"]
    assert interaction.f_value == pytest.approx(reference.loc["C(part):C(appraiser)", "F"], rel=ANOVA_TOL)
    assert interaction.p_value == pytest.approx(reference.loc["C(part):C(appraiser)", "PR(>F)"], rel=1e-7)
    # Random model: main effects are tested against the interaction mean square.
    ms_interaction = reference.loc["C(part):C(appraiser)", "sum_sq"] / reference.loc["C(part):C(appraiser)", "df"]
    for ours, theirs in {"Part": "C(part)", "Appraiser": "C(appraiser)"}.items():
        ms = reference.loc[theirs, "sum_sq"] / reference.loc[theirs, "df"]
        assert full[ours].f_value == pytest.approx(ms / ms_interaction, rel=ANOVA_TOL)
    assert result.anova.interaction_pooled is (interaction.p_value > msa.INTERACTION_POOLING_P)
    if result.anova.interaction_pooled:
        additive = anova_lm(smf.ols("value ~ C(part) + C(appraiser)", data=study).fit(), typ=2)
        for ours, theirs in {"Part": "C(part)", "Appraiser": "C(appraiser)", "Repeatability": "Residual"}.items():
            row = result.anova.row(ours)
            assert row.sum_sq == pytest.approx(additive.loc[theirs, "sum_sq"], rel=ANOVA_TOL)
            if ours != "Repeatability":
                assert row.f_value == pytest.approx(additive.loc[theirs, "F"], rel=ANOVA_TOL)
                assert row.p_value == pytest.approx(additive.loc[theirs, "PR(>F)"], rel=1e-7)


def test_both_branches_of_pooling_are_exercised() -> None:
    """The two parametrised data sets above really take both branches (a guard on the test, not on the code)."""
    kinds = set()
    for sigma_interaction in (0.0, 0.4):
        study = synthetic_study(
            np.random.default_rng(18),
            parts=8,
            appraisers=3,
            trials=3,
            sigma_part=1.0,
            sigma_appraiser=0.3,
            sigma_interaction=sigma_interaction,
            sigma_repeat=0.2,
        )
        kinds.add(msa.gauge_rr(study).anova.interaction_pooled)
    assert kinds == {True, False}


def test_type3_study_is_a_one_way_anova_equal_to_statsmodels() -> None:
    study = synthetic_study(
        np.random.default_rng(3),
        parts=10,
        appraisers=1,
        trials=4,
        sigma_part=1.0,
        sigma_appraiser=0.0,
        sigma_interaction=0.0,
        sigma_repeat=0.25,
    )
    result = msa.gauge_rr(study)
    reference = anova_lm(smf.ols("value ~ C(part)", data=study).fit())
    assert [row.source for row in result.anova.rows] == ["Part", "Repeatability", "Total"]
    assert result.anova.row("Part").f_value == pytest.approx(reference.loc["C(part)", "F"], rel=ANOVA_TOL)
    assert result.components.repeatability_var == pytest.approx(reference.loc["Residual", "mean_sq"], rel=ANOVA_TOL)
    assert result.av == 0.0 and result.interaction_sd == 0.0


def test_linearity_band_equals_statsmodels_ols_mean_confidence_interval() -> None:
    rng = np.random.default_rng(5)
    reference = np.repeat([1.0, 3.0, 5.0, 7.0, 9.0], 6)
    measured = reference + 0.05 + 0.02 * reference + rng.normal(0, 0.1, reference.size)
    result = msa.bias_linearity(reference, measured, confidence=0.95)
    fit = sm.OLS(measured - reference, sm.add_constant(reference)).fit()
    band = fit.get_prediction(sm.add_constant(result.band_reference)).conf_int(alpha=0.05)
    np.testing.assert_allclose(result.band_low, band[:, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.band_high, band[:, 1], rtol=1e-9, atol=1e-12)
    assert result.slope == pytest.approx(fit.params[1], rel=1e-9)
    assert result.slope_p_value == pytest.approx(fit.pvalues[1], rel=1e-6)
    assert result.intercept_p_value == pytest.approx(fit.pvalues[0], rel=1e-6)
    assert result.r_squared == pytest.approx(fit.rsquared, rel=1e-9)


# --------------------------------------------------------------------------------------------- sampling theory

TRUE = {"sigma_part": 1.0, "sigma_appraiser": 0.3, "sigma_interaction": 0.1, "sigma_repeat": 0.2}
DESIGN = {"parts": 10, "appraisers": 3, "trials": 3}
STUDIES = 300
SE_MULTIPLE = 4.0  # |mean estimate − truth| < 4 standard errors: fails by chance with p ≈ 6e-5 per component


def _expected_mean_squares() -> dict[str, tuple[float, int]]:
    """E[MS] and df of each line of the full random model (Montgomery 7th ed., eq. 8.53)."""
    p, a, r = DESIGN["parts"], DESIGN["appraisers"], DESIGN["trials"]
    var_e, var_ab = TRUE["sigma_repeat"] ** 2, TRUE["sigma_interaction"] ** 2
    var_a, var_p = TRUE["sigma_appraiser"] ** 2, TRUE["sigma_part"] ** 2
    return {
        "E": (var_e, p * a * (r - 1)),
        "AB": (var_e + r * var_ab, (p - 1) * (a - 1)),
        "A": (var_e + r * var_ab + p * r * var_a, a - 1),
        "P": (var_e + r * var_ab + a * r * var_p, p - 1),
    }


def _estimator_se(coefficients: dict[str, float]) -> float:
    """SE of a linear combination Σ cᵢ MSᵢ of independent mean squares (MSᵢ ~ EMSᵢ χ²_df / df)."""
    ems = _expected_mean_squares()
    return math.sqrt(sum(c**2 * 2 * ems[k][0] ** 2 / ems[k][1] for k, c in coefficients.items()))


@pytest.fixture(scope="module")
def monte_carlo() -> list[msa.GaugeRR]:
    rng = np.random.default_rng(2026)
    # pooling_p = 1 keeps the full model so that every estimator is the unbiased ANOVA estimator.
    return [msa.gauge_rr(synthetic_study(rng, **DESIGN, **TRUE), pooling_p=1.0) for _ in range(STUDIES)]


def test_variance_components_are_recovered_within_their_sampling_error(monte_carlo: list[msa.GaugeRR]) -> None:
    p, a, r = DESIGN["parts"], DESIGN["appraisers"], DESIGN["trials"]
    cases = {
        "repeatability_var": (TRUE["sigma_repeat"] ** 2, {"E": 1.0}),
        "interaction_var": (TRUE["sigma_interaction"] ** 2, {"AB": 1 / r, "E": -1 / r}),
        "appraiser_var": (TRUE["sigma_appraiser"] ** 2, {"A": 1 / (p * r), "AB": -1 / (p * r)}),
        "part_var": (TRUE["sigma_part"] ** 2, {"P": 1 / (a * r), "AB": -1 / (a * r)}),
        "grr_var": (
            TRUE["sigma_repeat"] ** 2 + TRUE["sigma_interaction"] ** 2 + TRUE["sigma_appraiser"] ** 2,
            {"E": 1 - 1 / r, "AB": 1 / r - 1 / (p * r), "A": 1 / (p * r)},
        ),
    }
    for name, (truth, coefficients) in cases.items():
        estimates = np.array([getattr(g.components, name) for g in monte_carlo])
        standard_error = _estimator_se(coefficients) / math.sqrt(STUDIES)
        assert abs(estimates.mean() - truth) < SE_MULTIPLE * standard_error, (
            f"{name}: mean of {STUDIES} estimates {estimates.mean():.5f}, truth {truth:.5f}, "
            f"allowed ±{SE_MULTIPLE * standard_error:.5f}"
        )
        # The single-study spread agrees with theory within 20 % (chi-square mixtures; truncation at 0 is rare).
        assert estimates.std(ddof=1) == pytest.approx(_estimator_se(coefficients), rel=0.2), name


def test_pct_grr_and_ndc_are_recovered_within_sampling_error(monte_carlo: list[msa.GaugeRR]) -> None:
    grr_var = TRUE["sigma_repeat"] ** 2 + TRUE["sigma_interaction"] ** 2 + TRUE["sigma_appraiser"] ** 2
    true_pct = 100 * math.sqrt(grr_var / (grr_var + TRUE["sigma_part"] ** 2))
    true_ndc = 1.41 * TRUE["sigma_part"] / math.sqrt(grr_var)
    pct = np.array([g.pct_grr for g in monte_carlo])
    ndc = np.array([g.ndc for g in monte_carlo])
    for name, values, truth in (("%GRR", pct, true_pct), ("ndc", ndc, true_ndc)):
        # Ratios of estimates are biased but consistent: truth lies in the central 80 % of single studies and the
        # median is within 10 % of truth.
        low, high = np.percentile(values, [10, 90])
        assert low < truth < high, f"{name}: truth {truth:.3f} outside the 10–90 % range [{low:.3f}, {high:.3f}]"
        assert np.median(values) == pytest.approx(truth, rel=0.10), name


def test_expanded_uncertainty_covers_95_percent_of_errors_against_truth() -> None:
    """U from a study with many appraisers covers ≈ 95 % of |measured − true| for fresh readings of the system."""
    rng = np.random.default_rng(14253)
    sigma_repeat, sigma_appraiser = 1.0, 0.5
    study = synthetic_study(
        rng,
        parts=10,
        appraisers=12,
        trials=3,
        sigma_part=3.0,
        sigma_appraiser=sigma_appraiser,
        sigma_interaction=0.0,
        sigma_repeat=sigma_repeat,
    )
    budget = msa.expanded_uncertainty(msa.gauge_rr(study))
    fresh = rng.normal(0, sigma_appraiser, 20_000) + rng.normal(0, sigma_repeat, 20_000)
    coverage = float(np.mean(np.abs(fresh) <= budget.expanded_u))
    assert 0.925 < coverage < 0.975, f"coverage {coverage:.3f} with U = {budget.expanded_u:.3f}"


def test_uncertainty_budget_combines_components_per_gum() -> None:
    result = msa.gauge_rr(aiag_study())
    budget = msa.expanded_uncertainty(result, bias=0.3)
    assert budget.repeatability_u == pytest.approx(math.sqrt(0.039973), rel=1e-4)
    assert budget.reproducibility_u == pytest.approx(math.sqrt(0.051455), rel=1e-4)
    assert budget.bias_u == pytest.approx(0.3 / math.sqrt(3), rel=1e-12)
    assert budget.expanded_u == pytest.approx(2 * math.sqrt(0.09143 + 0.03), rel=1e-4)


# --------------------------------------------------------------------------------------------- type 1


def test_type1_cg_cgk_and_bias_on_readings_of_known_mean_and_sd() -> None:
    z = np.random.default_rng(10).normal(size=50)
    readings = 5.1 + 0.05 * (z - z.mean()) / z.std(ddof=1)  # mean 5.1 and s = 0.05 exactly
    result = msa.type1_study(readings, reference=5.0, tolerance=2.0)
    assert result.bias == pytest.approx(0.1, abs=1e-12)
    assert result.cg == pytest.approx(0.2 * 2.0 / (6 * 0.05), rel=1e-12)  # 1.333
    assert result.cgk == pytest.approx((0.1 * 2.0 - 0.1) / (3 * 0.05), rel=1e-12)  # 0.667
    assert not result.capable
    t_test = stats.ttest_1samp(readings, 5.0)
    assert result.bias_t == pytest.approx(t_test.statistic, rel=1e-9)
    assert result.bias_p_value == pytest.approx(t_test.pvalue, rel=1e-9)
    four_sigma = msa.type1_study(readings, reference=5.0, tolerance=2.0, spread=msa.Type1Spread.FOUR_SIGMA)
    assert four_sigma.cg == pytest.approx(0.2 * 2.0 / (4 * 0.05), rel=1e-12)


def test_type1_capable_gauge_is_judged_capable() -> None:
    readings = np.random.default_rng(11).normal(0.0, 0.01, 50)
    assert msa.type1_study(readings, reference=0.0, tolerance=1.0).capable


# --------------------------------------------------------------------------------------------- decision rule


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5.0, msa.Decision.CONFORMS),
        (9.5, msa.Decision.CONFORMS),
        (9.7, msa.Decision.UNDECIDED),
        (10.4, msa.Decision.UNDECIDED),
        (10.6, msa.Decision.DOES_NOT_CONFORM),
        (-0.6, msa.Decision.DOES_NOT_CONFORM),
        (0.2, msa.Decision.UNDECIDED),
    ],
)
def test_iso14253_decision_zones(value: float, expected: msa.Decision) -> None:
    assert msa.iso14253_decision(value, 0.5, low=0.0, high=10.0) is expected


def test_iso14253_one_sided_specification() -> None:
    assert msa.iso14253_decision(3.0, 0.5, low=None, high=4.0) is msa.Decision.CONFORMS
    assert msa.iso14253_decision(3.8, 0.5, low=None, high=4.0) is msa.Decision.UNDECIDED


# --------------------------------------------------------------------------------------------- bad input


def test_unbalanced_study_is_rejected_with_the_cell_counts() -> None:
    study = aiag_study().iloc[1:]
    with pytest.raises(msa.StudyInputError, match="unbalanced design"):
        msa.gauge_rr(study)


def test_missing_column_and_non_numeric_value_are_named() -> None:
    with pytest.raises(msa.StudyInputError, match=r"missing column\(s\) \['trial'\]"):
        msa.gauge_rr(aiag_study().drop(columns="trial"))
    bad = aiag_study().astype({"value": object})
    bad.loc[4, "value"] = "n/a"
    with pytest.raises(msa.StudyInputError, match="value = 'n/a' for part 5, appraiser A:"):
        msa.gauge_rr(bad)


def test_single_trial_and_bad_tolerance_are_rejected() -> None:
    one_trial = aiag_study().query("trial == 1")
    with pytest.raises(msa.StudyInputError, match="at least 2 parts and 2 trials"):
        msa.gauge_rr(one_trial)
    with pytest.raises(msa.StudyInputError, match="tolerance = -1"):
        msa.gauge_rr(aiag_study(), tolerance=-1)
