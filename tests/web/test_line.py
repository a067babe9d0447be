"""Three twin stations sign off three units in parallel into a real PostgreSQL; the line view shows them.

The units' truths are known from their files: golden passes, flange-plus8 fails flange_offset_um and
tilt-3arcmin fails tilt_x_arcmin, so the yield and the first-pass yield must both be exactly 1/3.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from rig.results.store import open_store
from rig.web.demo import DEMO_UNITS, start_line

pytestmark = pytest.mark.slow

RUNS_TIMEOUT_S = 400.0  # three sign-offs share two cores with the rest of CI


def test_three_stations_in_parallel_into_postgresql(postgres_database: str, tmp_path: Path) -> None:
    line = start_line(tmp_path, 3, postgres_database)
    try:
        assert line.line is not None
        run_ids = line.sign_off_all()
        client = httpx.Client(base_url=line.line.url, timeout=30)
        seen_running: set[str] = set()
        deadline = time.monotonic() + RUNS_TIMEOUT_S
        while any(app.state.station.runner.busy for app in line.apps):
            assert time.monotonic() < deadline, "the three sign-offs did not finish in time"
            live = client.get("/live").text
            seen_running |= {
                name
                for name in ("twin-01", "twin-02", "twin-03")
                if f'data-station="{name}"' in live and "running step" in live
            }
            time.sleep(1.0)
        assert seen_running  # the line view showed stations mid-run
        with open_store(postgres_database) as store:
            stored = store.runs()
        assert sorted(stored["run_id"]) == sorted(run_ids)
        assert sorted(stored["station"]) == ["twin-01", "twin-02", "twin-03"]
        # the runs overlapped in time: each started before any other ended
        assert stored["started"].max() < stored["ended"].min()
        verdicts = dict(zip(stored["unit_serial"], stored["verdict"], strict=True))
        assert verdicts == {DEMO_UNITS[0][1]: "PASS", DEMO_UNITS[1][1]: "FAIL", DEMO_UNITS[2][1]: "FAIL"}

        page = ""
        for _ in range(10):  # the line's poll picks the last run up within a few seconds
            page = client.get("/").text
            if all(run_id in page for run_id in run_ids):
                break
            time.sleep(1.0)
        assert all(f'data-run="{run_id}"' in page for run_id in run_ids)
        assert '<strong id="yield">33.3 %</strong>' in page
        assert '<strong id="fpy">33.3 %</strong>' in page
        assert page.count('class="state-idle"') == 3
        assert page.count('class="golden-overdue"') == 3  # no station has run its golden unit in this store
        assert "flange_offset_um" in page and "tilt_x_arcmin" in page  # the Pareto of causes

        history = client.get(f"/units/{DEMO_UNITS[1][1]}")
        assert history.status_code == 200
        assert f'data-run="{run_ids[1]}"' in history.text and "flange_offset_um" in history.text
        report = history.text.split(f'data-run="{run_ids[1]}"')[1].split('href="')[-1].split('"')[0]
        assert report == f"/reports/{run_ids[1]}/report.html"
        assert client.get(report).status_code == 200
        chart = client.get("/chart", params={"name": "flange_offset_um"})
        assert chart.status_code == 200 and "<svg" in chart.text and "UCL" in chart.text
        filtered = client.get("/", params={"station": "twin-01"}).text
        assert f'data-run="{run_ids[0]}"' in filtered and f'data-run="{run_ids[1]}"' not in filtered
    finally:
        line.stop()
