"""The twin phone's image pipeline: render one exposure's read-out and write its DNG, here or in worker processes.

A real phone renders nothing on the bench PC: its sensor, ISP and DNG writer are its own silicon, working while
the bench measures the frame before. The twin's peers run as threads of the bench's own process, so rendering a
frame there competes with the bench's measurements for one interpreter lock: a binned sign-off used ~1.1 of 2
cores (issue #17). ``[twin] render_processes = N`` (N ≥ 1) gives the twin phone N worker processes of its own,
the way the phone has its own chip; 0 renders on the peer's thread, as before.

Either way one pure function, :func:`develop`, turns a :class:`FrameJob` (everything the frame depends on: the
station, the unit, the catalogue, the bench snapshot, the mount pose, the noise stream's seed) into a
:class:`DevelopedFrame`; a job carries no state of the bench, so where it runs cannot change a byte of the frame
(tested: the DNG bytes of both are identical). A burst's frames are independent jobs and render side by side, and
a full-size read-out (rendered here, not in the workers) renders as :data:`READOUT_BANDS` bands of rows, each with a
noise stream of its own, side by side on threads.

The pool (:func:`rig.workers.shared_pool`, named ``twin-render``) is shared by every twin bench of a process: a
worker's caches of shading gains, edge spreads and pupil OTFs serve them all. How its workers start (spawned,
never forked; SIGINT ignored; one BLAS thread) is :mod:`rig.workers`'.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing.spawn
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from rig.config.lenses import LensCatalog, LensSpec
from rig.config.station import StationConfig
from rig.config.unit import TwinUnit
from rig.errors import ConfigError
from rig.spec.capture_state import ReadoutWindowState
from rig.spec.dng import write_dng
from rig.spec.gainmap import shading_opcode_list
from rig.spec.profile import CalibrationProfile
from rig.spec.ptp import ReadoutWindow
from rig.spec.xmp import TIFF_BYTE, XMP_TAG
from rig.twin import firmware
from rig.twin.pose import MountPose
from rig.twin.raster import ChartPose
from rig.twin.render import render
from rig.twin.state import BenchSnapshot
from rig.twin.truth import UnitTruth
from rig.workers import can_spawn, drop_pool, run_in_worker, shared_pool, warm

_log = logging.getLogger(__name__)

MAKE = "Xiaomi"
MODEL = "12S Ultra Concept"
UNIQUE_CAMERA_MODEL = f"{MAKE} {MODEL}"
FULL_FRAME_DIAGONAL_MM = 43.2666  # 36 × 24 mm: the reference of FocalLengthIn35mmFilm (Exif 2.32 §4.6.5)


@lru_cache(maxsize=4)
def profile_opcodes(profile: bytes, width_px: int, height_px: int) -> bytes | None:
    """The OpcodeList2 a phone holding ``profile`` embeds in a ``width_px`` × ``height_px`` read-out.

    Its shading as four per-channel GainMaps over the whole read-out. A profile the phone cannot parse, or one
    made for a sensor of another shape, embeds nothing (the firmware keeps capturing; the bench's read-back check
    is what catches a bad write).
    """
    try:
        parsed = CalibrationProfile.from_json(profile, source="phone calibration profile")
    except ConfigError as exc:
        _log.warning("twin phone: stored profile ignored: %s", exc)
        return None
    shading = parsed.shading
    if shading.sensor_width_px * height_px != shading.sensor_height_px * width_px:
        _log.warning(
            "twin phone: stored profile ignored: made for a %d×%d sensor, not this %d×%d read-out",
            shading.sensor_width_px, shading.sensor_height_px, width_px, height_px,
        )  # fmt: skip
        return None
    return shading_opcode_list(shading, width_px=width_px, height_px=height_px)


@dataclass(frozen=True)
class FrameJob:
    """Everything one frame (or one window of a windowed read-out) depends on."""

    station: StationConfig
    unit: TwinUnit
    lenses: LensCatalog
    snapshot: BenchSnapshot  # the bench state of the exposure (light already the light the frame got)
    lens: LensSpec | None  # the M lens imaging, or None (the native camera)
    pose: MountPose
    chart_pose: ChartPose
    noise_seed: tuple[int, ...]  # the frame's noise stream: (seed, counter) or (seed, counter, window index)
    noise: bool
    window: ReadoutWindow | None


@dataclass(frozen=True, eq=False)
class DevelopedFrame:
    """What the phone delivers of one job: the DNG, its raw codes and (twin only) the chart and the truth."""

    dng: bytes
    raw: np.ndarray
    chart: str | None
    truth: UnitTruth


@dataclass(frozen=True, eq=False)
class RenderedFrame:
    """A job's read-out before the DNG is written: the raw codes (defects applied), the chart and the truth."""

    raw: np.ndarray
    chart: str | None
    truth: UnitTruth


