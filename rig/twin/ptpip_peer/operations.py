"""The PTP operations the phone answers (ISO 15740 §10; the set REFERENCE.md §5 found libgphoto2 to need).

Each handler takes the request and its data-out payload and returns a :class:`Reply`; the session sends it.
Handlers touch the object store and property table only under the peer's lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import numpy as np

from rig.spec.ptp import (
    PROFILE_FILENAME,
    RING_BUFFER_MS,
    ROOT_PARENT,
    STORAGE_ID,
    EventCode,
    OperationCode,
    PhoneFolder,
    PropertyCode,
    ResponseCode,
    parse_readout_windows,
)
from rig.spec.types import AssistOutputs
from rig.twin import firmware
from rig.twin.ptpip_peer.datasets import DeviceInfo, ObjectInfo, StorageInfo
from rig.twin.ptpip_peer.events import EventChannel
from rig.twin.ptpip_peer.faults import PtpFaults
from rig.twin.ptpip_peer.properties import PropertyTable
from rig.twin.ptpip_peer.store import ObjectKind, ObjectStore
from rig.twin.ptpip_peer.wire import OperationRequest, u32_array

if TYPE_CHECKING:
    from rig.twin.world import TwinBench

log = logging.getLogger(__name__)

MANUFACTURER = "Xiaomi"
MODEL = "12S Ultra Concept"
FIRMWARE_VERSION = "V14.0.rig-twin"
"""A constant: the unit's true firmware defects are what the bench must find, not what the phone says."""
HISTOGRAM_BINS = 256
BUSY_ANSWER_S = 1.0
"""How long GetObject of an object still being computed waits for it before answering DeviceBusy (wall s): well
within the 2.5 s libgphoto2 waits for each read."""
STORAGE_CAPACITY_BYTES = 256 << 30
_ALL = 0xFFFFFFFF

