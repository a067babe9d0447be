"""The phone's object store: one storage, its two folders, captured frames (a ring) with the last capture's
assist outputs, and the calibration profile slot that mirrors ``bench.state.profile``.

Handles are never reused. Thread safety is the caller's: the peer holds its lock around every call.
"""

from __future__ import annotations

import itertools
import logging
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from rig.spec import ptp_assist
from rig.spec.ptp import FRAME_NAME, PROFILE_FILENAME, STORAGE_ID, AssistSuffix, ObjectFormat, PhoneFolder
from rig.spec.types import AssistOutputs
from rig.twin.ptpip_peer.datasets import ObjectInfo, ptp_datetime

if TYPE_CHECKING:
    from rig.twin.state import BenchState
    from rig.twin.world import TwinFrame

log = logging.getLogger(__name__)


class ObjectKind(Enum):
    FOLDER = "folder"
    FRAME = "frame"
    ASSIST = "assist"
    PROFILE = "profile"


@dataclass
class StoredObject:
    handle: int
    info: ObjectInfo
    load: Callable[[], bytes]
    kind: ObjectKind
    _crc: int | None = None
    ready: Callable[[float], bool] | None = None
    """For an object the phone computes on request (an assist output): start it, and whether it is done within
    the given wall seconds. None: always ready."""

    def data(self) -> bytes:
        return self.load()

    def crc32(self) -> int:
        if self._crc is None:
            self._crc = zlib.crc32(self.load())
        return self._crc


@dataclass
class _Assist:
    """The assist outputs of one frame, computed once, from the first request on, on a thread of their own: the
    phone's session goes on answering meanwhile (a full read-out's outputs take seconds of CPU, longer than a
    host waits for a reply), and a request that finds them not done yet can be answered DeviceBusy."""

    compute: Callable[[], AssistOutputs]
    _result: AssistOutputs | None = None
    _error: BaseException | None = None
    _started: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _done: threading.Event = field(default_factory=threading.Event)

    def get(self) -> AssistOutputs:
        self._start()
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def ready(self, wait_s: float) -> bool:
        """Start the computation if nobody has; whether it is done within ``wait_s`` (wall s)."""
        self._start()
        return self._done.wait(wait_s)

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name="phone-assists", daemon=True).start()

    def _run(self) -> None:
        try:
            self._result = self.compute()
        except BaseException as exc:  # handed to whoever asks for the outputs
            self._error = exc
        finally:
            self._done.set()


@dataclass(frozen=True)
class StoredCapture:
    frame_handles: list[int]
    assist_handles: list[int]
    removed_handles: list[int]


