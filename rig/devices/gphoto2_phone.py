"""The phone under test over PTP, through libgphoto2 (python-gphoto2): USB on a line, PTP/IP on the twin.

The driver never knows which (DESIGN.md §8.3): the station file's ``phone.port`` is a gphoto2 port string,
``usb:BUS,DEV`` or ``ptpip:HOST[:PORT[:EVENTPORT]]``. The phone's vendor properties and assist objects are the
ones :mod:`rig.spec.ptp` and :mod:`rig.spec.ptp_assist` define; libgphoto2 shows vendor properties
of a generic PTP device as widgets of its ``other`` config section named by hex code (``d003``).

Every libgphoto2 call runs on the driver's own worker thread and is waited for at most its timeout: libgphoto2
can block (a capture whose completion event never comes blocks it indefinitely, REFERENCE.md §5), and a bench
must not. A call that overruns raises :class:`DeviceTimeout` and leaves the driver *lost*: the blocked call still
owns the camera, so the next step must ``close()`` and ``open()`` again. A dropped connection raises
:class:`DeviceLost`; other PTP failures raise :class:`DeviceCommandError`; a frame that fails validation (size,
CRC-32 against the phone's property, strict DNG parse) raises :class:`FrameError` so the plan can recapture.

Latency: over USB a PTP transaction is bulk transfers with no Nagle and no delayed ACK. Over PTP/IP libgphoto2
does not set ``TCP_NODELAY`` (camlibs/ptp2/ptpip.c ``ptp_ptpip_connect``), so its data phase after an
OperationRequest waits for the phone's ACK: a PTP/IP phone must ACK at once (``TCP_QUICKACK``, re-armed before
every read, as the twin's peer does, :mod:`rig.twin.ptpip_peer.wire`) or every property set costs ~45 ms.

A slow transfer (a busy phone, a slow link): libgphoto2 waits at most 2.5 s for each read on a PTP/IP socket
(``PTPIP_DEFAULT_TIMEOUT_S`` 2 + ``PTPIP_DEFAULT_TIMEOUT_MS`` 500, compiled in: camlibs/ptp2/ptpip-private.h,
used by ``ptpip_read_with_timeout`` in camlibs/ptp2/ptpip.c). It is not settable: the PTP/IP camlib reads its
own sockets, so ``gp_port_set_timeout`` (the port's timeout, which the USB path uses) does not reach it. A phone
silent for longer mid-transfer fails the GetObject; with libgphoto2 2.5.34 that surfaces as ``[-7] I/O problem``
("read PTPIPHeader: Connection timed out", tried), and the rest of the data, arriving later, puts the command
stream out of step: the next transaction reads a reply of an earlier one, which ``ptp_transaction_new``
(camlibs/ptp2/ptp.c, "Sequence number mismatch") reports as ``PTP_ERROR_BADPARAM``, ``[-2] Bad parameters``.
A phone that answers GetObject with Device Busy (ISO 15740 response code 0x2019, as the twin does for an assist
output it is still computing; ``translate_ptp_result`` in camlibs/ptp2/library.c makes it GP_ERROR_CAMERA_BUSY,
``[-110]``) is asked again every ``BUSY_RETRY_S`` within the download's deadline (no reconnect: its session is
in step).
The driver bounds each download itself, by the object's size: ``timeout_s + size /
min_transfer_bytes_per_s``; and when a download breaks while the link is up (a timeout, bad parameters, or an
I/O error with the event channel still answering) it ends the session, opens a new one and downloads the same
object once more (it is still on the phone), noting the retry in its :class:`~rig.devices.retry.RetryLog`. A
second failure is raised as :class:`DeviceLost` with both reasons on one line. A link that is really gone
(reset, unplugged) is :class:`DeviceLost` at once, as before: the bench reconnects and recaptures.

Captured frames are not deleted from the phone: python-gphoto2 keeps the GIL inside ``gp_camera_file_delete``,
which deadlocks against a responder in the same process (the twin) until libgphoto2's 2.5 s read timeout; the
phone keeps a ring of recent frames instead. The profile slot is emptied with ``folder_delete_all``, which
releases the GIL.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any, Self, TypeVar

import gphoto2 as gp

from rig.devices.retry import RetryLog, with_retries
from rig.errors import (
    ArgumentError,
    DeviceCommandError,
    DeviceError,
    DeviceLost,
    DeviceStateError,
    DeviceTimeout,
    FrameError,
    ImageInputError,
)
from rig.spec import ptp_assist
from rig.spec.capture_state import read_readout_window
from rig.spec.dng import read_dng
from rig.spec.ptp import (
    FRAME_NAME,
    FRAME_NAME_RE,
    MAX_READOUT_WINDOWS,
    MAX_WINDOW_SIDE_PX,
    MIN_WINDOW_SIDE_PX,
    NO_LENS_CODE,
    PROFILE_FILENAME,
    STORAGE_ID,
    ActiveSensorCode,
    AssistSuffix,
    EventCode,
    OperationCode,
    PhoneFolder,
    PropertyCode,
    ReadoutWindow,
    readout_windows_text,
)
from rig.spec.types import ActiveSensor, AssistOutputs, Capture, Exposure, LensState, PhoneIdentity

T = TypeVar("T")
log = logging.getLogger(__name__)

PTPIP_MODEL = "PTP/IP Camera"
STORE = f"/store_{STORAGE_ID:08x}"
CAPTURE_FOLDER = f"{STORE}/{PhoneFolder.CAPTURES.value}"
PROFILE_FOLDER = f"{STORE}/{PhoneFolder.CALIBRATION.value}"
MAX_BURST = 64
MAX_PTP_STRING_CHARS = 254  # ISO 15740 §5.3.5: a PTP string's length byte counts its terminating null too
MIN_BURST_INTERVAL_US = 1_000  # the phone's burst interval property range (µs)
MAX_BURST_INTERVAL_US = 2_000_000
_MAX_EVENTS_PER_DRAIN = 10_000
_VENDOR_EVENT_RE = re.compile(r"^PTP Event ([0-9a-fA-F]{4}), Param1 ([0-9a-fA-F]{8})")
DEFAULT_MIN_TRANSFER_BYTES_PER_S = 20e6
"""The slowest sustained PTP transfer a download is allowed by default (bytes/s): a tenth of the 200 MB/s the
hardware-time ledger assumes for USB 3 (:class:`rig.twin.hardware_time.HardwareCosts`), so a full 8192 × 6144
DNG (~100 MB) gets 5 s on top of the per-call timeout."""
DOWNLOAD_ATTEMPTS = 2  # the first try and one more after reconnecting
REDOWNLOAD_BACKOFF_S = 0.2
"""Pause before the second download, after the new session is open."""
REOPEN_ATTEMPTS = 4
REOPEN_BACKOFF_S = 0.5
"""A phone still finishing the broken transfer holds its one session slot a moment: 0.5, 1, then 2 s."""
BUSY_RETRY_S = 0.1
"""Pause before asking a phone that answered Device Busy again."""
_PORT_RE = re.compile(r"^(usb:.*|ptpip:(?P<host>[^:]+)(:(?P<port>\d{1,5})(:(?P<evt>\d{1,5}))?)?)$")

# libgphoto2 results of a GetObject whose transfer broke: the download is repeated in a new session when the link
# is still up (module docstring).
_BROKEN_TRANSFER_CODES = frozenset({gp.GP_ERROR_TIMEOUT, gp.GP_ERROR_BAD_PARAMETERS})

# libgphoto2 results that mean the link to the phone is gone (GPhoto2Error.code).
_LOST_CODES = frozenset(
    {
        gp.GP_ERROR_IO,
        gp.GP_ERROR_IO_INIT,
        gp.GP_ERROR_IO_READ,
        gp.GP_ERROR_IO_WRITE,
        gp.GP_ERROR_IO_UPDATE,
        gp.GP_ERROR_IO_LOCK,
        gp.GP_ERROR_IO_USB_CLAIM,
        gp.GP_ERROR_IO_USB_FIND,
        gp.GP_ERROR_IO_USB_CLEAR_HALT,
        gp.GP_ERROR_MODEL_NOT_FOUND,
        gp.GP_ERROR_UNKNOWN_PORT,
    }
)

_log_callback: Any = None
_log_lock = threading.Lock()


def _route_gphoto2_log() -> None:
    """Send libgphoto2's log to the ``gphoto2`` logger, once per process (it is a process-wide hook)."""
    global _log_callback
    with _log_lock:
        if _log_callback is None:
            _log_callback = gp.use_python_logging(
                mapping={
                    gp.GP_LOG_ERROR: logging.INFO,  # libgphoto2 logs expected misses (probes) as errors
                    gp.GP_LOG_VERBOSE: logging.DEBUG,
                    gp.GP_LOG_DEBUG: logging.DEBUG - 3,
                    gp.GP_LOG_DATA: logging.DEBUG - 6,
                }
            )


