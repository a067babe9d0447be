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


def drive(page: Any, artefacts: Path, tag: str, *, timeout_s: float = RUN_TIMEOUT_S) -> dict[str, Any]:
    """Answer each prompt by clicking until the verdict shows; what was seen on the way."""
    seen: dict[str, Any] = {"prompts": [], "running": set(), "shots": 0}
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
        for name in page.locator("#steps li[data-state=running] .name").all_inner_texts():
            if name not in seen["running"] and not seen["running"]:
                page.screenshot(path=str(artefacts / f"{tag}-running.png"), full_page=True)
            seen["running"].add(name)
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
