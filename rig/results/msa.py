"""Measurement system analysis (MSA): is the station capable of judging this figure?

Pure statistics on a long table of measurements — one row per reading with the columns ``part``, ``appraiser``,
``trial`` and ``value`` (the value in the figure's own unit; every spread and uncertainty below is in that unit).
No I/O, no bench: :mod:`rig.results.msa_study` produces the table on the twin or a station.

What is computed and where it is defined:

* **Gauge R&R, crossed ANOVA** (:func:`gauge_rr`). Two-way random-effects ANOVA part × appraiser with
  interaction; the interaction is pooled into repeatability when its p-value exceeds 0.25. Variance components
  from the expected mean squares (negative estimates set to zero), EV, AV, interaction, GRR, PV, TV as standard
  deviations, % contribution (of variance), % study variation (of σ_TV), % tolerance (6σ over USL − LSL),
  ndc = 1.41 · PV / GRR and the verdict on %GRR: < 10 % acceptable, 10–30 % conditional, > 30 % not.
  AIAG, *Measurement Systems Analysis Reference Manual*, 4th ed. (2010), ch. III §B "Analysis of Variance
  (ANOVA) Method" (Tables III-B 6 to III-B 8) and Appendix A (ANOVA formulas, pooling at α = 0.25);
  D. C. Montgomery, *Introduction to Statistical Quality Control*, 7th ed. (2013), §8.7.
  With one appraiser the study is an automated "type 3" study (VDA 5 §6): a one-way ANOVA of parts, no
  reproducibility term.
* **Type-1 study** (:func:`type1_study`): Cg = (K·T) / (L·s), Cgk = (K/2·T − |x̄ − x_m|) / (L/2·s) with
  K = 20 % of the tolerance T and L = 6 s (Bosch, *Booklet 10: Capability of Measurement and Test Processes*,
  2010, §4.1; VDA Band 5, *Prüfprozesseignung*, 2nd ed. 2010, §5.1), L = 4 s as an option; capable when
  both ≥ 1.33. The bias against the reference and its t-test follow AIAG MSA 4th ed., ch. III §B "Bias,
  independent sample method".
* **Bias and linearity** (:func:`bias_linearity`): ordinary least squares of bias on reference value with the
  confidence band of the fitted line, ŷ(x₀) ± t₁₋α/₂,ₙ₋₂ · s · √(1/n + (x₀ − x̄)² / Σ(xᵢ − x̄)²); linearity is
  acceptable when the bias = 0 line lies inside the band over the studied range (AIAG MSA 4th ed., ch. III §B
  "Guidelines for Determining Linearity").
* **Expanded uncertainty** (:func:`expanded_uncertainty`): standard uncertainties of repeatability (σ_EV),
  reproducibility (√(σ_AV² + σ_INT²)) and an uncorrected bias b taken as a rectangular distribution of
  half-width |b| (u = |b| / √3, VDA 5 §4.3), combined in quadrature as uncorrelated inputs (JCGM 100:2008, GUM
  §5.1.2) and expanded with k = 2 (GUM §6.2–6.3, ≈ 95 % coverage).
* **Decision rule** (:func:`iso14253_decision`, defined in :mod:`rig.results.decision` so the run recorder can
  judge with it cheaply): ISO 14253-1:2017 §5 — conformance is proven only inside the specification zone narrowed
  by U at each limit, non-conformance only outside it widened by U; in between the result is undecided.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pandas as pd
from scipy import stats

from rig.errors import InputError
from rig.results.decision import Decision as Decision  # re-exported: the rule is part of the MSA's vocabulary
from rig.results.decision import iso14253_decision as iso14253_decision

STUDY_COLUMNS = ("part", "appraiser", "trial", "value")
"""Columns of a study table: one row per reading."""

INTERACTION_POOLING_P = 0.25
"""Pool the part × appraiser interaction into repeatability when its p-value exceeds this (AIAG MSA Appendix A)."""

NDC_FACTOR = 1.41
"""ndc = 1.41 · PV / GRR (AIAG MSA 4th ed., ch. II §C: √2 rounded as the manual prints it)."""

TOLERANCE_SPREAD_SIGMAS = 6.0
"""%tolerance compares 6σ with USL − LSL (AIAG MSA 4th ed.; the 3rd edition used 5.15σ)."""

GRR_ACCEPTABLE_PCT = 10.0
GRR_CONDITIONAL_PCT = 30.0
CAPABLE_CG = 1.33
"""Minimum Cg and Cgk of a capable gauge (Bosch Booklet 10 §4.1; VDA 5 §5.1)."""

COVERAGE_FACTOR = 2.0
"""k of the expanded uncertainty U = k · u_c (GUM §6.3: ≈ 95 % for a normal distribution)."""


class StudyInputError(InputError):
    """A study table that cannot be analysed (missing columns, unbalanced design, too few trials)."""


class GrrVerdict(Enum):
    """AIAG acceptance of a measurement system from its %GRR."""

    ACCEPTABLE = "acceptable"
    CONDITIONAL = "conditionally acceptable"
    NOT_ACCEPTABLE = "not acceptable"


class Type1Spread(Enum):
    """Spread L that Cg compares with the gauge's share of the tolerance (Bosch Booklet 10 §4.1)."""

    SIX_SIGMA = 6.0
    FOUR_SIGMA = 4.0


