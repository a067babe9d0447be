"""The self-contained HTML report of one run (jinja2; inline CSS, inline SVG plots, base64 thumbnails).

Sections, top to bottom: verdict banner (``#verdict``), run identity (``#run``), measurements against limits
failures first, each with its expanded uncertainty ``± U`` once the station has an accepted MSA
(``#measurements``), steps with errors and retries (``#steps``), plots (``#plots``), feature checks
(``#checks``), captures (``#captures``). A Content-Security-Policy forbids every fetch but ``data:`` images, so a
report that tried to load anything from outside would show it as a console error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jinja2

from rig.report.plots import svg_for, thumbnail_data_uri
from rig.results.numbers import display_unit, format_plain, format_value
from rig.results.record import CalibrationVerdict, CertificateLevel, MeasurementRecord, RunRecord, Verdict
from rig.results.reportdata import ChecksPlot, ReportData
from rig.results.tables import margin, sorted_for_report

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Banner:
    word: str
    background: str  # CSS colour
    foreground: str


_GOOD, _BAD, _UNKNOWN = ("#2e7d32", "#ffffff"), ("#c62828", "#ffffff"), ("#f9a825", "#1b1b1b")
BANNERS: dict[str, Banner] = {
    "PASS": Banner("PASS", *_GOOD),
    "FAIL": Banner("FAIL", *_BAD),
    "ERROR": Banner("ERROR", *_UNKNOWN),
    "SKIP": Banner("SKIPPED", "#757575", "#ffffff"),
    "INCOMPLETE": Banner("INCOMPLETE", "#546e7a", "#ffffff"),  # the run has not finished (no final verdict yet)
    # a certificate with limitations is a certificate: blue, not the red of a failure nor the amber of an error
    CertificateLevel.CERTIFIED.value: Banner(CertificateLevel.CERTIFIED.value, *_GOOD),
    CertificateLevel.CERTIFIED_WITH_LIMITATIONS.value: Banner(
        CertificateLevel.CERTIFIED_WITH_LIMITATIONS.value, "#1565c0", "#ffffff"
    ),
    CertificateLevel.NOT_CERTIFIED.value: Banner(CertificateLevel.NOT_CERTIFIED.value, *_BAD),
    CalibrationVerdict.ACCEPTED.value: Banner(CalibrationVerdict.ACCEPTED.value, *_GOOD),
    CalibrationVerdict.REJECTED.value: Banner(CalibrationVerdict.REJECTED.value, *_BAD),
    # re-shimmed and verified: the unit is fixed but needs calibrating again — an instruction, not a failure
    CalibrationVerdict.REWORK.value: Banner(CalibrationVerdict.REWORK.value, "#1565c0", "#ffffff"),
}
"""Banner by the run's headline word (:attr:`RunRecord.headline`): the same word as the CLI's last line."""


def banner_for(record: RunRecord) -> Banner:
    return BANNERS[record.headline]


def verdict_word(m: MeasurementRecord) -> str:
    """What a measurement's pill says: MARGINAL for a pass inside its marginal band, else the verdict."""
    return "MARGINAL" if m.marginal and m.verdict is Verdict.PASS else m.verdict.value


def _num(value: float | None) -> str:
    return "" if value is None or value != value else format_plain(value)  # NaN != NaN: undefined shows blank


def _value(m: MeasurementRecord) -> str:
    return format_value(m.value, m.unit, m.low, m.high)


def _plus_minus(m: MeasurementRecord) -> str:
    """``± 0.12`` at the value's resolution (one finer digit when U would round to 0), empty without a study."""
    if m.uncertainty is None:
        return ""
    u = m.uncertainty.expanded_u
    text = format_value(u, m.unit, m.low, m.high)
    if u > 0 and float(text) == 0:  # never "± 0.00" for a U that is not zero: two significant digits, fixed point
        text = format_plain(float(f"{u:.2g}"))
    return f"± {text}"


def _note(m: MeasurementRecord) -> str:
    """The note of a measurement: its error, else what the ISO 14253-1 rule decided or why it was not applied."""
    if m.error:
        return m.error
    if m.decision is not None:
        return f"ISO 14253-1 with U: {m.decision.value}"
    return m.decision_note or m.doc


def _pct(value: float | None) -> str:
    return "—" if value is None or value != value else f"{100 * value:.1f} %"


def _ts(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def environment() -> jinja2.Environment:
    """The jinja2 environment of every rig page (templates/, autoescape, num/pct/ts filters)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["ts"] = _ts
    env.filters["pct"] = _pct
    env.filters["unit"] = display_unit
    env.filters["value"] = _value
    env.filters["word"] = verdict_word
    env.filters["plus_minus"] = _plus_minus
    env.filters["note"] = _note
    return env


def stylesheet() -> str:
    return (TEMPLATES / "report.css").read_text(encoding="utf-8")


@dataclass(frozen=True)
class _Figure:
    name: str
    svg: str
    caption: str


@dataclass(frozen=True)
class _Thumb:
    path: str
    caption: str
    uri: str | None


def render_html(record: RunRecord, data: ReportData | None, run_dir: Path, *, generated: datetime | None = None) -> str:
    """The report page as a string. Thumbnails are read from ``run_dir`` (paths in ``data`` are relative to it)."""
    data = data or ReportData()
    measurements = sorted_for_report(record)
    figures = []
    for plot in data.plots:
        svg = svg_for(plot)
        if svg is not None:
            figures.append(_Figure(plot.name, svg, plot.caption))
    thumbs = [_Thumb(t.path, t.caption, thumbnail_data_uri(run_dir / t.path)) for t in data.thumbnails]
    counts = {v.value: sum(m.verdict is v for m in record.measurements) for v in Verdict}
    counts["MARGINAL"] = sum(m.marginal and m.verdict is Verdict.PASS for m in record.measurements)
    counts[Verdict.PASS.value] -= counts["MARGINAL"]
    # a step that ended as ERROR before it measured anything is an error of the run all the same
    measured_steps = {m.step for m in record.measurements}
    counts[Verdict.ERROR.value] += sum(
        s.verdict is Verdict.ERROR and s.name not in measured_steps for s in record.steps
    )
    duration = (record.ended - record.started).total_seconds() if record.ended else None
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            r=record,
            banner=banner_for(record),
            counts=counts,
            duration_s=duration,
            measurements=measurements,
            margins=[
                format_value(d, m.unit, m.low, m.high)
                for m, d in zip(measurements, (margin(m.value, m.low, m.high) for m in measurements), strict=True)
            ],
            figures=figures,
            checks=[p for p in data.plots if isinstance(p, ChecksPlot)],
            thumbnails=thumbs,
            css=stylesheet(),
            generated=generated or datetime.now(UTC),
        )
    )
