"""Value types every layer shares: what a stage, a phone and the bayonet report.

Drivers build them from the wire, the twin's peers from their state, measurements read them. They carry no
behaviour and import nothing of ours, so no layer has to import another's module to name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # a name only: types stays free of imports of ours at run time
    from rig.spec.dng import DngImage


class CaptureRetention(StrEnum):
    """Which raw captures a finished run keeps in its folder (thumbnails, report and record are always kept)."""

    ALL = "all"  # every DNG (a lab studying a unit)
    FAILED = "failed"  # the DNGs behind a FAIL or ERROR; a passing run keeps none (a production line)
    NONE = "none"  # no DNG at all


class ActiveSensor(StrEnum):
    """Which sensor the phone captures with: the native f/1.9 camera or the one behind the M bayonet."""

    MAIN = "main"
    M_MOUNT = "m_mount"


class Axis(StrEnum):
    """GRBL axis letters of the bench (DESIGN.md §1)."""

    CAROUSEL = "X"  # which chart faces the lens, mm
    PITCH = "Y"  # fixture pitch, degrees (−90 lens up … +90 lens down)
    RAIL = "Z"  # chart rail, mm


class StageState(StrEnum):
    """GRBL 1.1 machine states as reported in ``<State|...>``."""

    IDLE = "Idle"
    RUN = "Run"
    HOLD = "Hold"
    JOG = "Jog"
    HOME = "Home"
    ALARM = "Alarm"
    DOOR = "Door"
    CHECK = "Check"
    SLEEP = "Sleep"


@dataclass(frozen=True)
class StageStatus:
    state: StageState
    position: dict[Axis, float]  # station position (GRBL work coordinates, MPos - WCO), mm or degrees
    feed: float = 0.0
    spindle: float = 0.0


@dataclass(frozen=True)
class PhoneIdentity:
    manufacturer: str
    model: str
    serial: str
    firmware: str


@dataclass(frozen=True)
class Exposure:
    exposure_time_s: float
    iso: int


@dataclass(frozen=True)
class LensState:
    """What the phone reports about the bayonet.

    Timestamps are the phone's own clock in ms (its events), so a latency is a difference of two of them.
    """

    attached: bool
    lens_code: int | None  # 6-bit code as set/read by the phone, None if no lens or uncoded
    active_sensor: ActiveSensor
    attached_at_ms: float | None = None
    sensor_switched_at_ms: float | None = None


@dataclass(frozen=True)
class Capture:
    """One captured frame as the phone delivered it."""

    dng: bytes
    filename: str
    timestamp_ms: float | None = None  # phone clock at the start of the exposure
    image: DngImage | None = field(default=None, repr=False, compare=False)
    """The DNG as the driver already parsed and validated it (``rig.spec.dng.read_dng``), so the bench does not
    parse the same bytes again; None when the driver did not parse it."""


@dataclass(frozen=True)
class AssistOutputs:
    """The phone's exposure/focus assists computed on its last capture.

    ``histogram``: counts per bin of the RAW histogram (the phone's own computation).
    ``zebra_mask`` / ``peaking_mask``: boolean arrays, one value per Bayer quad (half the raw size).
    """

    histogram: np.ndarray
    histogram_bins: int
    zebra_mask: np.ndarray
    zebra_threshold_pct: float
    peaking_mask: np.ndarray
    peaking_threshold: float
    extras: dict[str, float] = field(default_factory=dict)
