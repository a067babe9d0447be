"""The twin phone as a PTP/IP responder on 127.0.0.1: libgphoto2 (python-gphoto2 or the ``gphoto2`` command)
talks to it exactly as to the phone on a network (REFERENCE.md §5, DESIGN.md §4).

What the phone offers (codes in :mod:`rig.spec.ptp`):

- DeviceInfo ``Xiaomi`` / ``12S Ultra Concept`` with the unit's serial; one storage ``/store_00010001`` holding
  ``DCIM/`` (captures) and ``RIG/`` (the calibration profile slot ``PROFILE.BIN``).
- InitiateCapture renders ``BurstCount`` frames on the twin bench (``IMG_nnnn.DNG``, format 0x3811) and stores the
  assist outputs of the last frame beside it (``.HIS/.ZEB/.PKG``, :mod:`rig.spec.ptp_assist`), computed on
  first access by :func:`rig.twin.firmware.assist_outputs`. Events: ObjectAdded per object, then CaptureComplete.
- Exposure time, ISO, f-number, battery, and the vendor properties (lens, sensor switch, assists, burst, CRC-32).
- The lens: the phone reads the bench state; :func:`rig.twin.firmware.lens_state` says what it reports and when
  the M-mount sensor takes over. A watcher thread sends LensAttached/LensDetached/SensorSwitched and
  DevicePropChanged events as that happens.
- SendObjectInfo/SendObject into the profile slot write ``bench.state.profile``; GetObject reads it back.

Faults (:class:`PtpFaults`, settable at construction or on ``peer.faults`` while running, plus :meth:`reboot`
and :meth:`remove_lens`) let tests and the soak run break the phone the way a real one breaks.

Only one host is served at a time, as a phone does: a second InitCommandRequest is answered with InitFail(busy).
Captured frames are kept until the host deletes them or newer ones push them out (a ring, oldest first).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import select
import socket
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Self

import numpy as np

from rig.spec import ptp_assist
from rig.spec.ptp import (
    FRAME_NAME,
    NO_LENS_CODE,
    NO_TRANSACTION,
    PROFILE_FILENAME,
    PTPIP_VERSION,
    RING_BUFFER_MS,
    ROOT_PARENT,
    STORAGE_ID,
    ActiveSensorCode,
    AssistSuffix,
    DataType,
    EventCode,
    InitFailReason,
    ObjectFormat,
    OperationCode,
    PacketType,
    PhoneFolder,
    PropertyCode,
    ResponseCode,
)
from rig.spec.types import ActiveSensor, AssistOutputs, LensState
from rig.twin import firmware
from rig.twin.ptp_datasets import DeviceInfo, ObjectInfo, PropForm, StorageInfo, device_prop_desc, ptp_datetime
from rig.twin.ptpip_wire import (
    ConnectionClosed,
    OperationRequest,
    ProtocolViolation,
    event_packet,
    operation_response,
    pack_value,
    packet,
    parse_operation_request,
    parse_ptp_string,
    read_packet,
    receive_data_out,
    send_chunk,
    send_data_in,
    u32,
    u32_array,
    unpack_value,
)

if TYPE_CHECKING:
    from rig.twin.world import TwinBench, TwinFrame

log = logging.getLogger(__name__)

MANUFACTURER = "Xiaomi"
MODEL = "12S Ultra Concept"
FRIENDLY_NAME = "Xiaomi 12S Ultra Concept (twin)"

# Shutter speeds the phone offers, in the ExposureTime unit of 1e-4 s (0.1 ms .. 30 s, about 1/3 stop apart).
EXPOSURE_TIME_CHOICES = (
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 125, 160, 200, 250, 300, 400, 500, 600, 800,
    1000, 1250, 1600, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000, 20000, 40000, 80000, 150000, 300000,
)  # fmt: skip
ISO_CHOICES = (50, 64, 80, 100, 125, 160, 200, 250, 320, 400, 500, 640, 800, 1000, 1250, 1600, 2000, 2500, 3200, 4000,
               5000, 6400)  # fmt: skip
ZEBRA_CHOICES = (50, 60, 70, 75, 80, 85, 90, 95, 100)
NATIVE_F_NUMBER_X100 = 190
HISTOGRAM_BINS = 256
WATCH_PERIOD_S = 0.002
EVENT_CONNECT_TIMEOUT_S = 5.0

_SUPPORTED_OPERATIONS = (
    OperationCode.GET_DEVICE_INFO,
    OperationCode.OPEN_SESSION,
    OperationCode.CLOSE_SESSION,
    OperationCode.GET_STORAGE_IDS,
    OperationCode.GET_STORAGE_INFO,
    OperationCode.GET_OBJECT_HANDLES,
    OperationCode.GET_OBJECT_INFO,
    OperationCode.GET_OBJECT,
    OperationCode.DELETE_OBJECT,
    OperationCode.SEND_OBJECT_INFO,
    OperationCode.SEND_OBJECT,
    OperationCode.INITIATE_CAPTURE,
    OperationCode.GET_DEVICE_PROP_DESC,
    OperationCode.GET_DEVICE_PROP_VALUE,
    OperationCode.SET_DEVICE_PROP_VALUE,
)
_SESSIONLESS = (OperationCode.GET_DEVICE_INFO, OperationCode.OPEN_SESSION, OperationCode.CLOSE_SESSION)


@dataclass
class PtpFaults:
    """Faults the twin phone injects; each count is consumed by the next matching operation(s).

    ``drop_downloads``: GetObject of a frame sends part of the data, then the phone resets both TCP connections.
    ``corrupt_downloads``: GetObject of a frame serves bytes with flipped bits (the CRC-32 property stays right).
    ``truncated_frames``: the next captured frames are stored cut short (firmware wrote a short file; its CRC-32
    matches the short file, so only parsing the DNG shows it).
    ``stuck_captures``: InitiateCapture answers OK but the capture never completes (no events ever).
    """

    drop_downloads: int = 0
    corrupt_downloads: int = 0
    truncated_frames: int = 0
    stuck_captures: int = 0


@dataclass
class _Object:
    handle: int
    info: ObjectInfo
    load: Callable[[], bytes]
    kind: str  # "folder", "frame", "assist", "profile"
    _crc: int | None = None

    def data(self) -> bytes:
        return self.load()

    def crc32(self) -> int:
        if self._crc is None:
            self._crc = zlib.crc32(self.load())
        return self._crc


@dataclass
class _Assist:
    """The assist outputs of one frame, computed once on first access."""

    compute: Callable[[], AssistOutputs]
    _result: AssistOutputs | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> AssistOutputs:
        with self._lock:
            if self._result is None:
                self._result = self.compute()
            return self._result


@dataclass
class _Prop:
    datatype: DataType
    form: PropForm
    get: Callable[[], int | str]
    set: Callable[[int | str], None] | None = None
    default: int | str | None = None


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
    ) -> None:
        self.bench = bench
        self.host = host
        self.port = port
        self.event_port = event_port
        self.faults = faults or PtpFaults()
        self.max_stored_frames = max_stored_frames
        self.max_stored_bytes = max_stored_bytes
        self.guid = uuid.uuid5(uuid.NAMESPACE_DNS, f"{bench.unit.serial}.phone.rig").bytes
        self._lock = threading.RLock()  # objects, properties, faults, session flags
        self._send_lock = threading.Lock()  # one writer at a time on the event socket
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listeners: list[socket.socket] = []
        self._cmd: socket.socket | None = None
        self._evt: socket.socket | None = None
        self._busy = False
        self._session_open = False
        self._down_until = 0.0
        self._connections = itertools.count(1)
        self._handles = itertools.count(1)
        self._image_numbers = itertools.count(1)
        self._objects: dict[int, _Object] = {}
        self._folders: dict[PhoneFolder, int] = {}
        for folder in PhoneFolder:
            handle = next(self._handles)
            self._folders[folder] = handle
            self._objects[handle] = _Object(handle, ObjectInfo.folder(STORAGE_ID, folder.value), lambda: b"", "folder")
        self._profile_handle: int | None = None
        self._profile_seen: bytes | None = None
        self._last_frame: str = ""
        self._pending_send: ObjectInfo | None = None
        self._pending_handle = 0
        self._zebra_pct = 90
        self._peaking_milli = 100
        self._burst_count = 1
        self._burst_interval_us = 50_000
        self._checksum_target = ""
        self._burst_start = ""
        self._reported: LensState | None = None
        self._shocks_reported = 0
        self._props = self._build_props()
        self.address: str | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        """Listen and serve; returns the gphoto2 port string ``ptpip:HOST:PORT:EVENTPORT``."""
        if self.address is not None:
            return self.address
        cmd = self._listen(self.port)
        try:
            evt = self._listen(self.event_port)
        except OSError:
            cmd.close()
            raise
        self._listeners = [cmd, evt]
        self.port = cmd.getsockname()[1]
        self.event_port = evt.getsockname()[1]
        self._stop.clear()
        self._reported = self._lens_state()
        self._shocks_reported = len(self.bench.state.snapshot().knock_times_ns)
        for name, target in (("accept", self._accept_loop), ("watch", self._watch_loop)):
            thread = threading.Thread(target=target, name=f"ptpip-{name}-{self.port}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.address = f"ptpip:{self.host}:{self.port}:{self.event_port}"
        log.info("PTP/IP phone %s listening on %s", self.bench.unit.serial, self.address)
        return self.address

    def stop(self) -> None:
        self._stop.set()
        self._drop_connection(reset=False)
        for sock in self._listeners:
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads.clear()
        self._listeners.clear()
        self.address = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        sock.listen(4)
        return sock

    # ------------------------------------------------------------------------------------------ faults
    def reboot(self, downtime_s: float = 2.0) -> None:
        """The phone restarts: the session is lost (sockets reset) and connections are refused for a while."""
        with self._lock:
            self._down_until = time.monotonic() + downtime_s
        log.info("phone rebooting for %.1f s", downtime_s)
        self._drop_connection(reset=True)

    def remove_lens(self) -> None:
        """The lens comes off the bayonet (a bench fault, as if it was knocked loose)."""
        self.bench.state.unmount_lens()

    def stored_files(self) -> list[str]:
        """Names of the files the phone holds now (captures, assists, profile), for tests and the operator."""
        with self._lock:
            self._sync_profile()
            return [o.info.filename for o in self._objects.values() if o.kind != "folder"]

    @property
    def rebooting(self) -> bool:
        return time.monotonic() < self._down_until

    def _take_fault(self, name: str) -> bool:
        with self._lock:
            left = getattr(self.faults, name)
            if left > 0:
                setattr(self.faults, name, left - 1)
                return True
            return False

    # ------------------------------------------------------------------------------------------ connections
    def _accept_loop(self) -> None:
        cmd_listener = self._listeners[0]
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([cmd_listener], [], [], 0.1)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                conn, _ = cmd_listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.rebooting:
                _reset(conn)
                continue
            with self._lock:
                busy = self._busy
                self._busy = True
            if busy:
                self._refuse(conn, InitFailReason.BUSY)
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), name=f"ptpip-session-{self.port}", daemon=True)
            thread.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _refuse(self, conn: socket.socket, reason: InitFailReason) -> None:
        with contextlib.suppress(OSError):
            conn.settimeout(1.0)
            read_packet(conn)
            conn.sendall(packet(PacketType.INIT_FAIL, u32(reason)))
        conn.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._handshake(conn)
            self._command_loop(conn)
        except (ConnectionClosed, OSError) as exc:
            log.debug("PTP/IP connection ended: %s", exc)
        except ProtocolViolation as exc:
            log.warning("PTP/IP protocol violation, closing: %s", exc)
        finally:
            self._drop_connection(reset=False, only=conn)
            with self._lock:
                self._busy = False

    def _handshake(self, conn: socket.socket) -> None:
        conn.settimeout(EVENT_CONNECT_TIMEOUT_S)
        ptype, payload = read_packet(conn)
        if ptype != PacketType.INIT_COMMAND_REQUEST or len(payload) < 20:
            raise ProtocolViolation(f"expected InitCommandRequest, got packet type {ptype}")
        host_name, _ = parse_ptp_string(bytes([min(255, (len(payload) - 20) // 2)]) + payload[16:-4])
        number = next(self._connections)
        ack = u32(number) + self.guid + (FRIENDLY_NAME + "\x00").encode("utf-16-le") + u32(PTPIP_VERSION)
        conn.sendall(packet(PacketType.INIT_COMMAND_ACK, ack))
        evt_listener = self._listeners[1]
        ready, _, _ = select.select([evt_listener], [], [], EVENT_CONNECT_TIMEOUT_S)
        if not ready:
            raise ConnectionClosed("the host did not open the event connection")
        evt, _ = evt_listener.accept()
        evt.settimeout(EVENT_CONNECT_TIMEOUT_S)
        ptype, payload = read_packet(evt)
        if ptype != PacketType.INIT_EVENT_REQUEST or struct.unpack_from("<I", payload)[0] != number:
            evt.close()
            raise ProtocolViolation(f"expected InitEventRequest for connection {number}, got type {ptype}")
        evt.sendall(packet(PacketType.INIT_EVENT_ACK))
        evt.settimeout(None)
        conn.settimeout(None)
        with self._lock:
            self._cmd, self._evt = conn, evt
        log.info("PTP/IP host %r connected (connection %d)", host_name, number)

    def _drop_connection(self, *, reset: bool, only: socket.socket | None = None) -> None:
        with self._lock:
            if only is not None and self._cmd is not None and only is not self._cmd:
                only.close()
                return
            cmd, evt = self._cmd, self._evt
            self._cmd = self._evt = None
            self._session_open = False
        for sock in (cmd, evt, only):
            if sock is None:
                continue
            if reset:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _send_event(self, code: EventCode, *params: int) -> None:
        evt = self._evt
        if evt is None:
            return
        try:
            with self._send_lock:
                evt.sendall(event_packet(code, NO_TRANSACTION, params))
        except OSError as exc:
            log.debug("event %s not delivered: %s", code.name, exc)

    # ------------------------------------------------------------------------------------------ commands
    def _command_loop(self, conn: socket.socket) -> None:
        handlers: dict[int, Callable[[OperationRequest, bytes | None], _Reply]] = {
            OperationCode.GET_DEVICE_INFO: self._get_device_info,
            OperationCode.OPEN_SESSION: self._open_session,
            OperationCode.CLOSE_SESSION: self._close_session,
            OperationCode.GET_STORAGE_IDS: self._get_storage_ids,
            OperationCode.GET_STORAGE_INFO: self._get_storage_info,
            OperationCode.GET_OBJECT_HANDLES: self._get_object_handles,
            OperationCode.GET_OBJECT_INFO: self._get_object_info,
            OperationCode.GET_OBJECT: self._get_object,
            OperationCode.DELETE_OBJECT: self._delete_object,
            OperationCode.SEND_OBJECT_INFO: self._send_object_info,
            OperationCode.SEND_OBJECT: self._send_object,
            OperationCode.INITIATE_CAPTURE: self._initiate_capture,
            OperationCode.GET_DEVICE_PROP_DESC: self._get_prop_desc,
            OperationCode.GET_DEVICE_PROP_VALUE: self._get_prop_value,
            OperationCode.SET_DEVICE_PROP_VALUE: self._set_prop_value,
        }
        while not self._stop.is_set():
            ptype, payload = read_packet(conn)
            if ptype in (PacketType.PROBE_REQUEST,):
                conn.sendall(packet(PacketType.PROBE_RESPONSE))
                continue
            if ptype != PacketType.OPERATION_REQUEST:
                raise ProtocolViolation(f"expected OperationRequest, got packet type {ptype}")
            request = parse_operation_request(payload)
            log.debug("operation 0x%04x %s (tid %d)", request.opcode, request.params, request.transaction_id)
            data_out = receive_data_out(conn, request.transaction_id) if request.has_data_out else None
            handler = handlers.get(request.opcode)
            if handler is None:
                reply = _Reply(ResponseCode.OPERATION_NOT_SUPPORTED)
            elif not self._session_open and request.opcode not in _SESSIONLESS:
                reply = _Reply(ResponseCode.SESSION_NOT_OPEN)
            else:
                reply = handler(request, data_out)
            if reply.data is not None:
                self._send_data(conn, request, reply)
                if reply.abort:
                    return
            conn.sendall(operation_response(reply.code, request.transaction_id, reply.params))
            if reply.after is not None:
                reply.after()
            if self._cmd is not conn:  # the phone hung up (session closed, reboot)
                return

    def _send_data(self, conn: socket.socket, request: OperationRequest, reply: _Reply) -> None:
        data = reply.data
        assert data is not None
        if reply.abort:
            # the phone dies mid-transfer: half the data, then both connections reset
            view = memoryview(data)[: len(data) // 2]
            conn.sendall(packet(PacketType.START_DATA, struct.pack("<IQ", request.transaction_id, len(data))))
            send_chunk(conn, PacketType.DATA, request.transaction_id, view)
            log.info("fault: dropping the connection mid-download (%d of %d bytes sent)", len(view), len(data))
            self._drop_connection(reset=True)
            return
        send_data_in(conn, request.transaction_id, data)

    def _get_device_info(self, request: OperationRequest, data: bytes | None) -> _Reply:
        info = DeviceInfo(
            manufacturer=MANUFACTURER,
            model=MODEL,
            device_version=self._firmware_version(),
            serial_number=self.bench.unit.serial,
            operations=_SUPPORTED_OPERATIONS,
            events=tuple(EventCode),
            properties=tuple(self._props),
        )
        return _Reply(data=info.pack())

    def _firmware_version(self) -> str:
        # a constant: the unit's true firmware defects are what the bench must find, not what the phone says
        return "V14.0.rig-twin"

    def _open_session(self, request: OperationRequest, data: bytes | None) -> _Reply:
        if self._session_open:
            return _Reply(ResponseCode.SESSION_ALREADY_OPEN, (1,))
        self._session_open = True
        return _Reply()

    def _close_session(self, request: OperationRequest, data: bytes | None) -> _Reply:
        if not self._session_open:
            return _Reply(ResponseCode.SESSION_NOT_OPEN)
        self._session_open = False
        # the phone hangs up after a session: a host waiting for more then sees end-of-stream at once
        return _Reply(after=lambda: self._drop_connection(reset=False))

    def _get_storage_ids(self, request: OperationRequest, data: bytes | None) -> _Reply:
        return _Reply(data=u32_array([STORAGE_ID]))

    def _get_storage_info(self, request: OperationRequest, data: bytes | None) -> _Reply:
        if _param(request, 0) != STORAGE_ID:
            return _Reply(ResponseCode.INVALID_STORAGE_ID)
        capacity = 256 << 30
        with self._lock:
            used = sum(o.info.compressed_size for o in self._objects.values())
        info = StorageInfo("Internal shared storage", "twin", capacity, max(capacity - used, 0))
        return _Reply(data=info.pack())

    def _get_object_handles(self, request: OperationRequest, data: bytes | None) -> _Reply:
        storage, fmt, parent = _param(request, 0), _param(request, 1), _param(request, 2)
        if storage not in (STORAGE_ID, 0xFFFFFFFF):
            return _Reply(ResponseCode.INVALID_STORAGE_ID)
        with self._lock:
            self._sync_profile()
            if parent not in (0, ROOT_PARENT) and parent not in self._objects:
                return _Reply(ResponseCode.INVALID_PARENT_OBJECT)
            handles = [
                o.handle
                for o in self._objects.values()
                if (parent == 0 or o.info.parent == (0 if parent == ROOT_PARENT else parent))
                and (fmt in (0, 0xFFFFFFFF) or o.info.object_format == fmt)
            ]
        return _Reply(data=u32_array(handles))

    def _object(self, handle: int) -> _Object | None:
        with self._lock:
            self._sync_profile()
            return self._objects.get(handle)

    def _get_object_info(self, request: OperationRequest, data: bytes | None) -> _Reply:
        obj = self._object(_param(request, 0))
        if obj is None:
            return _Reply(ResponseCode.INVALID_OBJECT_HANDLE)
        return _Reply(data=obj.info.pack())

    def _get_object(self, request: OperationRequest, data: bytes | None) -> _Reply:
        obj = self._object(_param(request, 0))
        if obj is None or obj.kind == "folder":
            return _Reply(ResponseCode.INVALID_OBJECT_HANDLE)
        payload = obj.data()
        if obj.kind == "frame" and self._take_fault("drop_downloads"):
            return _Reply(data=payload, abort=True)
        if obj.kind == "frame" and self._take_fault("corrupt_downloads"):
            log.info("fault: serving %s with flipped bits", obj.info.filename)
            payload = _flip_bits(payload)
        return _Reply(data=payload)

    def _delete_object(self, request: OperationRequest, data: bytes | None) -> _Reply:
        handle = _param(request, 0)
        with self._lock:
            self._sync_profile()
            if handle == 0xFFFFFFFF:
                doomed = [o for o in self._objects.values() if o.kind != "folder"]
            elif handle in self._objects:
                doomed = [self._objects[handle]]
            else:
                return _Reply(ResponseCode.INVALID_OBJECT_HANDLE)
            if any(o.kind == "folder" for o in doomed):
                return _Reply(ResponseCode.OBJECT_WRITE_PROTECTED)
            for obj in doomed:
                self._remove(obj)
        return _Reply()

    def _remove(self, obj: _Object) -> None:
        del self._objects[obj.handle]
        if obj.kind == "profile":
            self.bench.state.update(profile=None)
            self._profile_handle = None
            self._profile_seen = None

    def _send_object_info(self, request: OperationRequest, data: bytes | None) -> _Reply:
        if data is None:
            return _Reply(ResponseCode.INVALID_PARAMETER)
        info = ObjectInfo.unpack(data)
        rig_folder = self._folders[PhoneFolder.CALIBRATION]
        parent = _param(request, 1)
        if info.filename != PROFILE_FILENAME:
            log.info("refusing SendObjectInfo for %r: only %s is writable", info.filename, PROFILE_FILENAME)
            return _Reply(ResponseCode.ACCESS_DENIED)
        if parent not in (0, ROOT_PARENT, rig_folder):
            return _Reply(ResponseCode.INVALID_PARENT_OBJECT)
        with self._lock:
            self._pending_send = info
            handle = next(self._handles)
            self._pending_handle = handle
        return _Reply(params=(STORAGE_ID, rig_folder, handle))

    def _send_object(self, request: OperationRequest, data: bytes | None) -> _Reply:
        with self._lock:
            info = self._pending_send
            self._pending_send = None
            if info is None:
                return _Reply(ResponseCode.NO_VALID_OBJECT_INFO)
            if data is None:
                return _Reply(ResponseCode.INCOMPLETE_TRANSFER)
            self.bench.state.update(profile=bytes(data))
            self._install_profile(bytes(data), self._pending_handle)
        return _Reply()

    # ------------------------------------------------------------------------------------------ profile slot
    def _install_profile(self, data: bytes, handle: int) -> None:
        if self._profile_handle is not None:
            self._objects.pop(self._profile_handle, None)
        parent = self._folders[PhoneFolder.CALIBRATION]
        info = ObjectInfo(STORAGE_ID, ObjectFormat.TEXT, len(data), parent, PROFILE_FILENAME, capture_date=self._date())
        self._objects[handle] = _Object(handle, info, lambda: self.bench.state.profile or b"", "profile")
        self._profile_handle = handle
        self._profile_seen = data

    def _sync_profile(self) -> None:
        """Follow ``bench.state.profile`` when someone else (a test, a reset) changed it."""
        current = self.bench.state.profile
        if current is self._profile_seen or current == self._profile_seen:
            return
        if current is None:
            if self._profile_handle is not None:
                self._objects.pop(self._profile_handle, None)
            self._profile_handle = None
            self._profile_seen = None
        else:
            self._install_profile(current, next(self._handles))

    # ------------------------------------------------------------------------------------------ capture
    def _initiate_capture(self, request: OperationRequest, data: bytes | None) -> _Reply:
        if self._take_fault("stuck_captures"):
            log.info("fault: capture accepted but it will never complete")
            return _Reply()
        return _Reply(after=self._capture)

    def _capture(self) -> None:
        """Render, store and announce: runs after the OK response, as a camera finishes exposing later."""
        with self._lock:
            count, interval_s = self._burst_count, self._burst_interval_us / 1e6
            start_ns = self._burst_start_ns()
            self._burst_start = ""  # one-shot
        if count == 1 and start_ns is None:
            frames = [self.bench.capture()]
        else:
            frames = self.bench.capture_burst(count, frame_interval_s=interval_s, start_ns=start_ns)
        with self._lock:
            frame_handles = [self._store_frame(frame) for frame in frames]
            last_name = self._objects[frame_handles[-1]].info.filename
            assist_handles = self._store_assist(last_name.rsplit(".", 1)[0], frames[-1])
            removed = self._evict(keep={*frame_handles, *assist_handles})
            self._last_frame = last_name
        for handle in removed:
            self._send_event(EventCode.OBJECT_REMOVED, handle)
        # libgphoto2 reads the ObjectInfo of every ObjectAdded but returns the *last* one as the capture's file:
        # the assists go first and the frames last, so a burst's newest frame is what capture() reports
        for handle in (*assist_handles, *frame_handles):
            self._send_event(EventCode.OBJECT_ADDED, handle)
        self._props_changed(PropertyCode.OBJECT_CRC32)
        self._send_event(EventCode.CAPTURE_COMPLETE)

    def _store_frame(self, frame: TwinFrame) -> int:
        dng = frame.dng
        if self._take_fault("truncated_frames"):
            log.info("fault: storing a truncated frame")
            dng = dng[: len(dng) * 2 // 3]
        handle = next(self._handles)
        height, width = frame.raw.shape
        info = ObjectInfo(
            STORAGE_ID,
            ObjectFormat.DNG,
            len(dng),
            self._folders[PhoneFolder.CAPTURES],
            FRAME_NAME.format(number=next(self._image_numbers)),
            image_width=width,
            image_height=height,
            bit_depth=16,
            capture_date=ptp_datetime(frame.time_ns / 1e9),
        )
        self._objects[handle] = _Object(handle, info, lambda: dng, "frame")
        return handle

    def _store_assist(self, stem: str, frame: TwinFrame) -> list[int]:
        sensor = self.bench.station.sensor
        raw = frame.raw
        zebra_pct, peaking = float(self._zebra_pct), self._peaking_milli / 1000.0
        assist = _Assist(
            lambda: firmware.assist_outputs(
                raw,
                self.bench.unit.firmware,
                black_level=sensor.black_level_dn,
                white_level=sensor.white_level_dn,
                zebra_threshold_pct=zebra_pct,
                peaking_threshold=peaking,
                histogram_bins=HISTOGRAM_BINS,
            )
        )
        quads = (raw.shape[0] // 2, raw.shape[1] // 2)
        parts: list[tuple[AssistSuffix, int, Callable[[], bytes]]] = [
            (
                AssistSuffix.HISTOGRAM,
                ptp_assist.histogram_size(HISTOGRAM_BINS),
                lambda: ptp_assist.encode_histogram(assist.get().histogram),
            ),
            (
                AssistSuffix.ZEBRA,
                ptp_assist.mask_size(*quads),
                lambda: ptp_assist.encode_mask(
                    assist.get().zebra_mask, threshold=zebra_pct, magic=ptp_assist.ZEBRA_MAGIC
                ),
            ),
            (
                AssistSuffix.PEAKING,
                ptp_assist.mask_size(*quads),
                lambda: ptp_assist.encode_mask(
                    assist.get().peaking_mask, threshold=peaking, magic=ptp_assist.PEAKING_MAGIC
                ),
            ),
        ]
        handles = []
        for suffix, size, encode in parts:
            handle = next(self._handles)
            info = ObjectInfo(
                STORAGE_ID,
                ObjectFormat.UNDEFINED_IMAGE,
                size,
                self._folders[PhoneFolder.CAPTURES],
                f"{stem}.{suffix.value}",
                capture_date=ptp_datetime(frame.time_ns / 1e9),
            )
            self._objects[handle] = _Object(handle, info, _cached(encode), "assist")
            handles.append(handle)
        return handles

    def _evict(self, *, keep: set[int]) -> list[int]:
        """Make room for a capture: the assists of earlier captures go (the phone keeps only the latest), then
        the oldest frames while more than ``max_stored_frames`` or ``max_stored_bytes`` are stored (never the
        frames of the capture being stored)."""
        old_assists = [o for o in self._objects.values() if o.kind == "assist" and o.handle not in keep]
        frames = sorted((o for o in self._objects.values() if o.kind == "frame"), key=lambda o: o.handle)
        count = len(frames)
        stored = sum(o.info.compressed_size for o in frames)
        old_frames: list[_Object] = []
        for obj in frames:
            if obj.handle in keep or (count <= self.max_stored_frames and stored <= self.max_stored_bytes):
                break
            old_frames.append(obj)
            count -= 1
            stored -= obj.info.compressed_size
        for obj in (*old_assists, *old_frames):
            del self._objects[obj.handle]
        return [o.handle for o in (*old_assists, *old_frames)]

    def _burst_start_ns(self) -> int | None:
        """The ring-buffer start of the next burst (ns on the phone clock), clamped to what the buffer holds."""
        text = str(self._burst_start).strip()
        if not text:
            return None
        try:
            start_ns = round(float(text) * 1e6)
        except ValueError:
            log.info("ignoring BurstStart %r: not a time in ms", text)
            return None
        now_ns = self.bench.state.now_ns()
        return min(max(start_ns, now_ns - round(RING_BUFFER_MS * 1e6)), now_ns)

    def _date(self) -> str:
        return ptp_datetime(self.bench.state.now_ns() / 1e9)

    # ------------------------------------------------------------------------------------------ properties
    def _lens_state(self) -> LensState:
        snapshot = self.bench.state.snapshot()
        code = None
        if snapshot.lens_attached and snapshot.lens_id is not None:
            code = self.bench.lenses.get(snapshot.lens_id).lens_code
        return firmware.lens_state(snapshot, self.bench.unit.firmware, lens_code=code)

    def _build_props(self) -> dict[int, _Prop]:
        state = self.bench.state

        def set_exposure(v: int | str) -> None:
            state.update(exposure_time_s=int(v) / 1e4)

        def set_iso(v: int | str) -> None:
            state.update(iso=int(v))

        def setter(name: str) -> Callable[[int | str], None]:
            def set_(v: int | str) -> None:
                setattr(self, name, v)

            return set_

        def lens_code() -> int:
            ls = self._lens_state()
            return NO_LENS_CODE if ls.lens_code is None else ls.lens_code

        def f_number() -> int:
            ls = self._lens_state()
            if ls.active_sensor is not ActiveSensor.M_MOUNT:
                return NATIVE_F_NUMBER_X100
            snap = state.snapshot()
            spec = self.bench.lenses.get(snap.lens_id) if snap.lens_id else None
            n = snap.f_number or (spec.max_f_number if spec else 0.0)
            return round(n * 100)

        def sensor() -> int:
            return ActiveSensorCode.of(self._lens_state().active_sensor)

        def crc() -> int:
            with self._lock:
                target = self._checksum_target or self._last_frame
                for obj in self._objects.values():
                    if obj.kind != "folder" and obj.info.filename == target:
                        return obj.crc32()
            return 0

        f_now = f_number()
        return {
            PropertyCode.BATTERY_LEVEL: _Prop(DataType.UINT8, PropForm.range(0, 100), lambda: 100),
            PropertyCode.FNUMBER: _Prop(DataType.UINT16, PropForm.enum((f_now,)), f_number),
            PropertyCode.EXPOSURE_TIME: _Prop(
                DataType.UINT32,
                PropForm.enum(EXPOSURE_TIME_CHOICES),
                lambda: round(state.exposure_time_s * 1e4),
                set_exposure,
                100,
            ),
            PropertyCode.EXPOSURE_INDEX: _Prop(
                DataType.UINT16, PropForm.enum(ISO_CHOICES), lambda: state.iso, set_iso, 100
            ),
            PropertyCode.LENS_ATTACHED: _Prop(
                DataType.UINT8, PropForm.enum((0, 1)), lambda: int(self._lens_state().attached)
            ),
            PropertyCode.LENS_CODE: _Prop(DataType.UINT8, PropForm(), lens_code),
            PropertyCode.ACTIVE_SENSOR: _Prop(DataType.UINT8, PropForm.enum(tuple(ActiveSensorCode)), sensor),
            PropertyCode.LENS_ATTACHED_TIME: _Prop(
                DataType.STR, PropForm(), lambda: _ms_text(self._lens_state().attached_at_ms)
            ),
            PropertyCode.SENSOR_SWITCH_TIME: _Prop(
                DataType.STR, PropForm(), lambda: _ms_text(self._lens_state().sensor_switched_at_ms)
            ),
            PropertyCode.ZEBRA_THRESHOLD: _Prop(
                DataType.UINT8, PropForm.enum(ZEBRA_CHOICES), lambda: self._zebra_pct, setter("_zebra_pct"), 90
            ),
            PropertyCode.PEAKING_THRESHOLD: _Prop(
                DataType.UINT16,
                PropForm.range(1, 1000),
                lambda: self._peaking_milli,
                setter("_peaking_milli"),
                100,
            ),
            PropertyCode.BURST_COUNT: _Prop(
                DataType.UINT16, PropForm.range(1, 64), lambda: self._burst_count, setter("_burst_count"), 1
            ),
            PropertyCode.BURST_INTERVAL: _Prop(
                DataType.UINT32,
                PropForm.range(1000, 2_000_000),
                lambda: self._burst_interval_us,
                setter("_burst_interval_us"),
                50_000,
            ),
            PropertyCode.OBJECT_CRC32: _Prop(DataType.UINT32, PropForm(), crc),
            PropertyCode.CHECKSUM_TARGET: _Prop(
                DataType.STR, PropForm(), lambda: self._checksum_target, setter("_checksum_target"), ""
            ),
            PropertyCode.PHONE_CLOCK: _Prop(DataType.STR, PropForm(), lambda: _ms_text(state.now_ns() / 1e6)),
            PropertyCode.BURST_START: _Prop(
                DataType.STR, PropForm(), lambda: self._burst_start, setter("_burst_start"), ""
            ),
        }

    def _get_prop_desc(self, request: OperationRequest, data: bytes | None) -> _Reply:
        code = _param(request, 0)
        prop = self._props.get(code)
        if prop is None:
            return _Reply(ResponseCode.DEVICE_PROP_NOT_SUPPORTED)
        current = prop.get()
        form = PropForm.enum((current,)) if code == PropertyCode.FNUMBER else prop.form
        desc = device_prop_desc(
            code,
            prop.datatype,
            writable=prop.set is not None,
            default=current if prop.default is None else prop.default,
            current=current,
            form=form,
        )
        return _Reply(data=desc)

    def _get_prop_value(self, request: OperationRequest, data: bytes | None) -> _Reply:
        prop = self._props.get(_param(request, 0))
        if prop is None:
            return _Reply(ResponseCode.DEVICE_PROP_NOT_SUPPORTED)
        return _Reply(data=pack_value(prop.datatype, prop.get()))

    def _set_prop_value(self, request: OperationRequest, data: bytes | None) -> _Reply:
        code = _param(request, 0)
        prop = self._props.get(code)
        if prop is None:
            return _Reply(ResponseCode.DEVICE_PROP_NOT_SUPPORTED)
        if prop.set is None:
            return _Reply(ResponseCode.ACCESS_DENIED)
        if data is None:
            return _Reply(ResponseCode.INVALID_DEVICE_PROP_FORMAT)
        try:
            value = unpack_value(prop.datatype, data)
        except (ProtocolViolation, UnicodeDecodeError, IndexError):
            return _Reply(ResponseCode.INVALID_DEVICE_PROP_FORMAT)
        if not prop.form.allows(value):
            log.info("refusing %s = %r: not an offered value", PropertyCode(code).name, value)
            return _Reply(ResponseCode.INVALID_DEVICE_PROP_VALUE)
        with self._lock:
            prop.set(value)
        # announced before the response, so a host that drains its events after the call sees them
        self._props_changed(PropertyCode(code))
        if code == PropertyCode.CHECKSUM_TARGET:
            self._props_changed(PropertyCode.OBJECT_CRC32)
            self._send_event(EventCode.OBJECT_CHECKSUM, self._props[PropertyCode.OBJECT_CRC32].get())
        return _Reply()

    # ------------------------------------------------------------------------------------------ lens watcher
    def _watch_loop(self) -> None:
        """Announce lens and sensor changes as events when the phone's view of the bayonet changes."""
        while not self._stop.wait(WATCH_PERIOD_S):
            try:
                now = self._lens_state()
            except Exception:  # a bench mid-update must not kill the phone; the next poll sees it settled
                log.exception("lens state poll failed")
                continue
            self._announce_shocks()
            before = self._reported
            self._reported = now
            if before is None or now == before:
                continue
            if now.attached and (not before.attached or now.attached_at_ms != before.attached_at_ms):
                self._send_event(EventCode.LENS_ATTACHED_AT, _us_low32(now.attached_at_ms))
                self._send_event(EventCode.LENS_ATTACHED, NO_LENS_CODE if now.lens_code is None else now.lens_code)
                self._props_changed(PropertyCode.LENS_ATTACHED, PropertyCode.LENS_CODE, PropertyCode.LENS_ATTACHED_TIME)
            if not now.attached and before.attached:
                self._send_event(EventCode.LENS_DETACHED)
                self._props_changed(PropertyCode.LENS_ATTACHED, PropertyCode.LENS_CODE, PropertyCode.LENS_ATTACHED_TIME)
            if now.active_sensor != before.active_sensor:
                sensor = ActiveSensorCode.of(now.active_sensor)
                if now.sensor_switched_at_ms is not None:
                    self._send_event(EventCode.SENSOR_SWITCHED_AT, _us_low32(now.sensor_switched_at_ms))
                self._send_event(EventCode.SENSOR_SWITCHED, sensor)
                self._props_changed(PropertyCode.ACTIVE_SENSOR, PropertyCode.SENSOR_SWITCH_TIME, PropertyCode.FNUMBER)

    def _announce_shocks(self) -> None:
        """The phone's accelerometer feels every knock of the bench: report each one's time once."""
        knocks = self.bench.state.snapshot().knock_times_ns
        for t_ns in knocks[self._shocks_reported :]:
            self._send_event(EventCode.SHOCK_AT, _us_low32(t_ns / 1e6))
        self._shocks_reported = len(knocks)

    def _props_changed(self, *codes: PropertyCode) -> None:
        for code in codes:
            self._send_event(EventCode.DEVICE_PROP_CHANGED, code)


