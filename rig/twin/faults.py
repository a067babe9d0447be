"""Fault plans for the twin (issue #8): what breaks, and when, on a simulated bench.

A fault plan is data: a ``[faults]`` table in a twin unit file, or ``[twin.faults]`` in a twin station file, or
one built by a test or the soak run. Each ``[[faults.inject]]`` entry names a :class:`FaultKind` and the moment
it strikes, counted in frames the twin phone has rendered (``after_captures``: armed once that many frames
exist; 0 = from power-up). The :class:`FaultInjector` applies the plan to a running
:class:`~rig.twin.server.TwinServer`: one-shot faults are armed on the GRBL and PTP/IP peers
(:class:`~rig.twin.grbl.GrblFaults`, :class:`~rig.twin.ptpip_peer.PtpFaults`) and fire on the next
matching operation; a phone reboot or a lens knocked off happen at that instant; light flicker and drift
change the light panel's luminance from that frame on. Everything that fired is kept in
:attr:`FaultInjector.fired` (a test's ground truth of what went wrong, never visible to the plan).

Example (a unit file)::

    [[faults.inject]]
    kind = "grbl_alarm"          # ALARM:1 (hard limit) halfway through the next move
    after_captures = 14          # i.e. during the through-focus sweep

    [[faults.inject]]
    kind = "light_flicker"
    after_captures = 0
    amplitude_pct = 4.0          # alternate frames are 4 % brighter / dimmer
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rig.config.faults import FaultKind, FaultPlan, FaultSpec

if TYPE_CHECKING:
    from rig.twin.grbl import GrblFaults
    from rig.twin.ptpip_peer import PtpFaults
    from rig.twin.server import TwinServer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FiredFault:
    """A fault the injector armed or caused: what, at which rendered frame, and when (monotonic s)."""

    kind: FaultKind
    at_capture: int
    at_monotonic_s: float


class FaultInjector:
    """Applies a :class:`FaultPlan` to a running twin and is the test API to break it on demand.

    The twin phone calls :meth:`on_capture` after rendering each frame (``TwinBench.capture_listeners``); faults
    whose ``after_captures`` is reached are armed or performed then. :meth:`inject` does the same at once.
    The light panel's disturbance is a factor on its luminance per rendered frame (``TwinBench.light_factor``).
    """

    def __init__(self, server: TwinServer, plan: FaultPlan | None = None) -> None:
        self.server = server
        self._lock = threading.Lock()
        specs = (plan or FaultPlan()).inject
        # power-up faults of the peers were given to their constructors (TwinServer): only recorded here
        at_power_up = [s for s in specs if s.after_captures == 0 and s.kind in power_up_kinds()]
        self._pending = sorted((s for s in specs if s not in at_power_up), key=lambda s: s.after_captures)
        self._flicker_pct = 0.0
        self._flicker_from = 0
        self._drift_pct = 0.0
        self._drift_from = 0
        self._timers: list[threading.Timer] = []
        self.fired: list[FiredFault] = [FiredFault(s.kind, 0, time.monotonic()) for s in at_power_up]
        self._lens_off_at_exposure = False
        server.bench.capture_listeners.append(self.on_capture)
        server.bench.exposure_listeners.append(self.on_exposure)
        server.bench.light_factor = self.light_factor
        # faults due from power-up are armed before any frame exists
        self.on_capture(-1)

    # ------------------------------------------------------------------------------------------- arming
    def on_capture(self, counter: int) -> None:
        """Called with the index of each rendered frame (0-based): arm what is now due."""
        done = counter + 1
        with self._lock:
            due = [s for s in self._pending if s.after_captures <= done]
            self._pending = [s for s in self._pending if s.after_captures > done]
        for spec in due:
            self._apply(spec, done, planned=True)

    def on_exposure(self, counter: int) -> None:
        """Called as frame ``counter`` (0-based) starts its exposure: a planned knock takes the lens off now, so
        that frame is the first one exposed without it (the same frame on every run, however loaded the host)."""
        with self._lock:
            knock, self._lens_off_at_exposure = self._lens_off_at_exposure, False
        if knock:
            self.server.ptp.remove_lens()
            log.info("fault performed: lens knocked off as frame %d is exposed", counter)

    def inject(self, kind: FaultKind | str, **size: float) -> None:
        """Break the bench now (test API), e.g. ``injector.inject("grbl_alarm")``."""
        spec = FaultSpec.model_validate({"kind": kind, **size})
        self._apply(spec, self.server.bench.frames_rendered)

    @property
    def pending(self) -> list[FaultSpec]:
        with self._lock:
            return list(self._pending)

    def _apply(self, spec: FaultSpec, at_capture: int, *, planned: bool = False) -> None:
        kind = spec.kind
        grbl, ptp = self.server.grbl, self.server.ptp
        if kind is FaultKind.SERIAL_VANISH:
            grbl.set_faults(vanish_mid_move=True)
        elif kind is FaultKind.GRBL_ALARM:
            grbl.set_faults(alarm_mid_move=True)
        elif kind is FaultKind.GRBL_ERROR:
            grbl.set_faults(error_next_command=spec.code)
        elif kind is FaultKind.GRBL_STUCK:
            grbl.set_faults(stuck_in_run=True)
            timer = threading.Timer(spec.duration_s, lambda: grbl.set_faults(stuck_in_run=False))
            timer.daemon = True
            timer.start()
            self._timers.append(timer)
        elif kind in _PTP_COUNTERS:
            with ptp._lock:  # the peer's own lock guards its fault counters
                _arm_ptp_fault(ptp.faults, spec)
        elif kind is FaultKind.PHONE_REBOOT:
            # off the rendering thread: a reboot resets the sockets that thread may be about to answer on
            threading.Thread(target=ptp.reboot, args=(spec.downtime_s,), name="fault-reboot", daemon=True).start()
        elif kind is FaultKind.LENS_REMOVED:
            # From a plan the knock lands as the next exposure starts: right after a frame it would race the
            # phone's lens event against the bench's look at it. On demand (tests) it happens at once.
            if planned:
                with self._lock:
                    self._lens_off_at_exposure = True
            else:
                ptp.remove_lens()
        elif kind is FaultKind.LIGHT_FLICKER:
            with self._lock:
                self._flicker_pct, self._flicker_from = spec.amplitude_pct, at_capture
        elif kind is FaultKind.LIGHT_DRIFT:
            with self._lock:
                self._drift_pct, self._drift_from = spec.drift_pct_per_capture, at_capture
        fired = FiredFault(kind, at_capture, time.monotonic())
        with self._lock:
            self.fired.append(fired)
        log.info("fault injected: %s at frame %d", kind.value, at_capture)

    # ------------------------------------------------------------------------------------------- light
    def light_factor(self, counter: int) -> float:
        """Factor on the light panel's luminance for rendered frame ``counter`` (1 = steady)."""
        with self._lock:
            factor = 1.0
            if self._flicker_pct and counter >= self._flicker_from:
                # PWM beating against the exposure: consecutive frames alternate bright / dim
                factor *= 1.0 + self._flicker_pct / 100.0 * (1.0 if counter % 2 == 0 else -1.0)
            if self._drift_pct and counter >= self._drift_from:
                factor *= max(0.0, 1.0 + self._drift_pct / 100.0 * (counter - self._drift_from + 1))
            return factor

    def close(self) -> None:
        """Cancel pending timers (a stuck controller's release)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()


_PTP_COUNTERS = {
    FaultKind.DOWNLOAD_DROP: "drop_downloads",
    FaultKind.DOWNLOAD_STALL: "stalled_downloads",
    FaultKind.CORRUPT_DNG: "corrupt_downloads",
    FaultKind.TRUNCATED_DNG: "truncated_frames",
    FaultKind.STUCK_CAPTURE: "stuck_captures",
}


def initial_grbl_faults(plan: FaultPlan | None) -> GrblFaults:
    """The GRBL faults armed at power-up (``after_captures = 0``) for the peer's constructor."""
    from rig.twin.grbl import GrblFaults

    faults = GrblFaults()
    for spec in (plan or FaultPlan()).inject:
        if spec.after_captures != 0:
            continue
        if spec.kind is FaultKind.SERIAL_VANISH:
            faults.vanish_mid_move = True
        elif spec.kind is FaultKind.GRBL_ALARM:
            faults.alarm_mid_move = True
        elif spec.kind is FaultKind.GRBL_ERROR:
            faults.error_next_command = spec.code
    return faults


def initial_ptp_faults(plan: FaultPlan | None) -> PtpFaults:
    """The phone faults armed at power-up (``after_captures = 0``) for the peer's constructor."""
    from rig.twin.ptpip_peer import PtpFaults

    faults = PtpFaults()
    for spec in (plan or FaultPlan()).inject:
        if spec.after_captures == 0 and spec.kind in _PTP_COUNTERS:
            _arm_ptp_fault(faults, spec)
    return faults


def _arm_ptp_fault(faults: PtpFaults, spec: FaultSpec) -> None:
    """One more of ``spec``'s phone fault (and its size, for a stall)."""
    name = _PTP_COUNTERS[spec.kind]
    setattr(faults, name, getattr(faults, name) + 1)
    if spec.kind is FaultKind.DOWNLOAD_STALL:
        faults.stall_s = spec.stall_s


def power_up_kinds() -> frozenset[FaultKind]:
    """Kinds whose ``after_captures = 0`` entries go to the peers' constructors (the rest the injector does)."""
    return frozenset({FaultKind.SERIAL_VANISH, FaultKind.GRBL_ALARM, FaultKind.GRBL_ERROR, *_PTP_COUNTERS})