CAPABILITY: dict[GrrVerdict, str] = {
    GrrVerdict.ACCEPTABLE: "capable",
    GrrVerdict.CONDITIONAL: "capable with conditions",
    GrrVerdict.NOT_ACCEPTABLE: "not capable",
}
"""What a gauge R&R verdict says about the station for that figure (AIAG: a conditionally acceptable system may
be used depending on the application, the cost of the gauge and of its repair)."""


def grr_verdict(percent: float) -> GrrVerdict:
    """AIAG verdict for a %GRR (of study variation or of tolerance): < 10 %, 10–30 %, > 30 %."""
    if percent < GRR_ACCEPTABLE_PCT:
        return GrrVerdict.ACCEPTABLE
    if percent <= GRR_CONDITIONAL_PCT:
        return GrrVerdict.CONDITIONAL
    return GrrVerdict.NOT_ACCEPTABLE


# --------------------------------------------------------------------------------------------- ANOVA


@dataclass(frozen=True)
class AnovaRow:
    """One line of an ANOVA table. ``f_value``/``p_value`` are NaN for the error and total lines."""

    source: str
    df: int
    sum_sq: float
    mean_sq: float
    f_value: float
    p_value: float


@dataclass(frozen=True)
class AnovaTable:
    """The ANOVA table of a gauge study as AIAG prints it (Table III-B 7).

    Attributes
    ----------
    rows
        Part, Appraiser (absent in a type-3 study), Part × Appraiser (absent when pooled or type 3),
        Repeatability, Total — in that order.
    interaction_p_value
        p-value of the interaction in the full model (NaN in a type-3 study), kept when it is pooled.
    interaction_pooled
        True when the interaction was pooled into repeatability (p > :data:`INTERACTION_POOLING_P`).
    full_rows
        The full model's table with the interaction line, as AIAG prints it before pooling (equal to ``rows``
        when nothing was pooled).
    """

    rows: tuple[AnovaRow, ...]
    interaction_p_value: float
    interaction_pooled: bool
    full_rows: tuple[AnovaRow, ...]

    def row(self, source: str) -> AnovaRow:
        """The line named ``source`` (``"Part"``, ``"Appraiser"``, ``"Part x Appraiser"``, ``"Repeatability"``)."""
        for candidate in self.rows:
            if candidate.source == source:
                return candidate
        raise KeyError(f"no ANOVA line {source!r}; lines are {[r.source for r in self.rows]}")

    def to_frame(self, *, full: bool = False) -> pd.DataFrame:
        """The table (the full model's with ``full=True``) as a frame, one line per source."""
        return pd.DataFrame([vars(r) for r in (self.full_rows if full else self.rows)])


@dataclass(frozen=True)
class VarianceComponents:
    """Variance components of the random-effects model (unit², each ≥ 0)."""

    repeatability_var: float
    appraiser_var: float
    interaction_var: float
    part_var: float

    @property
    def reproducibility_var(self) -> float:
        return self.appraiser_var + self.interaction_var

    @property
    def grr_var(self) -> float:
        return self.repeatability_var + self.reproducibility_var

    @property
    def total_var(self) -> float:
        return self.grr_var + self.part_var


