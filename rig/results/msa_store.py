"""MSA studies in the results store, and what a station's stored studies say about its figures.

A study is stored as one ``msa_studies`` row (the whole study as JSON, for exact reconstruction) and one
``msa_figures`` row per figure with the numbers reports and SPC read (:data:`MSA_FIGURE_COLUMNS`). Three kinds:

* ``grr``: EV (``repeatability_sd``), √(AV² + INT²) (``reproducibility_sd``), PV, %GRR, %tolerance, ndc; accepted
  when the AIAG verdict is acceptable or conditionally acceptable;
* ``type1``: the bias against the reference, Cg, Cgk, s (``repeatability_sd``); accepted when capable;
* ``golden``: one golden-unit result (``value``); accepted unless the golden chart flags the station drifting.

:func:`station_uncertainty` combines, per figure, the latest accepted gauge R&R and the latest accepted type-1
bias of a station into the expanded uncertainty U (GUM, k = 2; :func:`rig.results.msa.expanded_uncertainty`);
:func:`load_run_uncertainty` gives a run the same U with the studies it comes from, for every figure it records
(:class:`rig.results.record.Uncertainty`).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from enum import StrEnum
from typing import Any

import pandas as pd

from rig.errors import ArgumentError
from rig.results.msa import (
    COVERAGE_FACTOR,
    GaugeRR,
    GrrVerdict,
    MeasurementUncertainty,
    StudyInputError,
    Type1Study,
    as_jsonable,
    combine_uncertainty,
)
from rig.results.record import Uncertainty
from rig.results.store import MSA_FIGURE_COLUMNS, ResultsStore, StoreUnavailable, open_store


class StudyKind(StrEnum):
    """The ``kind`` column of the MSA tables."""

    GRR = "grr"
    TYPE1 = "type1"
    GOLDEN = "golden"


_EMPTY = dict.fromkeys(
    (
        "value",
        "repeatability_sd",
        "reproducibility_sd",
        "part_sd",
        "pct_grr",
        "pct_tolerance",
        "ndc",
        "bias",
        "cg",
        "cgk",
        "expanded_u",
    )
)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def grr_figure_row(name: str, result: GaugeRR, uncertainty: MeasurementUncertainty | None) -> dict[str, Any]:
    return {
        **_EMPTY,
        "name": name,
        "accepted": result.verdict is not GrrVerdict.NOT_ACCEPTABLE,
        "repeatability_sd": result.ev,
        "reproducibility_sd": math.hypot(result.av, result.interaction_sd),
        "part_sd": result.pv,
        "pct_grr": _finite(result.pct_grr),
        "pct_tolerance": _finite(result.pct_tolerance.get("GRR")),
        "ndc": _finite(result.ndc),
        "expanded_u": uncertainty.expanded_u if uncertainty else None,
    }


def type1_figure_row(name: str, result: Type1Study) -> dict[str, Any]:
    return {
        **_EMPTY,
        "name": name,
        "accepted": result.capable,
        "value": result.mean,
        "repeatability_sd": result.sd,
        "bias": result.bias,
        "cg": _finite(result.cg),
        "cgk": _finite(result.cgk),
    }


def golden_figure_row(name: str, value: float, *, accepted: bool) -> dict[str, Any]:
    return {**_EMPTY, "name": name, "accepted": accepted, "value": value}


def store_study(
    store: ResultsStore,
    *,
    study_id: str,
    kind: str,
    station: str,
    plan: str,
    started: datetime,
    study: dict[str, Any],
    figures: list[dict[str, Any]],
) -> None:
    """Store one study (replacing a study of the same id); accepted when every figure is."""
    store.add_msa_study(
        {
            "study_id": study_id,
            "kind": kind,
            "station": station,
            "plan": plan,
            "started": started,
            "accepted": all(f["accepted"] for f in figures),
            "study_json": json.dumps(as_jsonable(study)),
        },
        figures,
    )


def station_uncertainty(
    figures: pd.DataFrame, *, coverage_factor: float = COVERAGE_FACTOR
) -> dict[str, MeasurementUncertainty]:
    """Expanded uncertainty of every figure with an accepted gauge R&R in ``figures`` (one station's rows).

    Repeatability and reproducibility from the latest accepted ``grr`` row of the figure, the bias from its latest
    accepted ``type1`` row (none: no bias term), combined per the GUM (see :mod:`rig.results.msa`).
    """
    missing = [c for c in ("kind", "name", "accepted", "started") if c not in figures.columns]
    if missing:
        raise StudyInputError(f"MSA figure rows: missing column(s) {missing}; expected {list(MSA_FIGURE_COLUMNS)}")
    if figures["station"].nunique() > 1:
        raise StudyInputError(f"MSA figure rows of stations {sorted(figures['station'].unique())}: expected one")
    return {name: u for name, (u, _, _) in _latest_accepted(figures, coverage_factor).items()}


def _latest_accepted(
    figures: pd.DataFrame, coverage_factor: float
) -> dict[str, tuple[MeasurementUncertainty, pd.Series, pd.Series | None]]:
    """Per figure: U, the gauge R&R row it comes from and the type-1 row of its bias (None: no bias term)."""
    accepted = figures[figures["accepted"].astype(bool)].sort_values("started", kind="stable")
    out: dict[str, tuple[MeasurementUncertainty, pd.Series, pd.Series | None]] = {}
    for name, rows in accepted.groupby("name"):
        grr = rows[rows["kind"] == StudyKind.GRR]
        if grr.empty:
            continue
        latest = grr.iloc[-1]
        type1 = rows[rows["kind"] == StudyKind.TYPE1]
        bias_row = type1.iloc[-1] if not type1.empty else None
        uncertainty = combine_uncertainty(
            repeatability_u=float(latest["repeatability_sd"]),
            reproducibility_u=float(latest["reproducibility_sd"]),
            bias=float(bias_row["bias"]) if bias_row is not None else 0.0,
            coverage_factor=coverage_factor,
        )
        out[str(name)] = (uncertainty, latest, bias_row)
    return out


def run_uncertainty(figures: pd.DataFrame, *, coverage_factor: float = COVERAGE_FACTOR) -> dict[str, Uncertainty]:
    """What a run records beside each figure: U (k = 2) of :func:`station_uncertainty` and the studies behind it,
    keyed like :attr:`rig.results.record.MeasurementRecord.key` (``mtf50_cy_px[center]``)."""
    if figures.empty:
        return {}
    return {
        name: Uncertainty(
            expanded_u=u.expanded_u,
            coverage_factor=u.coverage_factor,
            study_id=str(grr["study_id"]),
            study_started=grr["started"].to_pydatetime(),
            bias_study_id=None if bias is None else str(bias["study_id"]),
        )
        for name, (u, grr, bias) in _latest_accepted(figures, coverage_factor).items()
    }


def load_run_uncertainty(store_url: str | None, station: str) -> tuple[dict[str, Uncertainty], str | None]:
    """U of every figure of ``station`` with an accepted study in the store at ``store_url``, for a run.

    Returns
    -------
    figures, problem
        The figures' uncertainties (empty without a study) and, when the store could not be read, why (the run
        goes on without U: a measurement never waits for its uncertainty).
    """
    try:
        with open_store(store_url, create=False) as store:
            rows = store.msa_figures(station=station)
    except ArgumentError:  # no store yet: no study either
        return {}, None
    except StoreUnavailable as exc:
        return {}, f"MSA studies not read: {exc}"
    return run_uncertainty(rows), None
