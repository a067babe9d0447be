"""The latest capture on the operator screen: chosen from the run folder, never from outside it, served read-only."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import httpx
import numpy as np

from rig.bench.retention import apply_retention
from rig.config.station import DEFAULT_STATION
from rig.results.record import RunRecord, Verdict
from rig.results.reportdata import REPORT_DATA_FILE, ReportData, Thumbnail
from rig.spec.types import CaptureRetention
from rig.web.files import latest_preview
from rig.web.runner import RunView
from rig.web.security import AccessTokens
from rig.web.serve import ThreadedServer
from rig.web.station_app import create_station_app
from tests.results.factory import BASE_TIME, make_run

RUN_ID = "20260101T000000-XM12SU-000001-signoff"


def png(width: int, height: int, level: int) -> bytes:
    ok, data = cv2.imencode(".png", np.full((height, width), level, np.uint8))
    assert ok
    return data.tobytes()


def run_folder(reports: Path) -> Path:
    folder = reports / RUN_ID / "captures"
    folder.mkdir(parents=True)
    (folder / "0001-flat.dng").write_bytes(b"II*\x00raw")
    (folder / "0001-flat.png").write_bytes(png(48, 36, 90))
    (folder / "0007-best-focus.png").write_bytes(png(64, 48, 200))
    return reports / RUN_ID


def test_the_plans_last_thumbnail_wins_with_its_caption(tmp_path: Path) -> None:
    run = run_folder(tmp_path)
    data = ReportData(
        thumbnails=[
            Thumbnail(path="captures/0007-best-focus.png", caption="slanted-edge chart at best focus"),
            Thumbnail(path="captures/0001-flat.png", caption="flat field through the lens"),
        ]
    )
    data.save(run / REPORT_DATA_FILE)
    preview = latest_preview([tmp_path], RUN_ID)
    assert preview is not None
    assert (preview.path, preview.caption) == ("captures/0001-flat.png", "flat field through the lens")


def test_without_plots_the_newest_numbered_png(tmp_path: Path) -> None:
    run_folder(tmp_path)
    preview = latest_preview([tmp_path], RUN_ID)
    assert preview is not None and preview.path == "captures/0007-best-focus.png"


def test_entries_and_links_out_of_the_run_folder_are_never_offered(tmp_path: Path) -> None:
    run = run_folder(tmp_path)
    outside = tmp_path / "secret.png"
    outside.write_bytes(png(8, 8, 1))
    (run / "captures" / "0009-link.png").symlink_to(outside)
    ReportData(
        thumbnails=[Thumbnail(path="captures/0007-best-focus.png"), Thumbnail(path="../secret.png", caption="x")]
    ).save(run / REPORT_DATA_FILE)
    preview = latest_preview([tmp_path], RUN_ID)
    assert preview is not None and preview.path == "captures/0007-best-focus.png"
    for png_file in (run / "captures").glob("*.png"):
        if not png_file.is_symlink():
            png_file.unlink()
    (run / REPORT_DATA_FILE).unlink()
    assert latest_preview([tmp_path], RUN_ID) is None  # only the link is left: nothing to show


def test_retention_keeps_the_previews_and_the_screen_serves_one(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    run = run_folder(reports)
    record: RunRecord = make_run(
        np.random.default_rng(1), run_id=RUN_ID, unit_serial="XM12SU-000001", started=BASE_TIME
    )
    assert record.verdict is Verdict.PASS
    assert apply_retention(record, run, CaptureRetention.NONE) == ["captures/0001-flat.dng"]
    preview = latest_preview([reports], RUN_ID)
    assert preview is not None and preview.path == "captures/0007-best-focus.png"

    app = create_station_app(DEFAULT_STATION, reports)
    runner = app.state.station.runner
    with runner._lock:  # the screen shows this finished run, as after a run of its own
        runner._view = RunView(RUN_ID, "signoff", "XM12SU-000001", None, "golden", running=False, verdict="PASS")
    with ThreadedServer(app, tokens=AccessTokens()) as server:
        page = httpx.get(server.url + "/", timeout=30).text
        src = re.search(r'<img id="thumbnail" src="([^"]+)"', page)
        assert src is not None and src.group(1) == f"/reports/{RUN_ID}/captures/0007-best-focus.png"
        image = httpx.get(server.url + src.group(1), timeout=30)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        decoded = cv2.imdecode(np.frombuffer(image.content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert decoded.shape == (48, 64) and int(decoded[0, 0]) == 200
