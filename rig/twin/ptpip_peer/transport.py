"""PTP/IP transport: both listening ports, the Init handshakes, and the one session slot a phone has.

A phone serves one host at a time. Every connection on either port first waits in the *lobby*, one selector
thread that owns every socket until its handshake is complete, so no connection can block another and none can
kill the acceptor:

- a command connection must send InitCommandRequest within ``handshake_s``; it then gets the free session slot
  (InitCommandAck with a fresh connection number) or waits up to ``busy_grace_s`` for the previous host's session
  to end before InitFail(BUSY). A host that reconnects right after closing therefore never sees BUSY.
- an event connection must send InitEventRequest naming the connection number of a command connection that was
  acknowledged and is still waiting (CIPA DC-X005: the number is how the two are paired; libgphoto2's
  ``ptp_ptpip_init_event_request`` echoes ``eventpipeid`` from the ack). Anything else (a stray connect, garbage,
  a number nobody holds) is closed without touching the waiting host.
- an acknowledged host that does not open its event connection within ``event_connect_s`` loses the slot; so
  does one that closes its command connection meanwhile (at once, not after a timeout).
- a length field above the protocol maximum for its packet type closes the connection before anything is read
  (:func:`rig.twin.ptpip_peer.wire.check_header`).

Deadlines are on the peer's :class:`~rig.twin.clock.Clock`, so a test can expire them by advancing a manual
clock; the lobby looks at the clock every ``poll_s`` of wall time.

The matched pair (:class:`HostLink`) is handed to the session callback on its own thread; the session calls
:meth:`Lobby.release` when it ends, which frees the slot at once.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from rig.spec.ptp import PTPIP_VERSION, InitFailReason, PacketType
from rig.twin.clock import Clock
from rig.twin.descriptors import off_stdio_socket
from rig.twin.ptpip_peer.wire import HEADER, ProtocolViolation, check_header, packet, parse_ptp_string, tune, u32

log = logging.getLogger(__name__)

_GUID_BYTES = 16
_INIT_COMMAND_MIN = _GUID_BYTES + 2 + 4  # GUID, an empty host name (one NUL unit), version


@dataclass(frozen=True)
class PeerBudgets:
    """How long the phone waits for a host, and how much it lets waiting hosts cost.

    Times in s on the peer's clock, except ``poll_s`` and ``stop_join_s`` (wall time: how often the lobby looks
    at the clock, how long ``stop()`` waits for a thread).
    """

    handshake_s: float = 5.0
    """A new connection must have sent its InitCommandRequest / InitEventRequest within this."""
    event_connect_s: float = 5.0
    """After InitCommandAck the host must open its event connection within this (libgphoto2 does at once)."""
    busy_grace_s: float = 0.25
    """A second host waits this long for the current session to end before it is refused BUSY."""
    watch_period_s: float = 0.002
    """How often the phone looks at its lens and accelerometer."""
    poll_s: float = 0.05
    stop_join_s: float = 5.0
    max_pending: int = 64
    """Connections in the lobby at once; more are reset at accept (a flood costs sockets, not threads)."""
    keepalive_idle_s: int = 10
    """TCP keepalive on a session: a host that vanished without closing loses the session after
    ``keepalive_idle_s + keepalive_count * keepalive_interval_s``."""
    keepalive_interval_s: int = 2
    keepalive_count: int = 3


@dataclass(frozen=True)
class HostLink:
    """A host that completed both handshakes: its two connections, the number pairing them, who it says it is."""

    command: socket.socket
    event: socket.socket
    number: int
    host_name: str
    host_guid: bytes


class _Stage(enum.Enum):
    READING = enum.auto()  # waiting for the Init*Request
    WAITING_FOR_SLOT = enum.auto()  # InitCommandRequest read, the session slot is taken: grace period
    WAITING_FOR_EVENT = enum.auto()  # InitCommandAck sent, waiting for the event connection


class _Port(enum.Enum):
    COMMAND = enum.auto()
    EVENT = enum.auto()


@dataclass(eq=False)
class _Pending:
    sock: socket.socket
    port: _Port
    deadline_ns: int
    stage: _Stage = _Stage.READING
    buffer: bytearray = field(default_factory=bytearray)
    host_name: str = ""
    host_guid: bytes = b""
    number: int = 0


class Lobby:
    """Listens on the command and event ports and pairs hosts' connections into sessions (module docstring).

    Parameters
    ----------
    host, port, event_port
        Where to listen (port 0: a free port).
    guid, friendly_name
        What the phone says in InitCommandAck.
    clock, budgets
        Deadlines (see :class:`PeerBudgets`).
    on_session
        Called on the lobby thread with each matched :class:`HostLink`; it must return at once (start a thread).
    refusing
        While it returns True (the phone is rebooting) new connections are reset at accept.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        event_port: int,
        guid: bytes,
        friendly_name: str,
        clock: Clock,
        budgets: PeerBudgets,
        on_session: Callable[[HostLink], None],
        refusing: Callable[[], bool],
    ) -> None:
        self.host = host
        self.port = port
        self.event_port = event_port
        self._guid = guid
        self._friendly_name = friendly_name
        self._clock = clock
        self._budgets = budgets
        self._on_session = on_session
        self._refusing = refusing
        self._numbers = itertools.count(1)
        self._slot_lock = threading.Lock()
        self._holder: int | None = None  # connection number holding the session slot
        self._pending: dict[socket.socket, _Pending] = {}
        self._selector: selectors.BaseSelector | None = None
        self._listeners: dict[socket.socket, _Port] = {}
        # the loop's wake-up pipe lives from start to stop: a peer that never started (a port taken) or has
        # stopped holds no socket
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        command = _listen(self.host, self.port)
        try:
            event = _listen(self.host, self.event_port)
        except OSError:
            command.close()
            raise
        self.port, self.event_port = command.getsockname()[1], event.getsockname()[1]
        self._listeners = {command: _Port.COMMAND, event: _Port.EVENT}
        self._selector = selectors.DefaultSelector()
        for sock in self._listeners:
            self._selector.register(sock, selectors.EVENT_READ)
        self._wake_r, self._wake_w = (off_stdio_socket(s) for s in socket.socketpair())
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"ptpip-lobby-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=self._budgets.stop_join_s)
            self._thread = None
        for pending in list(self._pending.values()):
            self._drop(pending, "the phone stops")
        for sock in self._listeners:
            sock.close()
        self._listeners.clear()
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        for wake in (self._wake_r, self._wake_w):
            if wake is not None:
                wake.close()
        self._wake_r = self._wake_w = None
        with self._slot_lock:
            self._holder = None

    # ------------------------------------------------------------------------------------------ session slot
    @property
    def session_holder(self) -> int | None:
        """The connection number holding the session (acknowledged or in session), or None."""
        with self._slot_lock:
            return self._holder

    def release(self, number: int) -> None:
        """The session of connection ``number`` is over: free the slot now and let a waiting host in."""
        with self._slot_lock:
            if self._holder == number:
                self._holder = None
        self._wake()

    def _claim(self) -> int | None:
        with self._slot_lock:
            if self._holder is not None:
                return None
            self._holder = next(self._numbers)
            return self._holder

    def _wake(self) -> None:
        wake = self._wake_w
        if wake is not None:
            with contextlib.suppress(OSError):  # closed by stop() meanwhile
                wake.send(b"\0")

    # ------------------------------------------------------------------------------------------ the loop
    def _run(self) -> None:
        assert self._selector is not None
        while not self._stop.is_set():
            try:
                ready = self._selector.select(self._budgets.poll_s)
            except (OSError, ValueError):  # selector closed under us by stop()
                return
            for key, _ in ready:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    if sock is self._wake_r:
                        with contextlib.suppress(OSError):
                            sock.recv(4096)
                    elif sock in self._listeners:
                        self._accept(sock, self._listeners[sock])
                    elif (pending := self._pending.get(sock)) is not None:
                        self._readable(pending)
                except Exception:  # one connection's trouble must never end the lobby
                    log.exception("PTP/IP lobby: unexpected error; dropping that connection")
                    if (pending := self._pending.get(sock)) is not None:
                        self._drop(pending, "internal error")
            self._expire_and_grant()

    def _accept(self, listener: socket.socket, port: _Port) -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        sock = off_stdio_socket(sock)
        if self._refusing():
            reset_connection(sock)
            return
        if len(self._pending) >= self._budgets.max_pending:
            log.info("PTP/IP lobby full (%d connections): resetting a new one", len(self._pending))
            reset_connection(sock)
            return
        sock.setblocking(False)
        tune(sock)
        pending = _Pending(sock, port, self._deadline(self._budgets.handshake_s))
        self._pending[sock] = pending
        assert self._selector is not None
        self._selector.register(sock, selectors.EVENT_READ)

    def _readable(self, pending: _Pending) -> None:
        try:
            chunk = pending.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self._drop(pending, f"read failed: {exc}")
            return
        if not chunk:
            self._drop(pending, "closed by the host")
            return
        if pending.stage is not _Stage.READING:
            self._drop(pending, "sent data before its handshake was complete")
            return
        pending.buffer += chunk
        if len(pending.buffer) < HEADER.size:
            return
        length, ptype = HEADER.unpack_from(pending.buffer)
        try:
            check_header(length, ptype)
        except ProtocolViolation as exc:
            self._drop(pending, str(exc))
            return
        if len(pending.buffer) < length:
            return
        if len(pending.buffer) > length:
            self._drop(pending, "sent more than one packet before its handshake was answered")
            return
        payload = bytes(pending.buffer[HEADER.size :])
        pending.buffer.clear()
        try:
            if pending.port is _Port.COMMAND:
                self._init_command(pending, ptype, payload)
            else:
                self._init_event(pending, ptype, payload)
        except ProtocolViolation as exc:
            self._drop(pending, str(exc))

    def _init_command(self, pending: _Pending, ptype: int, payload: bytes) -> None:
        if ptype != PacketType.INIT_COMMAND_REQUEST or len(payload) < _INIT_COMMAND_MIN:
            raise ProtocolViolation(f"expected InitCommandRequest, got packet type {ptype} of {len(payload)} bytes")
        pending.host_guid = payload[:_GUID_BYTES]
        name = payload[_GUID_BYTES:-4]
        pending.host_name, _ = parse_ptp_string(bytes([min(255, len(name) // 2)]) + name)
        pending.stage = _Stage.WAITING_FOR_SLOT
        pending.deadline_ns = self._deadline(self._budgets.busy_grace_s)
        self._grant(pending)

    def _grant(self, pending: _Pending) -> bool:
        number = self._claim()
        if number is None:
            return False
        pending.number = number
        pending.stage = _Stage.WAITING_FOR_EVENT  # before the ack: the host may act on it at once
        pending.deadline_ns = self._deadline(self._budgets.event_connect_s)
        ack = u32(number) + self._guid + (self._friendly_name + "\x00").encode("utf-16-le") + u32(PTPIP_VERSION)
        self._send(pending, packet(PacketType.INIT_COMMAND_ACK, ack))  # a failed send drops it, freeing the slot
        return True

    def _init_event(self, pending: _Pending, ptype: int, payload: bytes) -> None:
        if ptype != PacketType.INIT_EVENT_REQUEST or len(payload) != 4:
            raise ProtocolViolation(f"expected InitEventRequest, got packet type {ptype} of {len(payload)} bytes")
        (number,) = struct.unpack("<I", payload)
        command = next(
            (p for p in self._pending.values() if p.stage is _Stage.WAITING_FOR_EVENT and p.number == number), None
        )
        if command is None:
            self._send(pending, packet(PacketType.INIT_FAIL, u32(InitFailReason.REJECTED_INITIATOR)))
            raise ProtocolViolation(f"InitEventRequest for connection {number}, which no host is waiting with")
        if not self._send(pending, packet(PacketType.INIT_EVENT_ACK)):
            return
        for done in (command, pending):
            self._forget(done)
            done.sock.setblocking(True)
            self._keepalive(done.sock)
        log.info("PTP/IP host %r connected (connection %d)", command.host_name, number)
        self._on_session(HostLink(command.sock, pending.sock, number, command.host_name, command.host_guid))

    def _expire_and_grant(self) -> None:
        now_ns = self._clock.now_ns()
        for pending in list(self._pending.values()):
            if pending.stage is _Stage.WAITING_FOR_SLOT and self._grant(pending):
                continue
            if now_ns < pending.deadline_ns:
                continue
            if pending.stage is _Stage.WAITING_FOR_SLOT:
                self._send(pending, packet(PacketType.INIT_FAIL, u32(InitFailReason.BUSY)))
                self._drop(pending, "refused: another host holds the session")
            elif pending.stage is _Stage.WAITING_FOR_EVENT:
                self._drop(pending, "the host did not open its event connection in time")
            else:
                self._drop(pending, "no Init request in time")

    # ------------------------------------------------------------------------------------------ helpers
    def _deadline(self, seconds: float) -> int:
        return self._clock.now_ns() + round(seconds * 1e9)

    def _send(self, pending: _Pending, data: bytes) -> bool:
        try:
            sent = pending.sock.send(data)  # a few dozen bytes into an empty send buffer: all or nothing
        except OSError as exc:
            self._drop(pending, f"write failed: {exc}")
            return False
        if sent != len(data):
            self._drop(pending, "send buffer full during the handshake")
            return False
        return True

    def _forget(self, pending: _Pending) -> None:
        self._pending.pop(pending.sock, None)
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(pending.sock)

    def _drop(self, pending: _Pending, why: str) -> None:
        log.info("PTP/IP %s connection dropped: %s", pending.port.name.lower(), why)
        self._forget(pending)
        if pending.stage is _Stage.WAITING_FOR_EVENT:
            self.release(pending.number)
        pending.sock.close()

    def _keepalive(self, sock: socket.socket) -> None:
        budgets = self._budgets
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, budgets.keepalive_idle_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, budgets.keepalive_interval_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, budgets.keepalive_count)


def _listen(host: str, port: int) -> socket.socket:
    sock = off_stdio_socket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:  # a port in use or privileged: no socket left open behind the error
        sock.close()
        raise
    return sock


def reset_connection(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the host sees "connection reset", as when a phone dies."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


__all__ = ["HostLink", "Lobby", "PeerBudgets", "reset_connection"]
