"""The capabilities a plan may ask for. Real drivers and the twin's drivers satisfy the same Protocols.

Every method that talks to hardware has a timeout and raises :class:`rig.errors.DeviceError` subclasses
(never returns short data). No I/O happens in a constructor: ``open()`` connects, ``close()`` releases, and
each driver is a context manager (DESIGN.md §8.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, Self, runtime_checkable

import numpy as np


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
    position: dict[Axis, float]  # machine position (MPos), mm or degrees
    feed: float = 0.0
    spindle: float = 0.0


@runtime_checkable
class Stage(Protocol):
    """The motorised chart bench: rail, carousel, fixture pitch, knocker."""

    def open(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...

    def home(self) -> None:
        """Run the homing cycle; returns when Idle."""

    def move_to(
        self,
        *,
        rail_mm: float | None = None,
        carousel_mm: float | None = None,
        pitch_deg: float | None = None,
    ) -> StageStatus:
        """Absolute move of the given axes; returns once the controller reports Idle at the target."""

    def select_chart(self, name: str) -> StageStatus:
        """Turn the carousel to the station slot of chart ``name``."""

    def status(self) -> StageStatus: ...

    def recover(self) -> None:
        """Clear an alarm: unlock (``$X``) and re-home."""

    def knock(self) -> None:
        """Fire the knocker (a short pulse on the coolant output)."""


@runtime_checkable
class Light(Protocol):
    """The chart's light panel."""

    def open(self) -> None: ...
    def close(self) -> None: ...

    def set_level(self, level: float) -> None:
        """Brightness as a fraction 0..1 of full scale; out of range raises ArgumentError."""

    def off(self) -> None: ...

    @property
    def level(self) -> float: ...


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
    active_sensor: str  # "main" (native lens) or "m_mount"
    attached_at_ms: float | None = None
    sensor_switched_at_ms: float | None = None


@dataclass(frozen=True)
class Capture:
    """One captured frame as the phone delivered it."""

    dng: bytes
    filename: str
    timestamp_ms: float | None = None  # phone clock at the start of the exposure


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


@runtime_checkable
class Phone(Protocol):
    """The device under test, over PTP."""

    def open(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...

    @property
    def is_open(self) -> bool:
        """Open and usable (False before open(), after close() or once the connection is known lost)."""

    def identity(self) -> PhoneIdentity: ...
    def get_exposure(self) -> Exposure: ...
    def exposure_choices(self) -> list[float]:
        """Exposure times the phone offers (s)."""

    def set_exposure(self, *, exposure_time_s: float | None = None, iso: int | None = None) -> Exposure: ...
    def capture(self) -> Capture: ...
    def capture_burst(
        self, count: int, *, interval_s: float | None = None, start_ms: float | None = None
    ) -> list[Capture]:
        """``count`` frames ``interval_s`` apart (default: the phone's burst interval), each with its timestamp;
        ``start_ms`` (phone clock, recent past) takes them from the phone's zero-shutter-lag ring buffer."""

    def last_shock_ms(self) -> float | None:
        """When the phone's motion sensor last felt a shock (phone clock, ms), None if never."""

    def lens_state(self) -> LensState: ...
    def assist_outputs(self) -> AssistOutputs: ...
    def write_profile(self, data: bytes) -> None: ...
    def read_profile(self) -> bytes: ...


@runtime_checkable
class Operator(Protocol):
    """The hands at the bench: lens changes that no motor does. The twin's operator acts on the twin."""

    def mount_lens(self, lens_id: str) -> None: ...
    def unmount_lens(self) -> None: ...
    def remount_lens(self) -> None:
        """Take the lens off and put it back on (repeatability)."""

    def set_aperture(self, f_number: float) -> None:
        """Turn the (manual) aperture ring of the mounted lens to ``f_number``."""
