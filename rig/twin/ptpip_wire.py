"""PTP/IP framing (CIPA DC-X005) and PTP dataset primitives (ISO 15740 §5.3), as libgphoto2 speaks them.

Every packet is ``u32 length (header included), u32 type, payload``, little-endian (REFERENCE.md §5). PTP strings
are ``u8 number of UTF-16 code units including the NUL`` followed by UTF-16LE, the empty string being one ``00``.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from rig.spec.ptp import DataPhase, DataType, PacketType

HEADER = struct.Struct("<II")
MAX_PACKET = 1 << 31
DATA_CHUNK = 1 << 20
"""Bytes per Data packet when the responder sends an object: small enough to interleave a dropped connection."""


class ConnectionClosed(Exception):
    """The peer closed the TCP connection (or it was reset) while a packet was expected."""


class ProtocolViolation(Exception):
    """A packet that PTP/IP does not allow here (wrong type, impossible length)."""


# --------------------------------------------------------------------------------------------- packets
def recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        try:
            n = sock.recv_into(view[got:], size - got)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise ConnectionClosed(str(exc)) from exc
        if n == 0:
            raise ConnectionClosed(f"end of stream after {got} of {size} bytes")
        got += n
    return bytes(buf)


def read_packet(sock: socket.socket) -> tuple[int, bytes]:
    """One packet: ``(type, payload)``."""
    length, ptype = HEADER.unpack(recv_exact(sock, HEADER.size))
    if not HEADER.size <= length < MAX_PACKET:
        raise ProtocolViolation(f"packet length {length}")
    return ptype, recv_exact(sock, length - HEADER.size)


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
    parts: list[bytes] = []
    while True:
        ptype, payload = read_packet(sock)
        if ptype not in (PacketType.DATA, PacketType.END_DATA) or len(payload) < 4:
            raise ProtocolViolation(f"expected Data/EndData in transaction {transaction_id}, got type {ptype}")
        parts.append(payload[4:])
        if ptype == PacketType.END_DATA:
            break
    data = b"".join(parts)
    # libgphoto2 announces the exact length; a 32-bit total of 0xFFFFFFFF means "unknown" in PTP
    if total not in (len(data), 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
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
