"""Ground truth of a twin unit on its station: what the measurements should find. Never exposed through the phone.

Focus conventions (µm along the optical axis, z growing *away from the lens*; image plane, +x right, +y down,
x and y measured from the sensor centre in µm):

* The image surface lies at ``z_img(x, y) = k_rail·(rail_mm − rail.focus_mm)·1000 + c·r² + cover_shift``, where
  ``k_rail = (f_lens/f_c)²`` (rail above its focus position puts the image behind its nominal plane),
  ``c = lens.field_curvature_um`` (+ = the corner's best focus lies farther from the lens, ``r`` = distance from
  the centre of the field aberrations / sensor half diagonal: the optical axis, or for a decentred element its
  displaced centre, :attr:`UnitTruth.aberration_centre_x_um`) and
  ``cover_shift = 1000·(1 − 1/n)·(t_true − t_nominal)`` (a cover thicker than the adapter allows for moves focus
  back, n the sapphire index).
* The sensor surface lies at ``z_sen(x, y) = flange + axial + x·tan θy + y·tan θx`` with the MountTruth
  conventions: ``tilt_y`` > 0 puts the sensor's +x half farther from the lens, ``tilt_x`` > 0 its +y half.
* Defocus ``δ(x, y) = z_img − z_sen``: δ > 0 means the image forms behind the sensor.

The *effective flange offset* is the sensor's position relative to the image plane on axis with the rail at its
focus position: ``flange + axial − cover_shift`` (what a through-focus sweep measures:
``δ_centre = −effective_flange_offset_um`` at ``rail = focus``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rig.config.lenses import LensCatalog, LensSpec, Wavefront, load_lens_catalog
from rig.config.loader import resolve_path
from rig.config.station import StationConfig
from rig.config.unit import TwinUnit
from rig.errors import ConfigError
from rig.twin.pose import STATIC, MountPose

ARCMIN_PER_RAD = 180.0 * 60.0 / math.pi


@dataclass(frozen=True)
class UnitTruth:
    """True optical state of one unit + lens (or the native camera) at one mount pose.

    Lengths in µm on the image unless named otherwise; ``*_px`` in read-out pixels.
    """

    serial: str
    lens_id: str | None  # None: no M lens, the phone's native main camera
    focal_length_mm: float
    f_number: float
    transmission: float
    t_stop: float
    exit_pupil_mm: float
    light_gain_over_native: float  # image illuminance vs the native f/1.9 lens, same scene (×)
    light_gain_over_native_stops: float
    mount_flange_offset_um: float  # MountTruth.flange_offset_um + MountPose.axial_um
    cover_shift_um: float  # focus shift from the cover thickness error, + = image moves back
    flange_offset_um: float  # effective: mount_flange_offset_um − cover_shift_um
    tilt_x_arcmin: float
    tilt_y_arcmin: float
    decentre_x_um: float  # optical axis on the sensor, from the sensor centre, incl. the pose's image shift
    decentre_y_um: float
    decentre_x_px: float
    decentre_y_px: float
    field_curvature_um: float
    gaussian_blur_um: float  # σ of residual aberrations: √(residual² + extra²)
    motion_blur_um: float
    motion_blur_angle_deg: float
    vignetting_k1: float  # lensfun pa at this f-number (already faded by (N_max/N)²)
    vignetting_k2: float
    vignetting_k3: float
    cra_shading_scale: float  # multiplies SensorTruth.cra_shading (0 for the native lens)
    distortion_abc: tuple[float, float, float]
    rail_defocus_um_per_mm: float  # (f/f_c)²·1000
    rail_focus_mm: float
    half_diagonal_um: float
    readout_pitch_um: float
    lateral_colour_red_ppm: float = 0.0  # red image scale against green − 1, ppm, about the optical axis
    lateral_colour_blue_ppm: float = 0.0
    # centre of the field aberrations (field curvature, coma, astigmatism) from the optical axis: non-zero for a
    # lens with a decentred element (:class:`rig.config.lenses.Wavefront` ``aberration_centre_x``)
    aberration_centre_x_um: float = 0.0
    aberration_centre_y_um: float = 0.0

    def channel_scale(self, colour: str) -> float:
        """Image scale of CFA colour ``colour`` ("R", "G", "B") against green: the lens's lateral colour."""
        ppm = {"R": self.lateral_colour_red_ppm, "B": self.lateral_colour_blue_ppm}.get(colour, 0.0)
        return 1.0 + ppm * 1e-6

    @property
    def focus_error_um(self) -> float:
        """Alias of the effective flange offset: the axial error the calibration must correct (µm)."""
        return self.flange_offset_um

    def defocus_um(self, x_um: np.ndarray | float, y_um: np.ndarray | float, *, rail_mm: float) -> np.ndarray:
        """Defocus δ (µm) at sensor position (x, y) µm from the sensor centre; see the module conventions."""
        x = np.asarray(x_um, dtype=np.float64)
        y = np.asarray(y_um, dtype=np.float64)
        cx = self.decentre_x_um + self.aberration_centre_x_um
        cy = self.decentre_y_um + self.aberration_centre_y_um
        r2 = ((x - cx) ** 2 + (y - cy) ** 2) / self.half_diagonal_um**2
        image_z = self.rail_defocus_um_per_mm * (rail_mm - self.rail_focus_mm) + self.field_curvature_um * r2
        image_z = image_z + self.cover_shift_um
        sensor_z = (
            self.mount_flange_offset_um
            + x * math.tan(self.tilt_y_arcmin / ARCMIN_PER_RAD)
            + y * math.tan(self.tilt_x_arcmin / ARCMIN_PER_RAD)
        )
        return image_z - sensor_z

    def best_focus_rail_mm(self, x_um: float = 0.0, y_um: float = 0.0) -> float:
        """Rail position (mm) that puts the image on the sensor at (x, y)."""
        return self.rail_focus_mm - float(self.defocus_um(x_um, y_um, rail_mm=self.rail_focus_mm)) / (
            self.rail_defocus_um_per_mm
        )


