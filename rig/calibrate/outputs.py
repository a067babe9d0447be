"""The calibration folder of one unit: ``<calibration dir>/<serial>/`` with the profile and its exports.

Files (calibration/README.md describes them for the people who use them):

``profile.json``
    :meth:`CalibrationProfile.to_json` bytes, exactly what is written to the phone (so a later read-back can be
    compared with the file byte for byte).
``gainmap-<W>x<H>.opcodes``
    The profile's shading as a DNG OpcodeList of four per-Bayer-channel GainMaps (:mod:`rig.spec.gainmap`), one
    file per read-out of the sensor (8192x6144, 4096x3072, 2048x1536): a GainMap's area is in pixels of the frame
    it is embedded in, so each read-out needs its own.
``camera.yaml``
    OpenCV FileStorage camera model from the dot grid (:mod:`rig.calibrate.opencv_yaml`).
``verification.json``
    :class:`Verification`: read-back comparison and post-calibration residuals, rewritten as each check completes
    (a check not done yet is ``null``).
``verdict.json``
    :class:`CalibrationDecision`: ACCEPTED or REJECTED, with the reasons and whether the profile went to the phone.
    Written when a calibration run decides; removed when a new profile is written (it no longer applies).
``profile.rejected.json``
    A REJECTED calibration's profile, kept for diagnosis under a name no tool reads as a valid profile; a REJECTED
    run removes ``profile.json`` and its exports, and an ACCEPTED re-run (after re-shimming) removes this file.

Every file is replaced atomically, so a folder never holds a half-written file after a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from rig.calibrate.opencv_yaml import OpenCvCamera, write_opencv_yaml
from rig.config.loader import validate
from rig.errors import ArgumentError, ConfigError
from rig.results.record import CalibrationVerdict, atomic_write_bytes
from rig.spec.gainmap import readout_opcode_lists
from rig.spec.profile import BayerChannel, CalibrationProfile

PROFILE_FILE = "profile.json"
GAINMAP_FILE_PATTERN = "gainmap-*x*.opcodes"
CAMERA_FILE = "camera.yaml"
VERIFICATION_FILE = "verification.json"
VERDICT_FILE = "verdict.json"
REJECTED_PROFILE_FILE = "profile.rejected.json"
VALID_PROFILE_FILES = (PROFILE_FILE, CAMERA_FILE, VERIFICATION_FILE, "gainmap.opcodes")
"""The files a tool may take as this unit's valid calibration (with every ``gainmap-<W>x<H>.opcodes``): none of
them survives a REJECTED run."""

_SAFE_SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def unit_dir(calibration_dir: str | Path, unit_serial: str) -> Path:
    """``calibration_dir/unit_serial`` (created), refusing a serial that is not a plain folder name.

    Raises
    ------
    ArgumentError
        The serial would escape the folder (``..``, ``/``) or ``calibration_dir`` exists and is not a folder.
    """
    if not _SAFE_SERIAL.fullmatch(unit_serial) or unit_serial in {".", ".."}:
        raise ArgumentError(f"unit serial {unit_serial!r}: expected letters, digits, '.', '_' or '-' (a folder name)")
    base = Path(calibration_dir)
    if base.exists() and not base.is_dir():
        raise ArgumentError(f"--calibration-dir {base}: expected a folder, found a file")
    folder = base / unit_serial
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def gainmap_file(width_px: int, height_px: int) -> str:
    """Name of the OpcodeList file for one read-out: ``gainmap-8192x6144.opcodes``."""
    return f"gainmap-{width_px}x{height_px}.opcodes"


def write_profile_files(folder: Path, profile: CalibrationProfile, camera: OpenCvCamera | None) -> dict[str, Path]:
    """Write ``profile.json``, one ``gainmap-<W>x<H>.opcodes`` per read-out and (with a dot-grid model)
    ``camera.yaml`` into ``folder``; keys ``profile``, ``gainmap-<W>x<H>`` and ``camera``.

    A ``gainmap.opcodes`` left by an older version (one read-out's list only) is removed, so no file in the folder
    corrects a frame partly.
    """
    written = {"profile": atomic_write_bytes(folder / PROFILE_FILE, profile.to_json())}
    for (width, height), opcodes in readout_opcode_lists(profile.shading).items():
        name = gainmap_file(width, height)
        written[name.removesuffix(".opcodes")] = atomic_write_bytes(folder / name, opcodes)
    (folder / "gainmap.opcodes").unlink(missing_ok=True)
    if camera is not None:
        # cv2.FileStorage writes in place: write beside the target, then rename (atomic like the other files); cv2
        # creates the file itself, so it gets the permissions the umask allows, like the other outputs
        tmp = folder / f".{CAMERA_FILE}.{os.getpid()}.{uuid.uuid4().hex}.yaml"
        try:
            write_opencv_yaml(tmp, camera)
            os.replace(tmp, folder / CAMERA_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written["camera"] = folder / CAMERA_FILE
    return written


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Verification(_Model):
    """What the bench checked after writing the profile; ``None`` = not (yet) checked.

    ``profile_sha256``: hash of the profile bytes written. ``readback_*``: the phone's copy compared with them.
    ``shading_residual_pct``: max |1 − block / centre| per Bayer channel of a flat field re-captured with the
    profile applied through the phone's own OpcodeList2 (%). ``flange_*``: the profile's flange offset, the
    re-measured one and their difference (µm).
    """

    schema_version: str = "1.0"
    unit_serial: str
    run_id: str
    profile_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    updated: datetime
    readback_byte_identical: bool | None = None
    readback_differences: list[str] = Field(default_factory=list)
    shading_residual_pct: dict[BayerChannel, float] | None = None
    shading_residual_worst_pct: float | None = None
    flange_profile_um: float | None = None
    flange_remeasured_um: float | None = None
    flange_residual_um: float | None = None
    tilt_x_remeasured_arcmin: float | None = None
    tilt_y_remeasured_arcmin: float | None = None


def profile_sha256(profile: CalibrationProfile) -> str:
    return hashlib.sha256(profile.to_json()).hexdigest()


def write_verification(folder: Path, verification: Verification) -> Path:
    return atomic_write_bytes(
        folder / VERIFICATION_FILE, (verification.model_dump_json(indent=2) + "\n").encode("utf-8")
    )


def read_verification(path: str | Path) -> Verification:
    """Parse a ``verification.json``; anything wrong raises one-line :class:`ConfigError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", "(unreadable)", f"a verification.json ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(path, "", "(unparsable)", f"a JSON verification record ({exc})") from None
    return validate(Verification, data, path)


class CalibrationDecision(_Model):
    """``verdict.json``: what the calibration run decided about its profile, and why."""

    schema_version: str = "1.0"
    unit_serial: str
    run_id: str
    verdict: CalibrationVerdict
    reasons: list[str] = Field(default_factory=list, description="why REJECTED or REWORK (empty when ACCEPTED)")
    rework: list[str] = Field(
        default_factory=list, description="REWORK: each shim recipe applied and what the bench re-measured after it"
    )
    written_to_phone: bool = Field(description="whether the profile of this run was written to the phone")
    profile_file: str = Field(description="the profile file in this folder the verdict is about")
    profile_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    decided: datetime


def write_decision(folder: Path, decision: CalibrationDecision) -> Path:
    return atomic_write_bytes(folder / VERDICT_FILE, (decision.model_dump_json(indent=2) + "\n").encode("utf-8"))


def read_decision(path: str | Path) -> CalibrationDecision:
    """Parse a ``verdict.json`` (one-line :class:`ConfigError` naming the file and field when it is wrong)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(path, "", "(unreadable)", f"a calibration verdict.json ({exc})") from None
    return validate(CalibrationDecision, data, path)


def write_rejected_profile(folder: Path, profile: CalibrationProfile) -> Path:
    """Keep a REJECTED profile for diagnosis as ``profile.rejected.json`` and remove every valid-named file, so
    nothing in the folder can be taken for a usable calibration of this unit."""
    for name in VALID_PROFILE_FILES:
        (folder / name).unlink(missing_ok=True)
    for gainmap in folder.glob(GAINMAP_FILE_PATTERN):
        gainmap.unlink()
    return atomic_write_bytes(folder / REJECTED_PROFILE_FILE, profile.to_json())


def supersede_rejection(folder: Path) -> None:
    """A new profile is being written: an earlier rejection and its verdict no longer apply."""
    (folder / REJECTED_PROFILE_FILE).unlink(missing_ok=True)
    (folder / VERDICT_FILE).unlink(missing_ok=True)


def read_profile_file(path: str | Path) -> CalibrationProfile:
    """Parse a ``profile.json`` (one-line :class:`ConfigError` naming the file and field when it is wrong)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, "", "(unreadable)", f"a calibration profile ({exc})") from None
    return CalibrationProfile.from_json(data, source=str(path))
