"""What the line view takes from the MSA tables: the ± U band of a control chart, and golden-unit checks overdue.

U is known by construction: a gauge R&R with EV 0.3 µm and √(AV² + INT²) 0.4 µm and a type-1 bias of 1.2·√3 µm
give u_c = √(0.3² + 0.4² + 1.2²) = 1.3 µm and U = k·u_c = 2.6 µm (GUM §5.1.2, §6.2; bias as a rectangular
distribution of half-width |bias|). A later study that was not accepted, and another station's, must not count.
Golden checks are judged on an injected clock, never the wall's.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from rig.results.msa_store import StudyKind
from rig.results.store import MSA_FIGURE_COLUMNS, open_store
from rig.web.line_app import create_line_app
from rig.web.security import AccessTokens
from rig.web.serve import ThreadedServer
from rig.web.status import StationState, StationStatus, create_status_table, publish_status
from tests.results.factory import BASE_TIME, SIGNOFF_SPEC, make_run

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FIGURE = "flange_offset_um"


def figure_row(kind: StudyKind, *, accepted: bool, **numbers: float) -> dict:
    shared = {"study_id", "kind", "station", "started", "name", "accepted"}  # set by the study row
    empty = dict.fromkeys(c for c in MSA_FIGURE_COLUMNS if c not in shared)
    return {**empty, "name": FIGURE, "accepted": accepted, **numbers}


def study(store, study_id: str, kind: StudyKind, station: str, started: datetime, rows: list[dict]) -> None:
    store.add_msa_study(
        {
            "study_id": study_id,
            "kind": kind.value,
            "station": station,
            "plan": "signoff",
            "started": started,
            "accepted": all(r["accepted"] for r in rows),
            "study_json": json.dumps({"study": kind.value}),
        },
        rows,
    )


@pytest.fixture
def line(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    rng = np.random.default_rng(4)
    with open_store(url) as store:
        store.add_runs(
            make_run(
                rng,
                run_id=f"run-{i:03d}",
                unit_serial=f"XM12SU-{i:06d}",
                started=BASE_TIME + timedelta(hours=i),
                station=("twin-01", "twin-02")[i % 2],
            )
            for i in range(24)
        )
        grr = StudyKind.GRR
        study(
            store,
            "grr-1",
            grr,
            "twin-01",
            NOW - timedelta(days=9),
            [figure_row(grr, accepted=True, repeatability_sd=0.3, reproducibility_sd=0.4)],
        )
        study(
            store,
            "t1-1",
            StudyKind.TYPE1,
            "twin-01",
            NOW - timedelta(days=8),
            [figure_row(StudyKind.TYPE1, accepted=True, repeatability_sd=0.2, bias=1.2 * math.sqrt(3))],
        )
        study(
            store,
            "grr-2",
            grr,
            "twin-01",
            NOW - timedelta(days=1),  # newer, not accepted: ignored
            [figure_row(grr, accepted=False, repeatability_sd=5.0, reproducibility_sd=5.0)],
        )
        study(
            store,
            "grr-3",
            grr,
            "twin-02",
            NOW - timedelta(days=2),
            [figure_row(grr, accepted=True, repeatability_sd=0.6, reproducibility_sd=0.8)],
        )
        study(
            store,
            "golden-1",
            StudyKind.GOLDEN,
            "twin-01",
            NOW - timedelta(hours=30),
            [figure_row(StudyKind.GOLDEN, accepted=True, value=0.1)],
        )
        study(
            store,
            "golden-2",
            StudyKind.GOLDEN,
            "twin-02",
            NOW - timedelta(hours=50),
            [figure_row(StudyKind.GOLDEN, accepted=True, value=0.1)],
        )
        study(
            store,
            "golden-3",
            StudyKind.GOLDEN,
            "twin-02",
            NOW - timedelta(hours=2),
            [figure_row(StudyKind.GOLDEN, accepted=True, value=0.2)],
        )
        create_status_table(store.engine)
        for station, interval_h in (("twin-01", 24.0), ("twin-02", 24.0), ("twin-03", 8.0)):
            publish_status(store.engine, StationStatus(station, StationState.IDLE, golden_interval_h=interval_h))
    tokens = AccessTokens()
    app = create_line_app(url, tokens=tokens, clock=lambda: NOW)
    with ThreadedServer(app, tokens=tokens) as server:
        yield httpx.Client(base_url=server.url, timeout=30)


def bands(page: str) -> list[tuple[float, float]]:
    return [
        (float(lo), float(hi)) for lo, hi in re.findall(r'class="u-band" data-low="([^"]+)" data-high="([^"]+)"', page)
    ]


def test_one_station_chart_shows_u_around_each_limit(line: httpx.Client) -> None:
    page = line.get("/chart", params={"name": FIGURE, "station": "twin-01"})
    assert page.status_code == 200
    limit = next(spec for spec in SIGNOFF_SPEC if spec.name == FIGURE)  # the limits the runs were judged by
    u = 2.6
    expected = [(limit.low - u, limit.low + u), (limit.high - u, limit.high + u)]
    assert len(bands(page.text)) == 2
    for (lo, hi), (elo, ehi) in zip(bands(page.text), expected, strict=True):
        assert math.isclose(lo, elo, abs_tol=1e-4) and math.isclose(hi, ehi, abs_tol=1e-4)
    text = " ".join(page.text.split())
    assert "± U = ± 2.6 µm (k = 2) at station twin-01" in text and "type-1 bias" in text

    other = line.get("/chart", params={"name": FIGURE, "station": "twin-02"}).text
    assert [round(hi - lo, 6) for lo, hi in bands(other)] == [4.0, 4.0]  # U = 2·√(0.6² + 0.8²) = 2.0, no bias


def test_chart_of_several_stations_names_each_u_and_draws_none(line: httpx.Client) -> None:
    page = " ".join(line.get("/chart", params={"name": FIGURE}).text.split())
    assert bands(page) == []
    assert "twin-01: U = 2.6 µm" in page and "twin-02: U = 2 µm" in page


def test_figure_without_msa_has_no_band(line: httpx.Client) -> None:
    page = " ".join(line.get("/chart", params={"name": "tilt_x_arcmin", "station": "twin-01"}).text.split())
    assert bands(page) == [] and "No accepted MSA of this figure at twin-01" in page


def test_golden_overdue_by_station_interval(line: httpx.Client) -> None:
    live = line.get("/live").text
    rows = {m.group(1): m.group(2) for m in re.finditer(r'<tr data-station="([^"]+)">(.*?)</tr>', live, flags=re.S)}
    assert set(rows) == {"twin-01", "twin-02", "twin-03"}
    assert "golden overdue" in rows["twin-01"]  # 30 h since its check, interval 24 h
    assert "golden overdue" not in rows["twin-02"]  # its latest check is 2 h old (the 50 h one is superseded)
    assert "golden overdue" in rows["twin-03"] and "last never" in rows["twin-03"]  # never checked
