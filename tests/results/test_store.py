"""The results store: exact round trip, idempotent re-store, filters, and concurrent writers on both back ends."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from rig.errors import ArgumentError
from rig.results.record import Verdict
from rig.results.store import ResultsStore, StoreUnavailable, normalise_url, open_store
from rig.results.tables import MEASUREMENT_COLUMNS, measurements_frame, measurements_from_frame
from tests.results.factory import BASE_TIME, SIGNOFF_SPEC, make_fleet, make_run, with_uncertainty

WRITERS = 8
RUNS_PER_WRITER = 200
SHARED_RUNS = 20  # run ids every writer stores (the same content): must end up stored once each
WRITER_SPECS = SIGNOFF_SPEC[:3]  # three measurements per run keeps 1 600 transactions quick


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'results.sqlite'}"
        return
    yield request.getfixturevalue("postgres_database")


def test_a_run_round_trips_exactly_and_restoring_replaces_it(store_url: str) -> None:
    rng = np.random.default_rng(1)
    record = make_run(rng, run_id="r1", unit_serial="XM12SU-000001", started=BASE_TIME, error_rate=0.2)
    with open_store(store_url) as store:
        store.add_run(record)
        assert store.get_run("r1") == record
        pd.testing.assert_frame_equal(store.measurements(), measurements_frame(record))
        # resume: the same run id again with one more measurement replaces, never duplicates
        grown = record.model_copy(deep=True)
        grown.measurements.append(grown.measurements[0].model_copy(update={"zone": "extra"}))
        store.add_run(grown)
        store.add_run(grown)
        counts = store.count()
        assert counts == {"runs": 1, "measurements": len(grown.measurements), "steps": len(grown.steps)}
        assert store.get_run("r1") == grown


def test_filters_select_by_time_plan_and_unit(store_url: str) -> None:
    rng = np.random.default_rng(2)
    runs = make_fleet(rng, units=6)
    cal = make_run(rng, run_id="cal", unit_serial="XM12SU-000000", started=BASE_TIME, plan="calibration")
    with open_store(store_url) as store:
        for run in [*runs, cal]:
            store.add_run(run)
        since = BASE_TIME + timedelta(minutes=25)
        expect_ids = sorted(r.run_id for r in runs if r.started >= since)
        got = store.runs(since=since, plan="signoff")
        assert sorted(got["run_id"]) == expect_ids
        frame = store.measurements(plan="signoff", unit_serial="XM12SU-000002")
        expect = sum(len(r.measurements) for r in runs if r.unit_serial == "XM12SU-000002")
        assert len(frame) == expect and set(frame["run_id"]) <= {"XM12SU-000002-1", "XM12SU-000002-2"}
        assert store.measurements(plan="calibration")["run_id"].unique().tolist() == ["cal"]
        assert store.measurements(name="t_stop")["name"].unique().tolist() == ["t_stop"]


def test_a_bad_store_url_is_one_line_naming_it() -> None:
    with pytest.raises(ArgumentError, match=r"--store 'mysql://x/y': expected sqlite"):
        normalise_url("mysql://x/y")
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url(None).endswith("/reports/results.sqlite")


def _writer(url: str, worker: int) -> int:
    rng = np.random.default_rng(1000 + worker)
    store: ResultsStore = open_store(url)
    with store:
        for i in range(RUNS_PER_WRITER):
            started = BASE_TIME + timedelta(seconds=worker * RUNS_PER_WRITER + i)
            run = make_run(
                rng,
                run_id=f"w{worker}-{i:04d}",
                unit_serial=f"XM12SU-{worker:06d}",
                started=started,
                specs=WRITER_SPECS,
            )
            store.add_run(run)
            if i < SHARED_RUNS:
                shared = make_run(
                    np.random.default_rng(i),
                    run_id=f"shared-{i:04d}",
                    unit_serial="XM12SU-999999",
                    started=BASE_TIME,
                    specs=WRITER_SPECS,
                )
                store.add_run(shared)
    return worker


@pytest.mark.slow
def test_eight_concurrent_writers_lose_and_duplicate_nothing(store_url: str) -> None:
    open_store(store_url).close()  # schema first, as a station does at start-up (writers also race it safely)
    # forkserver: children fork from a clean server that imported rig once (spawn re-imports pandas and
    # SQLAlchemy in each child; plain fork would copy this process's threads and open connections).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    with ctx.Pool(WRITERS) as pool:
        done = pool.starmap(_writer, [(store_url, w) for w in range(WRITERS)])
    assert sorted(done) == list(range(WRITERS))
    with open_store(store_url) as store:
        runs = store.runs()
        frame = store.measurements()
    expected_ids = {f"w{w}-{i:04d}" for w in range(WRITERS) for i in range(RUNS_PER_WRITER)}
    expected_ids |= {f"shared-{i:04d}" for i in range(SHARED_RUNS)}
    assert len(runs) == len(expected_ids) and set(runs["run_id"]) == expected_ids
    per_run = frame.groupby("run_id").size()
    assert (per_run == len(WRITER_SPECS)).all() and set(per_run.index) == expected_ids
    assert not frame.duplicated(["run_id", "seq"]).any()
    # the stored values are the ones each writer drew: re-draw writer 3's stream and compare one run
    rng = np.random.default_rng(1003)
    first = make_run(rng, run_id="w3-0000", unit_serial="XM12SU-000003", started=BASE_TIME, specs=WRITER_SPECS)
    got = frame[frame["run_id"] == "w3-0000"].sort_values("seq")["value"].to_numpy()
    np.testing.assert_array_equal(got, [m.value for m in first.measurements])
    assert set(frame["verdict"]) <= {v.value for v in Verdict}


def test_an_unreachable_server_is_a_store_fault_naming_it() -> None:
    # port 1 on loopback: nothing listens, the connection is refused at once
    with pytest.raises(StoreUnavailable, match=r"results store postgresql\+psycopg://postgres@127\.0\.0\.1:1/x"):
        open_store("postgresql://postgres@127.0.0.1:1/x")


def test_bulk_add_matches_one_by_one_and_keeps_the_last_of_a_repeated_id(store_url: str) -> None:
    runs = make_fleet(np.random.default_rng(4), units=30)
    replaced = runs[3].model_copy(update={"operator": "second write"})
    with open_store(store_url) as store:
        assert store.add_runs([*runs, replaced]) == len(runs)
        bulk = store.measurements()
        assert store.get_run(runs[3].run_id) == replaced
    expect = pd.concat([measurements_frame(r) for r in sorted(runs, key=lambda r: (r.started, r.run_id))])
    pd.testing.assert_frame_equal(bulk, expect.reset_index(drop=True))


def test_a_store_from_before_limits_revisions_gains_the_column_and_keeps_every_row(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rig.cli import main

    rng = np.random.default_rng(5)
    old = [
        make_run(rng, run_id=f"old{i}", unit_serial=f"XM12SU-00000{i}", started=BASE_TIME + timedelta(minutes=i),
                 limits_revision=None)
        for i in range(4)
    ]  # fmt: skip
    with open_store(store_url) as store:
        store.add_runs(old)
        with store.engine.begin() as conn:  # the schema as it was before revisions: no such column
            conn.exec_driver_sql("ALTER TABLE runs DROP COLUMN limits_revision")
        assert "limits_revision" not in {c["name"] for c in sa.inspect(store.engine).get_columns("runs")}
        before = store.count()
    new = make_run(rng, run_id="new", unit_serial="XM12SU-000009", started=BASE_TIME + timedelta(hours=1))
    with open_store(store_url) as store:  # opening migrates
        assert store.count() == before
        store.add_run(new)
        runs = store.runs().set_index("run_id")
        assert runs.loc[[r.run_id for r in old], "limits_revision"].isna().all()
        assert runs.loc["new", "limits_revision"] == "2026-11-A" == store.get_run("new").limits_revision
        assert [store.get_run(r.run_id) for r in old] == old
    # SPC: the newest revision by default; the runs from before revisions are a scope of their own
    args = ["spc", "--store", store_url, "--plan", "signoff", "--no-charts", "--json", "--out"]
    assert main([*args, str(tmp_path / "a")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["limits_revision"], summary["runs"]) == ("2026-11-A", 1)
    assert summary["limits_revisions_present"] == ["unrevised", "2026-11-A"]
    assert main([*args, str(tmp_path / "b"), "--revision", "unrevised"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == len(old)


def test_a_run_with_uncertainty_and_decisions_round_trips_through_the_measurements_table(store_url: str) -> None:
    record = with_uncertainty(make_run(np.random.default_rng(6), run_id="u1", unit_serial="XM12SU-000006",
                                       started=BASE_TIME))  # fmt: skip
    assert record.measurements[0].decision is not None
    with open_store(store_url) as store:
        store.add_run(record)
        frame = store.measurements()
    pd.testing.assert_frame_equal(frame, measurements_frame(record))
    assert measurements_from_frame(frame) == record.measurements
    assert frame["limits_revision"].unique().tolist() == ["0042"]


ISSUE_18_COLUMNS = ("limits_revision", *(c for c in MEASUREMENT_COLUMNS if c.startswith(("u_", "decision"))))


def test_a_store_from_before_uncertainty_columns_gains_them_filled_from_its_records(store_url: str) -> None:
    rng = np.random.default_rng(8)
    plain = make_run(rng, run_id="plain", unit_serial="XM12SU-000001", started=BASE_TIME)
    judged = with_uncertainty(make_run(rng, run_id="judged", unit_serial="XM12SU-000002", started=BASE_TIME))
    with open_store(store_url) as store:
        store.add_runs([plain, judged])
        with store.engine.begin() as conn:  # the measurements table as it was: no revision, no U, no decision
            for column in ISSUE_18_COLUMNS:
                conn.exec_driver_sql(f"ALTER TABLE measurements DROP COLUMN {column}")
        left = {c["name"] for c in sa.inspect(store.engine).get_columns("measurements")}
        assert left.isdisjoint(ISSUE_18_COLUMNS) and len(ISSUE_18_COLUMNS) == 9
        before = store.count()
        with store.engine.connect() as conn:
            ids_before = sorted(r[0] for r in conn.execute(sa.text("SELECT id FROM measurements")))
    with open_store(store_url) as store:  # opening migrates and fills the new cells from runs.record_json
        assert store.count() == before
        with store.engine.connect() as conn:
            assert sorted(r[0] for r in conn.execute(sa.text("SELECT id FROM measurements"))) == ids_before
        frame = store.measurements()
    for record in (plain, judged):
        rows = frame[frame["run_id"] == record.run_id].reset_index(drop=True)
        pd.testing.assert_frame_equal(rows, measurements_frame(record))
        assert measurements_from_frame(rows) == record.measurements
