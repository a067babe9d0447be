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

from rig.errors import ConfigError

SCHEMA_VERSION = "1.0"


class Verdict(StrEnum):
    """Outcome of a measurement, a step or a unit. ERROR: the bench could not measure. SKIP: not applicable."""

    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"
    SKIP = "SKIP"


def combine(verdicts: list[Verdict]) -> Verdict:
    """Unit verdict from parts: any ERROR → ERROR (we do not know), else any FAIL → FAIL, else PASS."""
    if Verdict.ERROR in verdicts:
        return Verdict.ERROR
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    return Verdict.PASS


def utcnow() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MeasurementRecord(Record):
    """One number against its limits."""

    name: str  # with unit suffix, e.g. "flange_offset_um"
    step: str  # the plan step (test) that took it
    zone: str | None = None  # field zone ("center", "mid", "corner", "0.7") or condition ("pitch+90")
    value: float | None  # None when the measurement could not be made (verdict ERROR)
    unit: str
    low: float | None = None
    high: float | None = None
    verdict: Verdict
    doc: str = ""
    captures: list[str] = Field(default_factory=list)  # capture files (relative to the run folder)
    error: str | None = None
    timestamp: datetime = Field(default_factory=utcnow)

    @staticmethod
    def judge(value: float | None, low: float | None, high: float | None) -> Verdict:
        if value is None or not math.isfinite(value):
            return Verdict.ERROR
        if low is not None and value < low:
            return Verdict.FAIL
        if high is not None and value > high:
            return Verdict.FAIL
        return Verdict.PASS

    @property
    def key(self) -> str:
        return f"{self.name}[{self.zone}]" if self.zone else self.name


class StepRecord(Record):
    """One plan step (one test)."""

    name: str
    verdict: Verdict
    started: datetime
    ended: datetime
    error: str | None = None  # the reason for ERROR / SKIP / FAIL
    retries: int = 0
    attachments: list[str] = Field(default_factory=list)  # plots, annotated images (relative to the run folder)


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
    started: datetime
    ended: datetime | None = None
    verdict: Verdict | None = None  # None while the run is in progress
    measurements: list[MeasurementRecord] = Field(default_factory=list)
    steps: list[StepRecord] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)  # station/limits/unit files as used (for proof)
    artifacts: dict[str, str] = Field(default_factory=dict)  # name → file relative to the run folder

    def final_verdict(self) -> Verdict:
        parts = [m.verdict for m in self.measurements] + [s.verdict for s in self.steps]
        parts = [v for v in parts if v is not Verdict.SKIP]
        return combine(parts) if parts else Verdict.ERROR

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
