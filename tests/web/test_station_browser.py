"""The operator screen in a real browser (Debian's Chromium via Playwright) on a twin station.

Each test types a serial as a keyboard-wedge scanner does (characters, then Enter), picks the plan and the
simulated unit, presses Start, answers every lens prompt by clicking its button and reads the verdict. The
twin's operator is wrapped by the web operator: the prompt shows, the click confirms, the twin's hands act, and
the phone peer must then report the lens. Screenshots go to the test's artefacts folder.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from rig.config.limits import load_limits
from rig.config.station import DEFAULT_STATION
from rig.results.record import RunRecord
from tests.web.conftest import serve_station

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 300.0  # a sign-off takes ~35 s alone on the twin; CI shares two cores
IMAGE_TIMEOUT_MS = 30_000
THUMBNAIL_WIDTH = """() => { const img = document.getElementById("thumbnail");
                             return img && img.complete ? img.naturalWidth : 0; }"""


def drive(page: Any, artefacts: Path, tag: str, *, timeout_s: float = RUN_TIMEOUT_S) -> dict[str, Any]:
    """Answer each prompt by clicking until the verdict shows; what was seen on the way (``thumbnails``: the
    latest-capture images that had loaded, by source, while a step ran)."""
    seen: dict[str, Any] = {"prompts": [], "running": set(), "shots": 0, "thumbnails": {}}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.locator("#verdict").count():
            break
        confirm = page.locator("#confirm")
        if confirm.count():
            text = page.locator("#instruction").inner_text()
            if not seen["prompts"]:
                page.screenshot(path=str(artefacts / f"{tag}-prompt.png"), full_page=True)
            seen["prompts"].append(text)
            confirm.click()
            page.wait_for_load_state()
            continue
        running = page.locator("#steps li[data-state=running] .name").all_inner_texts()
        for name in running:
            if name not in seen["running"] and not seen["running"]:
                page.screenshot(path=str(artefacts / f"{tag}-running.png"), full_page=True)
            seen["running"].add(name)
        width = page.evaluate(THUMBNAIL_WIDTH)
        if running and width:
            seen["thumbnails"][page.locator("#thumbnail").get_attribute("src")] = width
        page.wait_for_timeout(150)
    else:
        page.screenshot(path=str(artefacts / f"{tag}-timeout.png"), full_page=True)
        pytest.fail(f"no verdict within {timeout_s:.0f} s")
    page.screenshot(path=str(artefacts / f"{tag}-verdict.png"), full_page=True)
    seen["verdict"] = page.locator("#verdict .word").inner_text().strip()
    return seen


def start_run(page: Any, url: str, serial: str, unit: str) -> None:
    page.goto(url)
    page.locator("#serial").click()
    page.keyboard.type(serial)  # a keyboard-wedge scanner: characters, then Enter
    page.keyboard.press("Enter")
    page.wait_for_selector("#serial-message.good")
    assert page.evaluate("document.activeElement.id") == "start-button"  # Enter moved on to Start
    page.select_option("#plan", "signoff")
    page.select_option("#twin_unit", unit)
    page.click("#start-button")
    page.wait_for_selector("#steps li")


@pytest.fixture
def station_url(tmp_path: Path) -> Any:
    server = serve_station(DEFAULT_STATION, tmp_path / "reports")
    try:
        yield server.url, tmp_path / "reports"
    finally:
        server.stop()


def test_wrong_serial_is_refused_on_enter(browser: Any, station_url: Any) -> None:
    url, _ = station_url
    page = browser.new_page()
    page.goto(url)
    page.locator("#serial").click()
    page.keyboard.type("XM12SU-12")
    page.keyboard.press("Enter")
    page.wait_for_selector("#serial-message.bad")
    assert "^XM12SU-[0-9]{6}$" in page.locator("#serial-message").inner_text()
    assert page.evaluate("document.activeElement.id") == "serial"  # the operator scans again


def test_golden_unit_passes(browser: Any, station_url: Any, artefacts: Path) -> None:
    url, reports = station_url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    start_run(page, url, "XM12SU-000001", "golden")
    seen = drive(page, artefacts, "golden")
    assert seen["verdict"] == "PASS"
    assert seen["prompts"][0] == "Mount Summilux-M 1:1.4/35 ASPH (2022) on the bayonet", seen["prompts"]
    remounts = seen["prompts"][1:]  # then the remount series, one prompt (and one click) per remount
    assert remounts and set(remounts) == {"Take Summilux-M 1:1.4/35 ASPH (2022) off and mount it again"}

    assert len(seen["running"]) >= 3  # the step list advanced while we watched
    assert seen["thumbnails"], "no latest-capture image loaded while the steps ran"
    assert all(src.startswith("/reports/") and width > 0 for src, width in seen["thumbnails"].items())
    page.wait_for_function(THUMBNAIL_WIDTH, timeout=IMAGE_TIMEOUT_MS)  # and after the verdict
    assert page.locator("#thumbnail").get_attribute("src").endswith(".png")
    assert page.locator("#bench-outputs").get_attribute("data-safe") == "yes"
    states = page.locator("#steps li").evaluate_all("items => items.map(i => i.dataset.state)")
    assert states and set(states) == {"PASS"}
    assert "every figure within its limit" in page.locator("#verdict").inner_text()
    run_id = page.locator("#panel h2 small").inner_text().strip()
    record = RunRecord.load(reports / run_id / "record.json")
    assert record.verdict is not None and record.verdict.value == "PASS" and record.unit_serial == "XM12SU-000001"
    page.click("#report")  # opens the report (read-only route) in a new tab
    assert page.context.pages[-1].wait_for_selector("body")


def test_defect_unit_fails_with_figure_and_limit(browser: Any, station_url: Any, artefacts: Path) -> None:
    url, _ = station_url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    start_run(page, url, "XM12SU-000102", "flange-plus8")
    seen = drive(page, artefacts, "defect")
    assert seen["verdict"] == "FAIL"
    row = page.locator("#failures tr", has_text="flange_offset_um")
    assert row.count() == 1
    cells = row.locator("td").all_inner_texts()
    limit = load_limits("signoff").get("flange_offset_um")
    value = float(re.match(r"[-+0-9.e]+", cells[2]).group(0))
    assert abs(value - 8.0) <= 2.0  # the unit's true flange error is +8 µm
    assert f"{limit.low:g}" in cells[3] and f"{limit.high:g}" in cells[3]
    assert "rework" in page.locator("#next-action").inner_text()


def test_fault_unit_errors_and_resume_completes(browser: Any, station_url: Any, artefacts: Path) -> None:
    url, reports = station_url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    start_run(page, url, "XM12SU-000001", "fault-lost")
    seen = drive(page, artefacts, "fault")
    assert seen["verdict"] == "ERROR"
    run_id = page.locator("#panel h2 small").inner_text().strip()
    assert page.locator("#resume").is_visible()
    page.select_option("#twin_unit", "golden")  # the bench repaired
    page.click("#resume")
    page.wait_for_selector("#abort")
    resumed = drive(page, artefacts, "resumed")
    assert resumed["verdict"] == "PASS"
    assert page.locator("#panel h2 small").inner_text().strip() == run_id  # the same run, completed
    record = RunRecord.load(reports / run_id / "record.json")
    assert record.verdict is not None and record.verdict.value == "PASS"
    assert {s.verdict.value for s in record.steps} == {"PASS"}


def test_abort_ends_error_keeps_measurements_leaves_bench_safe(browser: Any, station_url: Any, artefacts: Path) -> None:
    """Abort in the middle of a run: the run ends ERROR (docs/line.md: the step being prompted or the next one
    ends "aborted by the operator", nothing after it runs), what was measured stays in the record, the light and
    the knocker are off as GRBL reports them, and Resume is offered."""
    url, reports = station_url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    start_run(page, url, "XM12SU-000001", "golden")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    passed: list[str] = []
    while len(passed) < 2:  # let two steps pass, answering prompts, then abort during the run
        assert time.monotonic() < deadline, "two steps did not pass in time"
        assert not page.locator("#verdict").count(), "the run ended before it could be aborted"
        if page.locator("#confirm").count():
            page.locator("#confirm").click()
            page.wait_for_load_state()
        passed = page.locator("#steps li[data-state=PASS] .name").all_inner_texts()
        page.wait_for_timeout(150)
    page.locator("#abort").click()
    page.wait_for_selector("#verdict", timeout=RUN_TIMEOUT_S * 1000)
    page.screenshot(path=str(artefacts / "aborted.png"), full_page=True)

    assert page.locator("#verdict .word").inner_text().strip() == "ERROR"
    assert page.locator("#resume").is_visible()
    assert page.locator("#bench-outputs").get_attribute("data-safe") == "yes"
    assert "light off, knocker off" in page.locator("#bench-outputs").inner_text()
    run_id = page.locator("#panel h2 small").inner_text().strip()
    record = RunRecord.load(reports / run_id / "record.json")
    assert record.verdict is not None and record.verdict.value == "ERROR"
    steps = {s.name: s for s in record.steps}
    aborted = [s for s in record.steps if s.error and "aborted by the operator" in s.error]
    assert len(aborted) == 1 and aborted[0].verdict.value == "ERROR"
    kept = [s for s in passed if s in steps]
    assert kept and all(steps[s].verdict.value == "PASS" for s in kept)
    measured = [m for m in record.measurements if m.value is not None and m.step in kept]
    assert measured, "the measurements of the steps done before Abort were not kept"
