"""PTP/IP framing (CIPA DC-X005) and PTP dataset primitives (ISO 15740 §5.3), as libgphoto2 speaks them.

Every packet is ``u32 length (header included), u32 type, payload``, little-endian (REFERENCE.md §5). PTP strings
are ``u8 number of UTF-16 code units including the NUL`` followed by UTF-16LE, the empty string being one ``00``.

A length field is checked against the largest packet of its type *before* anything is allocated: a host (or a
stray client) announcing 2 GiB gets its connection closed, not 2 GiB of zeroed memory. The bounds come from what
an initiator sends: libgphoto2 (camlibs/ptp2/ptpip.c, 2.5.x) writes control packets of a few dozen bytes (its
host name is at most 100 characters) and data in ``WRITE_BLOCKSIZE`` = 64 KiB blocks (``ptp_ptpip_senddata``).

Latency: libgphoto2 never sets ``TCP_NODELAY`` (``ptp_ptpip_connect`` only makes its sockets non-blocking), so
Nagle holds its second small write (StartData after an OperationRequest) until the first is ACKed; a responder
that delays its ACK (Linux: up to 40 ms) then costs every SetDevicePropValue ~45 ms. :func:`tune` sets
``TCP_NODELAY`` on the responder's sockets and :func:`recv_exact` re-arms ``TCP_QUICKACK`` before each read, because
Linux clears it again whenever the connection looks interactive (tcp(7): "not permanent"). A USB phone has no
Nagle at all; a phone serving PTP/IP over Wi-Fi should do the same as this peer.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from rig.spec.ptp import DataPhase, DataType, PacketType

HEADER = struct.Struct("<II")
MAX_CONTROL_PAYLOAD = 1024
"""Largest payload of a non-data packet from the host (InitCommandRequest is the longest: GUID, host name, version)."""
MAX_DATA_PAYLOAD = 16 << 20
"""Largest Data/EndData payload accepted from a host (libgphoto2 sends 64 KiB blocks; other initiators send more)."""
MAX_DATA_OUT = 64 << 20
"""Largest object a host may send the phone (StartData total; the profile slot is the only writable object)."""
DATA_CHUNK = 1 << 20
"""Bytes per Data packet when the responder sends an object: small enough to interleave a dropped connection."""
_DATA_TYPES = (PacketType.DATA, PacketType.END_DATA)
_UNKNOWN_LENGTHS = (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)  # a StartData total meaning "length not known" in PTP


class ConnectionClosed(Exception):
    """The peer closed the TCP connection (or it was reset) while a packet was expected."""


class ProtocolViolation(Exception):
    """A packet that PTP/IP does not allow here (wrong type, impossible length)."""


# --------------------------------------------------------------------------------------------- sockets
def tune(sock: socket.socket) -> None:
    """Send small packets at once (``TCP_NODELAY``) and ACK what arrives at once (``TCP_QUICKACK``)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rearm_quickack(sock)


def rearm_quickack(sock: socket.socket) -> None:
    """Linux only; tcp(7): quickack mode is left again by the stack, so it is set before every read."""
    if _QUICKACK is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


# --------------------------------------------------------------------------------------------- packets
def max_payload(ptype: int) -> int:
    """The largest payload a host may send in a packet of type ``ptype`` (bytes)."""
    return MAX_DATA_PAYLOAD if ptype in _DATA_TYPES else MAX_CONTROL_PAYLOAD


def check_header(length: int, ptype: int) -> int:
    """The payload size a header announces, or ProtocolViolation when it is impossible or above the maximum."""
    if length < HEADER.size:
        raise ProtocolViolation(f"packet length {length}: below the {HEADER.size}-byte header")
    if length - HEADER.size > max_payload(ptype):
        raise ProtocolViolation(
            f"packet type {ptype} of {length} bytes: above the {max_payload(ptype)}-byte maximum for that type"
        )
    return length - HEADER.size


def recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        rearm_quickack(sock)
        try:
            n = sock.recv_into(view[got:], size - got)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise ConnectionClosed(str(exc)) from exc
        if n == 0:
            raise ConnectionClosed(f"end of stream after {got} of {size} bytes")
        got += n
    return bytes(buf)


def read_packet(sock: socket.socket) -> tuple[int, bytes]:
    """One packet: ``(type, payload)``; the length is bounded by :func:`max_payload` before the payload is read."""
    length, ptype = HEADER.unpack(recv_exact(sock, HEADER.size))
    return ptype, recv_exact(sock, check_header(length, ptype))


def packet(ptype: PacketType, payload: bytes = b"") -> bytes:
    return HEADER.pack(HEADER.size + len(payload), ptype) + payload


def send_packet(sock: socket.socket, ptype: PacketType, payload: bytes = b"") -> None:
    sock.sendall(packet(ptype, payload))


@dataclass(frozen=True)
class OperationRequest:
    dataphase: int
    opcode: int
    transaction_id: int
    params: tuple[int, ...]

    @property
    def has_data_out(self) -> bool:
        return self.dataphase == DataPhase.OUT


def parse_operation_request(payload: bytes) -> OperationRequest:
    if len(payload) < 10 or (len(payload) - 10) % 4:
        raise ProtocolViolation(f"OperationRequest payload of {len(payload)} bytes")
    dataphase, opcode, tid = struct.unpack_from("<IHI", payload)
    params = struct.unpack_from(f"<{(len(payload) - 10) // 4}I", payload, 10)
    return OperationRequest(dataphase, opcode, tid, tuple(params))


