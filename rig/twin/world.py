"""TwinBench: the simulated bench the twin's peers drive, rendering a DNG for every capture.

The GRBL peer writes axes, light and knocks into :attr:`TwinBench.state`, the PTP/IP peer writes exposure and ISO
and calls :meth:`TwinBench.capture`. Every capture draws its noise from a Generator seeded with
``(seed, capture counter)``, so a bench with the same seed driven the same way (and the same clock) writes
identical DNG bytes.

The phone's clock (:class:`PhoneClock`, the bench state's default) reads ns since the Unix epoch and never steps
back, like a phone's real-time clock set once at boot: DNG ``DateTimeOriginal``, the PTP ObjectInfo dates, the
shock events and the phone-clock property all carry today's date. A test injects its own clock into
``bench.state.clock``; then every one of those times is that clock's.

After calibration the phone embeds its shading profile in every DNG as an OpcodeList2 of four GainMaps whose area
is the frame being written (:func:`rig.spec.gainmap.gain_maps_for_shading`): the profile's maps are in normalised
sensor coordinates, so one profile serves the full-size and the binned read-outs alike.

The frames themselves are rendered and written by :mod:`rig.twin.image_pipeline`, in this process or in worker
processes of their own (``[twin] render_processes``); the bench keeps their bookkeeping (frame index, light, fault
listeners, hardware time) here, in exposure order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from rig.config.lenses import LensCatalog, LensSpec
from rig.config.station import StationConfig
from rig.config.unit import TwinUnit
from rig.spec.ptp import ReadoutWindow
from rig.spec.types import ActiveSensor
from rig.twin import firmware
from rig.twin.hardware_time import HardwareAction, HardwareLedger
from rig.twin.image_pipeline import DevelopedFrame, FrameJob, ImagePipeline
from rig.twin.mount import mount_pose
from rig.twin.raster import ChartPose
from rig.twin.render import sample_for
from rig.twin.state import AxesAtRest, BenchSnapshot, BenchState, at_time
from rig.twin.truth import UnitTruth, unit_truth

_log = logging.getLogger(__name__)


RENDER_AHEAD_MIN_S = 0.1
"""Moves shorter than this (wall s) start no render ahead: a binned render takes ~0.15 s of a worker, and a render
a setting change then throws away is CPU the bench's measurements need (the fast test speed's moves are ~5 ms)."""


class PhoneClock:
    """The phone's real-time clock: ns since the Unix epoch, anchored to the wall clock once, then monotonic."""

    def __init__(self, *, wall_ns: int | None = None, monotonic_ns: int | None = None) -> None:
        self._wall0 = time.time_ns() if wall_ns is None else wall_ns
        self._mono0 = time.monotonic_ns() if monotonic_ns is None else monotonic_ns

    def __call__(self) -> int:
        return self._wall0 + (time.monotonic_ns() - self._mono0)


@dataclass(frozen=True, eq=False)
class TwinFrame:
    """One capture: the DNG as the phone delivers it, its raw codes, the simulated time and the bench state."""

    dng: bytes
    raw: np.ndarray
    time_ns: int
    snapshot: BenchSnapshot
    chart: str | None = None  # what faced the lens (None: the carousel frame between slots)
    truth: UnitTruth | None = None  # the optical truth of this frame (not part of what the phone delivers)
    window: ReadoutWindow | None = None  # the sensor window this frame is (None: the whole read-out)


