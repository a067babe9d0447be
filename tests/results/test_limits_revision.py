"""A limits revision from the file to the record, the store and a resume (issue #13: SPC by limits revision)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.bench.recording import RECORD_FILE, RunRecorder
from rig.config.limits import LIMITS_DIR, load_limits, revision_order
from rig.errors import ArgumentError, ConfigError
from rig.results.record import RunRecord, Verdict
from rig.results.store import open_store

FLANGE = '[flange_offset_um]\nunit = "um"\nstep = "flange_alignment"\nlow = -5.0\nhigh = 5.0\n'


SHIPPED_REVISIONS = {"signoff": "2026-11-A", "calibration": "2026-11-A", "certification": "2026-12-B"}
"""A shipped limit set's revision changes only with its limits: a bump here is a deliberate release (SPC splits)."""


def test_every_shipped_limit_set_names_a_valid_revision() -> None:
    shipped = {p.stem: load_limits(p).revision for p in sorted(LIMITS_DIR.glob("*.toml"))}
    assert shipped == SHIPPED_REVISIONS


@pytest.mark.parametrize(
    ("head", "shown"),
    [
        ("", "(missing)"),
        ('revision = "2026-13-A"\n', "'2026-13-A'"),  # no 13th month
        ('revision = "2026-11-a"\n', "'2026-11-a'"),
        ('revision = "2026-11-AA"\n', "'2026-11-AA'"),  # one letter: two would sort "AA" before "B"
        ("revision = 3\n", "3"),
    ],
    ids=["missing", "month", "lower-case", "two-letters", "int"],
)
def test_a_missing_or_malformed_revision_is_one_line_naming_it(tmp_path: Path, head: str, shown: str) -> None:
    path = tmp_path / "signoff.toml"
    path.write_text(head + FLANGE)
    with pytest.raises(ConfigError) as exc:
        load_limits(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: revision = {shown}: expected a limits revision YYYY-MM-L")
    assert "\n" not in message


def test_a_bad_limit_is_reported_before_the_revision(tmp_path: Path) -> None:
    # a file with both faults names the measurement first: the revision check does not hide the limits' own checks
    path = tmp_path / "signoff.toml"
    path.write_text('[x_um]\nunit = "um"\nlow = 5\nhigh = 1\n')
    with pytest.raises(ConfigError, match=r"x_um"):
        load_limits(path)


def test_revisions_sort_in_release_order() -> None:
    assert revision_order(["2027-01-A", "2026-11-B", "2026-11-A", "2026-02-C"]) == [
        "2026-02-C",
        "2026-11-A",
        "2026-11-B",
        "2027-01-A",
    ]


def _limits(tmp_path: Path, revision: str) -> Path:
    path = tmp_path / f"limits-{revision}.toml"
    path.write_text(f'revision = "{revision}"\n' + FLANGE)
    return path


def test_the_run_records_its_revision_and_the_store_keeps_it(tmp_path: Path) -> None:
    recorder = RunRecorder.start(
        plan="signoff",
        limits=load_limits(_limits(tmp_path, "2026-12-B")),
        station="twin-01",
        station_file=None,
        unit_serial="XM12SU-000001",
        lens="summilux-m-35-f1.4-asph-2022",
        reports_dir=tmp_path / "reports",
        run_id="run-1",
    )
    recorder.measure("flange_alignment", "flange_offset_um", 1.25)
    assert recorder.finish() is Verdict.PASS
    record = RunRecord.load(tmp_path / "reports" / "run-1" / RECORD_FILE)
    assert record.limits_revision == "2026-12-B"
    with open_store(tmp_path / "results.sqlite") as store:
        store.add_run(record)
        assert store.runs()["limits_revision"].tolist() == ["2026-12-B"]
        assert store.get_run("run-1") == record


def test_a_run_is_never_resumed_under_another_revision(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    recorder = RunRecorder.start(
        plan="signoff",
        limits=load_limits(_limits(tmp_path, "2026-11-A")),
        station="twin-01",
        station_file=None,
        unit_serial="XM12SU-000002",
        lens=None,
        reports_dir=reports,
        run_id="run-2",
    )
    recorder.step("flange_alignment", Verdict.ERROR, started=recorder.record.started, ended=recorder.record.started,
                  error="DeviceLost: GRBL port closed")  # fmt: skip
    assert recorder.finish() is Verdict.ERROR
    with pytest.raises(ArgumentError) as exc:
        RunRecorder.resume(reports / "run-2", load_limits(_limits(tmp_path, "2026-12-A")), ["flange_alignment"])
    assert str(exc.value).startswith(
        "--resume run-2: judged against limits revision 2026-11-A, the limits are now revision 2026-12-A"
    )
    again = RunRecorder.resume(reports / "run-2", load_limits(_limits(tmp_path, "2026-11-A")), ["flange_alignment"])
    assert again.record.limits_revision == "2026-11-A"
