"""The per-run outputs: the HTML report in a real browser, the PDF, JUnit XML and the CSV/Parquet tables."""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from rig.errors import ConfigError
from rig.report import load_run_dir, write_run_outputs
from rig.report.html import BANNERS
from rig.report.junit import failure_message
from rig.report.pdf import run_chromium
from rig.results.record import RunRecord, Verdict
from rig.results.reportdata import REPORT_DATA_FILE, ReportData
from rig.results.tables import measurements_from_frame, read_csv, read_parquet
from tests.report.signoff import signoff_record, signoff_report_data

WINDOW = (1100, 900)
# Chromium draws the banner's flat CSS colour exactly with --force-color-profile=srgb; ±2 covers any dithering.
BANNER_TOLERANCE = 2

# Injected before the page's CSP so it may run: records every error event (JS errors, failed or blocked loads,
# CSP violations) and console.error calls in attributes of <html>, and marks the load event.
ERROR_PROBE = """<script>
(function () {
  var errs = [];
  function note(m) { errs.push(String(m)); document.documentElement.setAttribute('data-errors', JSON.stringify(errs)); }
  window.addEventListener('error', function (e) {
    note(e.message || (e.target && (e.target.src || e.target.href)) || 'error'); }, true);
  document.addEventListener('securitypolicyviolation', function (e) { note('CSP blocked ' + e.blockedURI); });
  var ce = console.error;
  console.error = function () { note(Array.prototype.join.call(arguments, ' ')); ce.apply(console, arguments); };
  window.addEventListener('load', function () { document.documentElement.setAttribute('data-loaded', '1'); });
})();
</script>
"""


def _probe_copy(html_path: Path, out: Path) -> Path:
    text = html_path.read_text(encoding="utf-8")
    out.write_text(text.replace("<head>", "<head>\n" + ERROR_PROBE, 1), encoding="utf-8")
    return out


def _load_in_chromium(page: Path) -> tuple[str, list[str]]:
    """DOM after load and the console lines Chromium logged."""
    done = run_chromium(["--enable-logging=stderr", "--v=0", "--dump-dom", page.resolve().as_uri()])
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def _page_errors(dom: str) -> list[str]:
    match = re.search(r'<html[^>]*data-errors="([^"]*)"', dom)
    return json.loads(match.group(1).replace("&quot;", '"')) if match else []


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunRecord, dict[str, Path]]:
    # Module scope: the outputs (with a Chromium PDF) are written once and only read by the tests below.
    run_dir = tmp_path_factory.mktemp("signoff") / "run"
    record = signoff_record(np.random.default_rng(42))
    return record, write_run_outputs(record, run_dir, plots=signoff_report_data(run_dir))


