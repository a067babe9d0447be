"""Render what the phone's sensor records for one bench snapshot: geometry, blur, light, sensor.

Light (DN above black, per read-out pixel)::

    S = R · L · t · (T/N²) · (ISO/100) · ρ · τ(x, y) · cos⁴θ · V(r) · C_c(r)

* R = ``station.light.response_dn_per_cd_m2_s`` (the station's calibration for a T/1 lens, flat chart, ISO 100),
  L = ``light_pwm/pwm_max · luminance_cd_m2_at_max`` (cd/m²), t the exposure time (s), T the lens transmission
  (× the sample's factor), N the working f-number, ρ = ``SensorTruth.responsivity_factor``.
* τ(x, y) the chart's blurred transmittance (:mod:`rig.twin.raster`). A lens with a wavefront
  (``LensSpec.wavefront``, or the lens sample's own: :func:`rig.twin.truth.lens_wavefront`) blurs each Bayer plane
  with its colour's pupil PSF (:func:`blur_model`): the Seidel wavefront at the target's field tile and the working
  aperture, the colour's effective wavelength and axial colour, and the target's defocus (flange, tilt, field
  curvature, cover glass, rail) as W020. An aberration-free lens keeps the analytic Airy ⊗ disc kernel at 0.55 µm
  for every colour (the frame it rendered before wavefronts).
* cos⁴θ with tan θ = r_mm / exit_pupil_mm, r measured from the optical axis (decentre included).
* V(r) the lensfun ``pa`` vignetting (r = 1 at the half diagonal, faded by (N_max/N)²).
* C_c(r) = 1 + s·k_c·r² the chief-ray-angle colour shading of Bayer colour c (``SensorTruth.cra_shading``,
  r from the sensor centre, where the microlens shift pattern is centred); ``s`` is
  :func:`rig.twin.truth.cra_shading_scale` (1 for the reference lens, 0 for the native lens).

Geometry (:func:`geometry`): chart pose, ptlens distortion about the optical axis, then the lens's lateral colour,
a scale of the red and blue images against green about the axis (``LensSpec.lateral_colour``, ppm), then decentre.
With lateral colour each Bayer plane is rasterised on its own sites through its colour's mapping.

With no M lens (or before the phone has switched sensors) the native camera renders: f/1.9, its own
transmission and exit pupil, no vignetting polynomial, no CRA mismatch, no mount errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from rig.config.charts import ChartSpec, load_chart
from rig.config.lenses import LensCatalog, LensSpec, Wavefront
from rig.config.station import StationConfig
from rig.config.unit import LensSample, TwinUnit
from rig.spec.ptp import ReadoutWindow
from rig.twin.optics import BlurSpec, cos4_falloff, pa_vignetting, ptlens_distort
from rig.twin.pose import STATIC, MountPose
from rig.twin.raster import BlurAt, ChartPose, PixelGrid, ToSensor, rasterise
from rig.twin.sensor import expose
from rig.twin.state import BenchSnapshot
from rig.twin.truth import UnitTruth, lens_wavefront, unit_truth
from rig.twin.wavefront import CHANNEL_WAVELENGTH_UM, seidel_at

CAROUSEL_TOLERANCE_MM = 0.5
"""The lens sees a chart when the carousel is within this distance of the chart's slot; otherwise the frame."""

DEFOCUS_STEP_UM = 0.02
"""Defocus is rounded to this step before the blur of a target is computed (aberration-free lens)."""

DEFOCUS_STEP_WAVES = 0.01
"""With a wavefront, defocus is rounded to this step of W020 (waves; 0.08 µm at f/1.4 in green): a Strehl change
below 0.1 % near focus, so the targets of a tilted field share a few cached pupil OTFs."""

FIELD_TILE = 0.02
"""With a wavefront, the aberrations of a target are those at the nearest node of a square grid of this pitch (in
half diagonals from the optical axis: 164 µm, 26 binned px): the targets of one tile share a cached pupil OTF."""