def normalise_port(port: str) -> str:
    """Validate a gphoto2 port string; ``ptpip:HOST:PORT`` gets the event port PTP/IP uses, the same ``PORT``.

    libgphoto2 takes the event port from a fourth field and otherwise uses 15740 (REFERENCE.md §5), which fails
    against any responder on a non-default port.
    """
    match = _PORT_RE.match(port)
    if match is None:
        raise ArgumentError(f'phone port {port!r}: expected "usb:BUS,DEV" or "ptpip:HOST[:PORT[:EVENTPORT]]"')
    for field_name in ("port", "evt"):
        value = match.group(field_name)
        if value is not None and not 0 < int(value) < 65536:
            raise ArgumentError(f"phone port {port!r}: TCP port {value} outside 1..65535")
    if match.group("port") and not match.group("evt"):
        return f"{port}:{match.group('port')}"
    return port


class _Worker:
    """One daemon thread that runs libgphoto2 calls; callers wait with a deadline."""

    def __init__(self, name: str) -> None:
        self._queue: SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn = item
            del item  # hold no reference to a finished call's closure (it may own the camera)
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # handed to the waiting caller, which re-raises it
                    future.set_exception(exc)
            del future, fn

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((future, fn))
        return future

    def call(self, fn: Callable[[], T], timeout_s: float) -> T:
        return self.submit(fn).result(timeout=timeout_s)

    def stop(self) -> None:
        self._queue.put(None)


class TransferInterrupted(DeviceError):
    """A download broke while the link to the phone stayed up (a stall, a stream out of step): the session is
    unusable, the object is still on the phone."""


class PhoneBusy(DeviceCommandError):
    """The phone answered Device Busy (0x2019): the same request may succeed when asked again."""


@dataclass(frozen=True)
class _LastCapture:
    folder: str
    stem: str


