"""The run record: the one document every report, export and SPC query reads (DESIGN.md §8.12).

Versioned (``schema_version``); a reader refuses a major version it does not know. JSON on disk, one file per
run, written atomically.
"""

from __future__ import annotations

import math
import os
import tempfile
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rig.config.limits import DecisionRule
from rig.errors import ConfigError
from rig.results.decision import Decision
from rig.spec.types import CaptureRetention

SCHEMA_VERSION = "1.2"
"""1.1 added ``Verdict.INFO``, ``MeasurementRecord.marginal``, ``StepRecord.attempts`` and the run's ``partial``,
``deselected``, ``history`` and ``outcome``; 1.2 added the measurement's ``uncertainty``, ``decision_rule``,
``decision`` and ``decision_note`` (issue #18), ``StepRecord.wall_s``/``hardware_s``/``cpu_s`` and the run's
``report`` state (issue #17), and the run's ``limits_revision`` (issue #13). A 1.0 or 1.1 record still loads
(every new field has a default)."""


class Verdict(StrEnum):
    """Outcome of a measurement, a step or a unit, in the vocabulary of OpenHTF and NI TestStand.

    PASS / FAIL: judged against a limit. ERROR: the bench could not measure (we do not know). SKIP: not applicable
    to this unit or lens. INFO: a figure recorded for information, with no limit to judge it by: it never counts
    as passed (OpenHTF records such a value with no validator; TestStand's "Done" step status) and never decides
    a run. A PASS inside a limit's marginal band carries :attr:`MeasurementRecord.marginal` as well.
    """

    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"
    SKIP = "SKIP"
    INFO = "INFO"


NEUTRAL_VERDICTS = frozenset({Verdict.SKIP, Verdict.INFO})
"""Verdicts that say nothing for or against a unit: left out when parts are combined."""


def combine(verdicts: list[Verdict]) -> Verdict:
    """Unit verdict from parts: any ERROR → ERROR (we do not know), else any FAIL → FAIL, else PASS.

    SKIP and INFO parts are left out; with nothing else left the unit is ERROR (nothing was judged).
    """
    judged = [v for v in verdicts if v not in NEUTRAL_VERDICTS]
    if not judged or Verdict.ERROR in judged:
        return Verdict.ERROR
    if Verdict.FAIL in judged:
        return Verdict.FAIL
    return Verdict.PASS


class CertificateLevel(StrEnum):
    """The answer of a certification run (rig.calibrate.certificate grades it)."""

    CERTIFIED = "CERTIFIED"
    CERTIFIED_WITH_LIMITATIONS = "CERTIFIED WITH LIMITATIONS"
    NOT_CERTIFIED = "NOT CERTIFIED"


class CalibrationVerdict(StrEnum):
    """The answer of a calibration run about its profile (rig.calibrate.outputs writes it to the unit's folder).

    ACCEPTED: every measurement the profile stores passed, the profile went to the phone and was verified.
    REJECTED: a stored measurement failed (e.g. a flange beyond the profile's range): nothing went to the phone.
    REWORK: flange or tilt was beyond what a profile may store, the bench re-shimmed the mount by a recipe and
    verified it within the sign-off limits: nothing went to the phone (the profile was fitted before the rework);
    the unit goes back for a fresh calibration.
    """

    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    REWORK = "REWORK"


class ReportState(StrEnum):
    """How far the run folder's report files are (issue #17: the verdict is stored and printed first).

    PENDING: the verdict, record, JUnit, CSV and the store row are written; report.html (its plots), the Parquet
    table and report.pdf are still being written, or the process died before it finished them (``rig report RUN``
    or ``--resume RUN`` finishes them). COMPLETE: every report file of the run is written.
    """

    PENDING = "pending"
    COMPLETE = "complete"