_COARSE_FACTOR = 8  # shading is smooth: computed every 8 plane pixels and upsampled (error < 1e-4)
_COARSE_MIN_PX = 256  # planes narrower than this are computed at every pixel


@dataclass(frozen=True, eq=False)
class Rendering:
    """One rendered frame: the raw codes and what went into them (ground truth, not for the phone)."""

    raw: np.ndarray  # uint16 mosaic
    signal_dn: np.ndarray  # float32 expected signal above black, before noise and quantisation
    chart: str | None  # chart in front of the lens, None when the carousel is between slots
    truth: UnitTruth
    defocus_centre_um: float  # defocus at the sensor centre (µm)


def chart_at(station: StationConfig, carousel_mm: float) -> str | None:
    """The chart whose slot is within ±0.5 mm of the carousel position, or None (the dark carousel frame)."""
    for name, slot_mm in station.carousel.slots.items():
        if abs(carousel_mm - slot_mm) <= CAROUSEL_TOLERANCE_MM:
            return name
    return None


def pixel_grid(
    station: StationConfig, window: ReadoutWindow | None = None, rows: tuple[int, int] | None = None
) -> PixelGrid:
    """The read-out's pixel grid: the whole sensor at the station's binning, or one window at the native pitch.

    A window's pixel (i, j) is native pixel (y + i, x + j) of the whole sensor: its centre sits where a full
    native read-out puts it, ``(x + j + ½)·p − W·p/2``, which is the window-sized grid moved by
    ``(x + w/2 − W/2)·p`` (and the same in y). ``rows`` = (first, stop): the band of the whole read-out's rows
    ``first ≤ i < stop``, the same way (pixel (i, j) of the band is pixel (first + i, j) of the read-out).
    """
    sensor = station.sensor
    if window is None:
        if rows is None:
            return PixelGrid(sensor.width_px, sensor.height_px, sensor.readout_pitch_um)
        first, stop = rows
        p = sensor.readout_pitch_um
        return PixelGrid(
            sensor.width_px, stop - first, p, 0.0, (first + 0.5 * (stop - first) - 0.5 * sensor.height_px) * p
        )
    if rows is not None:
        raise ValueError("a band of rows is a band of the whole read-out, not of a window")
    p = sensor.pixel_pitch_um
    return PixelGrid(
        window.width_px,
        window.height_px,
        p,
        (window.x_px + 0.5 * window.width_px - 0.5 * sensor.full_width_px) * p,
        (window.y_px + 0.5 * window.height_px - 0.5 * sensor.full_height_px) * p,
    )


def sample_for(unit: TwinUnit, lens_id: str, f_number: float | None) -> TwinUnit:
    """The unit with ``lens_id`` mounted at ``f_number`` (the unit's own sample if it is that lens)."""
    sample = unit.lens if unit.lens.id == lens_id else LensSample(id=lens_id)
    if f_number is not None:
        sample = sample.model_copy(update={"f_number": f_number})
    return unit.model_copy(update={"lens": sample})