@dataclass(frozen=True)
class GaugeRR:
    """Result of a crossed gauge R&R study of one figure (AIAG MSA 4th ed., Table III-B 8).

    Spreads are standard deviations in the figure's unit (AIAG 4th ed. reports σ, not 5.15σ).

    Attributes
    ----------
    ev, av, interaction_sd, grr, pv, tv
        Repeatability (equipment variation), appraiser variation, part × appraiser interaction, GRR =
        √(EV² + AV² + INT²), part variation and total variation √(GRR² + PV²).
    pct_contribution
        Share of the total *variance* per component (``"EV"``, ``"AV"``, ``"INT"``, ``"GRR"``, ``"PV"``), %.
    pct_study_variation
        Component σ over σ_TV, %.
    pct_tolerance
        6σ of each component over ``tolerance``, %; empty when no tolerance was given.
    ndc
        Number of distinct categories 1.41 · PV / GRR (``inf`` when GRR = 0); ``ndc_int`` truncates it as AIAG
        prescribes (a capable system has ``ndc_int`` ≥ 5).
    verdict
        AIAG verdict on %GRR of study variation; ``verdict_tolerance`` on %GRR of tolerance (None without one).
    """

    anova: AnovaTable
    components: VarianceComponents
    n_parts: int
    n_appraisers: int
    n_trials: int
    ev: float
    av: float
    interaction_sd: float
    grr: float
    pv: float
    tv: float
    pct_contribution: dict[str, float]
    pct_study_variation: dict[str, float]
    pct_tolerance: dict[str, float]
    tolerance: float | None
    ndc: float
    ndc_int: int
    verdict: GrrVerdict
    verdict_tolerance: GrrVerdict | None

    @property
    def pct_grr(self) -> float:
        """%GRR of study variation."""
        return self.pct_study_variation["GRR"]


def _cube(study: pd.DataFrame) -> tuple[np.ndarray, list, list]:
    """Readings as an array ``[part, appraiser, trial]``, checking the design is complete and balanced."""
    missing = [c for c in STUDY_COLUMNS if c not in study.columns]
    if missing:
        raise StudyInputError(f"study table: missing column(s) {missing}; expected columns {list(STUDY_COLUMNS)}")
    values = pd.to_numeric(study["value"], errors="coerce")
    if not np.isfinite(values.to_numpy(dtype=float)).all():
        bad = study.loc[~np.isfinite(values.to_numpy(dtype=float))].iloc[0]
        raise StudyInputError(
            f"study table: value = {bad['value']!r} for part {bad['part']}, appraiser {bad['appraiser']}: "
            "expected a finite number"
        )
    parts = sorted(study["part"].unique(), key=str)
    appraisers = sorted(study["appraiser"].unique(), key=str)
    counts = study.groupby(["part", "appraiser"]).size()
    if len(counts) != len(parts) * len(appraisers) or counts.nunique() != 1:
        raise StudyInputError(
            "study table: unbalanced design: every appraiser must measure every part the same number of times; "
            f"found trials per (part, appraiser) {counts.to_dict()}"
        )
    n_trials = int(counts.iloc[0])
    if len(parts) < 2 or n_trials < 2:
        raise StudyInputError(
            f"study table: {len(parts)} part(s) × {n_trials} trial(s): expected at least 2 parts and 2 trials"
        )
    ordered = study.assign(value=values).sort_values(["part", "appraiser", "trial"], key=lambda s: s.astype(str))
    part_index = ordered["part"].map({p: i for i, p in enumerate(parts)}).to_numpy()
    appraiser_index = ordered["appraiser"].map({a: i for i, a in enumerate(appraisers)}).to_numpy()
    cube = np.empty((len(parts), len(appraisers), n_trials))
    slot = ordered.groupby(["part", "appraiser"]).cumcount().to_numpy()
    cube[part_index, appraiser_index, slot] = ordered["value"].to_numpy(dtype=float)
    return cube, parts, appraisers


def _row(source: str, df: int, ss: float, denominator_ms: float | None, denominator_df: int | None) -> AnovaRow:
    ms = ss / df
    if denominator_ms is None or denominator_df is None:
        return AnovaRow(source, df, ss, ms, math.nan, math.nan)
    f_value = ms / denominator_ms if denominator_ms > 0 else math.inf
    p_value = float(stats.f.sf(f_value, df, denominator_df)) if math.isfinite(f_value) else 0.0
    return AnovaRow(source, df, ss, ms, f_value, p_value)


