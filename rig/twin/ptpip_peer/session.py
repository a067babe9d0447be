"""One host's PTP session over its matched command and event connections: read an OperationRequest (and its
data-out phase), answer it, send data-in and the OperationResponse, until the host closes or ends the session.

OpenSession and CloseSession are answered here because the session flag is the session's. The session slot is
released the moment the session ends (CloseSession, end of stream, a protocol violation, a reset), before the
last response goes out, so a host that reconnects at once finds the phone free.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable

from rig.spec.ptp import OperationCode, PacketType, ResponseCode
from rig.twin.ptpip_peer.events import EventChannel
from rig.twin.ptpip_peer.operations import Operations, Reply
from rig.twin.ptpip_peer.transport import HostLink, reset_connection
from rig.twin.ptpip_peer.wire import (
    ConnectionClosed,
    OperationRequest,
    ProtocolViolation,
    operation_response,
    packet,
    parse_operation_request,
    read_packet,
    receive_data_out,
    send_chunk,
    send_data_in,
)

log = logging.getLogger(__name__)


class Session:
    """Serves one :class:`~rig.twin.ptpip_peer.transport.HostLink` (module docstring).

    ``release`` is called exactly once, with the link's connection number, when the session is over.
    """

    def __init__(
        self,
        link: HostLink,
        operations: Operations,
        events: EventChannel,
        *,
        release: Callable[[int], None],
    ) -> None:
        self.link = link
        self._operations = operations
        self._events = events
        self._release_slot = release
        self._released = False
        self._closed = False
        self._lock = threading.Lock()
        self._open = False

    def run(self) -> None:
        self._events.attach(self.link.event)
        try:
            self._command_loop()
        except (ConnectionClosed, OSError) as exc:
            log.debug("PTP/IP connection %d ended: %s", self.link.number, exc)
        except ProtocolViolation as exc:
            log.warning("PTP/IP protocol violation on connection %d, closing: %s", self.link.number, exc)
        except Exception:  # whatever went wrong, the phone must be free for the next host
            log.exception("PTP/IP session %d failed", self.link.number)
        finally:
            self.close(reset=False)

    def close(self, *, reset: bool) -> None:
        """End the session: free the slot, then close (or reset) both connections. Idempotent."""
        self._release()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._events.detach(self.link.event)
        for sock in (self.link.command, self.link.event):
            if reset:
                reset_connection(sock)
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the session thread blocked reading it
            sock.close()

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._release_slot(self.link.number)

    def _command_loop(self) -> None:
        conn = self.link.command
        while not self._closed:
            ptype, payload = read_packet(conn)
            if ptype == PacketType.PROBE_REQUEST:
                conn.sendall(packet(PacketType.PROBE_RESPONSE))
                continue
            if ptype != PacketType.OPERATION_REQUEST:
                raise ProtocolViolation(f"expected OperationRequest, got packet type {ptype}")
            request = parse_operation_request(payload)
            log.debug("operation 0x%04x %s (tid %d)", request.opcode, request.params, request.transaction_id)
            data_out = receive_data_out(conn, request.transaction_id) if request.has_data_out else None
            reply, ending = self._answer(request, data_out)
            if reply.data is not None:
                if reply.abort:
                    self._abort_transfer(conn, request, reply.data)
                    return
                if reply.stall_s > 0:
                    self._stalled_transfer(conn, request, reply.data, reply.stall_s)
                else:
                    send_data_in(conn, request.transaction_id, reply.data)
                if reply.paced is not None:
                    reply.paced()
            if ending:
                self._release()
            conn.sendall(operation_response(reply.code, request.transaction_id, reply.params))
            if reply.after is not None:
                reply.after()
            if ending:
                self.close(reset=False)
                return

    def _answer(self, request: OperationRequest, data_out: bytes | None) -> tuple[Reply, bool]:
        """The reply, and whether the session ends with it."""
        if request.opcode == OperationCode.OPEN_SESSION:
            if self._open:
                return Reply(ResponseCode.SESSION_ALREADY_OPEN, (1,)), False
            self._open = True
            return Reply(), False
        if request.opcode == OperationCode.CLOSE_SESSION:
            if not self._open:
                return Reply(ResponseCode.SESSION_NOT_OPEN), False
            self._open = False
            # the phone hangs up after a session: a host waiting for more then sees end-of-stream at once
            return Reply(), True
        return self._operations.answer(request, data_out, session_open=self._open), False

    def _abort_transfer(self, conn: socket.socket, request: OperationRequest, data: bytes) -> None:
        """Fault: the phone dies mid-transfer: half the data, then both connections reset."""
        view = memoryview(data)[: len(data) // 2]
        conn.sendall(packet(PacketType.START_DATA, struct.pack("<IQ", request.transaction_id, len(data))))
        send_chunk(conn, PacketType.DATA, request.transaction_id, view)
        log.info("fault: dropping the connection mid-download (%d of %d bytes sent)", len(view), len(data))
        self.close(reset=True)

    def _stalled_transfer(self, conn: socket.socket, request: OperationRequest, data: bytes, stall_s: float) -> None:
        """Fault: a busy phone: half the data, ``stall_s`` of silence (wall time, which is what the host's socket
        timeout counts), then the rest. A host that hangs up during the silence ends the session at once, as
        the phone's TCP stack sees the FIN; one that sends its next request meanwhile finds it answered late."""
        view = memoryview(data)
        half = len(view) // 2
        conn.sendall(packet(PacketType.START_DATA, struct.pack("<IQ", request.transaction_id, len(view))))
        send_chunk(conn, PacketType.DATA, request.transaction_id, view[:half])
        log.info("fault: stalling a download for %.1f s (%d of %d bytes sent)", stall_s, half, len(view))
        deadline = time.monotonic() + stall_s
        while not self._closed and time.monotonic() < deadline:
            if _hung_up(conn):
                raise ConnectionClosed("the host hung up during a stalled download")
            time.sleep(_STALL_POLL_S)
        send_chunk(conn, PacketType.END_DATA, request.transaction_id, view[half:])


_STALL_POLL_S = 0.01


def _hung_up(conn: socket.socket) -> bool:
    """Whether the host closed its end (end of stream waiting), without consuming what it may have sent."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
