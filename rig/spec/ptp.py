"""PTP and PTP/IP numbers shared by the phone driver and the twin's phone peer.

Standard codes are from ISO 15740:2013 (PTP) and CIPA DC-X005-2005 (PTP/IP); REFERENCE.md §5 lists how libgphoto2
uses them. The phone's own vendor extension (``0xD0xx`` properties, ``0xC0xx`` events, the ``.HIS/.ZEB/.PKG``
assist objects and the profile slot) is defined here and nowhere else, so that both ends agree by construction.

Vendor properties (all readable; "set" marks the ones the host may write):

============  ======================  ======  ===================================================================
code          name                    type    meaning
============  ======================  ======  ===================================================================
0xD001        LensAttached            UINT8   1 while a lens sits on the M bayonet, else 0
0xD002        LensCode                UINT8   6-bit Leica lens code set for the mounted lens, 0xFF = none/uncoded
0xD003        ActiveSensor            UINT8   :class:`ActiveSensor`: 0 main camera, 1 M-mount sensor
0xD004        LensAttachedTime        STR     phone clock (ms, decimal, 3 places) when the lens was detected; ""
0xD005        SensorSwitchTime        STR     phone clock (ms) when the M-mount sensor became active; ""
0xD006        ZebraThreshold   (set)  UINT8   zebra threshold, % of the white level above black (enum 50..100)
0xD007        PeakingThreshold (set)  UINT16  focus-peaking threshold in thousandths (value / 1000, range)
0xD008        BurstCount       (set)  UINT16  frames per InitiateCapture (range 1..64)
0xD009        BurstInterval    (set)  UINT32  frame interval of a burst, µs (range)
0xD00A        ObjectCRC32             UINT32  CRC-32 (zlib) of the object named by ChecksumTarget
0xD00B        ChecksumTarget   (set)  STR     file name whose CRC-32 0xD00A reports; "" = the last captured frame
0xD00C        PhoneClock              STR     the phone clock now (ms, decimal)
0xD00D        BurstStart       (set)  STR     phone clock (ms) of the next burst's first frame, from the phone's
                                                zero-shutter-lag ring buffer (up to RING_BUFFER_MS in the past);
                                                "" = from now. One-shot: cleared by the capture that uses it.
0xD00E        ReadoutWindows   (set)  STR     "" = the normal read-out (the whole sensor at the station's binning);
                                                else windows "x,y,w,h;x,y,w,h;…" read out at the native pitch
                                                (:class:`ReadoutWindow`, :func:`parse_readout_windows`). Kept
                                                until set again.
============  ======================  ======  ===================================================================

Windowed read-out (``ReadoutWindows``): a sensor reads only the rows and columns asked for, at its own pixel pitch
(unbinned), as industrial sensors offer ROI read-out; a lens lab reads full-resolution crops around the chart's
edges instead of a 100 MB frame. Each window is ``x,y,w,h`` in native sensor pixels from the sensor's top-left
pixel (x right, y down), all even so that every window starts on the CFA's top-left (R) site and holds whole
2×2 quads; inside the sensor; ``MIN_WINDOW_SIDE_PX``..``MAX_WINDOW_SIDE_PX`` a side; at most
``MAX_READOUT_WINDOWS``, none overlapping (one exposure reads each pixel once). The phone refuses anything else
with InvalidDevicePropValue (0x201C). With windows set, one InitiateCapture exposes once (BurstCount, BurstStart
do not apply) and stores one DNG per window, in the order given and numbered consecutively like a burst's
frames; each DNG holds the window's pixels and says where it sits in its XMP (``rig:WindowXPx`` …,
:class:`rig.spec.capture_state.ReadoutWindowState`).

Times are strings because the phone clock (ms since the epoch of the clock the DNG ``DateTimeOriginal`` uses)
does not fit the 32-bit integers libgphoto2 renders reliably, and a latency wants sub-millisecond resolution.
libgphoto2 shows vendor properties of a generic PTP device in its ``other`` config section, each widget named by
the lower-case hex code (``d003``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from rig.spec.types import ActiveSensor

PTPIP_VERSION = 0x00010000
"""Protocol version sent in InitCommandAck (1.0)."""

PTP_STANDARD_VERSION = 100
STORAGE_ID = 0x00010001
"""The phone's single storage: ``/store_00010001`` in gphoto2 paths."""
ROOT_PARENT = 0xFFFFFFFF
"""GetObjectHandles parent filter for "root objects only" (0 would mean "all objects")."""
ALL_STORAGES = 0xFFFFFFFF
NO_TRANSACTION = 0xFFFFFFFF
"""Transaction id carried by an event that belongs to no transaction."""


