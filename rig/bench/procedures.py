"""Bench procedures shared by the plans: lens changes, flat fields, through-focus sweeps, pitch and remount series.

Each procedure drives the bench through :class:`rig.bench.ops.BenchOps` (validated, retried captures) and hands
pixels to the pure functions of :mod:`rig.measure`; the plans turn the typed results into recorded measurements.
A frame's analysis goes to the bench's :class:`~rig.bench.pipeline.MeasurementPool` as soon as the frame is in,
so it runs while the bench moves to and takes the next one; every result is collected before the procedure
returns, inside the step that asked for it (:mod:`rig.bench.pipeline`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace

import numpy as np

from rig.bench.ops import BenchOps, Frame
from rig.bench.pipeline import MeasurementPool, PipelineMode, device_lane, gather
from rig.bench.sweep_rows import SweepRows
from rig.config.charts import load_chart
from rig.config.lenses import LensSpec
from rig.config.station import StationConfig
from rig.devices.protocols import Phone
from rig.errors import DeviceStateError, DeviceTimeout, MeasurementError
from rig.measure.dotgrid import DotGridFit, detect_dots, fit_dot_grid
from rig.measure.edges import ChartEdge, EdgeRoi, measure_chart
from rig.measure.focus import (
    EdgeFocus,
    FlangeResult,
    measure_flange,
    rail_defocus_um_per_mm,
    sweep_reference_index,
)
from rig.measure.imageio import bayer_mean
from rig.measure.registration import raw_shift_px
from rig.measure.sfr import SfrResult
from rig.spec.ptp import MAX_READOUT_WINDOWS, MAX_WINDOW_SIDE_PX, MIN_WINDOW_SIDE_PX, ReadoutWindow
from rig.spec.types import ActiveSensor, AssistOutputs, LensState

SWEEP_HALF_RANGE_UM = 90.0
"""Image-side half range of a through-focus sweep: brackets ±40 µm of flange plus tilt and curvature."""
SWEEP_STEPS = 11
FLAT_TARGET_FRACTION = 0.5
"""Flat fields are exposed to half of white − black at the centre: linear, far from clipping and from black."""
CHART_TARGET_FRACTION = 0.6
LIGHT_LEVEL = 0.8


@dataclass(frozen=True)
class Sweep:
    """A through-focus sweep of the slanted-edge chart and what it measured."""

    frames: tuple[Frame, ...]
    rail_mm: np.ndarray  # relative to the station's focus position
    flange: FlangeResult
    peaking_coverage: np.ndarray  # fraction of quads the phone's peaking marks, per frame
    assists: tuple[AssistOutputs, ...]
    rail_um_per_mm: float

    def best_rail_mm(self, *, x_um: float = 0.0, y_um: float = 0.0) -> float:
        """Rail position (relative to focus) that focuses the sensor point (x, y) µm from the centre."""
        f = self.flange
        image_um = (
            f.flange_offset_um
            + x_um * math.tan(math.radians(f.tilt_y_arcmin / 60))
            + y_um * math.tan(math.radians(f.tilt_x_arcmin / 60))
        )
        return image_um / self.rail_um_per_mm


# ------------------------------------------------------------------------------------------------ lens
def wait_for_sensor(
    phone: Phone, *, attached: bool, timeout_s: float, after_ms: float | None = None, poll_s: float = 0.02
) -> LensState:
    """Poll the phone's lens state until it shows the lens ``attached`` (or removed) with the matching sensor.

    ``after_ms``: the attach must be newer than this phone time (a remount is fast enough that the phone may never
    report the lens as off in between; the new attach time is what tells the remount has been seen).
    """
    want_sensor = ActiveSensor.M_MOUNT if attached else ActiveSensor.MAIN
    deadline = time.monotonic() + timeout_s
    while True:
        state = phone.lens_state()
        fresh = after_ms is None or (state.attached_at_ms is not None and state.attached_at_ms > after_ms)
        switched = not attached or (
            state.sensor_switched_at_ms is not None
            and state.attached_at_ms is not None
            and state.sensor_switched_at_ms >= state.attached_at_ms
        )
        if state.attached == attached and state.active_sensor is want_sensor and fresh and switched:
            return state
        if time.monotonic() >= deadline:
            raise DeviceTimeout(
                f"phone still reports attached={state.attached}, sensor {state.active_sensor} after {timeout_s:g} s "
                f"(waiting for attached={attached}, sensor {want_sensor})"
            )
        time.sleep(poll_s)


def knock_and_time(bench: BenchOps, *, timeout_s: float, poll_s: float = 0.01) -> float:
    """Pulse the knocker and wait for the phone's accelerometer to report it; returns the shock's phone time (ms).

    The phone reports a shock by an event its sensor thread sends when it next polls, so the report can trail the
    knock (more so on a loaded host): a shock newer than the one known before the knock is waited for, up to
    ``timeout_s``. Raises :class:`MeasurementError` when none comes (the knocker is not connected).
    """
    before = bench.phone.last_shock_ms()
    bench.stage.knock()
    deadline = time.monotonic() + timeout_s
    while True:
        shock = bench.phone.last_shock_ms()
        if shock is not None and shock != before:
            return shock
        if time.monotonic() >= deadline:
            raise MeasurementError(
                f"the phone's accelerometer felt no knock within {timeout_s:g} s: is the knocker connected?"
            )
        time.sleep(poll_s)


def ensure_lens(bench: BenchOps, lens: LensSpec) -> LensState:
    """Have ``lens`` on the bayonet and the M-mount sensor live (mounting it through the operator if needed)."""
    state = bench.phone.lens_state()
    if state.attached and state.lens_code == lens.lens_code and state.active_sensor is ActiveSensor.M_MOUNT:
        return state
    if state.attached:
        bench.operator.unmount_lens()
        wait_for_sensor(bench.phone, attached=False, timeout_s=bench.station.phone.lens_change_timeout_s)
    bench.operator.mount_lens(lens.id)
    return wait_for_sensor(bench.phone, attached=True, timeout_s=bench.station.phone.lens_change_timeout_s)


def ensure_no_lens(bench: BenchOps) -> LensState:
    state = bench.phone.lens_state()
    if state.attached:
        bench.operator.unmount_lens()
    return wait_for_sensor(bench.phone, attached=False, timeout_s=bench.station.phone.lens_change_timeout_s)


# ------------------------------------------------------------------------------------------------ exposure
def offered_exposure(bench: BenchOps, wanted_s: float) -> float:
    """The longest exposure the phone offers that is not longer than ``wanted_s`` (never overexposes)."""
    choices = sorted(bench.exposure_choices())
    fitting = [c for c in choices if c <= wanted_s * (1 + 1e-9)]
    if not fitting:
        raise MeasurementError(f"the phone's shortest exposure {choices[0]:g} s overexposes (wanted {wanted_s:g} s)")
    return fitting[-1]


def exposure_for(bench: BenchOps, *, t_stop: float, transmittance: float, fraction: float, iso: int = 100) -> float:
    sensor = bench.station.sensor
    target = fraction * (sensor.white_level_dn - sensor.black_level_dn)
    wanted = bench.exposure_for(
        target_dn=target, t_stop=t_stop, light=LIGHT_LEVEL, transmittance=transmittance, iso=iso
    )
    return offered_exposure(bench, wanted)


# ------------------------------------------------------------------------------------------------ captures
def flat_field(bench: BenchOps, *, t_stop: float, fraction: float = FLAT_TARGET_FRACTION, tag: str) -> Frame:
    exposure = exposure_for(bench, t_stop=t_stop, transmittance=1.0, fraction=fraction)
    return bench.shoot(chart="flat", tag=tag, light=LIGHT_LEVEL, exposure_time_s=exposure)


def chart_exposure(bench: BenchOps, lens_t_stop: float) -> float:
    return exposure_for(bench, t_stop=lens_t_stop, transmittance=0.8, fraction=CHART_TARGET_FRACTION)


def sweep_rails(station: StationConfig, lens: LensSpec, *, half_range_um: float, steps: int) -> np.ndarray:
    k = rail_defocus_um_per_mm(
        focal_length_mm=lens.focal_length_mm, collimator_focal_length_mm=station.optics.collimator_focal_length_mm
    )
    return np.linspace(-half_range_um, half_range_um, steps) / k


def through_focus(
    bench: BenchOps,
    lens: LensSpec,
    *,
    t_stop: float,
    tag: str = "focus",
    half_range_um: float = SWEEP_HALF_RANGE_UM,
    steps: int = SWEEP_STEPS,
    with_assists: bool = True,
) -> Sweep:
    """Capture the slanted-edge chart across focus and fit flange offset, tilt and curvature."""
    rails = sweep_rails(bench.station, lens, half_range_um=half_range_um, steps=steps)
    return through_focus_at(bench, lens, rails, t_stop=t_stop, tag=tag, with_assists=with_assists)


def through_focus_at(
    bench: BenchOps,
    lens: LensSpec,
    rails: np.ndarray,
    *,
    t_stop: float,
    tag: str = "focus",
    with_assists: bool = True,
) -> Sweep:
    """Capture the slanted-edge chart at the given rail positions (mm from the station's focus position) and fit
    flange offset, tilt and curvature; e.g. a short sweep centred on the focus a calibration profile predicts."""
    station = bench.station
    rails = np.asarray(rails, dtype=float)
    exposure = chart_exposure(bench, t_stop)
    frames: list[Frame] = []
    assists: list[AssistOutputs] = []
    # each frame's MTF50 row is measured while the rail moves on (rig.bench.sweep_rows)
    rows = SweepRows(bench.pool, sweep_reference_index(rails))
    # the phone's assists of frame k are downloaded while the rail moves to frame k + 1 (they must be taken before
    # the next capture replaces them; the phone is not used otherwise meanwhile)
    fetching: Future[AssistOutputs] | None = None
    with device_lane(bench.pool.mode) as lane:
        for i, rail in enumerate(rails):
            bench.place(chart="sfr", rail_mm=float(rail))
            if fetching is not None:
                assists.append(fetching.result())
            frame = bench.shoot(
                chart="sfr", tag=f"{tag}-{i:02d}", rail_mm=float(rail), light=LIGHT_LEVEL, exposure_time_s=exposure
            )
            frames.append(frame)
            if with_assists:
                fetching = lane.submit(bench.phone.assist_outputs)
            rows.add(frame)
        if fetching is not None:
            assists.append(fetching.result())
    image = frames[0].image
    measured = rows.result()
    edges, mtf50_rows = (None, None) if measured is None else measured
    flange = measure_flange(
        [f.raw for f in frames],
        rails,
        focal_length_mm=lens.focal_length_mm,
        collimator_focal_length_mm=station.optics.collimator_focal_length_mm,
        pixel_pitch_um=station.sensor.readout_pitch_um,
        cfa_pattern=image.cfa_pattern,
        black_level=image.black_level,
        white_level=image.white_level,
        rois=edges,
        mtf50_rows=mtf50_rows,
    )
    coverage = np.array([float(np.mean(a.peaking_mask)) for a in assists]) if assists else np.array([])
    k = rail_defocus_um_per_mm(
        focal_length_mm=lens.focal_length_mm, collimator_focal_length_mm=station.optics.collimator_focal_length_mm
    )
    return Sweep(tuple(frames), rails, flange, coverage, tuple(assists), k)


def dot_grid(bench: BenchOps, *, t_stop: float, tag: str = "dotgrid") -> tuple[Frame, DotGridFit]:
    """The dot-grid chart at focus and its geometry: principal point (the optical axis on the sensor) and
    distortion. The axis comes from geometry, not shading: the sensor's chief-ray-angle shading is centred on the
    sensor, not on the lens, and pulls a shading-symmetry centre towards the middle."""
    chart = load_chart("dotgrid")
    exposure = exposure_for(bench, t_stop=t_stop, transmittance=chart.background, fraction=CHART_TARGET_FRACTION)
    frame = bench.shoot(chart="dotgrid", tag=tag, light=LIGHT_LEVEL, exposure_time_s=exposure)
    assert chart.dots is not None  # a dot_grid chart always has its [dots] table (schema)
    detection = detect_dots(frame.raw, cfa=True, black_level_dn=frame.image.black_level)
    return frame, fit_dot_grid(detection, pitch=chart.dots.pitch)


def zone_mtf50_at_best_focus(sweep: Sweep) -> dict[str, float]:
    """Median over each field zone of the edges' MTF50 at their own best focus (cy/px)."""
    per_zone: dict[str, list[float]] = {}
    for edge in sweep.flange.edges:
        if edge.best is not None and math.isfinite(edge.best.peak_mtf50_cy_px):
            per_zone.setdefault(str(edge.roi.zone), []).append(edge.best.peak_mtf50_cy_px)
    if not per_zone:
        raise MeasurementError("no edge of the sweep has a best focus: nothing to grade sharpness on")
    return {zone: float(np.median(v)) for zone, v in per_zone.items()}


# ------------------------------------------------------------------------------------------------ native pitch
WINDOW_MARGIN_PX = 16
"""Native pixels added around a chart square's edge ROIs for its read-out window (even, so windows stay on the CFA's
R site): room for the ROI's rounding at the binned pitch."""
FOCUS_GROUP_DEPTH_FRACTION = 0.25
"""Edges whose best foci lie within this fraction of the depth of focus N·c share one windowed capture, midway
between the first and the last: each edge is then at most N·c/8 from its own best, a blur disc of c/8 (0.4 µm,
a quarter of a native pixel)."""


@dataclass(frozen=True)
class NativeEdge:
    """One chart edge of the binned overview, measured again at the native pitch in a window around its square."""

    focus: EdgeFocus  # the edge as the binned sweep found and focused it
    sfr: SfrResult | None  # its e-SFR on the window's native pixels (cycles per native pixel)
    frame: Frame  # the window it was measured in
    error: str | None = None

    @property
    def mtf50_cy_px(self) -> float | None:
        """MTF50 (cy/native px) when the edge speaks for its zone: measured, unflagged, finite (as
        :func:`rig.measure.edges.measure_chart` counts an edge for a zone's median)."""
        sfr = self.sfr
        if sfr is None or sfr.flags or not math.isfinite(sfr.mtf50_cy_px):
            return None
        return float(sfr.mtf50_cy_px)


@dataclass(frozen=True)
class NativeSharpness:
    """The chart's edges at the sensor's native pitch (windowed read-outs), e.g. each at its own best focus."""

    edges: tuple[NativeEdge, ...]
    frames: tuple[Frame, ...]
    pixel_pitch_um: float

    def zone_mtf50(self) -> dict[str, float]:
        """Median MTF50 (cy/native px) of each field zone's edges that speak for it."""
        per_zone: dict[str, list[float]] = {}
        for edge in self.edges:
            if (value := edge.mtf50_cy_px) is not None:
                per_zone.setdefault(str(edge.focus.roi.zone), []).append(value)
        return {zone: float(np.median(v)) for zone, v in per_zone.items()}

    def as_focused_edges(self) -> list[EdgeFocus]:
        """The sweep's edges with their best-focus MTF50 replaced by the native one (None where it was not
        measured): what :func:`rig.measure.field_symmetry.corner_symmetry` reads, at the native pitch."""
        out = []
        for edge in self.edges:
            best = edge.focus.best
            value = edge.mtf50_cy_px
            new_best = None if best is None or value is None else replace(best, peak_mtf50_cy_px=value)
            out.append(replace(edge.focus, best=new_best))
        return out


def square_windows(
    rois: Sequence[EdgeRoi], *, binning: int, sensor_width_px: int, sensor_height_px: int
) -> dict[int, ReadoutWindow]:
    """A native-pitch read-out window around each chart square: the box of its edges' ROIs (binned read-out
    pixels × ``binning``) with :data:`WINDOW_MARGIN_PX` around it, on even pixels, inside the sensor.

    Raises
    ------
    MeasurementError
        A square's edges span more than the phone's largest window (``MAX_WINDOW_SIDE_PX``).
    """
    boxes: dict[int, list[int]] = {}
    for roi in rois:
        x0, y0, x1, y1 = roi.x * binning, roi.y * binning, (roi.x + roi.w) * binning, (roi.y + roi.h) * binning
        box = boxes.setdefault(roi.square, [x0, y0, x1, y1])
        box[:] = [min(box[0], x0), min(box[1], y0), max(box[2], x1), max(box[3], y1)]
    windows = {}
    for square, (x0, y0, x1, y1) in boxes.items():
        left = max(0, (x0 - WINDOW_MARGIN_PX) // 2 * 2)
        top = max(0, (y0 - WINDOW_MARGIN_PX) // 2 * 2)
        right = min(sensor_width_px, -(-(x1 + WINDOW_MARGIN_PX) // 2) * 2)
        bottom = min(sensor_height_px, -(-(y1 + WINDOW_MARGIN_PX) // 2) * 2)
        width, height = right - left, bottom - top
        if max(width, height) > MAX_WINDOW_SIDE_PX:
            raise MeasurementError(
                f"chart square {square}: its edges span {width}×{height} native px, more than the phone's largest "
                f"read-out window ({MAX_WINDOW_SIDE_PX} px)"
            )
        windows[square] = ReadoutWindow(left, top, max(width, MIN_WINDOW_SIDE_PX), max(height, MIN_WINDOW_SIDE_PX))
    return windows


def native_roi(roi: EdgeRoi, window: ReadoutWindow, *, binning: int) -> EdgeRoi:
    """A binned read-out's ROI as native pixels of ``window`` (the same piece of the sensor, ``binning``² as many
    pixels; even offsets keep its CFA phase)."""
    return replace(
        roi,
        x=roi.x * binning - window.x_px,
        y=roi.y * binning - window.y_px,
        w=roi.w * binning,
        h=roi.h * binning,
        centre_x_px=(roi.centre_x_px + 0.5) * binning - 0.5 - window.x_px,
        centre_y_px=(roi.centre_y_px + 0.5) * binning - 0.5 - window.y_px,
        side_px=roi.side_px * binning,
    )


def _window_sfr(frame: Frame, focused: list[EdgeFocus], binning: int, pitch_um: float) -> list[ChartEdge]:
    """The e-SFR of the edges of one window at its native pitch (a pool task)."""
    assert frame.window is not None
    window = frame.window.window
    image = frame.image
    result = measure_chart(
        frame.raw,
        cfa_pattern=image.cfa_pattern,
        black_level=image.black_level,
        white_level=image.white_level,
        pixel_pitch_um=pitch_um,
        rois=[native_roi(e.roi, window, binning=binning) for e in focused],
    )
    return list(result.edges)


def native_sharpness(
    bench: BenchOps,
    groups: Sequence[tuple[float, Sequence[EdgeFocus]]],
    *,
    exposure_time_s: float,
    tag: str,
) -> NativeSharpness:
    """Each group's edges measured at the native pitch: for each (rail mm from focus, edges), one windowed
    capture per :data:`MAX_READOUT_WINDOWS` of their squares, the e-SFR of every edge in its square's window.

    The windows come from the edges' binned ROIs (:func:`square_windows`); each window's SFR runs in the bench's
    pool while the bench takes the next capture.
    """
    sensor = bench.station.sensor
    pitch = sensor.pixel_pitch_um
    every = [e for _, edges in groups for e in edges]
    windows = square_windows(
        [e.roi for e in every],
        binning=sensor.binning,
        sensor_width_px=sensor.full_width_px,
        sensor_height_px=sensor.full_height_px,
    )
    frames: list[Frame] = []
    pending: list[tuple[list[EdgeFocus], Frame, Future[list[ChartEdge]]]] = []
    for g, (rail_mm, edges) in enumerate(groups):
        by_square: dict[int, list[EdgeFocus]] = {}
        for edge in edges:
            by_square.setdefault(edge.roi.square, []).append(edge)
        squares = sorted(by_square)
        for start in range(0, len(squares), MAX_READOUT_WINDOWS):
            chunk = squares[start : start + MAX_READOUT_WINDOWS]
            shot = bench.shoot_windows(
                [windows[sq] for sq in chunk],
                chart="sfr",
                tag=f"{tag}-g{g:02d}-{start // MAX_READOUT_WINDOWS}",
                rail_mm=float(rail_mm),
                light=LIGHT_LEVEL,
                exposure_time_s=exposure_time_s,
            )
            frames.extend(shot)
            for square, frame in zip(chunk, shot, strict=True):
                focused = by_square[square]
                pending.append((focused, frame, bench.pool.submit(_window_sfr, frame, focused, sensor.binning, pitch)))
    native: list[NativeEdge] = []
    for (focused, frame, _), measured in zip(pending, gather(f for _, _, f in pending), strict=True):
        for edge, chart_edge in zip(focused, measured, strict=True):
            native.append(NativeEdge(edge, chart_edge.sfr, frame, chart_edge.error))
    return NativeSharpness(tuple(native), tuple(frames), pitch)


def focus_groups(sweep: Sweep, *, depth_of_focus_um: float) -> list[tuple[float, list[EdgeFocus]]]:
    """The sweep's focused edges grouped by best focus: runs of edges (sorted by best focus) within
    :data:`FOCUS_GROUP_DEPTH_FRACTION` of the depth of focus ``depth_of_focus_um`` (image side), each group midway
    between its first and last edge's best focus (rail mm from focus)."""
    focused = sorted(
        (e for e in sweep.flange.edges if e.best is not None and math.isfinite(e.best.peak_mtf50_cy_px)),
        key=lambda e: e.best.position if e.best is not None else 0.0,
    )
    if not focused:
        raise MeasurementError("no edge of the sweep has a best focus: nothing to measure at the native pitch")
    span_mm = FOCUS_GROUP_DEPTH_FRACTION * depth_of_focus_um / sweep.rail_um_per_mm
    groups: list[list[EdgeFocus]] = []
    for edge in focused:
        assert edge.best is not None
        if groups and edge.best.position - _best_mm(groups[-1][0]) <= span_mm:
            groups[-1].append(edge)
        else:
            groups.append([edge])
    return [(0.5 * (_best_mm(g[0]) + _best_mm(g[-1])), g) for g in groups]


def _best_mm(edge: EdgeFocus) -> float:
    assert edge.best is not None
    return edge.best.position


REGISTRATION_GRID = 3
REGISTRATION_ITERATIONS = 2
"""A 3×3 patch grid and two passes agree with the 5×5/3-pass default within 0.005 px on bench frames (pure
translation and small rotation) at a third of the time: a knock burst registers 24 frames."""


def shifts_against(reference: Frame, frames: list[Frame], *, upsample: int = 100) -> np.ndarray:
    """(dx, dy) of each frame against ``reference`` in read-out pixels (registration on quad luma).

    ``upsample`` sets the resolution of each correlation peak (1/upsample quad px): 100 for positions compared at
    the 0.05 px level (sag, remount), less where a fitted envelope averages many frames (settling).
    """
    tracker = ShiftTracker(MeasurementPool(mode=PipelineMode.OFF), reference, upsample=upsample)
    for frame in frames:
        tracker.add(frame)
    return tracker.shifts()


class ShiftTracker:
    """Registers frames against a reference as they arrive, in the bench's pool: the :func:`shifts_against`
    numbers, computed while the bench takes the next frame.

    ``reference``: the frame the others are registered to; None to take the first frame added (which then also
    gets its own shift, ≈ 0, as :func:`shifts_against` gives for a list that starts with its reference).
    """

    def __init__(self, pool: MeasurementPool, reference: Frame | None = None, *, upsample: int = 100) -> None:
        self._pool = pool
        self._upsample = upsample
        self._reference: Future[np.ndarray] | None = None
        self._first_is_reference = reference is None
        self._shifts: list[Future[tuple[float, float]]] = []
        if reference is not None:
            self._reference = pool.submit(bayer_mean, reference.raw)

    def add(self, frame: Frame) -> None:
        """Register ``frame`` next (after the frames added so far)."""
        self.put(len(self._shifts), frame.raw)

    def put(self, index: int, raw: np.ndarray) -> None:
        """Register the raw frame ``raw`` as frame ``index``: the next one, or again one already put (a burst the
        phone repeated hands its frames over anew; the latest put of an index is the one that counts, an
        earlier one's analysis is cancelled if it has not started)."""
        if not 0 <= index <= len(self._shifts):
            raise ValueError(f"frame index {index}: expected 0..{len(self._shifts)} (the frames so far, or the next)")
        if self._first_is_reference and index == 0:
            self._reference = self._pool.submit(bayer_mean, raw)
        assert self._reference is not None, "frame 0 comes first"
        shift = self._pool.submit(_shift_against, self._pool, self._reference, raw, self._upsample)
        if index == len(self._shifts):
            self._shifts.append(shift)
        else:
            self._shifts[index].cancel()
            self._shifts[index] = shift

    def shifts(self) -> np.ndarray:
        """(dx, dy) per frame, read-out px, in index order (waits for the analyses still running)."""
        return np.asarray(gather(self._shifts), dtype=float).reshape(-1, 2)


def _shift_against(
    pool: MeasurementPool, reference: Future[np.ndarray], raw: np.ndarray, upsample: int
) -> tuple[float, float]:
    # in an analysis process: a registration is hundreds of small numpy and OpenCV calls, which on the pool's
    # threads took turns on the interpreter lock (a knock burst's 16 took 0.62 s after the burst, 0.05 s each alone)
    return pool.compute(
        raw_shift_px,
        reference.result(),
        raw,
        grid=REGISTRATION_GRID,
        iterations=REGISTRATION_ITERATIONS,
        upsample=upsample,
    )


def pitch_series(
    bench: BenchOps,
    *,
    rail_mm: float,
    exposure_s: float,
    pitches: tuple[float, ...],
    tag: str,
    on_frame: Callable[[Frame], None] | None = None,
) -> list[Frame]:
    """The chart at each fixture pitch; ``on_frame`` is given each frame as soon as it is taken."""
    frames = []
    for p in pitches:
        frame = bench.shoot(
            chart="sfr",
            tag=f"{tag}{p:+.0f}",
            rail_mm=rail_mm,
            pitch_deg=p,
            light=LIGHT_LEVEL,
            exposure_time_s=exposure_s,
        )
        frames.append(frame)
        if on_frame is not None:
            on_frame(frame)
    return frames


def sag_series(
    bench: BenchOps, sweep: Sweep, *, pitches: tuple[float, ...], tag: str = "pitch"
) -> tuple[list[Frame], np.ndarray]:
    """The chart at the sweep's best focus at each fixture pitch (the fixture is levelled again afterwards), and
    each frame's (dx, dy) against the first, in read-out pixels."""
    rail = sweep.best_rail_mm()
    tracker = ShiftTracker(bench.pool)
    frames = pitch_series(
        bench, rail_mm=rail, exposure_s=sweep.frames[0].exposure_time_s, pitches=pitches, tag=tag, on_frame=tracker.add
    )
    bench.place(chart="sfr", rail_mm=rail, pitch_deg=0.0)
    return frames, tracker.shifts()


def remount_series(
    bench: BenchOps,
    lens: LensSpec,
    *,
    rail_mm: float,
    exposure_s: float,
    count: int,
    tag: str,
    on_frame: Callable[[Frame], None] | None = None,
) -> list[Frame]:
    """The chart after each of ``count`` mounts of the lens; ``on_frame`` is given each frame as it is taken."""
    frames = []
    for i in range(count):
        if i:
            before = bench.phone.lens_state().attached_at_ms
            bench.operator.remount_lens()
            wait_for_sensor(
                bench.phone, attached=True, after_ms=before, timeout_s=bench.station.phone.lens_change_timeout_s
            )
        frame = bench.shoot(
            chart="sfr", tag=f"{tag}{i}", rail_mm=rail_mm, light=LIGHT_LEVEL, exposure_time_s=exposure_s
        )
        frames.append(frame)
        if on_frame is not None:
            on_frame(frame)
    return frames


def require_lens_state(state: LensState, lens: LensSpec) -> None:
    if not state.attached:
        raise DeviceStateError(f"the phone reports no lens; expected {lens.name}")


# ------------------------------------------------------------------------------------------------ light check
LIGHT_REPEAT_TOLERANCE = 0.005
"""Largest relative change of the centre signal between two identical flat captures (0.5 %). Photon and read
noise averaged over the central quarter of the frame move it by ~0.01 %, the PWM setting is the same: a larger
change means the panel's luminance moved between the exposures (flicker, drift), which would bias a T-stop."""


def centre_signal_dn(frame: Frame) -> float:
    """Mean signal above black (DN) of the central quarter (half width × half height) of a frame."""
    quads = bayer_mean(frame.raw)
    h, w = quads.shape
    centre = quads[h // 4 : h - h // 4, w // 4 : w - w // 4]
    return float(np.mean(centre)) - frame.image.black_level


def check_light_steady(bench: BenchOps, frame: Frame, *, tag: str, tolerance: float = LIGHT_REPEAT_TOLERANCE) -> float:
    """Capture ``frame`` again with the same chart, placement, light and exposure and compare centre signals.

    Returns the relative change (repeat / first − 1). Raises :class:`MeasurementError` ("light unstable") when it
    exceeds ``tolerance``: a luminance measured from that frame cannot be trusted.
    """
    repeat = bench.shoot(
        chart=frame.chart,
        tag=tag,
        rail_mm=frame.rail_mm,
        pitch_deg=frame.pitch_deg,
        light=frame.light_level,
        exposure_time_s=frame.exposure_time_s,
        iso=frame.iso,
    )
    first, second = centre_signal_dn(frame), centre_signal_dn(repeat)
    if first <= 0:
        raise MeasurementError(f"light unstable: no signal above black in {frame.path} ({first:.1f} DN)")
    change = second / first - 1.0
    if abs(change) > tolerance:
        raise MeasurementError(
            f"light unstable: the centre signal of two identical {frame.chart} captures differs by "
            f"{change * 100:+.2f} % ({frame.path} vs {repeat.path}); expected within ±{tolerance * 100:g} %"
        )
    return change