class TwinBench:
    """The simulated bench: one unit on one station.

    Parameters
    ----------
    station
        Station configuration (sensor read-out, optics, rail, carousel, light).
    unit
        The unit's true parameters.
    lenses
        The lens catalog.
    seed
        Noise and remount seed (default: ``station.twin.seed``, else 1).
    chart_pose
        Placement of the charts on the carousel (default: nominal).
    """

    def __init__(
        self,
        station: StationConfig,
        unit: TwinUnit,
        lenses: LensCatalog,
        *,
        seed: int | None = None,
        chart_pose: ChartPose = ChartPose(),  # noqa: B008 - frozen, shared default is safe
    ) -> None:
        self.station = station
        self.unit = unit
        self.lenses = lenses
        if seed is None:
            seed = station.twin.seed if station.twin is not None else 1
        self.seed = seed
        self.chart_pose = chart_pose
        self.state = BenchState(clock=PhoneClock())
        self.hardware = HardwareLedger(time_scale=station.twin.time_scale if station.twin is not None else 1.0)
        """Real-bench seconds of every physical action (motion, exposure, read-out, transfer, hands)."""
        self.pipeline = ImagePipeline(station.twin.render_processes if station.twin is not None else 0)
        """Where the phone's frames are rendered and written (this process, or worker processes of their own)."""
        self._counter = 0
        self._counter_lock = threading.Lock()
        # fault injection (rig.twin.faults): a factor on the light panel's luminance per frame index, and
        # callbacks told the index of every frame once it is rendered
        self.light_factor: Callable[[int], float] | None = None
        self.capture_listeners: list[Callable[[int], None]] = []
        self.exposure_listeners: list[Callable[[int], None]] = []
        """Called with the index a frame is about to get, as its exposure starts (before the state is read)."""
        self.state.motion_listeners.append(self._render_ahead)

    # ------------------------------------------------------------------------------------------- lens
    def lens_spec(self) -> LensSpec | None:
        """The M lens on the bayonet, or None."""
        snap = self.state.snapshot()
        if not snap.lens_attached or snap.lens_id is None:
            return None
        return self.lenses.get(snap.lens_id, source="bench", field="lens_id")

    def imaging_lens(self, snapshot: BenchSnapshot) -> LensSpec | None:
        """The M lens the sensor sees through, or None while the phone still uses its main camera.

        The phone switches to the M-mount sensor ``firmware.sensor_switch_latency_ms`` after the lens goes on.
        """
        if not snapshot.lens_attached or snapshot.lens_id is None:
            return None
        if firmware.lens_state(snapshot, self.unit.firmware, lens_code=None).active_sensor is not ActiveSensor.M_MOUNT:
            return None
        return self.lenses.get(snapshot.lens_id, source="bench", field="lens_id")

    def truth(self, snapshot: BenchSnapshot | None = None) -> UnitTruth:
        """Ground truth of the imaging optics at ``snapshot`` (default: now)."""
        snap = snapshot if snapshot is not None else self.state.snapshot()
        lens = self.imaging_lens(snap)
        unit = sample_for(self.unit, lens.id, snap.f_number) if lens is not None else self.unit
        pose = mount_pose(self.unit, lens, snap, seed=self.seed, design=self.station.mount)
        return unit_truth(unit, lens, self.station, pose, catalog=self.lenses)

    # ------------------------------------------------------------------------------------------- capture
    def _next_counter(self) -> int:
        with self._counter_lock:
            value = self._counter
            self._counter += 1
            return value

    @property
    def frames_rendered(self) -> int:
        """How many frames the bench has rendered so far."""
        with self._counter_lock:
            return self._counter

    def render_snapshot(self, snapshot: BenchSnapshot, *, noise: bool = True) -> TwinFrame:
        """Render one frame for ``snapshot`` (advances the capture counter)."""
        return self._render_exposure(snapshot, (None,), noise=noise)[0]

    def _render_exposure(
        self, snapshot: BenchSnapshot, windows: tuple[ReadoutWindow | None, ...], *, noise: bool
    ) -> list[TwinFrame]:
        """One exposure at ``snapshot`` read out whole (``(None,)``) or as ``windows``: one frame each.

        One exposure is one frame index (the capture counter, the faults' frame number, the light it got); each
        window draws its noise from its own stream ``(seed, counter, k)``, as the pixels of a whole frame draw
        theirs from one: windows do not overlap (:func:`rig.spec.ptp.parse_readout_windows`).
        """
        counter, jobs = self._exposure_jobs(snapshot, windows, noise=noise)
        frames = self._frames(jobs, self.pipeline.develop(jobs))
        for listener in self.capture_listeners:
            listener(counter)
        return frames

    def _exposure_jobs(
        self, snapshot: BenchSnapshot, windows: tuple[ReadoutWindow | None, ...], *, noise: bool
    ) -> tuple[int, list[FrameJob]]:
        """The next frame index and the jobs of its exposure at ``snapshot`` (the light it really got)."""
        counter = self._next_counter()
        return counter, self._jobs_at(counter, snapshot, windows, noise=noise)

    def _jobs_at(
        self, counter: int, snapshot: BenchSnapshot, windows: tuple[ReadoutWindow | None, ...], *, noise: bool
    ) -> list[FrameJob]:
        """The jobs of exposure ``counter`` at ``snapshot``."""
        if self.light_factor is not None:
            # a flickering or drifting panel: the luminance this exposure really got
            snapshot = replace(snapshot, light_pwm=snapshot.light_pwm * self.light_factor(counter))
        lens = self.imaging_lens(snapshot)
        pose = mount_pose(self.unit, lens, snapshot, seed=self.seed, design=self.station.mount)
        jobs = [
            FrameJob(
                station=self.station,
                unit=self.unit,
                lenses=self.lenses,
                snapshot=snapshot,
                lens=lens,
                pose=pose,
                chart_pose=self.chart_pose,
                noise_seed=(self.seed, counter) if window is None else (self.seed, counter, k),
                noise=noise,
                window=window,
            )
            for k, window in enumerate(windows)
        ]
        return jobs

    def _render_ahead(self, rest: AxesAtRest) -> None:
        """Start rendering the frame a capture would take once the axes rest at ``rest`` (a motion listener).

        A real phone exposes after the rail stops; the twin's render costs more wall time than a real read-out, and
        a bench that shoots at every stop of a sweep would wait for it. So a move long enough to hide a good part
        of a render (:data:`RENDER_AHEAD_MIN_S`) starts the next frame's render in the phone's workers at the rest
        position, with the phone's settings of now and the next frame index. The capture takes it only if its own
        job is equal in everything but time (:func:`rig.twin.image_pipeline.time_free`): a setting changed after
        the move, a fault or a knock makes the capture render anew, so the frame's bytes never depend on it.
        """
        if rest.in_s < RENDER_AHEAD_MIN_S or not self.pipeline.processes:
            return
        now = self.state.snapshot()
        snapshot = replace(
            at_time(now, now.time_ns + round(rest.in_s * 1e9)),
            carousel_mm=rest.carousel_mm,
            pitch_deg=rest.pitch_deg,
            rail_mm=rest.rail_mm,
        )
        with self._counter_lock:
            counter = self._counter
        self.pipeline.anticipate(self._jobs_at(counter, snapshot, (None,), noise=True)[0])

    @staticmethod
    def _frames(jobs: Sequence[FrameJob], developed: Sequence[DevelopedFrame]) -> list[TwinFrame]:
        return [
            TwinFrame(
                dng=frame.dng,
                raw=frame.raw,
                time_ns=job.snapshot.time_ns,
                snapshot=job.snapshot,
                chart=frame.chart,
                truth=frame.truth,
                window=job.window,
            )
            for job, frame in zip(jobs, developed, strict=True)
        ]

    def capture(self, *, noise: bool = True) -> TwinFrame:
        """Capture one frame of the current bench state (as the phone does: paced like the hardware)."""
        began = self.hardware.monotonic()
        for listener in self.exposure_listeners:
            listener(self.frames_rendered)
        frame = self.render_snapshot(self.state.snapshot(), noise=noise)
        self._charge_frames([frame], exposed_s=frame.snapshot.exposure_time_s, began_monotonic_s=began)
        return frame

    def capture_windows(self, windows: Sequence[ReadoutWindow], *, noise: bool = True) -> list[TwinFrame]:
        """One exposure of the current bench state read out as ``windows`` at the native pitch, one frame each
        (the phone's ``ReadoutWindows``; checked by the caller against :func:`rig.spec.ptp.parse_readout_windows`).
        """
        if not windows:
            raise ValueError("capture_windows needs at least one window")
        began = self.hardware.monotonic()
        for listener in self.exposure_listeners:
            listener(self.frames_rendered)
        frames = self._render_exposure(self.state.snapshot(), tuple(windows), noise=noise)
        self._charge_frames(frames, exposed_s=frames[0].snapshot.exposure_time_s, began_monotonic_s=began)
        return frames

    def _charge_frames(self, frames: list[TwinFrame], *, exposed_s: float, began_monotonic_s: float) -> None:
        """Charge what delivering ``frames`` costs a real phone: ``exposed_s`` of shutter time, the read-out of
        every frame exposed now (a window reads its own pixels only), each frame's transfer; and wait for the
        exposure and read-out (the ledger's pacing). The transfer is paced where it happens, as the host downloads
        the frame (:meth:`pace_transfer`): paced here too, a frame's wall time would count it twice."""
        costs = self.hardware.costs
        sensor = self.station.sensor
        if any(f.window is not None for f in frames):
            pixels = sum(f.raw.size for f in frames)
        else:
            pixels = sensor.width_px * sensor.height_px
        readout = costs.readout_s(pixels) if exposed_s > 0 else 0.0
        transfer = sum(costs.transfer_s(len(f.dng)) for f in frames)
        self.hardware.charge(HardwareAction.EXPOSURE, exposed_s)
        self.hardware.charge(HardwareAction.READOUT, readout)
        self.hardware.charge(HardwareAction.TRANSFER, transfer)
        self.hardware.pace(exposed_s + readout, began_monotonic_s=began_monotonic_s)

    def pace_transfer(self, size_bytes: int, *, began_monotonic_s: float) -> None:
        """Wait until a download of a ``size_bytes`` frame that began at ``began_monotonic_s`` has taken what its
        USB transfer takes a real phone (:meth:`HardwareCosts.transfer_s`; charged when the frame was taken)."""
        self.hardware.pace(self.hardware.costs.transfer_s(size_bytes), began_monotonic_s=began_monotonic_s)

    def capture_burst(
        self, count: int, *, frame_interval_s: float, noise: bool = True, start_ns: int | None = None
    ) -> list[TwinFrame]:
        """``count`` frames at simulated times ``t0 + k·frame_interval_s`` (the mount rings in simulated time).

        ``start_ns`` (≤ now) takes the burst from the phone's zero-shutter-lag ring buffer: frames exposed before
        the request, as phones keep them. The mount's motion is a function of time, so a past frame is exact.
        """
        if count < 1:
            raise ValueError(f"burst count must be ≥ 1, got {count}")
        if frame_interval_s <= 0:
            raise ValueError(f"frame_interval_s must be > 0, got {frame_interval_s}")
        first = self.state.snapshot()
        if start_ns is not None:
            if start_ns > first.time_ns:
                raise ValueError(f"burst start {start_ns} ns is in the future (now {first.time_ns} ns)")
            first = at_time(first, start_ns)
        began = self.hardware.monotonic()
        step_ns = round(frame_interval_s * 1e9)
        # every frame's index, light and faults in exposure order, as one frame after another would get them;
        # then the frames render side by side (each a function of its job alone)
        jobs: list[FrameJob] = []
        for k in range(count):
            counter, exposure = self._exposure_jobs(at_time(first, first.time_ns + k * step_ns), (None,), noise=noise)
            jobs += exposure
            for listener in self.capture_listeners:
                listener(counter)
        frames = self._frames(jobs, self.pipeline.develop(jobs))
        # a burst from the ring buffer was exposed before the request (while the bench did something else): only
        # its transfer is new; a live burst keeps the shutter busy from the first exposure to the last read-out
        exposing_s = (count - 1) * frame_interval_s + first.exposure_time_s if start_ns is None else 0.0
        self._charge_frames(frames, exposed_s=exposing_s, began_monotonic_s=began)
        return frames