def lens_wavefront(unit: TwinUnit, lens: LensSpec) -> Wavefront:
    """The wavefront of the lens sample on ``unit`` if it is ``lens`` and has its own, else the catalogue's."""
    sample = unit.lens
    if sample.id == lens.id and sample.wavefront is not None:
        return sample.wavefront
    return lens.wavefront


def lens_f_number(unit: TwinUnit, lens: LensSpec, *, source: str = "unit") -> float:
    """The working f-number: the unit's ring setting, or wide open."""
    n = unit.lens.f_number if unit.lens.f_number is not None else lens.max_f_number
    if n < lens.max_f_number - 1e-9:
        raise ConfigError(source, "lens.f_number", n, f"≥ the lens's maximum aperture f/{lens.max_f_number:g}")
    return n


def cra_shading_scale(exit_pupil_mm: float, *, native_exit_pupil_mm: float, reference_exit_pupil_mm: float) -> float:
    """How strongly a lens shows the sensor's CRA colour shading, relative to the reference (35 mm) lens.

    The microlenses are shifted for the native lens's steep chief rays (tan θ_native at the corner); a lens
    whose chief rays are flatter misses them by ``tan θ_native − tan θ_lens``. ``SensorTruth.cra_shading`` is
    stated for the reference lens, so the scale is that mismatch over the reference lens's: 1 for the
    reference lens, 0 for the native lens, > 1 for long (near-telecentric) lenses. Ratios of tangents at any
    one radius are the same, so the corner is not needed.
    """
    native = 1.0 / native_exit_pupil_mm
    return (native - 1.0 / exit_pupil_mm) / (native - 1.0 / reference_exit_pupil_mm)