class Gphoto2Phone:
    """:class:`rig.devices.protocols.Phone` over libgphoto2.

    Parameters
    ----------
    port
        gphoto2 port: ``usb:BUS,DEV`` or ``ptpip:HOST[:PORT[:EVENTPORT]]`` (the twin's peer gives the latter).
    timeout_s
        Bound on every call to the phone, s; a capture adds its exposure and burst time, a download its size
        over ``min_transfer_bytes_per_s``.
    min_transfer_bytes_per_s
        The slowest sustained transfer rate allowed (bytes/s; the station's ``phone.min_transfer_bytes_per_s``).
    retries
        Where the driver notes a download it repeated after reconnecting (the bench's step log; default its own).
    logger
        This instance's logger (default ``rig.devices.gphoto2_phone.<port>``).
    """

    def __init__(
        self,
        port: str,
        *,
        timeout_s: float = 10.0,
        min_transfer_bytes_per_s: float = DEFAULT_MIN_TRANSFER_BYTES_PER_S,
        retries: RetryLog | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if not timeout_s > 0:
            raise ArgumentError(f"phone timeout_s = {timeout_s}: expected a number of seconds > 0")
        if not min_transfer_bytes_per_s > 0:
            raise ArgumentError(
                f"phone min_transfer_bytes_per_s = {min_transfer_bytes_per_s}: expected a rate in bytes/s > 0"
            )
        self.port = normalise_port(port)
        self.timeout_s = timeout_s
        self.min_transfer_bytes_per_s = min_transfer_bytes_per_s
        self.retries = retries if retries is not None else RetryLog()
        self.log = logger or logging.getLogger(f"{__name__}.{self.port}")
        self._camera: Any = None
        self._worker: _Worker | None = None
        self._lost: str | None = None
        self._stuck = False  # a call overran its timeout and may still be blocked inside libgphoto2
        self._identity: PhoneIdentity | None = None
        self._burst_count: int | None = None
        self._last: _LastCapture | None = None
        self._lens: LensState | None = None
        self._pending_attach_ms: float | None = None
        self._pending_switch_ms: float | None = None
        self._probe_events: list[tuple[EventCode, int]] = []
        self._last_shock_ms: float | None = None
        self._burst_interval_us: int | None = None
        self._windows: str | None = None  # the phone's ReadoutWindows as this session set it (None: unknown)
        # the exposure time the phone last said it holds, this session (None: ask); a capture's budget needs it, and
        # reading the shutter speed costs a PTP round trip with its choices (4-5 ms a frame on the twin)
        self._exposure_s: float | None = None
        self._last_frame_bytes = 0  # size of the last frame downloaded (a burst's capture budget grows with it)

    # ------------------------------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        if self._camera is not None:
            raise DeviceStateError(f"phone {self.port}: open() called while already open")
        _route_gphoto2_log()
        self._worker = _Worker(f"gphoto2-{self.port}")
        self._lost = None
        self._stuck = False
        self._burst_count = None
        self._burst_interval_us = None
        self._windows = None
        self._exposure_s = None
        self._last = None
        try:
            self._camera = self._call("connect", self._connect, self.timeout_s)
            self._identity = self._read_identity()
            self._lens = self._read_lens_properties()
        except BaseException:
            self.close()
            raise
        self.log.info("opened %s: %s", self.port, self._identity)

    def _connect(self) -> Any:
        with _fd0_guard():
            camera = gp.Camera()
            ports = gp.PortInfoList()
            ports.load()
            camera.set_port_info(ports[ports.lookup_path(self.port)])
            if self.port.startswith("ptpip:"):
                # PTP/IP is never autodetected: name the generic PTP/IP driver, as `gphoto2 --camera` does
                abilities = gp.CameraAbilitiesList()
                abilities.load()
                camera.set_abilities(abilities[abilities.lookup_model(PTPIP_MODEL)])
            try:
                camera.init()
            except gp.GPhoto2Error:
                del camera  # freed here, inside the guard
                raise
            return camera

    def close(self) -> None:
        camera, worker, stuck = self._camera, self._worker, self._stuck
        self._camera = None
        self._worker = None
        self._identity = None
        if worker is None:
            return
        # The worker, not this thread, ends the session and drops the last reference to the camera: after a
        # timeout the blocked call must finish first, and libgphoto2's teardown must run under _fd0_guard.
        holder = [camera] if camera is not None else []
        del camera
        release = worker.submit(lambda: _release(holder))
        worker.stop()
        if not stuck:
            try:
                release.result(timeout=min(self.timeout_s, 5.0))
            except TimeoutError:
                self.log.warning("closing %s: the phone did not end the session in time", self.port)

    @property
    def is_open(self) -> bool:
        """Open and not known to be lost (a lost phone needs close() + open())."""
        return self._camera is not None and self._lost is None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ calls
    def _worker_call(self, fn: Callable[[], T], timeout_s: float) -> T:
        assert self._worker is not None
        return self._worker.call(fn, timeout_s)

    def _call(self, what: str, fn: Callable[[], T], timeout_s: float | None = None, *, transfer: bool = False) -> T:
        """Run ``fn`` on the worker within the timeout; map libgphoto2's failures onto DeviceError (``transfer``:
        ``fn`` is a GetObject, whose broken transfer on a live link is :class:`TransferInterrupted`)."""
        if self._worker is None:
            raise DeviceStateError(f"phone {self.port}: {what} needs open() first")
        if self._lost is not None:
            raise DeviceLost(f"phone {self.port}: {what} impossible, the connection was lost earlier ({self._lost})")
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            return self._worker_call(fn, timeout_s)
        except TimeoutError:
            self._lost = f"{what} timed out"
            self._stuck = True
            raise DeviceTimeout(f"phone {self.port}: {what} did not finish within {timeout_s:.1f} s") from None
        except gp.GPhoto2Error as exc:
            raise self._map_error(what, exc, transfer=transfer) from exc

    def _map_error(self, what: str, exc: gp.GPhoto2Error, *, transfer: bool = False) -> DeviceError:
        if exc.code == gp.GP_ERROR_CAMERA_BUSY:
            return PhoneBusy(f"phone {self.port}: {what}: the phone is busy ({exc})", code=exc.code)
        if transfer and exc.code in _BROKEN_TRANSFER_CODES | _LOST_CODES and self._alive():
            return TransferInterrupted(f"phone {self.port}: {what} broke off ({exc})")
        if exc.code in _LOST_CODES:
            self._lost = f"{what}: {exc}"
            return DeviceLost(f"phone {self.port}: connection lost during {what} ({exc})")
        if exc.code == gp.GP_ERROR_TIMEOUT:
            return DeviceTimeout(f"phone {self.port}: {what} timed out in libgphoto2 ({exc})")
        if not self._alive():
            # libgphoto2 reports a stream the phone closed as a generic or parameter error: tell it from a refusal
            self._lost = f"{what}: {exc}"
            return DeviceLost(f"phone {self.port}: connection lost during {what} ({exc})")
        return DeviceCommandError(f"phone {self.port}: {what} failed ({exc})", code=exc.code)

    def _alive(self) -> bool:
        """Whether the link still works: poll the event channel, which always touches the socket (property
        reads may be served from libgphoto2's cache)."""
        camera = self._camera
        if camera is None or self._worker is None:  # a connect that failed: nothing is alive
            return False
        try:
            kind, data = self._worker_call(lambda: camera.wait_for_event(0), 3.0)
        except (TimeoutError, gp.GPhoto2Error):
            return False
        if kind == gp.GP_EVENT_UNKNOWN and isinstance(data, str):
            self._take_vendor_event(data)  # the probe must not swallow a lens or checksum event
        return True

    # ------------------------------------------------------------------------------------------ properties
    def _pump_events(self) -> list[tuple[EventCode, int]]:
        """Read the phone's pending events; apply the lens/sensor ones; return the vendor events seen.

        libgphoto2 serves property values from a cache for up to two seconds, so volatile state (lens, sensor
        switch, CRC-32) is taken from the phone's events, which are read fresh.
        """
        camera = self._camera

        def drain() -> list[str]:
            texts: list[str] = []
            for _ in range(_MAX_EVENTS_PER_DRAIN):
                kind, data = camera.wait_for_event(0)
                if kind == gp.GP_EVENT_TIMEOUT:
                    break
                if kind == gp.GP_EVENT_UNKNOWN and isinstance(data, str):
                    texts.append(data)
            return texts

        texts = self._call("reading events", drain)
        seen = [*self._probe_events, *(e for t in texts if (e := self._take_vendor_event(t, keep=False)))]
        self._probe_events.clear()
        return seen

    def _take_vendor_event(self, text: str, *, keep: bool = True) -> tuple[EventCode, int] | None:
        """Parse libgphoto2's text for an unknown event; apply it; ``keep`` it for the next _pump_events."""
        match = _VENDOR_EVENT_RE.match(text)
        if match is None:
            return None
        try:
            code = EventCode(int(match.group(1), 16))
        except ValueError:
            return None
        event = (code, int(match.group(2), 16))
        self._apply_event(*event)
        if keep:
            self._probe_events.append(event)
        return event

    def _apply_event(self, code: EventCode, param: int) -> None:
        if code == EventCode.SHOCK_AT:
            self._last_shock_ms = self._unwrap_us(param)
            return
        lens = self._lens
        if lens is None:
            return
        if code == EventCode.LENS_ATTACHED_AT:
            self._pending_attach_ms = self._unwrap_us(param)
        elif code == EventCode.LENS_ATTACHED:
            self._lens = LensState(
                attached=True,
                lens_code=None if param == NO_LENS_CODE else param,
                active_sensor=ActiveSensor.MAIN,
                attached_at_ms=self._pending_attach_ms,
            )
        elif code == EventCode.LENS_DETACHED:
            self._lens = LensState(attached=False, lens_code=None, active_sensor=ActiveSensor.MAIN)
        elif code == EventCode.SENSOR_SWITCHED_AT:
            self._pending_switch_ms = self._unwrap_us(param)
        elif code == EventCode.SENSOR_SWITCHED:
            sensor = ActiveSensorCode.M_MOUNT if param == ActiveSensorCode.M_MOUNT else ActiveSensorCode.MAIN
            to_m_mount = sensor is ActiveSensorCode.M_MOUNT
            self._lens = LensState(
                attached=lens.attached,
                lens_code=lens.lens_code,
                active_sensor=sensor.sensor,
                attached_at_ms=lens.attached_at_ms,
                sensor_switched_at_ms=self._pending_switch_ms if to_m_mount else None,
            )

    def _unwrap_us(self, low32: int) -> float:
        """Phone-clock ms from the low 32 bits of µs, next to the phone's clock (wraps every 71 min)."""
        now_us = round((self._vendor_ms(PropertyCode.PHONE_CLOCK) or 0.0) * 1000)
        back = (now_us - low32) % (1 << 32)
        if back > 1 << 31:  # the event is a little ahead of a cached clock reading
            back -= 1 << 32
        return (now_us - back) / 1000.0

    def _get_widget(self, name: str) -> Any:
        camera = self._camera
        return self._call(f"reading {name}", lambda: camera.get_single_config(name))

    def _get_value(self, name: str) -> str:
        return str(self._get_widget(name).get_value())

    def _set_value(self, name: str, value: str | float) -> None:
        camera = self._camera

        def put() -> None:
            widget = camera.get_single_config(name)
            # libgphoto2 shows a numeric range as a slider (float) or, when short, as a menu of decimal strings
            widget.set_value(float(value) if widget.get_type() == gp.GP_WIDGET_RANGE else str(value))
            camera.set_single_config(name, widget)

        self._call(f"setting {name} = {value!r}", put)

    def _vendor_int(self, code: PropertyCode) -> int:
        # libgphoto2 prints integer properties without a form as signed 32-bit decimal text
        text = self._get_value(code.widget)
        try:
            return int(float(text)) & 0xFFFFFFFF
        except ValueError:
            raise DeviceCommandError(f"phone {self.port}: property {code.name} = {text!r}: not a number") from None

    def _vendor_ms(self, code: PropertyCode) -> float | None:
        text = self._get_value(code.widget).strip()
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise DeviceCommandError(f"phone {self.port}: property {code.name} = {text!r}: not a time in ms") from None

    # ------------------------------------------------------------------------------------------ Phone API
    def identity(self) -> PhoneIdentity:
        if self._identity is None:
            raise DeviceStateError(f"phone {self.port}: identity() needs open() first")
        return self._identity

    def _read_identity(self) -> PhoneIdentity:
        return PhoneIdentity(
            manufacturer=self._get_value("manufacturer"),
            model=self._get_value("cameramodel"),
            serial=self._get_value("serialnumber"),
            firmware=self._get_value("deviceversion"),
        )

    def get_exposure(self) -> Exposure:
        self._exposure_s = None
        return Exposure(exposure_time_s=self._exposure_time_s(), iso=int(self._get_value("iso")))

    def _exposure_time_s(self) -> float:
        """The exposure time the phone holds (s): asked once a session and after every change this driver made."""
        if self._exposure_s is None:
            self._exposure_s = _parse_shutter(self._get_value("shutterspeed"))
        return self._exposure_s

    def set_exposure(self, *, exposure_time_s: float | None = None, iso: int | None = None) -> Exposure:
        """Set the exposure time (s) and/or ISO to values the phone offers; anything else raises ArgumentError."""
        self._exposure_s = None
        if exposure_time_s is not None:
            widget = self._get_widget("shutterspeed")
            choices = [str(c) for c in widget.get_choices()]
            match = [c for c in choices if math.isclose(_parse_shutter(c), exposure_time_s, rel_tol=1e-6)]
            if not match:
                offered = ", ".join(f"{_parse_shutter(c):g}" for c in choices)
                raise ArgumentError(f"exposure_time_s = {exposure_time_s!r}: the phone offers only {offered} s")
            self._set_value("shutterspeed", match[0])
        if iso is not None:
            choices = [str(c) for c in self._get_widget("iso").get_choices()]
            if str(iso) not in choices:
                raise ArgumentError(f"iso = {iso!r}: the phone offers only {', '.join(choices)}")
            self._set_value("iso", str(iso))
        return self.get_exposure()

    def capture(self) -> Capture:
        self._use_windows(())
        return self._capture(1)[0]

    def capture_windows(self, windows: Sequence[ReadoutWindow]) -> list[Capture]:
        """One exposure read out as ``windows`` at the sensor's native pitch (the phone's ``ReadoutWindows``,
        :mod:`rig.spec.ptp`): one validated DNG per window, in the order given, each saying where it sits.

        Raises
        ------
        ArgumentError
            No windows, or windows the phone refuses (odd, outside the sensor, too many, too large, overlapping):
            one line with the value and the phone's rules.
        FrameError
            A window's DNG does not say it is the window asked for (size or its XMP).
        """
        windows = tuple(windows)
        if not windows:
            raise ArgumentError("readout windows: expected at least one x,y,w,h window")
        self._use_windows(windows)
        captures = self._capture(len(windows), windows=True)
        for capture, window in zip(captures, windows, strict=True):
            try:
                state = read_readout_window(capture.dng, source=capture.filename)
            except ImageInputError as exc:
                raise FrameError(f"phone {self.port}: {exc}") from exc
            if state is None or state.window != window:
                got = "no window" if state is None else f"window {state.window.text}"
                raise FrameError(f"phone {self.port}: {capture.filename} holds {got}, expected window {window.text}")
        return captures

    def _use_windows(self, windows: tuple[ReadoutWindow, ...]) -> None:
        """Have the phone read out ``windows`` (none: the whole sensor) at the next capture."""
        text = readout_windows_text(windows)
        if text == self._windows:
            return
        if len(text) > MAX_PTP_STRING_CHARS:
            raise ArgumentError(
                f"readout windows {text[:40]!r}…: {len(text)} characters, a PTP string holds {MAX_PTP_STRING_CHARS} "
                f"(at most {MAX_READOUT_WINDOWS} windows)"
            )
        widget = PropertyCode.READOUT_WINDOWS.widget
        reason = "InvalidDevicePropValue"
        try:
            self._set_value(widget, text)
            # libgphoto2 2.5.34 returns GP_OK from set_single_config of a generic ("other") property whatever the
            # phone answered: InvalidDevicePropValue (0x201C) only becomes a context message ("was not set",
            # tried); its get_single_config asks the phone afresh (GetDevicePropDesc), so the value the phone holds
            # tells whether it took the windows
            held = self._get_value(widget)
        except DeviceCommandError as exc:
            if not self._alive():
                raise
            held, reason = None, str(exc)
        if held != text:
            self._windows = held
            raise ArgumentError(
                f"readout windows {text!r}: refused by the phone ({reason}); expected at most {MAX_READOUT_WINDOWS} "
                f"windows x,y,w,h of even native pixels, {MIN_WINDOW_SIDE_PX}..{MAX_WINDOW_SIDE_PX} px a side, "
                "inside the sensor, not overlapping"
            )
        self._windows = text

    def capture_burst(
        self,
        count: int,
        *,
        interval_s: float | None = None,
        start_ms: float | None = None,
        on_capture: Callable[[int, Capture], None] | None = None,
    ) -> list[Capture]:
        """``count`` frames from one shutter press, ``interval_s`` apart (default: the phone's setting), oldest
        first, each validated and timestamped by the phone. ``start_ms`` (phone clock, in the last
        ``RING_BUFFER_MS``) takes them from the phone's zero-shutter-lag ring buffer, e.g. from just before a
        knock the phone's accelerometer timed. ``on_capture(index, capture)`` gets each frame as soon as it is
        downloaded and its CRC and DNG checked, before the next download (:meth:`rig.devices.protocols.Phone.
        capture_burst`)."""
        if not isinstance(count, int) or not 1 <= count <= MAX_BURST:
            raise ArgumentError(f"burst count = {count!r}: expected an integer 1..{MAX_BURST}")
        if interval_s is not None:
            interval_us = round(interval_s * 1e6)
            if not MIN_BURST_INTERVAL_US <= interval_us <= MAX_BURST_INTERVAL_US:
                raise ArgumentError(
                    f"burst interval_s = {interval_s!r}: expected {MIN_BURST_INTERVAL_US / 1e6:g}"
                    f"..{MAX_BURST_INTERVAL_US / 1e6:g} s"
                )
            if interval_us != self._burst_interval_us:
                self._set_value(PropertyCode.BURST_INTERVAL.widget, interval_us)
                self._burst_interval_us = interval_us
        self._use_windows(())
        if start_ms is not None:
            self._set_value(PropertyCode.BURST_START.widget, f"{start_ms:.3f}")
        return self._capture(count, on_capture=on_capture)

    def exposure_choices(self) -> list[float]:
        """The exposure times the phone offers, s (ascending)."""
        widget = self._get_widget("shutterspeed")
        return sorted(_parse_shutter(str(c)) for c in widget.get_choices())

    def last_shock_ms(self) -> float | None:
        """When the phone's accelerometer last felt a shock (phone clock, ms; from its SHOCK_AT event)."""
        self._pump_events()
        return self._last_shock_ms

    def _capture(
        self, count: int, *, windows: bool = False, on_capture: Callable[[int, Capture], None] | None = None
    ) -> list[Capture]:
        """The ``count`` objects of one capture: a burst's frames, or (``windows``) the windows of one exposure;
        each handed to ``on_capture`` as it is downloaded."""
        if not windows and self._burst_count != count:
            self._set_value(PropertyCode.BURST_COUNT.widget, count)
            self._burst_count = count
        camera = self._camera
        exposure_s = self._exposure_time_s()
        burst = count > 1 and not windows
        if burst and self._burst_interval_us is None:
            self._burst_interval_us = self._vendor_int(PropertyCode.BURST_INTERVAL)
        interval_s = (self._burst_interval_us or 0) / 1e6 if burst else 0.0
        # the phone writes every frame of a burst before it reports the capture complete: the per-call timeout
        # covers one frame, each further one may take its size (as the last frame came) at the slowest rate
        storing_s = (count - 1) * self._last_frame_bytes / self.min_transfer_bytes_per_s
        budget = self.timeout_s + count * (exposure_s + interval_s) + storing_s
        path = self._call("capture", lambda: camera.capture(gp.GP_CAPTURE_IMAGE), budget)
        self._see_a_detach_during_the_capture()
        # libgphoto2 reports only the last frame of a burst (and does not list the others until the folder is
        # re-read); the phone numbers the frames of one capture consecutively (rig.spec.ptp.FRAME_NAME)
        match = FRAME_NAME_RE.match(path.name)
        if match is None:
            raise FrameError(f"phone {self.port}: captured file {path.name!r} is not named like IMG_0001.DNG")
        last = int(match.group(1))
        if last - count + 1 < 1:
            raise FrameError(f"phone {self.port}: burst of {count} cannot end at {path.name}")
        names = [FRAME_NAME.format(number=n) for n in range(last - count + 1, last + 1)]
        self._last = _LastCapture(path.folder, path.name.rsplit(".", 1)[0])
        captures = []
        for index, name in enumerate(names):
            captures.append(self._download_frame(path.folder, name))
            if on_capture is not None:
                on_capture(index, captures[-1])
        return captures

    def _list_files(self, folder: str) -> list[str]:
        camera = self._camera

        def names() -> list[str]:
            listing = camera.folder_list_files(folder)
            return [listing.get_name(i) for i in range(listing.count())]

        return self._call(f"listing {folder}", names)

    def _download(self, folder: str, name: str) -> bytes:
        """One object's bytes; a transfer that broke on a live link is repeated once in a new session."""
        what = f"downloading {folder}/{name}"
        broken: list[DeviceError] = []

        def reopen(exc: DeviceError) -> None:
            broken.append(exc)
            self._reopen_session(exc)

        try:
            return with_retries(
                lambda: self._download_once(folder, name),
                what=what,
                log_to=self.retries,
                attempts=DOWNLOAD_ATTEMPTS,
                backoff_s=REDOWNLOAD_BACKOFF_S,
                retry_on=(TransferInterrupted,),
                before_retry=reopen,
            )
        except TransferInterrupted as exc:
            self._lost = f"{what} broke off twice"
            reasons = "; then ".join(str(e.__cause__ or e) for e in (*broken, exc))
            raise DeviceLost(f"phone {self.port}: {what} broke off twice, also after reconnecting ({reasons})") from exc

    def _download_once(self, folder: str, name: str) -> bytes:
        camera = self._camera
        what = f"downloading {folder}/{name}"
        info = self._call(f"reading the size of {folder}/{name}", lambda: camera.file_get_info(folder, name))
        size = int(info.file.size)

        def get() -> bytes:
            # keep the CameraFile alive while copying: the memoryview does not own the buffer
            file = camera.file_get(folder, name, gp.GP_FILE_TYPE_NORMAL)
            data = bytes(file.get_data_and_size())
            del file
            return data

        # an object the phone derives from its last frame (an assist output) may keep it busy as long as that
        # frame's own transfer would take
        budget_s = self.transfer_timeout_s(max(size, self._last_frame_bytes))
        busy_until = time.monotonic() + budget_s
        while True:
            try:
                data = self._call(what, get, budget_s, transfer=True)
                break
            except PhoneBusy:
                if time.monotonic() + BUSY_RETRY_S > busy_until:
                    raise DeviceTimeout(f"phone {self.port}: {what}: still busy after {budget_s:.1f} s") from None
                time.sleep(BUSY_RETRY_S)
        if len(data) != size:
            raise FrameError(f"phone {self.port}: {name}: {len(data)} bytes downloaded, the phone listed {size}")
        return data

    def transfer_timeout_s(self, size_bytes: int) -> float:
        """How long a download of ``size_bytes`` may take (s): the per-call timeout plus the object at the slowest
        allowed rate."""
        return self.timeout_s + size_bytes / self.min_transfer_bytes_per_s

    def _reopen_session(self, exc: DeviceError) -> None:
        """End the broken session and open a new one, keeping what the driver knows of its last capture (the
        object to download again is the same). The phone may hold its session slot until it notices the old
        host gone: bounded attempts with backoff."""
        last = self._last
        self.log.info("%s; reconnecting to download it again", exc)
        self.close()
        with_retries(
            self.open,
            what="reconnecting after a broken download",
            log_to=self.retries,
            attempts=REOPEN_ATTEMPTS,
            backoff_s=REOPEN_BACKOFF_S,
            retry_on=(DeviceLost, DeviceTimeout, DeviceCommandError),
        )
        self._last = last

    def _download_frame(self, folder: str, name: str) -> Capture:
        data = self._download(folder, name)
        self._last_frame_bytes = len(data)
        expected = self._object_crc32(name)
        actual = zlib.crc32(data)
        if actual != expected:
            raise FrameError(f"phone {self.port}: {name}: CRC-32 {actual:08x}, the phone says {expected:08x}")
        try:
            image = read_dng(data, name=name)
        except ImageInputError as exc:
            raise FrameError(f"phone {self.port}: {exc}") from exc
        return Capture(dng=data, filename=name, timestamp_ms=image.timestamp_ms, image=image)

    def _object_crc32(self, name: str) -> int:
        """The phone's CRC-32 of one of its files: name it in ChecksumTarget, read the ObjectChecksum event."""
        self._set_value(PropertyCode.CHECKSUM_TARGET.widget, name)
        deadline = time.monotonic() + self.timeout_s
        while True:
            checksums = [p for code, p in self._pump_events() if code == EventCode.OBJECT_CHECKSUM]
            if checksums:
                return checksums[-1]
            if time.monotonic() > deadline:
                raise DeviceTimeout(f"phone {self.port}: no checksum of {name} within {self.timeout_s:.1f} s")
            time.sleep(0.001)

    def lens_state(self) -> LensState:
        """The bayonet as the phone reports it: its state at open(), then kept current by its events."""
        if self._lens is None:
            raise DeviceStateError(f"phone {self.port}: lens_state() needs open() first")
        self._pump_events()
        return self._lens

    def _see_a_detach_during_the_capture(self) -> None:
        """libgphoto2's generic capture loop reads every event until CaptureComplete and drops all but ObjectAdded
        and CaptureComplete (camlibs/ptp2/library.c, ``camera_capture``: "Received event 0x%04x, ignoring"), so a
        LensDetached during a capture never reaches :meth:`_pump_events`: ask the LensAttached property instead.

        Its value is fresh: reading the DevicePropChanged the phone sends for it (first of the lens properties)
        expires libgphoto2's cached value (camlibs/ptp2/ptp.c, ``handle_event_internal``). The lens code and
        times are not read here: with libgphoto2 2.5.34 the later DevicePropChanged events of one burst did not
        reliably expire the cache (tried), so a lens *attached* during a capture is left to the frame's own DNG
        (BenchOps checks its LensModel) and the next events.
        """
        lens = self._lens
        if lens is not None and lens.attached and self._vendor_int(PropertyCode.LENS_ATTACHED) != 1:
            self.log.info("the lens came off during a capture (its event was dropped by libgphoto2)")
            self._lens = LensState(attached=False, lens_code=None, active_sensor=ActiveSensor.MAIN)

    def _read_lens_properties(self) -> LensState:
        code = self._vendor_int(PropertyCode.LENS_CODE)
        return LensState(
            attached=self._vendor_int(PropertyCode.LENS_ATTACHED) == 1,
            lens_code=None if code == NO_LENS_CODE else code,
            active_sensor=ActiveSensorCode(self._vendor_int(PropertyCode.ACTIVE_SENSOR)).sensor,
            attached_at_ms=self._vendor_ms(PropertyCode.LENS_ATTACHED_TIME),
            sensor_switched_at_ms=self._vendor_ms(PropertyCode.SENSOR_SWITCH_TIME),
        )

    def assist_outputs(self) -> AssistOutputs:
        """The phone's histogram, zebra and peaking outputs for its last capture (this driver's)."""
        if self._last is None:
            raise DeviceStateError(f"phone {self.port}: assist_outputs() needs a capture first")
        folder, stem = self._last.folder, self._last.stem

        def fetch(suffix: AssistSuffix) -> tuple[bytes, str]:
            name = f"{stem}.{suffix.value}"
            return self._download(folder, name), name

        data, name = fetch(AssistSuffix.HISTOGRAM)
        histogram = ptp_assist.decode_histogram(data, name=name)
        data, name = fetch(AssistSuffix.ZEBRA)
        zebra = ptp_assist.decode_mask(data, magic=ptp_assist.ZEBRA_MAGIC, name=name)
        data, name = fetch(AssistSuffix.PEAKING)
        peaking = ptp_assist.decode_mask(data, magic=ptp_assist.PEAKING_MAGIC, name=name)
        return AssistOutputs(
            histogram=histogram,
            histogram_bins=int(histogram.size),
            zebra_mask=zebra.mask,
            zebra_threshold_pct=zebra.threshold,
            peaking_mask=peaking.mask,
            peaking_threshold=peaking.threshold,
        )

    def set_assist_thresholds(
        self, *, zebra_threshold_pct: int | None = None, peaking_threshold: float | None = None
    ) -> None:
        """Zebra threshold (% of white − black, one of the phone's choices) and peaking threshold (0.001..1)."""
        if zebra_threshold_pct is not None:
            choices = [str(c) for c in self._get_widget(PropertyCode.ZEBRA_THRESHOLD.widget).get_choices()]
            if str(zebra_threshold_pct) not in choices:
                raise ArgumentError(f"zebra_threshold_pct = {zebra_threshold_pct!r}: the phone offers {choices}")
            self._set_value(PropertyCode.ZEBRA_THRESHOLD.widget, zebra_threshold_pct)
        if peaking_threshold is not None:
            milli = peaking_threshold * 1000
            if not (1 <= milli <= 1000 and math.isclose(milli, round(milli), abs_tol=1e-6)):
                raise ArgumentError(f"peaking_threshold = {peaking_threshold!r}: expected 0.001..1 in steps of 0.001")
            self._set_value(PropertyCode.PEAKING_THRESHOLD.widget, round(milli))

    def write_profile(self, data: bytes) -> None:
        """Store the calibration profile in the phone's profile slot (replacing the one there)."""
        camera = self._camera

        def put() -> None:
            listing = camera.folder_list_files(PROFILE_FOLDER)
            if PROFILE_FILENAME in [listing.get_name(i) for i in range(listing.count())]:
                # the slot holds only the profile; folder_delete_all runs without the GIL, file_delete does not
                camera.folder_delete_all(PROFILE_FOLDER)
            file = gp.CameraFile()
            file.set_data_and_size(bytes(data))
            # text/plain makes libgphoto2 announce it as a PTP text object, which it will later download
            file.set_mime_type(gp.GP_MIME_TXT)
            file.set_name(PROFILE_FILENAME)
            camera.folder_put_file(PROFILE_FOLDER, PROFILE_FILENAME, gp.GP_FILE_TYPE_NORMAL, file)

        self._call("writing the calibration profile", put)

    def read_profile(self) -> bytes:
        if PROFILE_FILENAME not in self._list_files(PROFILE_FOLDER):
            raise DeviceCommandError(f"phone {self.port}: holds no calibration profile ({PROFILE_FOLDER} is empty)")
        return self._download(PROFILE_FOLDER, PROFILE_FILENAME)


@contextlib.contextmanager
def _fd0_guard() -> Iterator[None]:
    """Keep file descriptor 0 through a libgphoto2 PTP/IP teardown.

    libgphoto2's PTP/IP disconnect closes its unused JPEG socket, whose descriptor defaults to 0: each camera
    teardown closes fd 0, and once stdin is gone, whatever the process opens next as fd 0 (a socket of the
    twin, a file). Tried: ``gp_camera_exit`` left fd 0 closed. The guard gives fd 0 back.

    One guard at a time in the process: a hung session's teardown, finishing late on its abandoned worker, once
    ran beside the next phone's connect, and each guard's check and repair of fd 0 raced the other's. (The
    twin's own sockets stay off fds 0-2 for the same reason: :mod:`rig.twin.descriptors`.)
    """
    with _FD0_LOCK:
        if not _fd_open(0):
            os.open(os.devnull, os.O_RDONLY)  # the lowest free descriptor: 0
        saved = os.dup(0)
        try:
            yield
        finally:
            if not _fd_open(0):
                os.dup2(saved, 0)
            os.close(saved)


_FD0_LOCK = threading.RLock()
"""Held through every libgphoto2 section that may close fd 0 (connect, session teardown), in any thread."""


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _release(holder: list[Any]) -> None:
    """End the session and free the camera, both inside the fd-0 guard (runs on the worker)."""
    with _fd0_guard():
        while holder:
            camera = holder.pop()
            try:
                _end_session(camera)
            except gp.GPhoto2Error as exc:
                log.debug("ending the session: %s", exc)
            del camera


def _end_session(camera: Any) -> None:
    """CloseSession, then release the port.

    python-gphoto2 holds the GIL inside ``gp_camera_exit``, so a responder in this same process (the twin's
    peer) cannot answer the CloseSession that exit sends, and libgphoto2 waits out its 2.5 s read timeout.
    Closing the session first through libgphoto2's generic ``opcode`` action (run without the GIL) lets exit
    find the session over. The action expects a data phase CloseSession does not have, hence the ignored error.
    """
    try:
        widget = camera.get_single_config("opcode")
        widget.set_value(f"0x{OperationCode.CLOSE_SESSION:04x}")
        camera.set_single_config("opcode", widget)
    except gp.GPhoto2Error:
        pass
    camera.exit()


def _parse_shutter(text: str) -> float:
    """libgphoto2's shutter-speed text (``0.0050s``, ``1/200``, ``2s``) in seconds."""
    text = text.strip().rstrip("s")
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)
