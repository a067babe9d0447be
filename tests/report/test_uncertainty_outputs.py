"""± U in the run report and in JUnit (issue #18): beside each figure that has one, nowhere else; JUnit stays valid
against the Jenkins schema (``jenkins-junit-10.xsd``, see ``test_junit_schema.py`` for its source)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import xmlschema

from rig.config.limits import DecisionRule
from rig.report.html import render_html
from rig.report.junit import failure_message, write_junit
from rig.results.decision import Decision
from rig.results.record import RunRecord, Uncertainty, Verdict
from tests.report.signoff import signoff_record

SCHEMA = xmlschema.XMLSchema(Path(__file__).with_name("jenkins-junit-10.xsd"))
STUDY = Uncertainty(
    expanded_u=0.0123,
    coverage_factor=2.0,
    study_id="grr-operator-twin-01",
    study_started=datetime(2026, 11, 30, tzinfo=UTC),
)


def _record_with_u() -> tuple[RunRecord, set[str]]:
    """The report test's sign-off run with U on its first two figures, the first (a FAIL) judged by ISO 14253-1."""
    record = signoff_record(np.random.default_rng(42))
    judged, other = record.measurements[0], record.measurements[1]
    assert judged.verdict is Verdict.FAIL and other.value is not None
    record.measurements[0] = judged.model_copy(
        update={"uncertainty": STUDY, "decision_rule": DecisionRule.ISO14253, "decision": Decision.DOES_NOT_CONFORM}
    )
    record.measurements[1] = other.model_copy(update={"uncertainty": STUDY})
    return record, {judged.key, other.key}


class _MeasurementTable(HTMLParser):
    """The header and the rows (cell texts) of the report's ``#measurements`` table."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.section = dict(attrs).get("id")
        elif self.section == "measurements" and tag == "tr":
            self.rows.append([])
        elif self.section == "measurements" and tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self._cell is not None:
            text = "".join(self._cell).strip()
            (self.header if tag == "th" else self.rows[-1]).append(text)
            self._cell = None
        elif tag == "section":
            self.section = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _rows(html: str) -> dict[str, dict[str, str]]:
    parser = _MeasurementTable()
    parser.feed(html)
    rows = {}
    for row in parser.rows:
        if not row:
            continue  # the header row holds <th>s only
        cells = dict(zip(parser.header, row, strict=True))
        key = f"{cells['measurement']}[{cells['zone']}]" if cells["zone"] else cells["measurement"]
        rows[key] = cells
    return rows


def test_the_report_shows_plus_minus_u_beside_each_figure_that_has_one(tmp_path: Path) -> None:
    record, with_u = _record_with_u()
    rows = _rows(render_html(record, None, tmp_path))
    assert set(rows) == {m.key for m in record.measurements}
    # at the value's resolution, which (rig.results.numbers) gives a small figure two significant digits however its
    # limit is written (0.3 or 0.25) — as the GUM (JCGM 100:2008 §7.2.6) wants U stated: at most two digits
    shown = {"mtf50_cy_px[center]": "± 0.012", "mtf50_cy_px[mid]": "± 0.012"}
    assert with_u == set(shown)
    assert {key: cells["± U"] for key, cells in rows.items()} == {key: shown.get(key, "") for key in rows}
    judged = record.measurements[0]
    assert rows[judged.key]["note"] == "ISO 14253-1 with U: does not conform"


def test_without_a_study_the_u_column_is_empty(tmp_path: Path) -> None:
    record = signoff_record(np.random.default_rng(42))
    assert {cells["± U"] for cells in _rows(render_html(record, None, tmp_path)).values()} == {""}


def test_junit_carries_u_its_study_and_the_decision_and_stays_schema_valid(tmp_path: Path) -> None:
    record, with_u = _record_with_u()
    path = write_junit(record, tmp_path / "junit.xml")
    SCHEMA.validate(str(path))
    props = {p.get("name"): p.get("value") for p in ET.parse(path).getroot().iter("property")}
    for m in record.measurements:
        prefix = f"{m.step}.{m.key}"
        if m.key in with_u:
            assert props[f"{prefix}.U"] == f"0.0123 {m.unit}".rstrip()
            assert props[f"{prefix}.U_source"] == "MSA grr-operator-twin-01 of 2026-11-30"
        else:
            assert f"{prefix}.U" not in props
    judged = record.measurements[0]
    assert props[f"{judged.step}.{judged.key}.decision"] == "does not conform"
    assert sum(name.endswith(".decision") for name in props) == 1
    message = failure_message(judged)
    assert "± 0.0123" in message and message.endswith("(ISO 14253-1: does not conform)")


@pytest.mark.parametrize(
    ("u", "shown"), [(0.0, "± 0.000"), (0.0123, "± 0.012"), (0.0004, "± 0.0004"), (1.26e-5, "± 0.000013")]
)
def test_a_u_below_the_value_s_resolution_is_not_shown_as_zero(tmp_path: Path, u: float, shown: str) -> None:
    record, _ = _record_with_u()
    record.measurements[1] = record.measurements[1].model_copy(
        update={"uncertainty": STUDY.model_copy(update={"expanded_u": u})}
    )
    assert _rows(render_html(record, None, tmp_path))[record.measurements[1].key]["± U"] == shown