def unit_truth(
    unit: TwinUnit,
    lens: LensSpec | None,
    station: StationConfig,
    pose: MountPose = STATIC,
    *,
    catalog: LensCatalog | None = None,
) -> UnitTruth:
    """Ground truth of ``unit`` with ``lens`` mounted (None: native camera) at mount ``pose`` on ``station``.

    ``catalog`` (default: the station's lens file) supplies the native lens and the reference lens.
    """
    if catalog is None:
        catalog = load_lens_catalog(resolve_path(station.lenses))
    sensor = station.sensor
    half_diag_um = sensor.half_diagonal_mm * 1000.0
    native = catalog.native
    native_gain = native.transmission / native.f_number**2
    fc = station.optics.collimator_focal_length_mm
    if lens is None:
        # the native camera: fixed, factory-aligned optics; only the rail defocuses it
        return UnitTruth(
            serial=unit.serial,
            lens_id=None,
            focal_length_mm=native.focal_length_mm,
            f_number=native.f_number,
            transmission=native.transmission,
            t_stop=native.f_number / math.sqrt(native.transmission),
            exit_pupil_mm=native.exit_pupil_mm,
            light_gain_over_native=1.0,
            light_gain_over_native_stops=0.0,
            mount_flange_offset_um=0.0,
            cover_shift_um=0.0,
            flange_offset_um=0.0,
            tilt_x_arcmin=0.0,
            tilt_y_arcmin=0.0,
            decentre_x_um=0.0,
            decentre_y_um=0.0,
            decentre_x_px=0.0,
            decentre_y_px=0.0,
            field_curvature_um=0.0,
            gaussian_blur_um=0.0,
            motion_blur_um=0.0,
            motion_blur_angle_deg=0.0,
            vignetting_k1=0.0,
            vignetting_k2=0.0,
            vignetting_k3=0.0,
            cra_shading_scale=0.0,
            distortion_abc=(0.0, 0.0, 0.0),
            rail_defocus_um_per_mm=(native.focal_length_mm / fc) ** 2 * 1000.0,
            rail_focus_mm=station.rail.focus_mm,
            half_diagonal_um=half_diag_um,
            readout_pitch_um=sensor.readout_pitch_um,
        )

    mount = unit.mount
    n = lens_f_number(unit, lens)
    transmission = lens.transmission * unit.lens.transmission_factor
    gain = (transmission / n**2) / native_gain
    cover_shift = 1000.0 * (1.0 - 1.0 / sensor.cover_index) * (mount.cover_thickness_mm - sensor.cover_thickness_mm)
    axial = mount.flange_offset_um + pose.axial_um
    fade = (lens.max_f_number / n) ** 2
    reference = catalog.get(station.reference_lens, source="station", field="reference_lens")
    dx = mount.decentre_x_um + pose.image_shift_x_um
    dy = mount.decentre_y_um + pose.image_shift_y_um
    wavefront = lens_wavefront(unit, lens)
    return UnitTruth(
        serial=unit.serial,
        lens_id=lens.id,
        focal_length_mm=lens.focal_length_mm,
        f_number=n,
        transmission=transmission,
        t_stop=n / math.sqrt(transmission),
        exit_pupil_mm=lens.exit_pupil_mm,
        light_gain_over_native=gain,
        light_gain_over_native_stops=math.log2(gain),
        mount_flange_offset_um=axial,
        cover_shift_um=cover_shift,
        flange_offset_um=axial - cover_shift,
        tilt_x_arcmin=mount.tilt_x_arcmin + pose.tilt_x_arcmin,
        tilt_y_arcmin=mount.tilt_y_arcmin + pose.tilt_y_arcmin,
        decentre_x_um=dx,
        decentre_y_um=dy,
        decentre_x_px=dx / sensor.readout_pitch_um,
        decentre_y_px=dy / sensor.readout_pitch_um,
        field_curvature_um=lens.field_curvature_um,
        gaussian_blur_um=math.hypot(lens.residual_blur_um, unit.lens.extra_blur_um),
        motion_blur_um=pose.motion_blur_um,
        motion_blur_angle_deg=pose.motion_blur_angle_deg,
        vignetting_k1=fade * (lens.vignetting.k1 + unit.lens.extra_vignetting_k1),
        vignetting_k2=fade * lens.vignetting.k2,
        vignetting_k3=fade * lens.vignetting.k3,
        cra_shading_scale=cra_shading_scale(
            lens.exit_pupil_mm,
            native_exit_pupil_mm=native.exit_pupil_mm,
            reference_exit_pupil_mm=reference.exit_pupil_mm,
        ),
        distortion_abc=(lens.distortion.a, lens.distortion.b, lens.distortion.c),
        rail_defocus_um_per_mm=(lens.focal_length_mm / fc) ** 2 * 1000.0,
        rail_focus_mm=station.rail.focus_mm,
        half_diagonal_um=half_diag_um,
        readout_pitch_um=sensor.readout_pitch_um,
        lateral_colour_red_ppm=lens.lateral_colour.red_ppm,
        lateral_colour_blue_ppm=lens.lateral_colour.blue_ppm,
        aberration_centre_x_um=wavefront.aberration_centre_x * half_diag_um,
        aberration_centre_y_um=wavefront.aberration_centre_y * half_diag_um,
    )