SUPPORTED_OPERATIONS = (
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
"""What DeviceInfo lists; OpenSession and CloseSession are the session's own (rig.twin.ptpip_peer.session)."""


@dataclass
class Reply:
    code: ResponseCode = ResponseCode.OK
    params: tuple[int, ...] = ()
    _: KW_ONLY
    data: bytes | None = None
    abort: bool = False  # fault: drop the connection during the data phase
    stall_s: float = 0.0  # fault: go quiet this long (wall s) halfway through the data phase
    after: Callable[[], None] | None = None  # work done after the response is sent
    paced: Callable[[], None] | None = None  # called once the data is sent: waits out the data phase's real length


Handler = Callable[[OperationRequest, bytes | None], Reply]


def _param(request: OperationRequest, index: int) -> int:
    return request.params[index] if index < len(request.params) else 0


class Operations:
    """The phone's operation handlers over its store, properties and events (module docstring)."""

    def __init__(
        self,
        bench: TwinBench,
        *,
        store: ObjectStore,
        props: PropertyTable,
        events: EventChannel,
        faults: Callable[[], PtpFaults],
        lock: threading.RLock,
    ) -> None:
        self._bench = bench
        self._store = store
        self._props = props
        self._events = events
        self._faults = faults
        self._lock = lock
        self._pending_send: ObjectInfo | None = None
        self._pending_handle = 0
        self.handlers: dict[int, Handler] = {
            OperationCode.GET_DEVICE_INFO: self._get_device_info,
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

    def answer(self, request: OperationRequest, data: bytes | None, *, session_open: bool) -> Reply:
        """The reply to one operation other than OpenSession/CloseSession."""
        handler = self.handlers.get(request.opcode)
        if handler is None:
            return Reply(ResponseCode.OPERATION_NOT_SUPPORTED)
        if not session_open and request.opcode != OperationCode.GET_DEVICE_INFO:
            return Reply(ResponseCode.SESSION_NOT_OPEN)
        return handler(request, data)

    # ------------------------------------------------------------------------------------------ session
    def _get_device_info(self, request: OperationRequest, data: bytes | None) -> Reply:
        info = DeviceInfo(
            manufacturer=MANUFACTURER,
            model=MODEL,
            device_version=FIRMWARE_VERSION,
            serial_number=self._bench.unit.serial,
            operations=SUPPORTED_OPERATIONS,
            events=tuple(EventCode),
            properties=self._props.codes,
        )
        return Reply(data=info.pack())

    # ------------------------------------------------------------------------------------------ storage
    def _get_storage_ids(self, request: OperationRequest, data: bytes | None) -> Reply:
        return Reply(data=u32_array([STORAGE_ID]))

    def _get_storage_info(self, request: OperationRequest, data: bytes | None) -> Reply:
        if _param(request, 0) != STORAGE_ID:
            return Reply(ResponseCode.INVALID_STORAGE_ID)
        with self._lock:
            used = self._store.used_bytes()
        capacity = STORAGE_CAPACITY_BYTES
        return Reply(data=StorageInfo("Internal shared storage", "twin", capacity, max(capacity - used, 0)).pack())

    def _get_object_handles(self, request: OperationRequest, data: bytes | None) -> Reply:
        storage, fmt, parent = _param(request, 0), _param(request, 1), _param(request, 2)
        if storage not in (STORAGE_ID, _ALL):
            return Reply(ResponseCode.INVALID_STORAGE_ID)
        with self._lock:
            if parent not in (0, ROOT_PARENT) and not self._store.exists(parent):
                return Reply(ResponseCode.INVALID_PARENT_OBJECT)
            handles = self._store.handles(
                parent=None if parent == 0 else (0 if parent == ROOT_PARENT else parent),
                object_format=None if fmt in (0, _ALL) else fmt,
            )
        return Reply(data=u32_array(handles))

    def _get_object_info(self, request: OperationRequest, data: bytes | None) -> Reply:
        with self._lock:
            obj = self._store.get(_param(request, 0))
        if obj is None:
            return Reply(ResponseCode.INVALID_OBJECT_HANDLE)
        return Reply(data=obj.info.pack())

    def _get_object(self, request: OperationRequest, data: bytes | None) -> Reply:
        began = self._bench.hardware.monotonic()
        with self._lock:
            obj = self._store.get(_param(request, 0))
        if obj is None or obj.kind is ObjectKind.FOLDER:
            return Reply(ResponseCode.INVALID_OBJECT_HANDLE)
        if obj.ready is not None and not obj.ready(BUSY_ANSWER_S):
            # PTP's Device Busy (0x2019) and the host asks again; a phone silent until the data is ready would
            # outlast libgphoto2's 2.5 s read instead (rig.twin.ptpip_peer.faults)
            log.info("%s is still being computed: DeviceBusy", obj.info.filename)
            return Reply(ResponseCode.DEVICE_BUSY)
        payload = obj.data()
        if obj.kind is ObjectKind.FRAME and self._take_fault("drop_downloads"):
            return Reply(data=payload, abort=True)
        if obj.kind is ObjectKind.FRAME and self._take_fault("corrupt_downloads"):
            log.info("fault: serving %s with flipped bits", obj.info.filename)
            payload = _flip_bits(payload)
        if obj.kind in (ObjectKind.FRAME, ObjectKind.ASSIST) and self._take_fault("stalled_downloads"):
            with self._lock:
                stall_s = self._faults().stall_s
            log.info("fault: %s will stall for %.1f s halfway", obj.info.filename, stall_s)
            return Reply(data=payload, stall_s=stall_s)
        if obj.kind is ObjectKind.FRAME:
            # a frame's download takes what its USB transfer would (a real phone's data phase is that long)
            size = len(payload)
            return Reply(data=payload, paced=lambda: self._bench.pace_transfer(size, began_monotonic_s=began))
        return Reply(data=payload)

    def _delete_object(self, request: OperationRequest, data: bytes | None) -> Reply:
        handle = _param(request, 0)
        with self._lock:
            if handle == _ALL:
                doomed = self._store.files()
            elif (obj := self._store.get(handle)) is not None:
                doomed = [obj]
            else:
                return Reply(ResponseCode.INVALID_OBJECT_HANDLE)
            if any(o.kind is ObjectKind.FOLDER for o in doomed):
                return Reply(ResponseCode.OBJECT_WRITE_PROTECTED)
            self._store.remove(doomed)
        return Reply()

    def _send_object_info(self, request: OperationRequest, data: bytes | None) -> Reply:
        if data is None:
            return Reply(ResponseCode.INVALID_PARAMETER)
        info = ObjectInfo.unpack(data)
        rig_folder = self._store.folders[PhoneFolder.CALIBRATION]
        if info.filename != PROFILE_FILENAME:
            log.info("refusing SendObjectInfo for %r: only %s is writable", info.filename, PROFILE_FILENAME)
            return Reply(ResponseCode.ACCESS_DENIED)
        if _param(request, 1) not in (0, ROOT_PARENT, rig_folder):
            return Reply(ResponseCode.INVALID_PARENT_OBJECT)
        with self._lock:
            self._pending_send = info
            self._pending_handle = self._store.new_handle()
            return Reply(params=(STORAGE_ID, rig_folder, self._pending_handle))

    def _send_object(self, request: OperationRequest, data: bytes | None) -> Reply:
        with self._lock:
            info, self._pending_send = self._pending_send, None
            if info is None:
                return Reply(ResponseCode.NO_VALID_OBJECT_INFO)
            if data is None:
                return Reply(ResponseCode.INCOMPLETE_TRANSFER)
            self._bench.state.update(profile=bytes(data))
            self._store.install_profile(bytes(data), self._pending_handle)
        return Reply()

    # ------------------------------------------------------------------------------------------ properties
    def _get_prop_desc(self, request: OperationRequest, data: bytes | None) -> Reply:
        desc = self._props.describe(_param(request, 0))
        return Reply(ResponseCode.DEVICE_PROP_NOT_SUPPORTED) if desc is None else Reply(data=desc)

    def _get_prop_value(self, request: OperationRequest, data: bytes | None) -> Reply:
        value = self._props.packed_value(_param(request, 0))
        return Reply(ResponseCode.DEVICE_PROP_NOT_SUPPORTED) if value is None else Reply(data=value)

    def _set_prop_value(self, request: OperationRequest, data: bytes | None) -> Reply:
        code = _param(request, 0)
        with self._lock:
            result = self._props.set(code, data)
        if result is not ResponseCode.OK:
            return Reply(result)
        # announced before the response, so a host that drains its events after the call sees them
        self._events.props_changed(PropertyCode(code))
        if code == PropertyCode.CHECKSUM_TARGET:
            self._events.props_changed(PropertyCode.OBJECT_CRC32)
            self._events.send(EventCode.OBJECT_CHECKSUM, self._props.object_crc32())
        return Reply()

    # ------------------------------------------------------------------------------------------ capture
    def _initiate_capture(self, request: OperationRequest, data: bytes | None) -> Reply:
        if self._take_fault("stuck_captures"):
            log.info("fault: capture accepted but it will never complete")
            return Reply()
        return Reply(after=self._capture)

    def _capture(self) -> None:
        """Render, store and announce: runs after the OK response, as a camera finishes exposing later."""
        settings = self._props.settings
        sensor_size = self._bench.station.sensor
        with self._lock:
            count, interval_s = settings.burst_count, settings.burst_interval_us / 1e6
            zebra_pct, peaking = float(settings.zebra_pct), settings.peaking_milli / 1000.0
            start_ns = self._burst_start_ns(settings.burst_start)
            settings.burst_start = ""  # one-shot
            # validated when it was set (PropertyTable): one exposure, one object per window
            windows = parse_readout_windows(
                settings.readout_windows,
                sensor_width_px=sensor_size.full_width_px,
                sensor_height_px=sensor_size.full_height_px,
            )
        if windows:
            frames = self._bench.capture_windows(windows)
        elif count == 1 and start_ns is None:
            frames = [self._bench.capture()]
        else:
            frames = self._bench.capture_burst(count, frame_interval_s=interval_s, start_ns=start_ns)
        kept = [(frame, self._stored_dng(frame.dng)) for frame in frames]
        sensor, unit_firmware, raw = self._bench.station.sensor, self._bench.unit.firmware, frames[-1].raw

        def assist() -> AssistOutputs:
            return firmware.assist_outputs(
                raw,
                unit_firmware,
                black_level=sensor.black_level_dn,
                white_level=sensor.white_level_dn,
                zebra_threshold_pct=zebra_pct,
                peaking_threshold=peaking,
                histogram_bins=HISTOGRAM_BINS,
            )

        with self._lock:
            stored = self._store.store_capture(
                kept, assist, histogram_bins=HISTOGRAM_BINS, zebra_pct=zebra_pct, peaking=peaking
            )
        for handle in stored.removed_handles:
            self._events.send(EventCode.OBJECT_REMOVED, handle)
        # libgphoto2 reads the ObjectInfo of every ObjectAdded but returns the *last* one as the capture's file:
        # the assists go first and the frames last, so a burst's newest frame is what capture() reports
        for handle in (*stored.assist_handles, *stored.frame_handles):
            self._events.send(EventCode.OBJECT_ADDED, handle)
        self._events.props_changed(PropertyCode.OBJECT_CRC32)
        self._events.send(EventCode.CAPTURE_COMPLETE)

    def _stored_dng(self, dng: bytes) -> bytes:
        if self._take_fault("truncated_frames"):
            log.info("fault: storing a truncated frame")
            return dng[: len(dng) * 2 // 3]
        return dng

    def _burst_start_ns(self, text: str) -> int | None:
        """The ring-buffer start of the next burst (ns on the phone clock), clamped to what the buffer holds."""
        text = text.strip()
        if not text:
            return None
        try:
            # decimal, not float: ms since the epoch × 1e6 is beyond float64's exact integers (256 ns steps there),
            # and a burst must start exactly where it was asked, relative to the knock it follows
            start_ns = int(Decimal(text).scaleb(6).to_integral_value())
        except (InvalidOperation, ValueError, OverflowError):
            log.info("ignoring BurstStart %r: not a time in ms", text)
            return None
        now_ns = self._bench.state.now_ns()
        return min(max(start_ns, now_ns - round(RING_BUFFER_MS * 1e6)), now_ns)

    def _take_fault(self, name: str) -> bool:
        with self._lock:
            faults = self._faults()
            left = getattr(faults, name)
            if left > 0:
                setattr(faults, name, left - 1)
                return True
            return False


def _flip_bits(data: bytes) -> bytes:
    """Corrupt a download the way a bad link does: a few bytes in the pixel data changed."""
    out = bytearray(data)
    rng = np.random.default_rng(len(data))
    for index in rng.integers(len(out) // 2, len(out), size=8):
        out[index] ^= 0x5A
    return bytes(out)
