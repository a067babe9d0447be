"""The physical state of the simulated bench, shared by the twin's peers and its renderer.

The GRBL peer writes axis positions, the light level and knocker pulses; the PTP/IP peer writes exposure
settings and reads captures; the twin operator mounts and removes the lens. Every field is guarded by one lock
because the peers run on their own threads. Times are the twin's simulated clock in ns
(:meth:`BenchState.now_ns`), which is ``time.monotonic_ns()`` unless a test replaces the clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class BenchSnapshot:
    """An immutable copy of the bench state at one instant (what one capture sees)."""

    time_ns: int
    rail_mm: float
    carousel_mm: float
    pitch_deg: float
    light_pwm: float  # 0..pwm_max, 0 when the spindle is off
    exposure_time_s: float
    iso: int
    lens_attached: bool
    lens_id: str | None
    lens_attached_at_ns: int | None
    remount_index: int  # increments on every (re)mount: each mount seats the lens a little differently
    f_number: float | None  # aperture ring setting; None = the lens sample's (wide open unless the unit says)
    knock_times_ns: tuple[int, ...]
    profile: bytes | None  # the calibration profile the phone holds (None until written)
    shim_stacks_um: tuple[tuple[str, tuple[float, ...]], ...] = ()  # (screw, stack) re-shimmed; () = as built


@dataclass(frozen=True)
class AxesAtRest:
    """Where the moving axes will come to rest (station coordinates), and in how many seconds of wall time."""

    carousel_mm: float
    pitch_deg: float
    rail_mm: float
    in_s: float


@dataclass
class BenchState:
    """Mutable, thread-safe bench state."""

    rail_mm: float = 0.0
    carousel_mm: float = 0.0
    pitch_deg: float = 0.0
    light_pwm: float = 0.0
    exposure_time_s: float = 0.01
    iso: int = 100
    lens_attached: bool = False
    lens_id: str | None = None
    lens_attached_at_ns: int | None = None
    remount_index: int = 0
    f_number: float | None = None
    knock_times_ns: list[int] = field(default_factory=list)
    profile: bytes | None = None
    shim_stacks_um: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Shims under each re-shimmed mount screw (µm); a screw not named keeps its as-built stack."""
    clock: Callable[[], int] = time.monotonic_ns
    motion_listeners: list[Callable[[AxesAtRest], None]] = field(default_factory=list, repr=False)
    """Told where the axes are heading as a move starts (the twin phone renders its next frame ahead)."""
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def now_ns(self) -> int:
        return self.clock()

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def update(self, **changes: object) -> None:
        """Set fields atomically, e.g. ``state.update(rail_mm=12.5, carousel_mm=0.0)``."""
        with self._lock:
            for name, value in changes.items():
                if name.startswith("_") or not hasattr(self, name):
                    raise AttributeError(f"BenchState has no field {name!r}")
                setattr(self, name, value)

    def announce_rest(self, rest: AxesAtRest) -> None:
        """Tell the motion listeners where the axes will rest (called by the motion as a move starts)."""
        for listener in self.motion_listeners:
            listener(rest)

    def mount_lens(self, lens_id: str) -> None:
        with self._lock:
            self.lens_attached = True
            self.lens_id = lens_id
            self.lens_attached_at_ns = self.now_ns()
            self.remount_index += 1

    def unmount_lens(self) -> None:
        with self._lock:
            self.lens_attached = False
            self.lens_attached_at_ns = None

    def set_shims(self, stacks_um: dict[str, tuple[float, ...]]) -> None:
        """Replace the shims under the named screws (the operator's hands; the lens is off meanwhile)."""
        with self._lock:
            self.shim_stacks_um = {**self.shim_stacks_um, **{k: tuple(v) for k, v in stacks_um.items()}}

    def knock(self) -> None:
        with self._lock:
            # on the µs grid the phone's accelerometer reports it on (SHOCK_AT carries µs): a burst asked for
            # relative to the reported time then starts exactly where asked, relative to the true knock
            self.knock_times_ns.append(self.now_ns() // 1000 * 1000)

    def snapshot(self) -> BenchSnapshot:
        with self._lock:
            return BenchSnapshot(
                time_ns=self.now_ns(),
                rail_mm=self.rail_mm,
                carousel_mm=self.carousel_mm,
                pitch_deg=self.pitch_deg,
                light_pwm=self.light_pwm,
                exposure_time_s=self.exposure_time_s,
                iso=self.iso,
                lens_attached=self.lens_attached,
                lens_id=self.lens_id,
                lens_attached_at_ns=self.lens_attached_at_ns,
                remount_index=self.remount_index,
                f_number=self.f_number,
                knock_times_ns=tuple(self.knock_times_ns),
                profile=self.profile,
                shim_stacks_um=tuple(sorted(self.shim_stacks_um.items())),
            )


def at_time(snapshot: BenchSnapshot, time_ns: int) -> BenchSnapshot:
    """The same bench state seen at another instant (frames of a burst share everything but time)."""
    return replace(snapshot, time_ns=time_ns)
