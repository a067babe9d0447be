"""The line view's aggregates, done by the database, against independent references computed in Python.

The fleet is synthetic with known laws (tests/results/factory.py): three stations, runs every 7 minutes over
~2.5 days so every hour and all three shifts (and the night shift across midnight) hold runs, reruns of units
that did not pass, a filter by station. The references are :func:`rig.results.spc.yield_summary` per group
(pandas, a separate implementation of the same definitions), :func:`rig.results.spc.pareto`, and shifts assigned
here from the clock hour by hand. Both stores: SQLite and a throwaway PostgreSQL server.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from rig.results.spc import pareto, yield_summary
from rig.results.store import open_store
from rig.web.queries import LINE_INDEXES, Filters, Period, ensure_line_indexes, last_verdicts, pareto_causes, yields
from tests.results.factory import BASE_TIME, make_run

STATIONS = ("twin-01", "twin-02", "twin-03")
UNITS = 520
SPACING = timedelta(minutes=7)


def fleet() -> list:
    rng = np.random.default_rng(19)
    runs = []
    for i in range(UNITS):
        serial = f"XM12SU-{i:06d}"
        started = BASE_TIME + SPACING * i
        station = STATIONS[i % len(STATIONS)]
        first = make_run(
            rng, run_id=f"{serial}-1", unit_serial=serial, started=started, station=station, error_rate=0.02
        )
        runs.append(first)
        if first.verdict is None or first.verdict.value != "PASS":  # rework: a rerun 50 min later, elsewhere
            again = started + timedelta(minutes=50)
            runs.append(make_run(rng, run_id=f"{serial}-2", unit_serial=serial, started=again, station=STATIONS[0]))
    return runs


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.sqlite'}"
    return request.getfixturevalue("postgres_database")


@pytest.fixture
def stored(store_url: str):
    with open_store(store_url) as store:
        store.add_runs(fleet())
        ensure_line_indexes(store.engine)
        inspector = sa.inspect(store.engine)
        present = {
            ix["name"]
            for table in ("runs", "measurements", "steps", "msa_studies")
            for ix in inspector.get_indexes(table)
        }
        assert set(LINE_INDEXES) <= present
        assert ensure_line_indexes(store.engine) == []  # idempotent
        yield store, store.runs(), store.measurements()


def reference_shift(started: pd.Series) -> pd.Series:
    """Night 22–06 belongs to the day it ends on, early 06–14, late 14–22 (UTC), by hand."""
    hour = started.dt.hour
    name = np.where((hour >= 22) | (hour < 6), "night", np.where(hour < 14, "early", "late"))
    day = (started + pd.Timedelta(hours=2)).dt.strftime("%Y-%m-%d")
    return day + " " + pd.Series(name, index=started.index)


def reference(runs: pd.DataFrame, keys: pd.Series) -> dict[str, tuple[int, int, int, int]]:
    out = {}
    for key, group in runs.groupby(keys):
        s = yield_summary(group)
        out[str(key)] = (s.runs, s.passed_runs, s.units, s.first_pass_units)
    return out


def as_tuples(rows) -> dict[str, tuple[int, int, int, int]]:
    return {
        r.period: (r.summary.runs, r.summary.passed_runs, r.summary.units, r.summary.first_pass_units) for r in rows
    }


def test_total_yield_and_fpy_match_spc(stored) -> None:
    store, runs, _ = stored
    [total] = yields(store.engine, Filters(), Period.TOTAL)
    expected = yield_summary(runs)
    assert (total.summary.runs, total.summary.passed_runs) == (expected.runs, expected.passed_runs)
    assert (total.summary.units, total.summary.first_pass_units) == (UNITS, expected.first_pass_units)
    assert math.isclose(total.summary.yield_frac, expected.yield_frac, rel_tol=1e-12)
    assert math.isclose(total.summary.first_pass_yield_frac, expected.first_pass_yield_frac, rel_tol=1e-12)
    assert 0.5 < expected.first_pass_yield_frac < 1.0  # the fleet has reruns to tell yield from FPY


def test_yield_per_hour_and_per_shift_match_a_reference(stored) -> None:
    store, runs, _ = stored
    finished = runs[runs["verdict"].notna()]
    hours = yields(store.engine, Filters(), Period.HOUR)
    assert as_tuples(hours) == reference(finished, finished["started"].dt.strftime("%Y-%m-%d %H:00"))
    shifts = yields(store.engine, Filters(), Period.SHIFT)
    expected = reference(finished, reference_shift(finished["started"]))
    assert as_tuples(shifts) == expected
    assert {key.split()[1] for key in expected} == {"night", "early", "late"}
    # newest first, in time (not by the shift's name), and limited
    newest = yields(store.engine, Filters(), Period.SHIFT, newest=4)
    assert [r.period for r in newest] == [r.period for r in shifts[:4]]
    last_start = [finished.loc[reference_shift(finished["started"]) == r.period, "started"].max() for r in shifts]
    assert last_start == sorted(last_start, reverse=True)


def test_filters_last_verdicts_and_pareto(stored) -> None:
    store, runs, measurements = stored
    chosen = runs[runs["station"] == "twin-02"]
    [total] = yields(store.engine, Filters(station="twin-02"), Period.TOTAL)
    assert total.summary.runs == yield_summary(chosen).runs and total.summary.units == len(set(chosen["unit_serial"]))

    finished = runs[runs["verdict"].notna()].sort_values(["started", "run_id"])
    assert last_verdicts(store.engine, Filters()) == finished.groupby("station")["verdict"].last().to_dict()

    causes = pareto_causes(store.engine, Filters(), limit=100)
    fails = {c["cause"]: c["runs"] for c in causes if not c["cause"].startswith("ERROR in ")}
    expected = pareto(measurements)
    assert fails == dict(zip(expected["cause"], expected["failed_runs"], strict=True))
    assert math.isclose(causes[-1]["cumulative"], 1.0)
    assert [c["runs"] for c in causes] == sorted((c["runs"] for c in causes), reverse=True)
