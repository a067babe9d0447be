"""JUnit XML of a run, for CI servers (Jenkins, GitLab) and the MES.

One ``<testcase>`` per measurement (``classname`` = plan.step, ``name`` = measurement[zone]); a FAIL carries
``<failure message="value … outside [low, high]">``, an ERROR ``<error>``, a SKIP ``<skipped>``. A step that
recorded no measurement at all (it errored or was skipped before measuring) gets one testcase of its own, so a
broken step is never invisible. ``<testsuite>`` carries the counts, the run's properties and one property per
measured value (``step.measurement[zone]`` = ``value unit``), where a CI server or MES reads them. Once the station
has an accepted MSA, each figure's expanded uncertainty is a property beside it (``step.measurement[zone].U`` =
``U unit``, k = 2, and ``….U_source`` = the study), and a figure judged by the ISO 14253-1 rule carries its
decision (``….decision`` = ``conforms`` / ``does not conform`` / ``undecided``).

Format: only the elements and attributes of the Jenkins xUnit plugin's JUnit schema (jenkinsci/xunit-plugin,
``src/main/resources/org/jenkinsci/plugins/xunit/types/model/xsd/junit-10.xsd``) that pytest's own
``--junitxml`` also writes: ``<testsuites name>``; ``<testsuite name tests failures errors skipped time timestamp
hostname>`` holding ``<properties>`` and ``<testcase classname name time>``; ``<failure message>``,
``<error message>``, ``<skipped message>`` and ``<system-out>`` inside a testcase. The schema allows no
``skipped`` on ``<testsuites>`` and no ``<properties>`` inside a ``<testcase>``, so neither is written.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rig.results.record import MeasurementRecord, RunRecord, StepRecord, Verdict, atomic_write_bytes


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.6g}"


def failure_message(m: MeasurementRecord) -> str:
    """``value 0.21 cy/px outside [0.3, —]`` (— marks an open side), with ``± U`` and the ISO 14253-1 decision
    when the rule judged it."""
    value = f"{_fmt(m.value)} ± {_fmt(m.uncertainty.expanded_u)}" if m.uncertainty else _fmt(m.value)
    text = f"value {value} {m.unit} outside [{_fmt(m.low)}, {_fmt(m.high)}]".replace("  ", " ")
    return f"{text} (ISO 14253-1: {m.decision.value})" if m.decision is not None else text


def _measurement_case(suite: ET.Element, record: RunRecord, m: MeasurementRecord) -> ET.Element:
    case = ET.SubElement(suite, "testcase", classname=f"{record.plan}.{m.step}", name=m.key, time="0")
    detail = m.doc or ""
    if m.verdict is Verdict.FAIL:
        el = ET.SubElement(case, "failure", message=failure_message(m))
        el.text = detail
    elif m.verdict is Verdict.ERROR:
        el = ET.SubElement(case, "error", message=m.error or "not measured")
        el.text = detail
    elif m.verdict is Verdict.SKIP:
        ET.SubElement(case, "skipped", message=m.error or "not applicable")
    _mark_info(case, m)
    if m.value is not None:
        ET.SubElement(case, "system-out").text = f"{m.key} = {m.value!r} {m.unit}"
    return case


def _step_case(suite: ET.Element, record: RunRecord, s: StepRecord) -> ET.Element:
    seconds = max((s.ended - s.started).total_seconds(), 0.0)
    case = ET.SubElement(suite, "testcase", classname=f"{record.plan}.{s.name}", name=s.name, time=f"{seconds:.3f}")
    if s.verdict is Verdict.FAIL:
        ET.SubElement(case, "failure", message=s.error or "step failed")
    elif s.verdict is Verdict.ERROR:
        ET.SubElement(case, "error", message=s.error or "step error")
    elif s.verdict is Verdict.SKIP:
        ET.SubElement(case, "skipped", message=s.error or "not applicable")
    return case


def junit_tree(record: RunRecord) -> ET.ElementTree:
    """Build the XML tree (see the module docstring for the mapping)."""
    measured_steps = {m.step for m in record.measurements}
    bare_steps = [s for s in record.steps if s.name not in measured_steps]
    verdicts = [m.verdict for m in record.measurements] + [s.verdict for s in bare_steps]
    counts = {v: verdicts.count(v) for v in Verdict}
    duration = (record.ended - record.started).total_seconds() if record.ended else 0.0
    attrs = {
        "tests": str(len(verdicts)),
        "failures": str(counts[Verdict.FAIL]),
        "errors": str(counts[Verdict.ERROR]),
        "skipped": str(counts[Verdict.SKIP] + counts[Verdict.INFO]),  # INFO is never counted as passed
        "time": f"{max(duration, 0.0):.3f}",
    }
    root = ET.Element("testsuites", name=f"rig {record.plan}")
    suite = ET.SubElement(
        root,
        "testsuite",
        name=f"{record.plan}.{record.unit_serial}",
        timestamp=record.started.isoformat(),
        hostname=record.station,
        **attrs,
    )
    props = ET.SubElement(suite, "properties")
    for key in ("run_id", "plan", "unit_serial", "station", "lens", "software_version", "git_sha", "operator"):
        value = getattr(record, key)
        if value is not None:
            ET.SubElement(props, "property", name=key, value=str(value))
    ET.SubElement(props, "property", name="verdict", value=_headline(record))
    for m in record.measurements:
        if m.value is not None:
            ET.SubElement(props, "property", name=f"{m.step}.{m.key}", value=f"{m.value!r} {m.unit}".rstrip())
        ET.SubElement(props, "property", name=f"{m.step}.{m.key}.verdict", value=verdict_word(m))
        _uncertainty_properties(props, m)
    for m in record.measurements:
        _measurement_case(suite, record, m)
    for s in bare_steps:
        _step_case(suite, record, s)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(record: RunRecord, path: Path) -> Path:
    buf = ET.tostring(junit_tree(record).getroot(), encoding="utf-8", xml_declaration=True)
    return atomic_write_bytes(path, buf)


# ---------------------------------------------------------------------------------------------- INFO and MARGINAL
# (issue #13) A figure without limits (INFO) is reported as <skipped message="information only …"> so a CI server
# never counts it as passed. JUnit has no status for a PASS inside its marginal band, and the Jenkins schema allows
# no <properties> inside a <testcase>, so each measurement's verdict word (PASS, MARGINAL, FAIL, ERROR, SKIP, INFO)
# is a property of the testsuite, ``step.measurement[zone].verdict``, beside its value.


def verdict_word(m: MeasurementRecord) -> str:
    return "MARGINAL" if m.marginal and m.verdict is Verdict.PASS else m.verdict.value


def _uncertainty_properties(props: ET.Element, m: MeasurementRecord) -> None:
    """U (k = 2) with its study, and the ISO 14253-1 decision, as properties beside the value (issue #18)."""
    prefix = f"{m.step}.{m.key}"
    if m.uncertainty is not None:
        ET.SubElement(props, "property", name=f"{prefix}.U", value=f"{m.uncertainty.expanded_u!r} {m.unit}".rstrip())
        ET.SubElement(props, "property", name=f"{prefix}.U_source", value=m.uncertainty.source)
    if m.decision is not None:
        ET.SubElement(props, "property", name=f"{prefix}.decision", value=m.decision.value)


def _mark_info(case: ET.Element, m: MeasurementRecord) -> None:
    if m.verdict is Verdict.INFO:
        ET.SubElement(case, "skipped", message="information only: no limit to judge it by")


def _headline(record: RunRecord) -> str:
    """The run's word (certificate level, calibration verdict or verdict), as the banner and the CLI say it."""
    if record.verdict is None:
        return record.final_verdict().value
    return record.headline