class PacketType(IntEnum):
    """PTP/IP packet types (CIPA DC-X005 §2.3)."""

    INIT_COMMAND_REQUEST = 1
    INIT_COMMAND_ACK = 2
    INIT_EVENT_REQUEST = 3
    INIT_EVENT_ACK = 4
    INIT_FAIL = 5
    OPERATION_REQUEST = 6
    OPERATION_RESPONSE = 7
    EVENT = 8
    START_DATA = 9
    DATA = 10
    CANCEL = 11
    END_DATA = 12
    PROBE_REQUEST = 13
    PROBE_RESPONSE = 14


class InitFailReason(IntEnum):
    REJECTED_INITIATOR = 1
    BUSY = 2
    UNSPECIFIED = 3


class DataPhase(IntEnum):
    """``dataphase`` field of an OperationRequest."""

    NONE_OR_IN = 1  # no data, or data from the responder (GetObject)
    OUT = 2  # data from the initiator follows (SetDevicePropValue, SendObject)


class OperationCode(IntEnum):
    GET_DEVICE_INFO = 0x1001
    OPEN_SESSION = 0x1002
    CLOSE_SESSION = 0x1003
    GET_STORAGE_IDS = 0x1004
    GET_STORAGE_INFO = 0x1005
    GET_NUM_OBJECTS = 0x1006
    GET_OBJECT_HANDLES = 0x1007
    GET_OBJECT_INFO = 0x1008
    GET_OBJECT = 0x1009
    GET_THUMB = 0x100A
    DELETE_OBJECT = 0x100B
    SEND_OBJECT_INFO = 0x100C
    SEND_OBJECT = 0x100D
    INITIATE_CAPTURE = 0x100E
    FORMAT_STORE = 0x100F
    RESET_DEVICE = 0x1010
    GET_DEVICE_PROP_DESC = 0x1014
    GET_DEVICE_PROP_VALUE = 0x1015
    SET_DEVICE_PROP_VALUE = 0x1016
    RESET_DEVICE_PROP_VALUE = 0x1017


class ResponseCode(IntEnum):
    UNDEFINED = 0x2000
    OK = 0x2001
    GENERAL_ERROR = 0x2002
    SESSION_NOT_OPEN = 0x2003
    INVALID_TRANSACTION_ID = 0x2004
    OPERATION_NOT_SUPPORTED = 0x2005
    PARAMETER_NOT_SUPPORTED = 0x2006
    INCOMPLETE_TRANSFER = 0x2007
    INVALID_STORAGE_ID = 0x2008
    INVALID_OBJECT_HANDLE = 0x2009
    DEVICE_PROP_NOT_SUPPORTED = 0x200A
    INVALID_OBJECT_FORMAT_CODE = 0x200B
    STORE_FULL = 0x200C
    OBJECT_WRITE_PROTECTED = 0x200D
    STORE_READ_ONLY = 0x200E
    ACCESS_DENIED = 0x200F
    NO_THUMBNAIL_PRESENT = 0x2010
    NO_VALID_OBJECT_INFO = 0x2015
    DEVICE_BUSY = 0x2019
    INVALID_PARENT_OBJECT = 0x201A
    INVALID_DEVICE_PROP_FORMAT = 0x201B
    INVALID_DEVICE_PROP_VALUE = 0x201C
    INVALID_PARAMETER = 0x201D
    SESSION_ALREADY_OPEN = 0x201E
    TRANSACTION_CANCELLED = 0x201F


class EventCode(IntEnum):
    """Standard events and the phone's vendor events (``0xC0xx``)."""

    CANCEL_TRANSACTION = 0x4001
    OBJECT_ADDED = 0x4002
    OBJECT_REMOVED = 0x4003
    STORE_ADDED = 0x4004
    STORE_REMOVED = 0x4005
    DEVICE_PROP_CHANGED = 0x4006
    OBJECT_INFO_CHANGED = 0x4007
    DEVICE_INFO_CHANGED = 0x4008
    STORE_FULL = 0x400A
    DEVICE_RESET = 0x400B
    CAPTURE_COMPLETE = 0x400D
    # vendor events. libgphoto2 hands a host only the first parameter of an unknown event, so each carries one
    # value; a time is the low 32 bits of the phone clock in µs (unwrapped by the host against PhoneClock),
    # sent just before the event it belongs to.
    LENS_ATTACHED = 0xC001  # param: lens code (0xFF none)
    LENS_DETACHED = 0xC002
    SENSOR_SWITCHED = 0xC003  # param: the ActiveSensor now in use
    # vendor: param 1 = CRC-32 of the object ChecksumTarget names, sent whenever ChecksumTarget is set (events
    # are read fresh, whereas libgphoto2 serves property values from a cache for up to a second)
    OBJECT_CHECKSUM = 0xC004
    LENS_ATTACHED_AT = 0xC005  # param: low 32 bits of the attach time, µs
    SENSOR_SWITCHED_AT = 0xC006  # param: low 32 bits of the switch time, µs
    SHOCK_AT = 0xC007  # param: low 32 bits of the time the phone's accelerometer felt a shock (a knock), µs