READOUT_BANDS = 2
"""A frame the bench process renders (too large for the workers, :func:`worth_a_worker`) renders as this many bands
of rows side by side on threads: the array passes and noise draws release the interpreter lock, so the capture
waits for about half a render (full read-out sign-off 99.0 → 87.8 s). Frames the workers take render whole: the
pool already gives them the second core (a burst's frames, the render ahead), and their bands gained nothing."""

Band = tuple[int, int] | None
"""The rows (first, stop) of a band of the read-out; None: the whole job."""


def frame_bands(job: FrameJob) -> list[Band]:
    """The bands ``job``'s read-out renders as: :data:`READOUT_BANDS` even cuts of a full-size frame's rows, or
    the whole job (a window, a frame the workers take).

    A property of the job alone, wherever it renders: a frame's bytes do not depend on ``render_processes``.
    """
    if job.window is not None or worth_a_worker(job):
        return [None]
    height = job.station.sensor.height_px
    # every cut on an even row: each band starts on the CFA's top row, as the whole frame does
    cuts = [2 * round(height * k / READOUT_BANDS / 2) for k in range(READOUT_BANDS)] + [height]
    return list(itertools.pairwise(cuts))


def _band_rng(job: FrameJob, index: int) -> np.random.Generator:
    """Band ``index``'s noise stream: one of its own (``(*seed, 0, index)``), so the bands draw independently and in
    any order; a job rendered whole draws from its own seed's stream."""
    if frame_bands(job) == [None]:
        return np.random.default_rng(list(job.noise_seed))
    return np.random.default_rng([*job.noise_seed, 0, index])


def render_band(job: FrameJob, index: int) -> RenderedFrame:
    """Render band ``index`` of ``job``'s read-out (:func:`frame_bands`), before the firmware's raw defects."""
    result = render(
        job.station,
        job.unit,
        job.lenses,
        job.snapshot,
        lens=job.lens,
        pose=job.pose,
        chart_pose=job.chart_pose,
        rng=_band_rng(job, index),
        noise=job.noise,
        window=job.window,
        rows=frame_bands(job)[index],
    )
    return RenderedFrame(raw=result.raw, chart=result.chart, truth=result.truth)


def assemble(job: FrameJob, bands: Sequence[RenderedFrame]) -> RenderedFrame:
    """Stack ``job``'s rendered bands, in order, into its read-out and apply the firmware's raw defects."""
    raw = bands[0].raw if len(bands) == 1 else np.concatenate([band.raw for band in bands])
    raw = firmware.apply_raw_defects(raw, job.unit.firmware, black_level=job.station.sensor.black_level_dn)
    return RenderedFrame(raw=raw, chart=bands[0].chart, truth=bands[0].truth)


def render_frame(job: FrameJob) -> RenderedFrame:
    """Render ``job``'s read-out, band after band, and apply the firmware's raw defects (the costly part of
    :func:`develop`)."""
    return assemble(job, [render_band(job, index) for index in range(len(frame_bands(job)))])


def develop(job: FrameJob) -> DevelopedFrame:
    """Render ``job``'s read-out, apply the firmware's raw defects and write the DNG the phone delivers."""
    return package(job, render_frame(job))


