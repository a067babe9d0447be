"""The twin phone as a PTP/IP responder: the parts of :mod:`rig.twin.ptpip_peer` put together, its lifecycle,
and the faults a test or the soak run can inject.

Faults (:class:`~rig.twin.ptpip_peer.faults.PtpFaults`, settable at construction or on ``peer.faults`` while
running, plus :meth:`PtpIpPeer.reboot` and :meth:`PtpIpPeer.remove_lens`) break the phone the way a real one
breaks.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import TYPE_CHECKING, Self

from rig.spec.types import LensState
from rig.twin import firmware
from rig.twin.clock import SYSTEM_CLOCK, Clock
from rig.twin.ptpip_peer.events import EventChannel, LensWatcher
from rig.twin.ptpip_peer.faults import PtpFaults
from rig.twin.ptpip_peer.operations import Operations
from rig.twin.ptpip_peer.properties import PhoneSettings, PropertyTable
from rig.twin.ptpip_peer.session import Session
from rig.twin.ptpip_peer.store import ObjectStore
from rig.twin.ptpip_peer.transport import HostLink, Lobby, PeerBudgets

if TYPE_CHECKING:
    from rig.twin.world import TwinBench

log = logging.getLogger(__name__)

FRIENDLY_NAME = "Xiaomi 12S Ultra Concept (twin)"


class PtpIpPeer:
    """PTP/IP responder for one twin phone.

    Parameters
    ----------
    bench
        The :class:`rig.twin.world.TwinBench` whose state the phone reads and writes and which renders captures.
    host, port, event_port
        Where to listen; port 0 picks a free port (the default, safe for parallel tests).
    faults
        Initial faults; change ``peer.faults`` at any time.
    max_stored_frames, max_stored_bytes
        Captured frames kept on the phone (count and DNG bytes); older ones are dropped (ObjectRemoved) when a
        capture adds more. The driver does not delete frames (see :mod:`rig.devices.gphoto2_phone`).
    clock
        The phone's clock for every deadline it keeps (handshakes, reboot downtime); default the system clock.
    budgets
        How long it waits for hosts and how many it lets wait (:class:`PeerBudgets`).
    """

    def __init__(
        self,
        bench: TwinBench,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        event_port: int = 0,
        faults: PtpFaults | None = None,
        max_stored_frames: int = 8,
        max_stored_bytes: int = 512 << 20,
        clock: Clock = SYSTEM_CLOCK,
        budgets: PeerBudgets | None = None,
    ) -> None:
        self.bench = bench
        self.host = host
        self.faults = faults or PtpFaults()
        self.clock = clock
        self.budgets = budgets or PeerBudgets()
        self.guid = uuid.uuid5(uuid.NAMESPACE_DNS, f"{bench.unit.serial}.phone.rig").bytes
        self._lock = threading.RLock()  # store, properties, faults
        self._down_until_ns = 0
        self._session: Session | None = None
        self._session_threads: list[threading.Thread] = []
        self.events = EventChannel()
        self.store = ObjectStore(bench.state, max_stored_frames=max_stored_frames, max_stored_bytes=max_stored_bytes)
        self.props = PropertyTable(
            bench,
            PhoneSettings(),
            lens_state=self._lens_state,
            crc32_of=self._crc32_of,
            last_frame=lambda: self.store.last_frame,
        )
        self.operations = Operations(
            bench, store=self.store, props=self.props, events=self.events, faults=lambda: self.faults, lock=self._lock
        )
        self._watcher = LensWatcher(
            self._lens_state,
            lambda: bench.state.snapshot().knock_times_ns,
            self.events,
            period_s=self.budgets.watch_period_s,
        )
        self._lobby = Lobby(
            host=host,
            port=port,
            event_port=event_port,
            guid=self.guid,
            friendly_name=FRIENDLY_NAME,
            clock=clock,
            budgets=self.budgets,
            on_session=self._start_session,
            refusing=lambda: self.rebooting,
        )
        self.address: str | None = None

    @property
    def port(self) -> int:
        return self._lobby.port

    @property
    def event_port(self) -> int:
        return self._lobby.event_port

    @property
    def max_stored_frames(self) -> int:
        return self.store.max_stored_frames

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        """Listen and serve; returns the gphoto2 port string ``ptpip:HOST:PORT:EVENTPORT``."""
        if self.address is not None:
            return self.address
        self._lobby.start()
        self._watcher.start(f"ptpip-watch-{self.port}")
        self.address = f"ptpip:{self.host}:{self.port}:{self.event_port}"
        log.info("PTP/IP phone %s listening on %s", self.bench.unit.serial, self.address)
        return self.address

    def stop(self) -> None:
        join_s = self.budgets.stop_join_s
        self._lobby.stop()
        self._watcher.stop(join_s)
        if (session := self._session) is not None:
            session.close(reset=False)
        for thread in self._session_threads:
            thread.join(timeout=join_s)
        self._session_threads.clear()
        self.address = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_session(self, link: HostLink) -> None:
        session = Session(link, self.operations, self.events, release=self._lobby.release)
        self._session = session
        thread = threading.Thread(target=session.run, name=f"ptpip-session-{link.number}", daemon=True)
        self._session_threads = [t for t in self._session_threads if t.is_alive()] + [thread]
        thread.start()

    # ------------------------------------------------------------------------------------------ faults
    def reboot(self, downtime_s: float = 2.0) -> None:
        """The phone restarts: the session is lost (sockets reset) and connections are refused for a while
        (``downtime_s`` on the peer's clock)."""
        with self._lock:
            self._down_until_ns = self.clock.now_ns() + round(downtime_s * 1e9)
        log.info("phone rebooting for %.1f s", downtime_s)
        if (session := self._session) is not None:
            session.close(reset=True)

    def remove_lens(self) -> None:
        """The lens comes off the bayonet (a bench fault, as if it was knocked loose)."""
        self.bench.state.unmount_lens()

    @property
    def rebooting(self) -> bool:
        return self.clock.now_ns() < self._down_until_ns

    def stored_files(self) -> list[str]:
        """Names of the files the phone holds now (captures, assists, profile), for tests and the operator."""
        with self._lock:
            return self.store.filenames()

    @property
    def session_holder(self) -> int | None:
        """The connection number of the host holding the session (None when the phone is free)."""
        return self._lobby.session_holder

    # ------------------------------------------------------------------------------------------ phone state
    def _lens_state(self) -> LensState:
        snapshot = self.bench.state.snapshot()
        code = None
        if snapshot.lens_attached and snapshot.lens_id is not None:
            code = self.bench.lenses.get(snapshot.lens_id).lens_code
        return firmware.lens_state(snapshot, self.bench.unit.firmware, lens_code=code)

    def _crc32_of(self, filename: str) -> int:
        with self._lock:
            obj = self.store.by_name(filename)
            return 0 if obj is None else obj.crc32()
