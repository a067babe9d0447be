"""junit.xml against the Jenkins JUnit schema and against pytest's own ``--junitxml`` output.

The schema (``jenkins-junit-10.xsd`` beside this file) restates the Jenkins xUnit plugin's ``junit-10.xsd``
(jenkinsci/xunit-plugin, src/main/resources/org/jenkinsci/plugins/xunit/types/model/xsd/junit-10.xsd). pytest's
``--junitxml`` output of a PASS, a FAIL, an ERROR and a SKIP in this same run is the structural reference: it
validates against the same schema, and every element and attribute we write is one pytest writes too.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import xmlschema

from rig.report.junit import write_junit
from rig.results.record import RunRecord, Verdict
from tests.report.signoff import signoff_record
from tests.results.factory import BASE_TIME, make_run

SCHEMA = xmlschema.XMLSchema(Path(__file__).with_name("jenkins-junit-10.xsd"))

_PYTEST_REFERENCE = """
import pytest

def test_pass(record_testsuite_property):
    record_testsuite_property("run_id", "reference")
    print("measured 0.31 cy/px")

def test_fail():
    assert 0.21 >= 0.3

@pytest.fixture
def bench():
    raise RuntimeError("phone did not answer")

def test_error(bench):
    pass

def test_skip():
    pytest.skip("no zebra output")
"""


def _records() -> dict[Verdict, RunRecord]:
    rng = np.random.default_rng(14)
    # the factory draws values about the spec means: the first seed whose run passes every limit
    passed = next(
        run
        for seed in range(100)
        if (run := make_run(np.random.default_rng(seed), run_id="r-pass", unit_serial="XM12SU-000001",
                            started=BASE_TIME)).verdict is Verdict.PASS
    )  # fmt: skip
    errored = make_run(rng, run_id="r-error", unit_serial="XM12SU-000003", started=BASE_TIME, error_rate=1.0)
    return {Verdict.PASS: passed, Verdict.FAIL: signoff_record(rng), Verdict.ERROR: errored}


def _vocabulary(root: ET.Element) -> set[tuple[str, str]]:
    """Every (element, attribute) pair in a tree, with (element, "") for each element."""
    out: set[tuple[str, str]] = set()
    for el in root.iter():
        out.add((el.tag, ""))
        out.update((el.tag, name) for name in el.attrib)
    return out


@pytest.fixture(scope="module")
def pytest_junit(tmp_path_factory: pytest.TempPathFactory) -> ET.Element:
    folder = tmp_path_factory.mktemp("pytest-reference")
    (folder / "test_reference.py").write_text(_PYTEST_REFERENCE, encoding="utf-8")
    out = folder / "junit.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:rig", "-p", "no:xdist",
         "-o", "junit_logging=system-out", f"--junitxml={out}", "test_reference.py"],
        cwd=folder, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return ET.parse(out).getroot()


@pytest.mark.parametrize("verdict", [Verdict.PASS, Verdict.FAIL, Verdict.ERROR])
def test_junit_of_a_run_validates_against_the_jenkins_schema(verdict: Verdict, tmp_path: Path) -> None:
    record = _records()[verdict]
    assert record.verdict is verdict
    path = write_junit(record, tmp_path / "junit.xml")
    SCHEMA.validate(str(path))  # raises with the offending element and attribute
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    counts = {k: int(suite.get(k, "-1")) for k in ("failures", "errors")}
    assert (counts["failures"] > 0) == (verdict is Verdict.FAIL) and (counts["errors"] > 0) == (
        verdict is not Verdict.PASS
    )
    # the measured values are properties of the suite (a testcase may hold none in this schema)
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    measured = [m for m in record.measurements if m.value is not None]
    assert len(measured) == sum(1 for k in props if "." in k and not k.endswith(".verdict"))
    assert sum(1 for k in props if k.endswith(".verdict")) == len(record.measurements)
    for m in measured:
        assert props[f"{m.step}.{m.key}"] == f"{m.value!r} {m.unit}".rstrip()


def test_the_schema_rejects_what_jenkins_rejects(tmp_path: Path) -> None:
    record = _records()[Verdict.FAIL]
    path = write_junit(record, tmp_path / "junit.xml")
    root = ET.parse(path).getroot()
    root.set("skipped", "1")  # what the bench used to write
    with pytest.raises(xmlschema.XMLSchemaValidationError, match="skipped"):
        SCHEMA.validate(ET.tostring(root, encoding="unicode"))


def test_our_structure_is_pytests(pytest_junit: ET.Element, tmp_path: Path) -> None:
    SCHEMA.validate(ET.tostring(pytest_junit, encoding="unicode"))  # the reference itself is valid
    reference = _vocabulary(pytest_junit)
    assert {("failure", ""), ("error", ""), ("skipped", ""), ("properties", ""), ("system-out", "")} <= reference
    for verdict, record in _records().items():
        ours = _vocabulary(ET.parse(write_junit(record, tmp_path / f"{verdict.value}.xml")).getroot())
        assert ours <= reference, f"{verdict.value}: not written by pytest: {sorted(ours - reference)}"