def geometry(
    truth: UnitTruth, station: StationConfig, chart_pose: ChartPose, *, channel_scale: float = 1.0
) -> ToSensor:
    """The mapping chart (normalised) → sensor µm: pose, then ptlens distortion about the axis, then the colour's
    scale about the axis (lateral colour, :meth:`UnitTruth.channel_scale`; 1 for green), then decentre."""
    half_diag_um = truth.half_diagonal_um
    short_half_um = (
        0.5 * min(station.sensor.full_width_px, station.sensor.full_height_px) * (station.sensor.pixel_pitch_um)
    )
    a, b, c = truth.distortion_abc

    def to_sensor(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        px, py = chart_pose.apply(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        px, py = px * half_diag_um, py * half_diag_um
        if a or b or c:
            ru = np.hypot(px, py) / short_half_um
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(ru > 0, ptlens_distort(ru, a=a, b=b, c=c) / np.where(ru > 0, ru, 1.0), 1.0)
            px, py = px * ratio, py * ratio
        return px * channel_scale + truth.decentre_x_um, py * channel_scale + truth.decentre_y_um

    return to_sensor


def blur_model(
    truth: UnitTruth, wavefront: Wavefront, *, max_f_number: float, pixel_pitch_um: float, rail_mm: float
) -> Callable[[str], BlurAt]:
    """The blur at a sensor point (µm from the sensor centre) for each Bayer colour ("R", "G", "B").

    An aberration-free ``wavefront`` gives every colour the analytic kernel at 0.55 µm with the truth's defocus
    rounded to :data:`DEFOCUS_STEP_UM`. Otherwise colour c gets its effective wavelength
    (:data:`rig.twin.wavefront.CHANNEL_WAVELENGTH_UM`), the truth's defocus plus its axial colour rounded to
    :data:`DEFOCUS_STEP_WAVES`, and the Seidel wavefront (:func:`rig.twin.wavefront.seidel_at`) at the target's
    :data:`FIELD_TILE` node, measured from the centre of the field aberrations (the optical axis, decentre
    included, plus a decentred element's offset :attr:`UnitTruth.aberration_centre_x_um`) in half diagonals.
    """
    n = truth.f_number
    base = BlurSpec(
        f_number=n,
        gaussian_sigma_um=truth.gaussian_blur_um,
        motion_length_um=truth.motion_blur_um,
        motion_angle_deg=truth.motion_blur_angle_deg,
        pixel_pitch_um=pixel_pitch_um,
    )

    def analytic(x_um: float, y_um: float) -> BlurSpec:
        defocus = float(truth.defocus_um(x_um, y_um, rail_mm=rail_mm))
        # 0.02 µm steps (a 0.014 µm change of the blur circle at f/1.4, invisible) let the targets of a
        # tilted field share a few cached edge spreads instead of computing one per target
        return BlurSpec(**{**base.__dict__, "defocus_um": round(defocus / DEFOCUS_STEP_UM) * DEFOCUS_STEP_UM})

    if wavefront.is_aberration_free:
        return lambda colour: analytic

    half_diag = truth.half_diagonal_um
    # the field aberrations are centred on the optical axis, or off it for a decentred element
    centre_x = truth.decentre_x_um + truth.aberration_centre_x_um
    centre_y = truth.decentre_y_um + truth.aberration_centre_y_um

    def for_colour(colour: str) -> BlurAt:
        wavelength = CHANNEL_WAVELENGTH_UM[colour]
        step_um = DEFOCUS_STEP_WAVES * 8.0 * n * n * wavelength
        axial_um = wavefront.axial_colour.of(colour)

        def blur_at(x_um: float, y_um: float) -> BlurSpec:
            defocus = float(truth.defocus_um(x_um, y_um, rail_mm=rail_mm)) + axial_um
            fx = round((x_um - centre_x) / half_diag / FIELD_TILE) * FIELD_TILE
            fy = round((y_um - centre_y) / half_diag / FIELD_TILE) * FIELD_TILE
            aberrations = seidel_at(
                spherical_w040=wavefront.spherical_w040,
                coma_w131=wavefront.coma_w131,
                astigmatism_w222=wavefront.astigmatism_w222,
                reference_wavelength_um=wavefront.reference_wavelength_um,
                f_number=n,
                max_f_number=max_f_number,
                field_x=fx,
                field_y=fy,
                wavelength_um=wavelength,
            ).rounded()
            return BlurSpec(
                **{
                    **base.__dict__,
                    "defocus_um": round(defocus / step_um) * step_um,
                    "wavelength_um": wavelength,
                    "aberrations": aberrations,
                }
            )

        return blur_at

    return for_colour


def _plane_positions(n_plane: int, offset: int, pitch_um: float, n_full: int, factor: int) -> np.ndarray:
    """Sensor coordinates (µm) of the nodes a shading plane is computed on (see :func:`_upsample`)."""
    if factor == 1:
        u = np.arange(n_plane, dtype=np.float64)
    else:
        nodes = -(-n_plane // factor) + 2
        u = factor * (np.arange(nodes) - 1.0) + 0.5 * (factor - 1)
    return (2.0 * u + offset + 0.5) * pitch_um - 0.5 * n_full * pitch_um


def _node_span(first: int, count: int, factor: int) -> slice:
    """The shading nodes that plane pixels ``first .. first + count − 1`` are interpolated from (see
    :func:`_upsample`): plane pixel k lies between nodes ⌊(k + ½)/factor + ½⌋ and the next one."""
    if factor == 1:
        return slice(first, first + count)
    return slice(math.floor((first + 0.5) / factor + 0.5), math.floor((first + count - 0.5) / factor + 0.5) + 2)


def _upsample(coarse: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], factor: int) -> np.ndarray:
    """Bilinear upsampling whose node i sits at plane index ``factor·(i − 1) + (factor − 1)/2``; ``coarse`` holds
    the nodes from :func:`_node_span` of the plane pixels ``rows``/``cols`` = (first, count) it returns.

    cv2.resize by an integer factor puts source node i at destination ``factor·i + (factor − 1)/2``; one extra
    node on each side of the plane keeps every plane pixel between nodes (no edge clamping), then the margin is
    cropped. A window's plane pixels take the nodes around them only: for a power-of-two factor cv2 weighs them
    exactly as it does in the whole plane, so a window's gains are the whole frame's at those pixels.
    """
    if factor == 1:
        return coarse.astype(np.float32, copy=False)
    h, w = coarse.shape
    big = cv2.resize(coarse.astype(np.float32), (w * factor, h * factor), interpolation=cv2.INTER_LINEAR)
    top = rows[0] + factor - factor * _node_span(*rows, factor).start
    left = cols[0] + factor - factor * _node_span(*cols, factor).start
    return big[top : top + rows[1], left : left + cols[1]]


def _transmittance(
    chart: ChartSpec, truth: UnitTruth, station: StationConfig, chart_pose: ChartPose, *, grid: PixelGrid,
    blur_for: Callable[[str], BlurAt], colour_blur: bool,
) -> np.ndarray:  # fmt: skip
    """The chart's transmittance at every read-out pixel, each CFA site imaged at its colour's scale and blur.

    A lens with lateral colour images red and blue at another scale than green, and a lens with a wavefront blurs
    each colour with its own PSF (``colour_blur``), so each Bayer plane is rasterised on its own sites
    (:meth:`PixelGrid.bayer_plane`) through its colour's mapping and blur; otherwise all colours share one mapping
    and one blur and the frame is rasterised in one pass (the same values).
    """
    pattern = station.sensor.cfa_pattern
    if not colour_blur and all(truth.channel_scale(colour) == 1.0 for colour in pattern):
        return rasterise(chart, grid=grid, to_sensor_um=geometry(truth, station, chart_pose), blur_at=blur_for("G"))
    out = np.empty((grid.height_px, grid.width_px), dtype=np.float32)
    for dy in (0, 1):
        for dx in (0, 1):
            colour = pattern[2 * dy + dx]
            mapping = geometry(truth, station, chart_pose, channel_scale=truth.channel_scale(colour))
            out[dy::2, dx::2] = rasterise(
                chart, grid=grid.bayer_plane(dx, dy), to_sensor_um=mapping, blur_at=blur_for(colour)
            )
    return out


def shading_gain(
    truth: UnitTruth, unit: TwinUnit, station: StationConfig, *, window: ReadoutWindow | None = None
) -> np.ndarray:
    """Relative illumination × CRA colour shading per read-out pixel (float32, 1 on axis for the lens terms).

    ``window``: the gains of one window of a windowed read-out (native pitch), equal to a full native read-out's
    at those pixels (the same nodes, the same interpolation).

    Read-only, and the same array for the same optics: the gains change with the lens, its stop and the mount's
    decentre, not from frame to frame of a sweep, and recomputing them cost ~10 % of a frame's render (0.2 s of a
    full-size one).
    """
    sensor = station.sensor
    return _shading_gain(
        _ShadingInputs(
            width_px=sensor.width_px,
            height_px=sensor.height_px,
            readout_pitch_um=sensor.readout_pitch_um,
            full_width_px=sensor.full_width_px,
            full_height_px=sensor.full_height_px,
            pixel_pitch_um=sensor.pixel_pitch_um,
            cfa_pattern=sensor.cfa_pattern,
            window=window,
            half_diagonal_um=truth.half_diagonal_um,
            decentre_x_um=truth.decentre_x_um,
            decentre_y_um=truth.decentre_y_um,
            exit_pupil_mm=truth.exit_pupil_mm,
            vignetting=(truth.vignetting_k1, truth.vignetting_k2, truth.vignetting_k3),
            cra_shading=tuple(sorted(unit.sensor.cra_shading.items())),
            cra_shading_scale=truth.cra_shading_scale,
        )
    )


@dataclass(frozen=True)
class _ShadingInputs:
    """Everything :func:`shading_gain` reads: the cache key of :func:`_shading_gain`."""

    width_px: int
    height_px: int
    readout_pitch_um: float
    full_width_px: int
    full_height_px: int
    pixel_pitch_um: float
    cfa_pattern: str
    window: ReadoutWindow | None
    half_diagonal_um: float
    decentre_x_um: float
    decentre_y_um: float
    exit_pupil_mm: float
    vignetting: tuple[float, float, float]
    cra_shading: tuple[tuple[str, float], ...]
    cra_shading_scale: float


@lru_cache(maxsize=2)  # a full-size frame's gains are 200 MB: keep the current optics and the one before
def _shading_gain(inputs: _ShadingInputs) -> np.ndarray:
    window = inputs.window
    if window is None:
        width, height, pitch = inputs.width_px, inputs.height_px, inputs.readout_pitch_um
        x0, y0, w, h = 0, 0, width, height
    else:
        width, height, pitch = inputs.full_width_px, inputs.full_height_px, inputs.pixel_pitch_um
        x0, y0, w, h = window.x_px, window.y_px, window.width_px, window.height_px
    plane_h, plane_w = height // 2, width // 2
    factor = _COARSE_FACTOR if min(plane_h, plane_w) >= _COARSE_MIN_PX else 1
    # the window's plane pixels (x0, y0 even: every window starts on the CFA's top-left site)
    rows, cols = (y0 // 2, h // 2), (x0 // 2, w // 2)
    row_nodes, col_nodes = _node_span(*rows, factor), _node_span(*cols, factor)
    out = np.empty((h, w), dtype=np.float32)
    half_diag_mm = inputs.half_diagonal_um / 1000.0
    stop = 1.0  # the truth's vignetting coefficients are already faded for the f-number
    k1, k2, k3 = inputs.vignetting
    cra_shading = dict(inputs.cra_shading)
    for dy in (0, 1):
        for dx in (0, 1):
            colour = inputs.cfa_pattern[2 * dy + dx]
            xs = _plane_positions(plane_w, dx, pitch, width, factor)[col_nodes][None, :] / 1000.0
            ys = _plane_positions(plane_h, dy, pitch, height, factor)[row_nodes][:, None] / 1000.0
            r_axis_mm = np.hypot(xs - inputs.decentre_x_um / 1000.0, ys - inputs.decentre_y_um / 1000.0)
            gain = cos4_falloff(r_axis_mm, exit_pupil_mm=inputs.exit_pupil_mm)
            gain = gain * pa_vignetting(r_axis_mm / half_diag_mm, k1=k1, k2=k2, k3=k3, stop_down=stop)
            k = cra_shading.get(colour, 0.0) * inputs.cra_shading_scale
            if k:
                gain = gain * (1.0 + k * (xs * xs + ys * ys) / half_diag_mm**2)
            out[dy::2, dx::2] = _upsample(np.asarray(gain), rows, cols, factor)
    out.setflags(write=False)
    return out


def signal_scale_dn(truth: UnitTruth, unit: TwinUnit, station: StationConfig, snapshot: BenchSnapshot) -> float:
    """DN above black on axis for transmittance 1: ``R·L·t·(T/N²)·(ISO/100)·ρ``."""
    light = station.light
    luminance = max(snapshot.light_pwm, 0.0) / light.pwm_max * light.luminance_cd_m2_at_max
    return (
        light.response_dn_per_cd_m2_s
        * luminance
        * snapshot.exposure_time_s
        * truth.transmission
        / truth.f_number**2
        * snapshot.iso
        / 100.0
        * unit.sensor.responsivity_factor
    )


def render(
    station: StationConfig,
    unit: TwinUnit,
    catalog: LensCatalog,
    snapshot: BenchSnapshot,
    *,
    lens: LensSpec | None,
    pose: MountPose = STATIC,
    chart_pose: ChartPose = ChartPose(),  # noqa: B008 - frozen, shared default is safe
    rng: np.random.Generator | None = None,
    noise: bool = True,
    chart: ChartSpec | None = None,
    window: ReadoutWindow | None = None,
    rows: tuple[int, int] | None = None,
) -> Rendering:
    """Render the raw frame the sensor records for ``snapshot`` (or one window of a windowed read-out).

    Parameters
    ----------
    station, unit, catalog
        The bench, the unit's truth and the lens catalog.
    snapshot
        Bench state of the capture (rail, carousel, light, exposure, ISO, aperture ring).
    lens
        The M lens imaging (None: the native camera, e.g. no lens or the phone has not switched sensors yet).
    pose
        The mount's pose at the capture (from :func:`rig.twin.mount.mount_pose`).
    chart_pose
        Placement of the chart on the carousel (rotation, ±10 % scale, shift).
    rng
        Generator for the noise draws (required when ``noise``).
    noise
        False renders the expected signal rounded to codes (for tests of the optics and light).
    chart
        Override the chart in front of the lens (default: from the carousel position).
    window
        Render only this window of the sensor at the native pitch (unbinned, :mod:`rig.spec.ptp`): the pixels a
        full native read-out has there, the same optics, shading and noise model per native pixel.
    rows
        Render only the whole read-out's rows ``first ≤ i < stop`` (``first`` even: a band starts on the CFA's
        top row), the pixels the whole frame has there; its noise is ``rng``'s. The phone's pipeline renders a
        frame as bands side by side (:mod:`rig.twin.image_pipeline`).
    """
    if rows is not None and rows[0] % 2:
        raise ValueError(f"a band of rows starts on an even row (the CFA's top row), not {rows[0]}")
    if lens is not None:
        unit = sample_for(unit, lens.id, snapshot.f_number)
    truth = unit_truth(unit, lens, station, pose, catalog=catalog)
    name = chart.name if chart is not None else chart_at(station, snapshot.carousel_mm)
    grid = pixel_grid(station, window, rows)
    sensor = station.sensor
    if chart is None and name is not None:
        chart = load_chart(name)
    if chart is None:
        transmittance = np.zeros((grid.height_px, grid.width_px), dtype=np.float32)
    else:
        wavefront = lens_wavefront(unit, lens) if lens is not None else catalog.native.wavefront
        blur_for = blur_model(
            truth,
            wavefront,
            max_f_number=lens.max_f_number if lens is not None else catalog.native.f_number,
            pixel_pitch_um=grid.pitch_um,
            rail_mm=snapshot.rail_mm,
        )
        transmittance = _transmittance(
            chart,
            truth,
            station,
            chart_pose,
            grid=grid,
            blur_for=blur_for,
            colour_blur=not wavefront.is_aberration_free,
        )
    signal = transmittance
    gain = shading_gain(truth, unit, station, window=window)
    signal *= gain if rows is None else gain[rows[0] : rows[1]]
    signal *= np.float32(signal_scale_dn(truth, unit, station, snapshot))
    raw = expose(
        signal,
        sensor=unit.sensor,
        iso=snapshot.iso,
        binning=sensor.binning if window is None else 1,
        black_level=sensor.black_level_dn,
        white_level=sensor.white_level_dn,
        rng=rng,
        noise=noise,
    )
    return Rendering(
        raw=raw,
        signal_dn=signal,
        chart=name,
        truth=truth,
        defocus_centre_um=float(truth.defocus_um(0.0, 0.0, rail_mm=snapshot.rail_mm)),
    )