def crossed_anova(
    study: pd.DataFrame, *, pooling_p: float = INTERACTION_POOLING_P
) -> tuple[AnovaTable, VarianceComponents, tuple[int, int, int]]:
    """Two-way random-effects ANOVA of a crossed gauge study and its variance components.

    Parameters
    ----------
    study
        Long table with :data:`STUDY_COLUMNS`; balanced (every appraiser measures every part ``r`` ≥ 2 times).
    pooling_p
        Pool the interaction into repeatability when its p-value exceeds this (AIAG: 0.25).

    Returns
    -------
    table, components, (parts, appraisers, trials)
        The ANOVA table (F of the main effects over the interaction mean square in the full random model, over
        the pooled error when pooled), the variance components (unit²) and the design's size.

    References
    ----------
    AIAG MSA 4th ed. (2010), Appendix A; Montgomery, *Introduction to Statistical Quality Control*, 7th ed.,
    §8.7.3, eq. (8.53)–(8.56) (expected mean squares of the two-factor random model).
    """
    cube, _, _ = _cube(study)
    p, a, r = cube.shape
    grand = cube.mean()
    part_means = cube.mean(axis=(1, 2))
    appraiser_means = cube.mean(axis=(0, 2))
    cell_means = cube.mean(axis=2)
    ss_total = float(((cube - grand) ** 2).sum())
    ss_part = float(a * r * ((part_means - grand) ** 2).sum())
    ss_error = float(((cube - cell_means[:, :, None]) ** 2).sum())
    df_part, df_error, df_total = p - 1, p * a * (r - 1), p * a * r - 1

    if a == 1:  # type-3 study: no appraiser factor
        ms_error = ss_error / df_error
        one_way = (
            _row("Part", df_part, ss_part, ms_error, df_error),
            _row("Repeatability", df_error, ss_error, None, None),
            _row("Total", df_total, ss_total, None, None),
        )
        table = AnovaTable(rows=one_way, interaction_p_value=math.nan, interaction_pooled=False, full_rows=one_way)
        part_var = max((ss_part / df_part - ms_error) / r, 0.0)
        return table, VarianceComponents(ms_error, 0.0, 0.0, part_var), (p, a, r)

    ss_appraiser = float(p * r * ((appraiser_means - grand) ** 2).sum())
    ss_interaction = float(r * ((cell_means - part_means[:, None] - appraiser_means[None, :] + grand) ** 2).sum())
    df_appraiser, df_interaction = a - 1, (p - 1) * (a - 1)
    ms_error = ss_error / df_error
    ms_interaction = ss_interaction / df_interaction
    interaction = _row("Part x Appraiser", df_interaction, ss_interaction, ms_error, df_error)
    full_rows = (
        _row("Part", df_part, ss_part, ms_interaction, df_interaction),
        _row("Appraiser", df_appraiser, ss_appraiser, ms_interaction, df_interaction),
        interaction,
        _row("Repeatability", df_error, ss_error, None, None),
        _row("Total", df_total, ss_total, None, None),
    )

    if interaction.p_value > pooling_p:
        df_pooled = df_interaction + df_error
        ms_pooled = (ss_interaction + ss_error) / df_pooled
        table = AnovaTable(
            rows=(
                _row("Part", df_part, ss_part, ms_pooled, df_pooled),
                _row("Appraiser", df_appraiser, ss_appraiser, ms_pooled, df_pooled),
                _row("Repeatability", df_pooled, ss_interaction + ss_error, None, None),
                _row("Total", df_total, ss_total, None, None),
            ),
            interaction_p_value=interaction.p_value,
            interaction_pooled=True,
            full_rows=full_rows,
        )
        components = VarianceComponents(
            repeatability_var=ms_pooled,
            appraiser_var=max((ss_appraiser / df_appraiser - ms_pooled) / (p * r), 0.0),
            interaction_var=0.0,
            part_var=max((ss_part / df_part - ms_pooled) / (a * r), 0.0),
        )
        return table, components, (p, a, r)

    table = AnovaTable(
        rows=full_rows, interaction_p_value=interaction.p_value, interaction_pooled=False, full_rows=full_rows
    )
    components = VarianceComponents(
        repeatability_var=ms_error,
        appraiser_var=max((ss_appraiser / df_appraiser - ms_interaction) / (p * r), 0.0),
        interaction_var=max((ms_interaction - ms_error) / r, 0.0),
        part_var=max((ss_part / df_part - ms_interaction) / (a * r), 0.0),
    )
    return table, components, (p, a, r)


