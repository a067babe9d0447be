"""The capabilities a plan may ask for. Real drivers and the twin's drivers satisfy the same Protocols.

Every method that talks to hardware has a timeout and raises :class:`rig.errors.DeviceError` subclasses
(never returns short data). No I/O happens in a constructor: ``open()`` connects, ``close()`` releases, and
each driver is a context manager (DESIGN.md §8.5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, Self, runtime_checkable

from rig.spec.ptp import ReadoutWindow
from rig.spec.shims import ShimPlan
from rig.spec.types import (
    AssistOutputs,
    Capture,
    Exposure,
    LensState,
    PhoneIdentity,
    StageStatus,
)


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

    def abort(self) -> None:
        """Stop all motion at once (a move that never finished); the position is unknown until :meth:`recover`."""

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
        self,
        count: int,
        *,
        interval_s: float | None = None,
        start_ms: float | None = None,
        on_capture: Callable[[int, Capture], None] | None = None,
    ) -> list[Capture]:
        """``count`` frames ``interval_s`` apart (default: the phone's burst interval), each with its timestamp;
        ``start_ms`` (phone clock, recent past) takes them from the phone's zero-shutter-lag ring buffer.

        ``on_capture(index, capture)`` is called for each frame, in order, as soon as it is downloaded and
        validated, before the next one is fetched: its analysis can start while the rest come in. A burst that
        fails part way has handed over the frames before the failure; a repeated burst hands over from index 0
        again, and each index's latest capture is the one that counts.
        """

    def capture_windows(self, windows: Sequence[ReadoutWindow]) -> list[Capture]:
        """One exposure read out as ``windows`` (native sensor pixels, :class:`rig.spec.ptp.ReadoutWindow`) at the
        sensor's own pitch: one capture per window, in order, each DNG saying where it sits
        (:func:`rig.spec.capture_state.read_readout_window`)."""

    def last_shock_ms(self) -> float | None:
        """When the phone's motion sensor last felt a shock (phone clock, ms), None if never."""

    def lens_state(self) -> LensState: ...
    def assist_outputs(self) -> AssistOutputs: ...
    def write_profile(self, data: bytes) -> None: ...
    def read_profile(self) -> bytes: ...


@runtime_checkable
class Operator(Protocol):
    """The hands at the bench: lens changes and mount shims that no motor does. The twin's operator acts on the twin."""

    def mount_lens(self, lens_id: str) -> None: ...
    def unmount_lens(self) -> None: ...
    def remount_lens(self) -> None:
        """Take the lens off and put it back on (repeatability)."""

    def set_aperture(self, f_number: float) -> None:
        """Turn the (manual) aperture ring of the mounted lens to ``f_number``."""

    def apply_shims(self, plan: ShimPlan) -> None:
        """Re-shim the bare bayonet: put ``plan``'s stack under every mount screw (the lens is off meanwhile)."""