class ObjectStore:
    """Objects by handle (module docstring).

    Parameters
    ----------
    state
        The bench state: its ``profile`` is the profile slot's content; its clock dates stored objects.
    max_stored_frames, max_stored_bytes
        Captured frames kept (count and DNG bytes); older ones are dropped when a capture adds more.
    """

    def __init__(self, state: BenchState, *, max_stored_frames: int, max_stored_bytes: int) -> None:
        self._state = state
        self.max_stored_frames = max_stored_frames
        self.max_stored_bytes = max_stored_bytes
        self._handles = itertools.count(1)
        self._image_numbers = itertools.count(1)
        self._objects: dict[int, StoredObject] = {}
        self.folders: dict[PhoneFolder, int] = {}
        for folder in PhoneFolder:
            handle = next(self._handles)
            self.folders[folder] = handle
            info = ObjectInfo.folder(STORAGE_ID, folder.value)
            self._objects[handle] = StoredObject(handle, info, lambda: b"", ObjectKind.FOLDER)
        self._profile_handle: int | None = None
        self._profile_seen: bytes | None = None
        self.last_frame = ""

    # ------------------------------------------------------------------------------------------ reading
    def get(self, handle: int) -> StoredObject | None:
        self._sync_profile()
        return self._objects.get(handle)

    def by_name(self, filename: str) -> StoredObject | None:
        return next(
            (o for o in self._objects.values() if o.kind is not ObjectKind.FOLDER and o.info.filename == filename),
            None,
        )

    def handles(self, *, parent: int | None, object_format: int | None) -> list[int]:
        """Handles under ``parent`` (None: all; 0: the root) of ``object_format`` (None: any)."""
        self._sync_profile()
        return [
            o.handle
            for o in self._objects.values()
            if (parent is None or o.info.parent == parent)
            and (object_format is None or o.info.object_format == object_format)
        ]

    def exists(self, handle: int) -> bool:
        return handle in self._objects

    def used_bytes(self) -> int:
        return sum(o.info.compressed_size for o in self._objects.values())

    def filenames(self) -> list[str]:
        self._sync_profile()
        return [o.info.filename for o in self._objects.values() if o.kind is not ObjectKind.FOLDER]

    def files(self) -> list[StoredObject]:
        self._sync_profile()
        return [o for o in self._objects.values() if o.kind is not ObjectKind.FOLDER]

    # ------------------------------------------------------------------------------------------ changing
    def remove(self, objects: Iterable[StoredObject]) -> None:
        for obj in objects:
            del self._objects[obj.handle]
            if obj.kind is ObjectKind.PROFILE:
                self._state.update(profile=None)
                self._profile_handle = None
                self._profile_seen = None

    def new_handle(self) -> int:
        return next(self._handles)

    def install_profile(self, data: bytes, handle: int) -> None:
        """Put ``data`` in the profile slot under ``handle`` (the bench state already holds it)."""
        if self._profile_handle is not None:
            self._objects.pop(self._profile_handle, None)
        parent = self.folders[PhoneFolder.CALIBRATION]
        date = ptp_datetime(self._state.now_ns() / 1e9)
        info = ObjectInfo(STORAGE_ID, ObjectFormat.TEXT, len(data), parent, PROFILE_FILENAME, capture_date=date)
        self._objects[handle] = StoredObject(handle, info, lambda: self._state.profile or b"", ObjectKind.PROFILE)
        self._profile_handle = handle
        self._profile_seen = data

    def _sync_profile(self) -> None:
        """Follow ``bench.state.profile`` when someone else (a test, a reset) changed it."""
        current = self._state.profile
        if current is self._profile_seen or current == self._profile_seen:
            return
        if current is None:
            if self._profile_handle is not None:
                self._objects.pop(self._profile_handle, None)
            self._profile_handle = None
            self._profile_seen = None
        else:
            self.install_profile(current, next(self._handles))

    def store_capture(
        self,
        frames: list[tuple[TwinFrame, bytes]],
        assist: Callable[[], AssistOutputs],
        *,
        histogram_bins: int,
        zebra_pct: float,
        peaking: float,
    ) -> StoredCapture:
        """Store the frames of one capture (each with the DNG bytes to keep) and the last one's assists; evict."""
        frame_handles = [self._store_frame(frame, dng) for frame, dng in frames]
        last_name = self._objects[frame_handles[-1]].info.filename
        assist_handles = self._store_assist(
            last_name.rsplit(".", 1)[0], frames[-1][0], _Assist(assist), histogram_bins, zebra_pct, peaking
        )
        removed = self._evict(keep={*frame_handles, *assist_handles})
        self.last_frame = last_name
        return StoredCapture(frame_handles, assist_handles, removed)

    def _store_frame(self, frame: TwinFrame, dng: bytes) -> int:
        handle = next(self._handles)
        height, width = frame.raw.shape
        info = ObjectInfo(
            STORAGE_ID,
            ObjectFormat.DNG,
            len(dng),
            self.folders[PhoneFolder.CAPTURES],
            FRAME_NAME.format(number=next(self._image_numbers)),
            image_width=width,
            image_height=height,
            bit_depth=16,
            capture_date=ptp_datetime(frame.time_ns / 1e9),
        )
        self._objects[handle] = StoredObject(handle, info, lambda: dng, ObjectKind.FRAME)
        return handle

    def _store_assist(
        self, stem: str, frame: TwinFrame, assist: _Assist, bins: int, zebra_pct: float, peaking: float
    ) -> list[int]:
        quads = (frame.raw.shape[0] // 2, frame.raw.shape[1] // 2)
        parts: list[tuple[AssistSuffix, int, Callable[[], bytes]]] = [
            (
                AssistSuffix.HISTOGRAM,
                ptp_assist.histogram_size(bins),
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
                self.folders[PhoneFolder.CAPTURES],
                f"{stem}.{suffix.value}",
                capture_date=ptp_datetime(frame.time_ns / 1e9),
            )
            self._objects[handle] = StoredObject(handle, info, _cached(encode), ObjectKind.ASSIST, ready=assist.ready)
            handles.append(handle)
        return handles

    def _evict(self, *, keep: set[int]) -> list[int]:
        """Make room for a capture: the assists of earlier captures go (the phone keeps only the latest), then
        the oldest frames while more than ``max_stored_frames`` or ``max_stored_bytes`` are stored (never the
        frames of the capture being stored)."""
        objects = self._objects.values()
        old_assists = [o for o in objects if o.kind is ObjectKind.ASSIST and o.handle not in keep]
        frames = sorted((o for o in objects if o.kind is ObjectKind.FRAME), key=lambda o: o.handle)
        count = len(frames)
        stored = sum(o.info.compressed_size for o in frames)
        old_frames: list[StoredObject] = []
        for obj in frames:
            if obj.handle in keep or (count <= self.max_stored_frames and stored <= self.max_stored_bytes):
                break
            old_frames.append(obj)
            count -= 1
            stored -= obj.info.compressed_size
        for obj in (*old_assists, *old_frames):
            del self._objects[obj.handle]
        return [o.handle for o in (*old_assists, *old_frames)]


def _cached(make: Callable[[], bytes]) -> Callable[[], bytes]:
    box: list[bytes] = []

    def load() -> bytes:
        if not box:
            box.append(make())
        return box[0]

    return load