PlanOutcome = CertificateLevel | CalibrationVerdict
"""A plan's own answer on top of the limits' verdict (None for the sign-off: its verdict is the answer)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Uncertainty(Record):
    """The expanded uncertainty of a figure on this station, and the studies it comes from (issue #18).

    ``expanded_u`` is U = k · u_c in the figure's unit (GUM §6.2; repeatability and reproducibility from the
    station's latest accepted gauge R&R, bias from its latest accepted type-1 study, see
    :func:`rig.results.msa.expanded_uncertainty`).
    """

    expanded_u: float = Field(ge=0)
    coverage_factor: float = Field(gt=0)
    study_id: str  # the gauge R&R study (rig msa grr) in the results store
    study_started: datetime
    bias_study_id: str | None = None  # the type-1 study whose bias is in U (None: no bias term)

    @property
    def source(self) -> str:
        """``MSA grr-… of 2026-12-01`` (+ the type-1 study), as reports name it."""
        text = f"MSA {self.study_id} of {self.study_started.astimezone(UTC).date().isoformat()}"
        return f"{text}, bias from {self.bias_study_id}" if self.bias_study_id else text


class MeasurementRecord(Record):
    """One number against its limits (and, once the station has an accepted MSA, with its uncertainty)."""

    name: str  # with unit suffix, e.g. "flange_offset_um"
    step: str  # the plan step (test) that took it
    zone: str | None = None  # field zone ("center", "mid", "corner", "0.7") or condition ("pitch+90")
    value: float | None  # None when the measurement could not be made (verdict ERROR)
    unit: str
    low: float | None = None
    high: float | None = None
    verdict: Verdict
    marginal: bool = False  # PASS, but inside the limit's marginal band (close enough to a limit to watch)
    uncertainty: Uncertainty | None = None  # U (k = 2) of this figure on this station; None without a study
    decision_rule: DecisionRule = DecisionRule.SIMPLE  # the rule the verdict was judged by
    decision: Decision | None = None  # the ISO 14253-1 decision, when that rule judged it
    decision_note: str | None = None  # why the rule the limit asks for was not applied (no study, no value)
    doc: str = ""
    captures: list[str] = Field(default_factory=list)  # capture files (relative to the run folder)
    error: str | None = None
    timestamp: datetime = Field(default_factory=utcnow)

    @staticmethod
    def judge(value: float | None, low: float | None, high: float | None) -> Verdict:
        """ERROR without a finite value, INFO without a limit, else FAIL outside ``[low, high]``, else PASS."""
        if value is None or not math.isfinite(value):
            return Verdict.ERROR
        if low is None and high is None:
            return Verdict.INFO
        if low is not None and value < low:
            return Verdict.FAIL
        if high is not None and value > high:
            return Verdict.FAIL
        return Verdict.PASS

    @staticmethod
    def in_marginal_band(value: float | None, marginal_low: float | None, marginal_high: float | None) -> bool:
        """Whether a passing ``value`` lies below ``marginal_low`` or above ``marginal_high``."""
        if value is None or not math.isfinite(value):
            return False
        return (marginal_low is not None and value < marginal_low) or (
            marginal_high is not None and value > marginal_high
        )

    @property
    def key(self) -> str:
        return f"{self.name}[{self.zone}]" if self.zone else self.name


class StepAttempt(Record):
    """An earlier attempt at a step, superseded when the run was resumed: history, not a current error."""

    verdict: Verdict
    started: datetime
    ended: datetime
    error: str | None = None


class StepRecord(Record):
    """One plan step (one test)."""

    name: str
    verdict: Verdict
    started: datetime
    ended: datetime
    error: str | None = None  # the reason for ERROR / SKIP / FAIL
    retries: int = 0
    attachments: list[str] = Field(default_factory=list)  # plots, annotated images (relative to the run folder)
    attempts: list[StepAttempt] = Field(default_factory=list)  # earlier attempts superseded by --resume, oldest first
    wall_s: float | None = None  # ended − started (s): what the step cost the station
    hardware_s: float | None = None  # what its physical actions cost on a real bench (s; None: the bench cannot tell)
    cpu_s: float | None = None  # CPU time of the bench during the step (s; its threads and analysis processes)


class RunRecord(Record):
    schema_version: str = SCHEMA_VERSION
    run_id: str
    plan: str  # "signoff", "calibration", "certification"
    station: str
    station_file: str | None = None
    software_version: str
    git_sha: str | None = None
    operator: str = ""
    unit_serial: str
    lens: str | None = None
    limits_revision: str | None = None  # the limit set's revision it was judged against (None: before revisions)
    started: datetime
    ended: datetime | None = None
    verdict: Verdict | None = None  # None while the run is in progress
    measurements: list[MeasurementRecord] = Field(default_factory=list)
    steps: list[StepRecord] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)  # current errors of the run (superseded ones are in history)
    history: list[str] = Field(default_factory=list)  # resumes and what they superseded, oldest first
    partial: bool = False  # steps of the plan were deselected (-k, --deselect): the run can never PASS
    deselected: list[str] = Field(default_factory=list)  # the plan's steps this run did not select
    outcome: PlanOutcome | None = None  # the plan's own answer (certificate level, calibration verdict)
    config: dict[str, Any] = Field(default_factory=dict)  # station/limits/unit files as used (for proof)
    artifacts: dict[str, str] = Field(default_factory=dict)  # name → file relative to the run folder
    capture_retention: CaptureRetention | None = None  # the policy applied when the run was published
    captures_dropped: list[str] = Field(default_factory=list)  # raw captures removed by that policy
    report: ReportState | None = None  # None: never published (or a record older than 1.2)

    def final_verdict(self) -> Verdict:
        """ERROR beats FAIL beats PASS over measurements and steps. A partial run is never PASS: what its
        deselected steps would have measured is unknown (ERROR), but a FAIL it did measure stands."""
        left_out = set(self.deselected)
        measured = [m.verdict for m in self.measurements if not (m.value is None and m.step in left_out)]
        verdict = combine(measured + [s.verdict for s in self.steps])
        if self.partial and verdict is Verdict.PASS:
            return Verdict.ERROR  # a partial run has not shown the unit good, whatever it measured
        return verdict

    @property
    def headline(self) -> str:
        """The one word a run ends with, the same in the report banner, the CLI's last line, JUnit and the store.

        The plan's outcome (certificate level, ACCEPTED/REJECTED) when it has one, except when the run is ERROR:
        then the bench could not establish the answer, and the word is ERROR. INCOMPLETE while the run is open.
        """
        if self.verdict is None:
            return "INCOMPLETE"
        if self.outcome is not None and self.verdict is not Verdict.ERROR:
            return self.outcome.value
        return self.verdict.value

    def failures(self) -> list[MeasurementRecord]:
        return [m for m in self.measurements if m.verdict is Verdict.FAIL]

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename): a crash never leaves a half-written record."""
        return atomic_write_text(Path(path), self.model_dump_json(indent=2))

    @classmethod
    def load(cls, path: str | Path) -> RunRecord:
        # a corrupt, foreign or unreadable file is the user's input: one ConfigError line, never a traceback
        from rig.spec.model import config_error_from_validation

        try:
            record = cls.model_validate_json(Path(path).read_bytes())
        except OSError as exc:
            raise ConfigError(path, "", "(unreadable)", f"a readable run record ({exc.strerror or exc})") from None
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            if first["type"] == "json_invalid":
                reason = first["msg"].removeprefix("Invalid JSON: ")
                raise ConfigError(path, "", "(not JSON)", f"a JSON run record ({reason})") from None
            raise config_error_from_validation(path, exc) from None
        major = record.schema_version.split(".")[0]
        if major != SCHEMA_VERSION.split(".")[0]:
            raise ConfigError(path, "schema_version", record.schema_version, f"major version {SCHEMA_VERSION}")
        return record


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are for everyone the umask allows
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))