def gauge_rr(
    study: pd.DataFrame,
    *,
    tolerance: float | None = None,
    pooling_p: float = INTERACTION_POOLING_P,
) -> GaugeRR:
    """Gauge repeatability and reproducibility of one figure by the AIAG ANOVA method.

    Parameters
    ----------
    study
        Long table with :data:`STUDY_COLUMNS` (value in the figure's unit). One appraiser level makes it a
        type-3 study.
    tolerance
        USL − LSL in the figure's unit, for %tolerance; ``None`` when the figure has a one-sided or no limit.
    pooling_p
        See :func:`crossed_anova`.

    Returns
    -------
    GaugeRR
        Spreads (σ, figure's unit), percentages, ndc and verdicts.

    References
    ----------
    AIAG MSA 4th ed. (2010), ch. III §B, Table III-B 8 ("ANOVA Analysis % Variation & Contribution").
    """
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance > 0):
        raise StudyInputError(f"tolerance = {tolerance!r}: expected a number > 0 (USL − LSL)")
    table, comp, (p, a, r) = crossed_anova(study, pooling_p=pooling_p)
    sd = {
        "EV": math.sqrt(comp.repeatability_var),
        "AV": math.sqrt(comp.appraiser_var),
        "INT": math.sqrt(comp.interaction_var),
        "GRR": math.sqrt(comp.grr_var),
        "PV": math.sqrt(comp.part_var),
    }
    tv = math.sqrt(comp.total_var)
    variances = {name: value**2 for name, value in sd.items()}
    pct_contribution = {k: 100.0 * v / comp.total_var if comp.total_var > 0 else math.nan for k, v in variances.items()}
    pct_study = {k: 100.0 * v / tv if tv > 0 else math.nan for k, v in sd.items()}
    pct_tol = {k: 100.0 * TOLERANCE_SPREAD_SIGMAS * v / tolerance for k, v in sd.items()} if tolerance else {}
    ndc = NDC_FACTOR * sd["PV"] / sd["GRR"] if sd["GRR"] > 0 else math.inf
    return GaugeRR(
        anova=table,
        components=comp,
        n_parts=p,
        n_appraisers=a,
        n_trials=r,
        ev=sd["EV"],
        av=sd["AV"],
        interaction_sd=sd["INT"],
        grr=sd["GRR"],
        pv=sd["PV"],
        tv=tv,
        pct_contribution=pct_contribution,
        pct_study_variation=pct_study,
        pct_tolerance=pct_tol,
        tolerance=tolerance,
        ndc=ndc,
        ndc_int=int(ndc) if math.isfinite(ndc) else np.iinfo(np.int64).max,
        verdict=grr_verdict(pct_study["GRR"]),
        verdict_tolerance=grr_verdict(pct_tol["GRR"]) if pct_tol else None,
    )


# --------------------------------------------------------------------------------------------- type 1


@dataclass(frozen=True)
class Type1Study:
    """Type-1 gauge study: one reference part measured n times (Bosch Booklet 10 §4.1; VDA 5 §5.1).

    Attributes
    ----------
    n, mean, sd
        Readings, their mean and sample standard deviation (ddof = 1), figure's unit.
    reference, bias
        The reference (true) value and bias = mean − reference, figure's unit.
    bias_t, bias_p_value
        t statistic of the bias (bias / (s/√n)) and its two-sided p-value (AIAG MSA 4th ed., ch. III §B).
    cg, cgk
        Potential and critical gauge capability; ``inf`` when s = 0.
    tolerance, tolerance_fraction, spread
        T = USL − LSL, K (0.2) and L (6 s or 4 s) of the definition.
    capable
        Cg ≥ 1.33 and Cgk ≥ 1.33.
    """

    n: int
    mean: float
    sd: float
    reference: float
    bias: float
    bias_t: float
    bias_p_value: float
    cg: float
    cgk: float
    tolerance: float
    tolerance_fraction: float
    spread: Type1Spread
    capable: bool


