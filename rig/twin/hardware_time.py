"""What each physical action of the bench costs on a real station: the twin's hardware-time ledger (issue #17).

The twin does in microseconds what a station does in seconds (a lens change, a frame's exposure, its USB
transfer), and runs its motion ``time_scale`` times faster than the rail. A takt figure needs both: the wall time
the bench software took, and the hardware time the same sequence of actions costs on a real bench. Every
physical action the twin performs is charged here at its real duration; the bench reads the running total
(:meth:`HardwareLedger.total_s`) at each step boundary and records the difference as the step's hardware time.

The twin also *paces* the non-motion actions by the same ``time_scale`` that paces its motion (the GRBL peer
already does): an action that costs ``d`` seconds on the bench takes at least ``d / time_scale`` seconds of wall
time, counted from when it began (a frame that took longer to render is not delayed further). A frame's transfer is
paced where it happens, in the data phase of the host's GetObject; the capture waits its exposure and read-out. So
``time_scale = 1`` is real time throughout and a twin run shows what a real station's takt would be; the fast
test speed keeps every cost in the same proportion.

Costs (real seconds). Motion comes from the station's own rates and accelerations through GRBL's trapezoid
planner (:mod:`rig.twin.grbl.motion`), dwells from their ``P`` word. The rest are stated assumptions, in
:class:`HardwareCosts`: sensor read-out at a pixel rate, transfer at a USB throughput plus a per-frame protocol
overhead, and the operator's hands at fixed durations. The phone's switch to its M-mount sensor after a lens goes
on costs the unit's own firmware latency (``sensor_switch_latency_ms``): charged, but not paced, because the
phone's clock already holds the bench that long in real time at every ``time_scale`` (the sign-off measures that
latency from the phone's timestamps, so the twin cannot run it faster).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class HardwareAction(StrEnum):
    """What the bench was physically doing."""

    MOTION = "motion"  # the GRBL axes moving (homing, rail, carousel, pitch) or dwelling
    EXPOSURE = "exposure"  # the shutter open
    READOUT = "readout"  # the sensor's rolling read-out of one frame
    TRANSFER = "transfer"  # the frame's bytes over USB to the host (PTP GetObject)
    OPERATOR = "operator"  # hands: a lens on or off, the aperture ring, shims
    SENSOR_SWITCH = "sensor_switch"  # the phone bringing up its M-mount sensor after a lens goes on


@dataclass(frozen=True)
class HardwareCosts:
    """Real-bench durations the twin charges for the actions it does not derive from the station file.

    Attributes
    ----------
    readout_px_per_s
        Sensor read-out rate (pixels/s). Assumed 1.5 Gpx/s: a full 8192 × 6144 (50.3 MP) frame in 33 ms, i.e.
        30 full-resolution frames/s, the class of a stacked 1-inch 50 MP phone sensor (the data sheets of these
        sensors are not public; the figure is the order of magnitude their vendors quote for full-resolution
        read-out). A binned read-out reads proportionally fewer pixels.
    usb_bytes_per_s
        Sustained PTP/MTP bulk throughput over USB 3.2 Gen 1. Assumed 200 MB/s: the bus signals 5 Gbit/s, 8b/10b
        coding leaves 500 MB/s, bulk transfers reach ~400 MB/s in practice, and a phone's MTP/PTP responder about
        half of that.
    per_frame_protocol_s
        PTP transactions around one frame's data (ObjectAdded event, GetObjectInfo, the checksum request and its
        event, GetObject's own phases): five round trips of ~1 ms on USB. Assumed 5 ms per frame.
    lens_mount_s, lens_unmount_s
        An operator putting a Leica M lens on the bayonet (align the red dots, twist to the click) and taking it
        off (press the release, twist, lift). Assumed 3 s and 2 s for a trained operator at a fixture.
    aperture_s
        Turning the aperture ring to a marked stop. Assumed 1.5 s.
    shim_plan_s
        Shimming the mount by a recipe (bayonet off, shims under each screw, screws torqued). Assumed 60 s.
    """

    readout_px_per_s: float = 1.5e9
    usb_bytes_per_s: float = 200e6
    per_frame_protocol_s: float = 0.005
    lens_mount_s: float = 3.0
    lens_unmount_s: float = 2.0
    aperture_s: float = 1.5
    shim_plan_s: float = 60.0

    def readout_s(self, pixels: int) -> float:
        """Read-out time of a frame of ``pixels`` (s)."""
        return pixels / self.readout_px_per_s

    def transfer_s(self, size_bytes: int) -> float:
        """Time to deliver one frame of ``size_bytes`` to the host, protocol overhead included (s)."""
        return size_bytes / self.usb_bytes_per_s + self.per_frame_protocol_s


class HardwareLedger:
    """Running total of real-bench seconds by action, shared by the twin's peers (thread-safe).

    Parameters
    ----------
    time_scale
        How many times faster than real the twin runs (the station's ``twin.time_scale``): :meth:`pace` waits a
        cost divided by this.
    costs
        The durations of the actions the station file does not give.
    monotonic, sleep
        The wall clock :meth:`pace` reads and waits on (a test injects its own).
    """

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        costs: HardwareCosts | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.time_scale = float(time_scale)
        self.costs = costs or HardwareCosts()
        self.monotonic = monotonic
        self.sleep = sleep
        self._lock = threading.Lock()
        self._by_action: dict[HardwareAction, float] = dict.fromkeys(HardwareAction, 0.0)

    def charge(self, action: HardwareAction, seconds: float) -> None:
        """Add ``seconds`` of real-bench time spent on ``action``."""
        if seconds < 0:
            raise ValueError(f"a hardware cost is ≥ 0 s, got {seconds} s for {action}")
        with self._lock:
            self._by_action[action] += seconds

    def pace(self, seconds: float, *, began_monotonic_s: float) -> None:
        """Wait until ``seconds / time_scale`` of wall time have passed since ``began_monotonic_s``.

        What the action already took (rendering, encoding) counts towards it: only the remainder is waited.
        """
        remaining = seconds / self.time_scale - (self.monotonic() - began_monotonic_s)
        if remaining > 0:
            self.sleep(remaining)

    def charge_and_pace(self, action: HardwareAction, seconds: float, *, began_monotonic_s: float) -> None:
        self.charge(action, seconds)
        self.pace(seconds, began_monotonic_s=began_monotonic_s)

    def total_s(self) -> float:
        """Real-bench seconds charged so far, all actions."""
        with self._lock:
            return sum(self._by_action.values())

    def by_action(self) -> dict[HardwareAction, float]:
        """Real-bench seconds charged so far, per action."""
        with self._lock:
            return dict(self._by_action)