def package(job: FrameJob, rendered: RenderedFrame) -> DevelopedFrame:
    """Write the DNG the phone delivers for ``job`` from its rendered read-out (~3 ms for a binned frame)."""
    sensor = job.station.sensor
    raw = rendered.raw
    truth, lens, snapshot, window = rendered.truth, job.lens, job.snapshot, job.window
    height, width = raw.shape
    window_tags = ()
    if window is not None:
        # the phone says where the window sits: XMP of its own (rig.spec.capture_state), which the bench keeps
        state = ReadoutWindowState.of(
            window,
            sensor_width_px=sensor.full_width_px,
            sensor_height_px=sensor.full_height_px,
            pixel_pitch_um=sensor.pixel_pitch_um,
        )
        packet = state.to_xmp()
        window_tags = ((XMP_TAG, TIFF_BYTE, len(packet), packet, True),)
    dng = write_dng(
        raw,
        black_level=sensor.black_level_dn,
        white_level=sensor.white_level_dn,
        cfa_pattern=sensor.cfa_pattern,
        make=MAKE,
        model=MODEL,
        unique_camera_model=UNIQUE_CAMERA_MODEL,
        serial=job.unit.serial,
        timestamp_ms=snapshot.time_ns / 1e6,
        exposure_time_s=snapshot.exposure_time_s,
        iso=snapshot.iso,
        f_number=truth.f_number,
        focal_length_mm=truth.focal_length_mm,
        lens_model=lens.name if lens is not None else job.lenses.native.name,
        lens_make=lens.maker if lens is not None else MAKE,
        focal_length_35mm_mm=(
            truth.focal_length_mm * FULL_FRAME_DIAGONAL_MM / (2 * sensor.half_diagonal_mm)
            if lens is not None
            else job.lenses.native.equivalent_focal_length_mm
        ),
        opcode_list2=(
            # the profile's GainMaps span the frame they are written into: a window is not the whole sensor
            # and gets none (its pixels are raw, as a whole frame's are; the maps are metadata for a viewer)
            profile_opcodes(snapshot.profile, width, height)
            if snapshot.profile is not None and lens is not None and window is None  # the M-mount sensor's
            else None
        ),
        extra_tags=window_tags,
    )
    return DevelopedFrame(dng=dng, raw=raw, chart=rendered.chart, truth=truth)


MAX_WORKER_PIXELS = 16_000_000
"""Frames larger than this develop on the twin's thread even with workers: a worker hands back the raw codes and
the DNG through a pipe, 2 bytes a pixel each, and for a full 8192 × 6144 read-out (200 MB a frame) that copying costs
more than the second core gains — a full-readout sign-off took 217 s wall / 262 s CPU with 2 workers against 182 s /
194 s on the twin's thread (benchmarks/takt.py --full, load 1.5); the binned read-out (3.1 MP) and native windows
gain from the workers."""


def worth_a_worker(job: FrameJob) -> bool:
    """Whether ``job``'s frame is small enough (:data:`MAX_WORKER_PIXELS`) to develop in a worker process."""
    sensor = job.station.sensor
    pixels = sensor.width_px * sensor.height_px if job.window is None else job.window.width_px * job.window.height_px
    return pixels <= MAX_WORKER_PIXELS


def _render_in_worker(job: FrameJob) -> RenderedFrame:
    return run_in_worker(render_frame, job)


def time_free(job: FrameJob) -> FrameJob:
    """``job`` with its snapshot's time zeroed: what a frame's pixels depend on.

    Time enters the pixels only through what the job already holds (the mount's pose, the lens the sensor sees
    through), and the DNG's timestamp, which :func:`package` writes: two jobs equal here render the same codes.
    """
    return replace(job, snapshot=replace(job.snapshot, time_ns=0))


class _RenderAhead:
    """A render started before its capture, and the job it is for (time-free)."""

    def __init__(self, key: FrameJob, future: Future[RenderedFrame]) -> None:
        self.key = key
        self.future = future

    def result_for(self, jobs: Sequence[FrameJob]) -> RenderedFrame | None:
        """The render, if it is the one ``jobs`` need (else it is dropped); None: render them anew.

        A render ahead that failed is not this capture's error: the capture renders anew and meets it itself.
        """
        if len(jobs) == 1 and time_free(jobs[0]) == self.key:
            try:
                return self.future.result()
            except Exception:
                return None
        self.drop()
        return None

    def drop(self) -> None:
        self.future.cancel()  # not started yet: never runs; running: its result is thrown away