def type1_study(
    values: np.ndarray,
    *,
    reference: float,
    tolerance: float,
    tolerance_fraction: float = 0.2,
    spread: Type1Spread = Type1Spread.SIX_SIGMA,
) -> Type1Study:
    """Cg, Cgk and bias of n repeated readings of one reference part.

    Parameters
    ----------
    values
        The n readings (figure's unit), n ≥ 2 (the standards ask for 25–50).
    reference
        The part's true or calibrated value, same unit.
    tolerance
        USL − LSL of the figure (> 0), same unit.
    tolerance_fraction
        K, the share of the tolerance the gauge may spend (0.2 in Bosch Booklet 10 and VDA 5).
    spread
        L: 6 s (Bosch, VDA 5) or 4 s (some company standards).

    Returns
    -------
    Type1Study

    References
    ----------
    Robert Bosch GmbH, *Booklet No. 10: Capability of Measurement and Test Processes* (2010), §4.1, eq. for
    Cg = 0.2·T / 6s and Cgk = (0.1·T − |x̄ − x_m|) / 3s; VDA Band 5 (2010), §5.1.
    """
    readings = np.asarray(values, dtype=float).ravel()
    if readings.size < 2 or not np.isfinite(readings).all():
        raise StudyInputError(f"type-1 readings: {readings.size} value(s), expected at least 2 finite numbers")
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise StudyInputError(f"tolerance = {tolerance!r}: expected a number > 0 (USL − LSL)")
    if not 0 < tolerance_fraction <= 1:
        raise StudyInputError(f"tolerance_fraction = {tolerance_fraction!r}: expected a fraction in (0, 1]")
    n = int(readings.size)
    mean = float(readings.mean())
    sd = float(readings.std(ddof=1))
    bias = mean - reference
    width = spread.value
    if sd > 0:
        cg = tolerance_fraction * tolerance / (width * sd)
        cgk = (tolerance_fraction / 2 * tolerance - abs(bias)) / (width / 2 * sd)
        bias_t = bias / (sd / math.sqrt(n))
        bias_p = float(2 * stats.t.sf(abs(bias_t), n - 1))
    else:
        cg = math.inf
        cgk = math.inf if abs(bias) < tolerance_fraction / 2 * tolerance else -math.inf
        bias_t = math.copysign(math.inf, bias) if bias else 0.0
        bias_p = 0.0 if bias else 1.0
    return Type1Study(
        n=n,
        mean=mean,
        sd=sd,
        reference=reference,
        bias=bias,
        bias_t=bias_t,
        bias_p_value=bias_p,
        cg=cg,
        cgk=cgk,
        tolerance=tolerance,
        tolerance_fraction=tolerance_fraction,
        spread=spread,
        capable=cg >= CAPABLE_CG and cgk >= CAPABLE_CG,
    )


# --------------------------------------------------------------------------------------------- linearity


@dataclass(frozen=True)
class LinearityStudy:
    """Bias-and-linearity study: regression of bias on reference value (AIAG MSA 4th ed., ch. III §B).

    Attributes
    ----------
    slope, intercept
        bias ≈ slope · reference + intercept (slope dimensionless, intercept in the figure's unit).
    slope_p_value, intercept_p_value
        Two-sided t-test p-values of slope = 0 and intercept = 0.
    r_squared, residual_sd
        Goodness of fit and s of the regression (figure's unit).
    band_reference, band_low, band_high
        The confidence band of the fitted line on a grid over the studied reference range.
    mean_bias_per_reference
        Average bias at each distinct reference value (index: reference value).
    zero_bias_within_band
        True when bias = 0 lies inside the band over the whole range: no significant bias or linearity.
    confidence
        Level of the band (0.95).
    """

    slope: float
    intercept: float
    slope_p_value: float
    intercept_p_value: float
    r_squared: float
    residual_sd: float
    band_reference: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    mean_bias_per_reference: pd.Series
    zero_bias_within_band: bool
    confidence: float


