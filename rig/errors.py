"""Error families of the bench.

Three verdicts, never two (DESIGN.md §8.2): a limit missed is FAIL (not an exception at all, a recorded
measurement), a broken bench is ERROR (:class:`DeviceError` and :class:`MeasurementError`), a capability the
unit lacks is SKIP (:class:`CapabilityMissing`). A mistake a *user* can make (a station file, a limits file, a
CLI argument, a corrupt image) is an :class:`InputError`: the CLI prints its message as one line and exits 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MAX_MESSAGE_CHARS = 400
"""The longest error line the CLI prints: a message a person reads at a glance (a pydantic dump is not one)."""


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` as one line of at most ``limit`` characters: line breaks folded, the middle elided (``…``)."""
    flat = " / ".join(part.strip() for part in str(text).splitlines() if part.strip())
    if len(flat) <= limit:
        return flat
    keep = limit - 1
    head = keep * 3 // 4
    return flat[:head] + "…" + flat[len(flat) - (keep - head) :]


class RigError(Exception):
    """Base of every error the bench raises on purpose."""


# --------------------------------------------------------------------------------------------- user input
class InputError(RigError):
    """Something a user typed, edited or passed in is wrong. CLI exit status 2, one line, no traceback."""

    exit_status = 2


class ConfigError(InputError):
    """A TOML file (station, limits, lenses, unit, chart) has a bad or missing field.

    The message names the file, the field path, the value found and what was expected, e.g.
    ``fixtures/stations/x.toml: optics.collimator_focal_length_mm = -5: expected a number > 0``.
    """

    def __init__(
        self,
        source: str | Path,
        field: str,
        value: Any,
        expected: str,
    ) -> None:
        self.source = str(source)
        self.field = field
        self.value = value
        self.expected = expected
        shown = "(missing)" if value is _MISSING else repr(value)
        where = f"{self.source}: {field}" if field else self.source
        super().__init__(f"{where} = {shown}: expected {expected}")


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


_MISSING: Any = _Missing()
MISSING = _MISSING
"""Sentinel for :class:`ConfigError` when a required field is absent."""


class ImageInputError(InputError):
    """An image file cannot be read, is not what its name says (a non-DNG passed as DNG) or is corrupt."""


class ArgumentError(InputError):
    """A command-line argument is out of range or malformed."""


class FileInputError(InputError):
    """A file or folder the user named cannot be used (unreadable, a file where a folder is expected, not
    writable, an I/O error). The message names the path and what was expected."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {problem}")


class RunBusyError(InputError):
    """The run (or the unit on this station) is already being run by another process: refused, nothing written."""


# --------------------------------------------------------------------------------------------- bench faults
class DeviceError(RigError):
    """The bench could not do what was asked: the step ends as ERROR with this reason."""


class DeviceTimeout(DeviceError):
    """A device did not answer within its timeout (the message carries the timeout in seconds)."""


class DeviceLost(DeviceError):
    """The connection to a device went away (port closed, TCP reset, session lost)."""


class DeviceStateError(DeviceError):
    """A call was made in a state that does not allow it (e.g. capture before open); the message names it."""


class DeviceCommandError(DeviceError):
    """A device rejected a command (GRBL ``error:N``, a PTP response code other than OK)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class DeviceAlarm(DeviceError):
    """The motion controller is in alarm (GRBL ``ALARM:N``): motion is locked until unlock and re-home."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class RunStorageError(RigError):
    """The run folder stopped taking writes mid-run (made read-only, remounted read-only by the kernel, disk full).

    A bench fault, not the user's input (pre-flight proved the folder writable): the run stops at once and ends
    ERROR, exit 3; the ``record.json`` on disk is the last one saved (atomic writes), with every measurement taken
    before, and ``--resume`` continues from it once the folder takes writes again.
    """


class FrameError(DeviceError):
    """A captured frame failed validation (size, bit depth, truncated or corrupt file): recapture it."""


# --------------------------------------------------------------------------------------------- measurement
class MeasurementError(RigError):
    """Pixels that cannot give the asked-for number (no edge in the ROI, a saturated flat field...).

    In a plan this ends the measurement as ERROR with the reason; it is never turned into a number.
    """


class CapabilityMissing(RigError):
    """The unit or bench lacks a capability the step needs: the step is SKIPPED with this reason."""