@pytest.mark.slow
def test_report_loads_in_chromium_without_errors_and_shows_a_red_banner(
    outputs: tuple[RunRecord, dict[str, Path]], tmp_path: Path
) -> None:
    _record, out = outputs
    dom, console = _load_in_chromium(_probe_copy(out["html"], tmp_path / "probed.html"))
    assert 'data-loaded="1"' in dom, "the page never fired its load event"
    assert _page_errors(dom) == [] and console == [], (_page_errors(dom), console)
    assert dom.count("<svg") >= 5 and "data:image/png;base64," in dom  # 5 plots and the preview thumbnail

    shot = tmp_path / "shot.png"
    done = run_chromium([f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", out["html"].as_uri()])
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    image = cv2.imread(str(shot))[:, :, ::-1].astype(int)  # RGB
    assert image.shape[:2] == (WINDOW[1], WINDOW[0])
    red = np.array([int(BANNERS[Verdict.FAIL].background[i : i + 2], 16) for i in (1, 3, 5)])
    # A strip of the banner right of its text, at the very top of the page.
    strip = image[4:40, WINDOW[0] - 300 : WINDOW[0] - 40]
    assert np.abs(strip - red).max() <= BANNER_TOLERANCE, f"banner colour {strip.reshape(-1, 3).mean(0)} != {red}"
    below = image[WINDOW[1] - 200 :, :]
    assert (np.abs(below - red).max(axis=2) <= BANNER_TOLERANCE).mean() < 0.05, "the red must be the banner only"


@pytest.mark.slow
def test_the_error_probe_does_catch_a_page_that_fetches_from_outside(tmp_path: Path) -> None:
    # The negative control of the test above: same probe, a page breaking the rules, errors must be seen.
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><meta http-equiv='Content-Security-Policy' content=\"default-src 'none'\">"
        "</head><body><img src='https://example.invalid/x.png'></body></html>"
    )
    dom, console = _load_in_chromium(_probe_copy(bad, tmp_path / "bad-probed.html"))
    assert 'data-loaded="1"' in dom
    assert any("example.invalid" in e for e in _page_errors(dom)) and console


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.sections: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.refs += [v for k, v in a.items() if k in {"src", "href", "xlink:href"} and v]
        if tag in {"section", "header"} and a.get("id"):
            self.sections.append(str(a["id"]))


def test_html_is_self_contained_and_lists_failures_first(outputs: tuple[RunRecord, dict[str, Path]]) -> None:
    record, out = outputs
    html = out["html"].read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(html)
    assert parser.refs and all(r.startswith(("data:", "#")) for r in parser.refs), parser.refs
    assert parser.sections == ["verdict", "run", "measurements", "steps", "plots", "checks", "captures"]
    table = html.split('id="measurements"')[1].split("</table>")[0]
    order = re.findall(r'<tr class="v-(\w+)"', table)
    assert order == ["fail", "error"] + ["pass"] * 7 + ["skip"]
    assert len(order) == len(record.measurements)
    assert "margin" in table and "-0.09" in table  # mtf50 centre: 0.21 against low 0.30
    assert "missing or unreadable: previews/missing.png" in html


@pytest.mark.slow
def test_pdf_has_the_same_sections_as_the_html(outputs: tuple[RunRecord, dict[str, Path]]) -> None:
    record, out = outputs
    text = subprocess.run(
        ["pdftotext", "-layout", str(out["pdf"]), "-"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    headings = re.findall(r"<h2>([^<]+)</h2>", out["html"].read_text(encoding="utf-8"))
    assert headings == ["Run", "Measurements against limits", "Steps", "Plots", "Feature checks", "Captures"]
    positions = [text.find(h) for h in headings]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), dict(
        zip(headings, positions, strict=True)
    )
    assert text.lstrip().startswith("FAIL")
    squeezed = re.sub(r"\s+", "", text)  # table cells wrap long ids across lines
    for needle in (record.run_id, record.unit_serial, "MTFperzone", "Throughfocus", "DeviceLost:GRBLportclosed"):
        assert needle in squeezed, needle


def test_junit_counts_match_the_record(outputs: tuple[RunRecord, dict[str, Path]]) -> None:
    record, out = outputs
    root = ET.parse(out["junit"]).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    # the record: 10 measurements (1 FAIL, 1 ERROR, 1 SKIP) + the stability step, which measured nothing
    expect = {"tests": 11, "failures": 1, "errors": 2, "skipped": 1}
    assert {k: int(suite.get(k, "-1")) for k in expect} == expect
    assert set(root.attrib) == {"name"}  # junit-10.xsd allows no skipped on <testsuites>: counts live on the suite
    cases = suite.findall("testcase")
    assert len(cases) == expect["tests"]
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["mtf50_cy_px[center]"]
    assert failed[0].find("failure").get("message") == "value 0.21 cy/px outside [0.3, —]"  # type: ignore[union-attr]
    errors = {c.get("name"): c.find("error").get("message") for c in cases if c.find("error") is not None}  # type: ignore[union-attr]
    assert errors == {
        "tilt_x_arcmin": "DeviceTimeout: phone did not answer in 5.0 s",
        "test_stability": "DeviceLost: GRBL port closed",
    }
    assert [c.get("name") for c in cases if c.find("skipped") is not None] == ["zebra_iou"]
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["unit_serial"] == record.unit_serial and props["verdict"] == "FAIL"
    assert failure_message(record.measurements[0]) == "value 0.21 cy/px outside [0.3, —]"


def test_csv_and_parquet_round_trip_to_the_record(outputs: tuple[RunRecord, dict[str, Path]]) -> None:
    record, out = outputs
    assert measurements_from_frame(read_csv(out["csv"])) == record.measurements
    assert measurements_from_frame(read_parquet(out["parquet"])) == record.measurements
    reread, data = load_run_dir(out["record"].parent)
    assert reread == record and data is not None and data.plots[0].name == "mtf"


def test_rewriting_from_the_run_folder_reuses_its_report_data(outputs: tuple[RunRecord, dict[str, Path]]) -> None:
    record, out = outputs
    run_dir = out["record"].parent
    again = write_run_outputs(record, run_dir, pdf=False)
    assert again["plots"] == run_dir / REPORT_DATA_FILE
    assert again["html"].read_text(encoding="utf-8").count("<svg") >= 5


def test_a_malformed_report_data_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / REPORT_DATA_FILE
    bad.write_text(json.dumps({"plots": [{"kind": "heatmap", "name": "s", "title": "t", "values": [[1, 2], [3]]}]}))
    with pytest.raises(ConfigError, match=r"plots\.json: plots\.0\.heatmap\.values = .*rectangular"):
        ReportData.load(bad)


def test_rig_report_rewrites_a_run_folder_and_stores_it(
    outputs: tuple[RunRecord, dict[str, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rig.cli import main
    from rig.results.store import open_store

    record, out = outputs
    store_url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    run_id = record.run_id
    reports = out["record"].parent.parent
    (reports / run_id).mkdir(exist_ok=True)
    for name in ("record.json", REPORT_DATA_FILE):
        (reports / run_id / name).write_bytes((out["record"].parent / name).read_bytes())
    code = main(["report", run_id, "--reports", str(reports), "--no-pdf", "--store", store_url, "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["verdict"] == "FAIL" and Path(summary["outputs"]["junit"]).parent == reports / run_id
    assert "pdf" not in summary["outputs"]
    with open_store(store_url) as store:
        assert store.get_run(run_id) == record
    assert main(["report", "no-such-run", "--reports", str(reports)]) == 2
    assert "RUN_DIR_OR_ID 'no-such-run': expected a folder with record.json" in capsys.readouterr().err
    assert main(["report", "--schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "RunRecord"


@pytest.mark.parametrize(
    ("verdict", "word", "colour"),
    [(Verdict.PASS, "PASS", "#2e7d32"), (Verdict.ERROR, "ERROR", "#f9a825"), (None, "INCOMPLETE", "#546e7a")],
)
def test_banner_says_the_verdict_in_its_colour(verdict: Verdict | None, word: str, colour: str, tmp_path: Path) -> None:
    from rig.report.html import render_html

    record = signoff_record(np.random.default_rng(1)).model_copy(update={"verdict": verdict})
    html = render_html(record, None, tmp_path)
    banner = re.search(
        r'<header id="verdict" class="banner" style="background:([^;]+);[^>]*>\s*<div class="word">(\w+)<', html
    )
    assert banner is not None and banner.groups() == (colour, word)
    assert 'id="plots"' not in html  # no report data: no empty sections


def test_schemas_export() -> None:
    schema = ReportData.model_json_schema()
    kinds = {d["properties"]["kind"]["const"] for d in schema["$defs"].values() if "kind" in d.get("properties", {})}
    assert kinds == {"curves", "heatmap", "field", "checks"}