def operation_response(code: int, transaction_id: int, params: Iterable[int] = ()) -> bytes:
    params = tuple(params)
    return packet(PacketType.OPERATION_RESPONSE, struct.pack(f"<HI{len(params)}I", code, transaction_id, *params))


def event_packet(code: int, transaction_id: int, params: Iterable[int] = ()) -> bytes:
    params = tuple(params)
    return packet(PacketType.EVENT, struct.pack(f"<HI{len(params)}I", code, transaction_id, *params))


def send_data_in(
    sock: socket.socket, transaction_id: int, data: bytes | memoryview, *, chunk: int = DATA_CHUNK
) -> None:
    """Send ``data`` to the initiator: StartData, Data packets of ``chunk`` bytes, EndData with the rest."""
    view = memoryview(data)
    sock.sendall(packet(PacketType.START_DATA, struct.pack("<IQ", transaction_id, len(view))))
    offset = 0
    while len(view) - offset > chunk:
        send_chunk(sock, PacketType.DATA, transaction_id, view[offset : offset + chunk])
        offset += chunk
    send_chunk(sock, PacketType.END_DATA, transaction_id, view[offset:])


def send_chunk(sock: socket.socket, ptype: PacketType, transaction_id: int, part: memoryview) -> None:
    header = HEADER.pack(HEADER.size + 4 + len(part), ptype) + struct.pack("<I", transaction_id)
    # sendmsg avoids copying a large chunk just to prepend 12 bytes
    sent = sock.sendmsg([header, part])
    total = len(header) + len(part)
    if sent < total:
        rest = (header + bytes(part))[sent:] if sent < len(header) else part[sent - len(header) :]
        sock.sendall(rest)


def receive_data_out(sock: socket.socket, transaction_id: int) -> bytes:
    """Read the StartData … EndData sequence the initiator sends after a data-out OperationRequest."""
    ptype, payload = read_packet(sock)
    if ptype != PacketType.START_DATA or len(payload) < 12:
        raise ProtocolViolation(f"expected StartData for transaction {transaction_id}, got packet type {ptype}")
    tid, total = struct.unpack_from("<IQ", payload)
    if tid != transaction_id:
        raise ProtocolViolation(f"StartData for transaction {tid}, expected {transaction_id}")
    if total > MAX_DATA_OUT and total not in _UNKNOWN_LENGTHS:
        raise ProtocolViolation(
            f"transaction {transaction_id}: StartData announces {total} bytes, above the {MAX_DATA_OUT}-byte maximum"
        )
    parts: list[bytes] = []
    received = 0
    while True:
        ptype, payload = read_packet(sock)
        if ptype not in _DATA_TYPES or len(payload) < 4:
            raise ProtocolViolation(f"expected Data/EndData in transaction {transaction_id}, got type {ptype}")
        parts.append(payload[4:])
        received += len(payload) - 4
        if received > MAX_DATA_OUT:
            raise ProtocolViolation(f"transaction {transaction_id}: more than {MAX_DATA_OUT} bytes of data")
        if ptype == PacketType.END_DATA:
            break
    data = b"".join(parts)
    # libgphoto2 announces the exact length; a 32-bit total of 0xFFFFFFFF means "unknown" in PTP
    if total not in (len(data), *_UNKNOWN_LENGTHS):
        raise ProtocolViolation(f"transaction {transaction_id}: StartData announced {total} bytes, got {len(data)}")
    return data


# --------------------------------------------------------------------------------------------- datasets
def u8(v: int) -> bytes:
    return struct.pack("<B", v)


def u16(v: int) -> bytes:
    return struct.pack("<H", v)


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)


def ptp_string(text: str) -> bytes:
    if not text:
        return b"\x00"
    encoded = (text + "\x00").encode("utf-16-le")
    units = len(encoded) // 2
    if units > 255:
        raise ValueError(f"PTP strings hold at most 254 characters, got {len(text)}")
    return u8(units) + encoded


def parse_ptp_string(data: bytes, offset: int = 0) -> tuple[str, int]:
    """``(text, offset after the string)``."""
    units = data[offset]
    start = offset + 1
    end = start + 2 * units
    if end > len(data):
        raise ProtocolViolation(f"PTP string of {units} units runs past the end of {len(data)} bytes")
    text = data[start:end].decode("utf-16-le").rstrip("\x00")
    return text, end


def u16_array(values: Iterable[int]) -> bytes:
    values = list(values)
    return u32(len(values)) + struct.pack(f"<{len(values)}H", *values)


def u32_array(values: Iterable[int]) -> bytes:
    values = list(values)
    return u32(len(values)) + struct.pack(f"<{len(values)}I", *values)


_SCALAR_FORMATS = {
    DataType.INT8: "<b",
    DataType.UINT8: "<B",
    DataType.INT16: "<h",
    DataType.UINT16: "<H",
    DataType.INT32: "<i",
    DataType.UINT32: "<I",
    DataType.INT64: "<q",
    DataType.UINT64: "<Q",
}


def pack_value(datatype: DataType, value: int | str) -> bytes:
    if datatype == DataType.STR:
        return ptp_string(str(value))
    return struct.pack(_SCALAR_FORMATS[datatype], int(value))


def unpack_value(datatype: DataType, data: bytes) -> int | str:
    if datatype == DataType.STR:
        return parse_ptp_string(data)[0] if data else ""
    fmt = _SCALAR_FORMATS[datatype]
    if len(data) != struct.calcsize(fmt):
        raise ProtocolViolation(f"value of type {datatype.name}: {len(data)} bytes")
    return struct.unpack(fmt, data)[0]
