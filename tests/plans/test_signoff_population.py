"""The QA sign-off against the population of twin units (issue #6): the golden unit PASSes and every defective
unit FAILs on exactly the measurement(s) its defect must trip — no false pass, no collateral failure.

Each run is the real thing: `rig signoff` in its own process, the twin's GRBL peer on a pty and its phone on
PTP/IP, the factory drivers, the plan, the record. The truth (which measurements must fail) is written in the
unit files (`expected_failures`), derived from the physics of each defect, not from a previous run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rig.config.loader import FIXTURES_DIR
from rig.config.unit import load_unit

# the sign-off population of issue #6; units for other plans and for fault tests carry a prefix (cal-, cert-, fault-)
POPULATION = [
    "golden",
    "flange-plus8",
    "tilt-3arcmin",
    "decentre-60um",
    "soft-lens",
    "weak-mount",
    "slow-switch",
    "raw-9bit",
    "wrong-histogram",
    "heavy-vignetting",
]


def _signoff(unit: str, reports: Path) -> tuple[int, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "rig", "signoff", "--unit", unit, "--reports", str(reports), "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.stdout.strip(), f"rig signoff printed nothing (exit {proc.returncode}); stderr:\n{proc.stderr[-3000:]}"
    return proc.returncode, json.loads(proc.stdout)


def test_population_covers_every_defect_unit() -> None:
    shipped = {p.stem for p in (FIXTURES_DIR / "units").glob("*.toml")}
    unprefixed = {name for name in shipped if not name.startswith(("cal-", "cert-", "fault-"))}
    assert unprefixed == set(POPULATION), "a sign-off unit was added or removed without updating the population"


@pytest.mark.slow
@pytest.mark.parametrize("unit", POPULATION)
def test_signoff_verdict_and_failures_match_the_defect(unit: str, tmp_path: Path) -> None:
    expected = set(load_unit(FIXTURES_DIR / "units" / f"{unit}.toml").expected_failures)
    code, summary = _signoff(unit, tmp_path)
    errors = [s for s in summary["steps"] if s["verdict"] == "ERROR"]
    assert not errors, f"{unit}: the bench could not measure: {errors}"
    failed = {key.split("[")[0] for key in summary["failures"]}
    assert failed == expected, f"{unit}: failed {sorted(failed)}, the defect should fail {sorted(expected)}"
    if expected:
        assert (code, summary["verdict"]) == (1, "FAIL")
    else:
        assert (code, summary["verdict"]) == (0, "PASS")
    # the run folder holds the record, the report and every capture it names
    run_dir = Path(summary["run_dir"])
    record = json.loads((run_dir / "record.json").read_text())
    assert record["verdict"] == summary["verdict"]
    dropped = set(record.get("captures_dropped", []))  # removed by the capture retention, and said so
    for m in record["measurements"]:
        for capture in m["captures"]:
            assert (run_dir / capture).is_file() or capture in dropped, f"{m['name']} names a capture that is lost"
            if m["verdict"] in ("FAIL", "ERROR"):
                assert (run_dir / capture).is_file(), f"{m['name']}: the capture behind a {m['verdict']} was dropped"
    for name in ("report.html", "junit.xml", "measurements.csv"):
        assert (run_dir / name).is_file(), f"{name} missing"