@dataclass
class _Reply:
    code: ResponseCode = ResponseCode.OK
    params: tuple[int, ...] = ()
    _: KW_ONLY
    data: bytes | None = None
    abort: bool = False  # fault: drop the connection during the data phase
    after: Callable[[], None] | None = None  # work done after the response is sent


def _param(request: OperationRequest, index: int) -> int:
    return request.params[index] if index < len(request.params) else 0


def _us_low32(ms: float | None) -> int:
    """A phone-clock time as the low 32 bits of its microseconds (an event parameter is one u32)."""
    return 0 if ms is None else round(ms * 1000) & 0xFFFFFFFF


def _ms_text(ms: float | None) -> str:
    return "" if ms is None else f"{ms:.3f}"


def _cached(make: Callable[[], bytes]) -> Callable[[], bytes]:
    box: list[bytes] = []

    def load() -> bytes:
        if not box:
            box.append(make())
        return box[0]

    return load


def _flip_bits(data: bytes) -> bytes:
    """Corrupt a download the way a bad link does: a few bytes in the pixel data changed."""
    out = bytearray(data)
    rng = np.random.default_rng(len(data))
    for index in rng.integers(len(out) // 2, len(out), size=8):
        out[index] ^= 0x5A
    return bytes(out)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the host sees "connection reset", as when a phone dies."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


__all__ = ["PtpFaults", "PtpIpPeer"]