class ImagePipeline:
    """Develops frames in this process (``processes = 0``) or in the process-wide pool of ``processes`` workers."""

    def __init__(self, processes: int) -> None:
        if processes < 0:
            raise ValueError(f"render processes must be ≥ 0, got {processes}")
        self.processes = processes
        self._ahead: _RenderAhead | None = None
        self._ahead_lock = threading.Lock()
        self.ahead_taken = 0
        """Frames whose render was started ahead (:meth:`anticipate`) and taken by the capture."""
        self.ahead_dropped = 0
        """Renders started ahead that the capture could not use (the bench changed meanwhile)."""
        if processes and not can_spawn():
            self._render_here(PermissionError(f"{multiprocessing.spawn.get_executable()!r} is not executable"))

    def warm_up(self) -> None:
        """Start the workers now, without waiting for them: each imports the renderer as it starts (~0.3 s),
        while the bench homes, not in the first frame's capture."""
        if self.processes:
            try:
                for _ in range(self.processes):
                    _shared_pool(self.processes).submit(warm)
            except OSError as exc:
                self._render_here(exc)

    def develop(self, jobs: Sequence[FrameJob]) -> list[DevelopedFrame]:
        """Develop ``jobs`` (side by side in the pool), in their order; full-size frames here (see worth_a_worker).

        A worker renders the read-out; its DNG is written here (~3 ms a binned frame), so only the raw codes cross
        the pipe. A lone job the pool already rendered ahead (:meth:`anticipate`) is taken from there.
        """
        ahead = self._take_ahead()
        if ahead is not None:
            rendered = ahead.result_for(jobs)
            with self._ahead_lock:
                if rendered is None:
                    self.ahead_dropped += 1
                else:
                    self.ahead_taken += 1
            if rendered is not None:
                return [package(jobs[0], rendered)]
        if self.processes and all(worth_a_worker(job) for job in jobs):
            try:
                pool = _shared_pool(self.processes)
                futures = [pool.submit(_render_in_worker, job) for job in jobs]
            except OSError as exc:
                self._render_here(exc)
            else:
                try:
                    return [package(job, future.result()) for job, future in zip(jobs, futures, strict=True)]
                except BrokenProcessPool:
                    # a worker died (killed, out of memory): this exposure is lost, the next one gets a new pool
                    drop_pool(pool)
                    raise
        return self._develop_here(jobs)

    def _develop_here(self, jobs: Sequence[FrameJob]) -> list[DevelopedFrame]:
        """Develop ``jobs`` in this process: a burst's frames on up to ``processes`` threads side by side.

        Full-size frames stay out of the workers (:data:`MAX_WORKER_PIXELS`), but numpy's noise draws and array
        passes release the interpreter lock, so two frames of a burst render in 4.9 s instead of 7.5 s for four
        (same bytes: each job is a pure function of itself, with its own noise stream). A lone frame's bands render
        side by side the same way.
        """
        if self.processes > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(
                max_workers=min(self.processes, len(jobs)), thread_name_prefix="twin-develop"
            ) as threads:
                return list(threads.map(develop, jobs))
        if self.processes > 1 and len(jobs) == 1 and len(frame_bands(jobs[0])) > 1:
            (job,) = jobs
            with ThreadPoolExecutor(max_workers=self.processes, thread_name_prefix="twin-develop") as threads:
                bands = list(threads.map(lambda index: render_band(job, index), range(len(frame_bands(job)))))
            return [package(job, assemble(job, bands))]
        return [develop(job) for job in jobs]

    def anticipate(self, job: FrameJob) -> bool:
        """Start rendering ``job`` in the pool now, for a capture expected soon (the rail still moving to it).

        The next :meth:`develop` of a lone job equal to ``job`` in everything but the snapshot's time takes this
        render instead of starting one; any other job drops it. Only the pool renders ahead (a render on the bench
        process's own thread would compete with the bench for its interpreter lock); returns whether it did.
        """
        if not self.processes or not worth_a_worker(job):
            return False
        try:
            future = _shared_pool(self.processes).submit(_render_in_worker, job)
        except OSError:
            return False
        with self._ahead_lock:
            previous, self._ahead = self._ahead, _RenderAhead(time_free(job), future)
            if previous is not None:
                previous.drop()
                self.ahead_dropped += 1
        return True

    def _take_ahead(self) -> _RenderAhead | None:
        with self._ahead_lock:
            ahead, self._ahead = self._ahead, None
        return ahead

    def _render_here(self, exc: OSError) -> None:
        """Workers that cannot start (no process may be spawned: a sandbox, an interpreter this user may not
        execute) leave the frames to this process: the same bytes, only without the second core."""
        _log.info(
            "twin phone renders on its own thread: its %d worker processes cannot start (%s)", self.processes, exc
        )
        self.processes = 0


def _shared_pool(processes: int) -> Executor:
    return shared_pool("twin-render", processes, imports=(__name__,))