RING_BUFFER_MS = 2000.0
"""How far back the phone's zero-shutter-lag ring buffer reaches (ms)."""


class PropertyCode(IntEnum):
    BATTERY_LEVEL = 0x5001
    FNUMBER = 0x5007
    EXPOSURE_TIME = 0x500D
    EXPOSURE_INDEX = 0x500F
    # vendor properties: see the module docstring for types and meaning
    LENS_ATTACHED = 0xD001
    LENS_CODE = 0xD002
    ACTIVE_SENSOR = 0xD003
    LENS_ATTACHED_TIME = 0xD004
    SENSOR_SWITCH_TIME = 0xD005
    ZEBRA_THRESHOLD = 0xD006
    PEAKING_THRESHOLD = 0xD007
    BURST_COUNT = 0xD008
    BURST_INTERVAL = 0xD009
    OBJECT_CRC32 = 0xD00A
    CHECKSUM_TARGET = 0xD00B
    PHONE_CLOCK = 0xD00C
    BURST_START = 0xD00D
    READOUT_WINDOWS = 0xD00E

    @property
    def widget(self) -> str:
        """The libgphoto2 config widget name of a vendor property (``other`` section): lower-case hex."""
        return f"{self.value:04x}"


class DataType(IntEnum):
    """DevicePropDesc data type codes."""

    INT8 = 0x0001
    UINT8 = 0x0002
    INT16 = 0x0003
    UINT16 = 0x0004
    INT32 = 0x0005
    UINT32 = 0x0006
    INT64 = 0x0007
    UINT64 = 0x0008
    STR = 0xFFFF


class FormFlag(IntEnum):
    NONE = 0
    RANGE = 1
    ENUM = 2


class ObjectFormat(IntEnum):
    """Object format codes. libgphoto2 refuses to download objects of format UNDEFINED (it takes them for
    firmware or control files), so the assist objects are "undefined image" and the profile is "text"."""

    UNDEFINED = 0x3000
    ASSOCIATION = 0x3001
    TEXT = 0x3004
    UNDEFINED_IMAGE = 0x3800
    EXIF_JPEG = 0x3801
    DNG = 0x3811


class StorageType(IntEnum):
    FIXED_ROM = 1
    REMOVABLE_ROM = 2
    FIXED_RAM = 3
    REMOVABLE_RAM = 4


class FilesystemType(IntEnum):
    GENERIC_FLAT = 1
    GENERIC_HIERARCHICAL = 2
    DCF = 3


class AccessCapability(IntEnum):
    READ_WRITE = 0
    READ_ONLY_NO_DELETE = 1
    READ_ONLY_WITH_DELETE = 2


class AssociationType(IntEnum):
    GENERIC_FOLDER = 1


class ActiveSensorCode(IntEnum):
    """Wire value of :attr:`PropertyCode.ACTIVE_SENSOR`; :attr:`sensor` is the value type plans see."""

    MAIN = 0
    M_MOUNT = 1

    @property
    def sensor(self) -> ActiveSensor:
        return ActiveSensor.MAIN if self is ActiveSensorCode.MAIN else ActiveSensor.M_MOUNT

    @classmethod
    def of(cls, sensor: ActiveSensor) -> ActiveSensorCode:
        return cls.M_MOUNT if sensor is ActiveSensor.M_MOUNT else cls.MAIN


NO_LENS_CODE = 0xFF
"""LensCode value when no lens is attached or the lens is uncoded."""


class PhoneFolder(StrEnum):
    """Folders of the phone's storage (associations under the storage root)."""

    CAPTURES = "DCIM"
    CALIBRATION = "RIG"


FRAME_NAME = "IMG_{number:04d}.DNG"
"""Captured frames are numbered from 1 in capture order; the frames of one burst are consecutive."""
FRAME_NAME_RE = re.compile(r"^IMG_(\d{4,})\.DNG$")