def bias_linearity(
    reference: np.ndarray, measured: np.ndarray, *, confidence: float = 0.95, band_points: int = 50
) -> LinearityStudy:
    """Regress bias (measured − reference) on reference value, with the fit's confidence band.

    Parameters
    ----------
    reference, measured
        Paired arrays (figure's unit): each reading and the true value of the part it was taken on; at least
        two distinct reference values and three readings.
    confidence
        Level of the confidence band of the fitted line.
    band_points
        Grid size of the band over [min, max] of the reference values.

    Returns
    -------
    LinearityStudy

    References
    ----------
    AIAG MSA 4th ed. (2010), ch. III §B "Guidelines for Determining Linearity" (band
    b + a·x₀ ± t_{gm−2, 1−α/2} · s · [1/gm + (x₀ − x̄)² / Σ(xᵢ − x̄)²]^½).
    """
    x = np.asarray(reference, dtype=float).ravel()
    y = np.asarray(measured, dtype=float).ravel()
    if x.shape != y.shape or x.size < 3 or np.unique(x).size < 2:
        raise StudyInputError(
            f"linearity study: {x.size} reference and {y.size} measured value(s): expected equal lengths, "
            "at least 3 readings and 2 distinct reference values"
        )
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise StudyInputError("linearity study: reference and measured values must be finite numbers")
    if not 0 < confidence < 1:
        raise StudyInputError(f"confidence = {confidence!r}: expected a level in (0, 1)")
    bias = y - x
    n = x.size
    x_mean = x.mean()
    sxx = float(((x - x_mean) ** 2).sum())
    slope = float(((x - x_mean) * (bias - bias.mean())).sum() / sxx)
    intercept = float(bias.mean() - slope * x_mean)
    residuals = bias - (slope * x + intercept)
    dof = n - 2
    sse = float((residuals**2).sum())
    s = math.sqrt(sse / dof) if dof > 0 else math.nan
    sst = float(((bias - bias.mean()) ** 2).sum())
    r_squared = 1.0 - sse / sst if sst > 0 else 1.0
    se_slope = s / math.sqrt(sxx)
    se_intercept = s * math.sqrt(1.0 / n + x_mean**2 / sxx)

    def two_sided(estimate: float, se: float) -> float:
        if se > 0:
            return float(2 * stats.t.sf(abs(estimate / se), dof))
        return 0.0 if estimate else 1.0

    grid = np.linspace(x.min(), x.max(), band_points)
    t_crit = float(stats.t.ppf(0.5 + confidence / 2, dof))
    half = t_crit * s * np.sqrt(1.0 / n + (grid - x_mean) ** 2 / sxx)
    fitted = slope * grid + intercept
    low, high = fitted - half, fitted + half
    per_reference = pd.Series(bias).groupby(x).mean()
    per_reference.index.name = "reference"
    return LinearityStudy(
        slope=slope,
        intercept=intercept,
        slope_p_value=two_sided(slope, se_slope),
        intercept_p_value=two_sided(intercept, se_intercept),
        r_squared=r_squared,
        residual_sd=s,
        band_reference=grid,
        band_low=low,
        band_high=high,
        mean_bias_per_reference=per_reference.rename("mean_bias"),
        zero_bias_within_band=bool(((low <= 0) & (high >= 0)).all()),
        confidence=confidence,
    )


# --------------------------------------------------------------------------------------------- uncertainty


@dataclass(frozen=True)
class MeasurementUncertainty:
    """Uncertainty budget of one figure of one station (GUM; figure's unit).

    Attributes
    ----------
    repeatability_u, reproducibility_u, bias_u
        Standard uncertainties of the inputs.
    combined_u
        u_c = √(Σ uᵢ²), uncorrelated inputs (GUM §5.1.2).
    coverage_factor, expanded_u
        k and U = k · u_c (GUM §6.2).
    """

    repeatability_u: float
    reproducibility_u: float
    bias_u: float
    combined_u: float
    coverage_factor: float
    expanded_u: float


def expanded_uncertainty(
    grr: GaugeRR, *, bias: float = 0.0, coverage_factor: float = COVERAGE_FACTOR
) -> MeasurementUncertainty:
    """Expanded uncertainty U of a figure from its gauge study and its bias against truth.

    Parameters
    ----------
    grr
        The figure's gauge R&R (repeatability σ_EV, reproducibility √(σ_AV² + σ_INT²)).
    bias
        Uncorrected bias against the true value (figure's unit), e.g. :attr:`Type1Study.bias`; treated as a
        rectangular distribution of half-width |bias| (u = |bias| / √3, VDA 5 §4.3).
    coverage_factor
        k (2 for ≈ 95 % coverage).

    Returns
    -------
    MeasurementUncertainty

    References
    ----------
    JCGM 100:2008 (GUM) §4.3.7 (rectangular distribution), §5.1.2 (law of propagation, uncorrelated inputs),
    §6.2 (expanded uncertainty); VDA Band 5 (2010) §4.3 (standard uncertainties of the measurement system).
    """
    return combine_uncertainty(
        repeatability_u=grr.ev,
        reproducibility_u=math.hypot(grr.av, grr.interaction_sd),
        bias=bias,
        coverage_factor=coverage_factor,
    )


