"""The phone's event channel, and the watcher that turns the bench's lens and knocks into events.

PTP/IP events go on the host's event connection (REFERENCE.md §5: ``u16 code, u32 tid, u32 params``). Events
raised while no host is connected are lost, as on a phone; libgphoto2 reads them whenever it polls
(``ptp_ptpip_event``), so the channel only has to keep one writer at a time on the socket.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

from rig.spec.ptp import NO_LENS_CODE, NO_TRANSACTION, ActiveSensorCode, EventCode, PropertyCode
from rig.spec.types import LensState
from rig.twin.ptpip_peer.wire import event_packet

log = logging.getLogger(__name__)

_LENS_PROPS = (PropertyCode.LENS_ATTACHED, PropertyCode.LENS_CODE, PropertyCode.LENS_ATTACHED_TIME)
_SENSOR_PROPS = (PropertyCode.ACTIVE_SENSOR, PropertyCode.SENSOR_SWITCH_TIME, PropertyCode.FNUMBER)


class EventChannel:
    """Delivers events to the connected host's event socket (or drops them when none is connected)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock

    def detach(self, sock: socket.socket) -> None:
        """Stop using ``sock`` (only if it is still the attached one: a newer session may have replaced it)."""
        with self._lock:
            if self._sock is sock:
                self._sock = None

    def send(self, code: EventCode, *params: int) -> None:
        data = event_packet(code, NO_TRANSACTION, params)
        with self._lock:
            sock = self._sock
            if sock is None:
                return
            try:
                sock.sendall(data)
            except OSError as exc:
                log.debug("event %s not delivered: %s", code.name, exc)

    def props_changed(self, *codes: PropertyCode) -> None:
        for code in codes:
            self.send(EventCode.DEVICE_PROP_CHANGED, code)


class LensWatcher:
    """Polls what the phone senses (lens state, the bench's knocks) and announces every change as events.

    Parameters
    ----------
    lens_state
        The phone's current view of its bayonet (:func:`rig.twin.firmware.lens_state` of the bench).
    knock_times_ns
        Every knock the bench has felt so far (bench clock, ns).
    events
        Where the announcements go.
    period_s
        Poll period (wall time).
    """

    def __init__(
        self,
        lens_state: Callable[[], LensState],
        knock_times_ns: Callable[[], tuple[int, ...]],
        events: EventChannel,
        *,
        period_s: float,
    ) -> None:
        self._lens_state = lens_state
        self._knock_times_ns = knock_times_ns
        self._events = events
        self._period_s = period_s
        self._reported: LensState | None = None
        self._shocks_reported = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, name: str) -> None:
        self._reported = self._lens_state()
        self._shocks_reported = len(self._knock_times_ns())
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self, join_s: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=join_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                now = self._lens_state()
                knocks = self._knock_times_ns()
            except Exception:  # a bench mid-update must not kill the phone; the next poll sees it settled
                log.exception("lens state poll failed")
                continue
            self._announce_shocks(knocks)
            before, self._reported = self._reported, now
            if before is not None and now != before:
                self._announce_lens(before, now)

    def _announce_shocks(self, knocks: tuple[int, ...]) -> None:
        """The phone's accelerometer feels every knock of the bench: report each one's time once."""
        for t_ns in knocks[self._shocks_reported :]:
            self._events.send(EventCode.SHOCK_AT, us_low32(t_ns / 1e6))
        self._shocks_reported = len(knocks)

    def _announce_lens(self, before: LensState, now: LensState) -> None:
        events = self._events
        if now.attached and (not before.attached or now.attached_at_ms != before.attached_at_ms):
            events.send(EventCode.LENS_ATTACHED_AT, us_low32(now.attached_at_ms))
            events.send(EventCode.LENS_ATTACHED, NO_LENS_CODE if now.lens_code is None else now.lens_code)
            events.props_changed(*_LENS_PROPS)
        if not now.attached and before.attached:
            events.send(EventCode.LENS_DETACHED)
            events.props_changed(*_LENS_PROPS)
        if now.active_sensor != before.active_sensor:
            if now.sensor_switched_at_ms is not None:
                events.send(EventCode.SENSOR_SWITCHED_AT, us_low32(now.sensor_switched_at_ms))
            events.send(EventCode.SENSOR_SWITCHED, ActiveSensorCode.of(now.active_sensor))
            events.props_changed(*_SENSOR_PROPS)


def us_low32(ms: float | None) -> int:
    """A phone-clock time as the low 32 bits of its microseconds (an event parameter is one u32)."""
    return 0 if ms is None else round(ms * 1000) & 0xFFFFFFFF