PROFILE_FILENAME = "PROFILE.BIN"
"""The calibration profile's slot: ``/store_00010001/RIG/PROFILE.BIN``, the only object the host may send."""


class AssistSuffix(StrEnum):
    """Extension of the assist objects stored beside each capture's last frame (``IMG_0001.HIS``...)."""

    HISTOGRAM = "HIS"
    ZEBRA = "ZEB"
    PEAKING = "PKG"


MAX_READOUT_WINDOWS = 12
"""Windows per capture: the longest list, 12 × ``"8190,6142,1024,1024;"``, fits a PTP string (254 characters,
ISO 15740 §5.3.5)."""
MIN_WINDOW_SIDE_PX = 16
MAX_WINDOW_SIDE_PX = 1024
"""A window's side (native px): 1024 holds a chart square of the bench's SFR chart (410 px on the 8192 × 6144
sensor) with the room its edge ROIs and the blur need on every side."""
_WINDOW_RE = re.compile(r"^\s*(\d{1,5})\s*,\s*(\d{1,5})\s*,\s*(\d{1,5})\s*,\s*(\d{1,5})\s*$")


@dataclass(frozen=True, order=True)
class ReadoutWindow:
    """A rectangle of the sensor read out at its native pitch: native pixels from the top-left pixel (x right,
    y down), even numbers (module docstring)."""

    x_px: int
    y_px: int
    width_px: int
    height_px: int

    @property
    def text(self) -> str:
        """The window as ``ReadoutWindows`` carries it: ``x,y,w,h``."""
        return f"{self.x_px},{self.y_px},{self.width_px},{self.height_px}"

    def overlaps(self, other: ReadoutWindow) -> bool:
        return (
            self.x_px < other.x_px + other.width_px
            and other.x_px < self.x_px + self.width_px
            and self.y_px < other.y_px + other.height_px
            and other.y_px < self.y_px + self.height_px
        )

    def problem(self, *, sensor_width_px: int, sensor_height_px: int) -> str | None:
        """Why the phone refuses this window on a ``sensor_width_px`` × ``sensor_height_px`` sensor (None: fine)."""
        numbers = (self.x_px, self.y_px, self.width_px, self.height_px)
        if any(n % 2 for n in numbers) or any(n < 0 for n in numbers):
            return f"window {self.text}: x, y, w, h must be even and ≥ 0 (a window starts on the CFA's R site)"
        if not (
            MIN_WINDOW_SIDE_PX <= self.width_px <= MAX_WINDOW_SIDE_PX
            and MIN_WINDOW_SIDE_PX <= self.height_px <= MAX_WINDOW_SIDE_PX
        ):
            return f"window {self.text}: sides must be {MIN_WINDOW_SIDE_PX}..{MAX_WINDOW_SIDE_PX} px"
        if self.x_px + self.width_px > sensor_width_px or self.y_px + self.height_px > sensor_height_px:
            return f"window {self.text}: outside the {sensor_width_px}×{sensor_height_px} sensor"
        return None


def readout_windows_text(windows: Sequence[ReadoutWindow]) -> str:
    """The ``ReadoutWindows`` value of ``windows`` ("" for none: the normal read-out)."""
    return ";".join(w.text for w in windows)


def parse_readout_windows(text: str, *, sensor_width_px: int, sensor_height_px: int) -> tuple[ReadoutWindow, ...]:
    """The windows of a ``ReadoutWindows`` value (empty: the normal read-out), held to the module's rules.

    Raises
    ------
    ValueError
        One line naming the value and what was expected (not numbers, odd, outside the sensor, too small or large,
        too many, overlapping).
    """
    if not text.strip():
        return ()
    windows = []
    for part in text.split(";"):
        match = _WINDOW_RE.match(part)
        if match is None:
            raise ValueError(f"readout window {part!r}: expected x,y,w,h in native pixels")
        windows.append(ReadoutWindow(*(int(g) for g in match.groups())))
    if len(windows) > MAX_READOUT_WINDOWS:
        raise ValueError(f"{len(windows)} readout windows: at most {MAX_READOUT_WINDOWS}")
    for k, window in enumerate(windows):
        problem = window.problem(sensor_width_px=sensor_width_px, sensor_height_px=sensor_height_px)
        if problem is not None:
            raise ValueError(problem)
        for other in windows[:k]:
            if window.overlaps(other):
                raise ValueError(f"readout windows {other.text} and {window.text} overlap: each pixel is read once")
    return tuple(windows)