def combine_uncertainty(
    *, repeatability_u: float, reproducibility_u: float, bias: float = 0.0, coverage_factor: float = COVERAGE_FACTOR
) -> MeasurementUncertainty:
    """U = k · √(u_EV² + u_AV² + (|bias|/√3)²) from standard uncertainties (figure's unit); see
    :func:`expanded_uncertainty` for the model and the references."""
    if not (math.isfinite(coverage_factor) and coverage_factor > 0):
        raise StudyInputError(f"coverage_factor = {coverage_factor!r}: expected a number > 0")
    if not math.isfinite(bias):
        raise StudyInputError(f"bias = {bias!r}: expected a finite number")
    bias_u = abs(bias) / math.sqrt(3.0)
    combined = math.sqrt(repeatability_u**2 + reproducibility_u**2 + bias_u**2)
    return MeasurementUncertainty(
        repeatability_u=repeatability_u,
        reproducibility_u=reproducibility_u,
        bias_u=bias_u,
        combined_u=combined,
        coverage_factor=coverage_factor,
        expanded_u=coverage_factor * combined,
    )


def as_jsonable(value: object) -> object:
    """A study result (dataclasses, enums, arrays, frames, NaN/inf) as plain JSON types; non-finite → None."""
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, pd.Series):
        return {str(k): as_jsonable(v) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return [as_jsonable(row) for row in value.to_dict(orient="records")]
    if isinstance(value, dict):
        return {str(k): as_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [as_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


# --------------------------------------------------------------------------------------------- golden unit

D2_SPAN2 = 1.128
"""d₂ of moving ranges of span 2 (Montgomery 7th ed., Appendix VI): σ_within = mean moving range / d₂."""

RUN_RULE_LENGTH = 8
"""Western Electric rule 4: this many consecutive points on one side of the centre line signal a shift."""


@dataclass(frozen=True)
class GoldenChart:
    """Individuals chart of a station's golden-unit results for one figure (figure's unit).

    Attributes
    ----------
    values
        Results in time order; the first ``baseline_runs`` set the centre and the limits (Phase I).
    center, sigma_within, ucl, lcl
        Centre line (baseline mean), σ from the baseline's moving ranges, centre ± 3σ.
    beyond_limits
        Indices beyond the control limits (Western Electric rule 1).
    run_rule
        Indices ending a run of :data:`RUN_RULE_LENGTH` on one side of the centre (rule 4).
    drifting
        True when the latest result triggers either rule: the station needs attention before it judges units.
    baseline_complete
        False while fewer than ``baseline_runs`` results exist (no verdict yet).
    """

    values: np.ndarray
    baseline_runs: int
    center: float
    sigma_within: float
    ucl: float
    lcl: float
    beyond_limits: np.ndarray
    run_rule: np.ndarray
    drifting: bool
    baseline_complete: bool


def golden_chart(values: np.ndarray, *, baseline_runs: int = 10) -> GoldenChart:
    """Control chart of golden-unit results with Western Electric rules 1 and 4.

    Parameters
    ----------
    values
        The station's golden-unit results of one figure, oldest first.
    baseline_runs
        Results that establish the baseline (≥ 2).

    Returns
    -------
    GoldenChart

    References
    ----------
    AIAG MSA 4th ed. (2010), ch. III §A "Stability" (control chart of a reference part); Western Electric,
    *Statistical Quality Control Handbook* (1956), rules 1 and 4; Montgomery 7th ed., §6.4 (individuals chart).
    """
    x = np.asarray(values, dtype=float).ravel()
    if baseline_runs < 2:
        raise StudyInputError(f"baseline_runs = {baseline_runs}: expected at least 2")
    if not np.isfinite(x).all():
        raise StudyInputError("golden-unit results must be finite numbers")
    complete = x.size >= baseline_runs
    base = x[: min(baseline_runs, x.size)]
    center = float(base.mean()) if base.size else math.nan
    sigma = float(np.abs(np.diff(base)).mean() / D2_SPAN2) if base.size >= 2 else math.nan
    ucl, lcl = center + 3 * sigma, center - 3 * sigma
    beyond = np.flatnonzero((x > ucl) | (x < lcl)) if math.isfinite(sigma) else np.array([], dtype=int)
    side = np.sign(x - center) if math.isfinite(center) else np.zeros_like(x)
    run_ends = [
        i
        for i in range(RUN_RULE_LENGTH - 1, x.size)
        if side[i] != 0 and (side[i - RUN_RULE_LENGTH + 1 : i + 1] == side[i]).all()
    ]
    last = x.size - 1
    drifting = complete and (last in set(beyond.tolist()) or last in run_ends)
    return GoldenChart(
        values=x,
        baseline_runs=baseline_runs,
        center=center,
        sigma_within=sigma,
        ucl=ucl,
        lcl=lcl,
        beyond_limits=beyond,
        run_rule=np.array(run_ends, dtype=int),
        drifting=bool(drifting),
        baseline_complete=complete,
    )
