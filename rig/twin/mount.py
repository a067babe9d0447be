"""Mount dynamics of the twin: how the lens sits on the phone beyond the unit's static alignment.

Three effects, superposed (the mount is linear at these loads):

**Sag under the lens's weight.** The lens (mass m, centre of mass d ahead of the flange) loads the bayonet as a
rotational spring of stiffness k (:attr:`MountTruth.rotational_stiffness_nm_per_mrad`). With the fixture at pitch
p (−90° lens up … +90° lens down, 0 horizontal) the gravity component across the lens axis is g·cos p, along the
image's +y axis (the fixture pitches about the sensor's x axis; +y is world-down when horizontal), so the moment
is M = m·g·d·cos p and the lens droops by α = M / k.

The image of a distant chart moves by (f − 27.8 mm)·α. Derivation: a rotation α about a pivot P equals a
rotation α about the rear nodal point N plus a translation of N by |PN|·α. Rotating about N leaves the image of
an object at infinity where it was (the nodal-slide principle); translating the lens translates that image by
the same amount. For a lens focused at infinity N lies f in front of the image plane and the pivot (the flange)
27.80 mm in front of it, so |PN| = f − 27.8 mm (negative for a lens shorter than the flange distance: the image
then moves against the droop). The lens axis tilts by α relative to the sensor: the sensor's +y half ends up
closer to the lens, which is ``tilt_x_arcmin`` = −α in :class:`MountTruth`'s convention.

The axial component m·g·sin p stretches (lens down) or compresses (lens up) the bayonet's spring washer: we take
an axial stiffness of :data:`AXIAL_STIFFNESS_N_PER_UM` (a leaf-spring bayonet of a few N/µm; 0.3 kg gives
about ±0.6 µm), sign as ``flange_offset_um`` (+ = sensor farther from the lens).

**Ringing after a knock.** Each knock (``snapshot.knock_times_ns``) sets the lens rocking about the flange as a
damped oscillator (natural frequency ωn, damping ratio ζ) from rest with an initial angular velocity: its impulse
response θ(t) = Θ·e^(−ζωn·t)·sin(ωd·t), ωd = ωn·√(1 − ζ²), with envelope Θ = :data:`KNOCK_TILT_MRAD` (the
knocker's tap is sized so that the reference 35 mm lens, lever 7.2 mm, rings with an image envelope of ≈3.6 µm).
The rocking is about the same axis as the sag, so it moves the image along y by (f − 27.8)·θ and tilts it by −θ.
During an exposure of T seconds the image smears by |dy/dt|·T along y (the linearised motion at the start of
the exposure; exact enough while T is short against the period).

**Remount scatter.** Every seating of the lens (``snapshot.remount_index``) shifts the image laterally by
N(0, σ_um) per axis and changes the tilt by N(0, σ_arcmin) per axis, drawn from
``np.random.default_rng([seed, remount_index])``: the same unit seated the n-th time always sits the same way.
The shift and the tilt are drawn independently (a seating error is a decentre of the bayonet as much as a tilt).

**Shims under the mount screws** (issue #21). The bayonet is screwed to the frame at the screws of
:class:`~rig.config.mount.MountDesign` (sensor coordinates, mm from the optical axis). A stack ``t`` µm thicker
than as built under screw i lifts the bayonet there by ``t`` away from the sensor. Three screws define the plane
the bayonet settles in: the one through the three heights. Four screws are statically indeterminate: a rigid
bayonet on four unequal stacks would rock on three of them, and which three depends on the order of tightening.
We model what the tightened screws make of it instead: each joint (shim stack under a screw head) is an equally
stiff spring, so the bayonet is in equilibrium when the joint forces k·(h_i − z_i) balance in force and in both
moments, Σ(h_i − z_i)·(1, x_i, y_i) = 0: the normal equations of the least-squares plane z = a + b·x + c·y
through the heights. The departure of the heights from that plane (the *warp*) bends the bayonet instead of
moving it; :attr:`MountDesign.max_warp_um` bounds what a recipe may ask of it. With three screws the plane passes
through all three heights and the warp is zero.

The plane moves the lens: its height ``a`` on the axis adds to the flange offset; its slope lifts the lens's +x
side by ``b`` µm/mm (= mrad) away from the sensor, i.e. the sensor's +x half ends up farther from the lens:
``tilt_y`` grows by atan(b); likewise ``tilt_x`` by atan(c). The lens turns about the flange (the sag's pivot), so
the image moves by the lever arm as for the sag: a lens rotation α (front towards +y) is a ``tilt_x`` of −α and an
image shift of (f − 27.8)·α along y, hence a shim tilt moves the image by −(f − 27.8)·Δtilt (each axis).

:func:`mount_truth` gives the analytic figures the stability tests compare their measurements with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rig.config.lenses import LensSpec
from rig.config.mount import MountDesign
from rig.config.unit import MountTruth, TwinUnit
from rig.twin.pose import STATIC, MountPose
from rig.twin.state import BenchSnapshot

FLANGE_FOCAL_DISTANCE_MM = 27.80
"""Leica M flange focal distance (REFERENCE.md §1): the pivot of the lens's rocking sits this far from the sensor."""

STANDARD_GRAVITY_M_S2 = 9.80665

AXIAL_STIFFNESS_N_PER_UM = 5.0
"""Axial stiffness of the bayonet's spring washer (N per µm): a design estimate, not a measured figure."""

KNOCK_TILT_MRAD = 0.5
"""Envelope of the lens's rocking right after one knock (mrad)."""

_ARCMIN_PER_MRAD = 180.0 * 60.0 / math.pi / 1000.0


@dataclass(frozen=True)
class MountTruthFigures:
    """The analytic mount behaviour of one unit with one lens: what stability measurements should find.

    Attributes
    ----------
    lever_arm_mm
        f − 27.8 mm: image shift per radian of lens rotation about the flange.
    sag_tilt_mrad_horizontal
        Lens droop α at pitch 0 (mrad); at pitch p it is this × cos p.
    sag_shift_um_horizontal
        Image shift along +y at pitch 0 relative to a weightless lens (µm); at pitch p it is this × cos p.
    settle_time_ms
        Time after one knock until the envelope of the image's ringing stays within ``tolerance_px`` (ms), 0 if it
        never leaves it.
    tolerance_px, pixel_pitch_um
        The tolerance the settle time refers to, and the read-out pixel pitch it is converted with.
    ring_amplitude_um
        Envelope of the image motion right after a knock (µm).
    natural_frequency_hz, damping_ratio
        The rocking mode.
    remount_sigma_um, remount_sigma_arcmin
        Population σ per axis of the seating scatter.
    """

    lever_arm_mm: float
    sag_tilt_mrad_horizontal: float
    sag_shift_um_horizontal: float
    axial_um_lens_down: float
    settle_time_ms: float
    tolerance_px: float
    pixel_pitch_um: float
    ring_amplitude_um: float
    natural_frequency_hz: float
    damping_ratio: float
    remount_sigma_um: float
    remount_sigma_arcmin: float

    def sag_shift_um(self, pitch_deg: float) -> float:
        """Image shift along +y at fixture pitch ``pitch_deg`` relative to a weightless lens (µm)."""
        return self.sag_shift_um_horizontal * math.cos(math.radians(pitch_deg))

    def sag_tilt_arcmin(self, pitch_deg: float) -> float:
        """Lens droop at ``pitch_deg`` (arcmin, positive = lens front down; ``tilt_x_arcmin`` is its negative)."""
        return self.sag_tilt_mrad_horizontal * _ARCMIN_PER_MRAD * math.cos(math.radians(pitch_deg))

    def axial_um(self, pitch_deg: float) -> float:
        """Extra flange offset from the axial load at ``pitch_deg`` (µm, + = sensor farther from the lens)."""
        return self.axial_um_lens_down * math.sin(math.radians(pitch_deg))


@dataclass(frozen=True)
class RemountOffset:
    """The seating error of one mount: image shift (µm) and tilt change (arcmin), per axis."""

    remount_index: int
    shift_x_um: float
    shift_y_um: float
    tilt_x_arcmin: float
    tilt_y_arcmin: float


@dataclass(frozen=True)
class ShimPose:
    """How the shims under the screws move the lens against the as-built mount.

    Attributes
    ----------
    flange_offset_um
        Added flange offset (µm, + = sensor farther from the lens): the bayonet plane's height on the axis.
    tilt_x_arcmin, tilt_y_arcmin
        Added tilt (arcmin, :class:`~rig.config.unit.MountTruth` conventions).
    warp_um
        Largest departure of a screw's stack height from the bayonet's plane (µm): bending, not motion.
    """

    flange_offset_um: float = 0.0
    tilt_x_arcmin: float = 0.0
    tilt_y_arcmin: float = 0.0
    warp_um: float = 0.0


def shim_pose(design: MountDesign, stacks_um: Mapping[str, Sequence[float]]) -> ShimPose:
    """The bayonet's plane for the shims ``stacks_um`` (screw name → thicknesses, µm; unnamed screws as built).

    Solves the joints' force and moment balance Σ(h_i − a − b·x_i − c·y_i)·(1, x_i, y_i) = 0 for the plane
    (a µm, b and c µm/mm), with h_i the stack's change against as built (see the module docstring).
    """
    names = {s.name for s in design.screws}
    unknown = sorted(set(stacks_um) - names)
    if unknown:
        raise ValueError(f"shims for screws {unknown}: the mount has screws {sorted(names)}")
    x = np.array([s.x_mm for s in design.screws])
    y = np.array([s.y_mm for s in design.screws])
    h = np.array(
        [float(sum(stacks_um[s.name])) - s.as_built_total_um if s.name in stacks_um else 0.0 for s in design.screws]
    )
    balance = np.array(
        [
            [len(x), x.sum(), y.sum()],
            [x.sum(), (x * x).sum(), (x * y).sum()],
            [y.sum(), (x * y).sum(), (y * y).sum()],
        ]
    )
    loads = np.array([h.sum(), (h * x).sum(), (h * y).sum()])
    a, b, c = np.linalg.solve(balance, loads)
    totals = h + np.array([s.as_built_total_um for s in design.screws])
    # warp of the actual stacks (the frame's seats are coplanar): what the bayonet must bend to sit on all of them
    ta, tb, tc = np.linalg.solve(balance, np.array([totals.sum(), (totals * x).sum(), (totals * y).sum()]))
    warp = float(np.max(np.abs(totals - (ta + tb * x + tc * y))))
    return ShimPose(
        flange_offset_um=float(a),
        tilt_x_arcmin=math.degrees(math.atan(c / 1000.0)) * 60.0,
        tilt_y_arcmin=math.degrees(math.atan(b / 1000.0)) * 60.0,
        warp_um=warp,
    )


def lever_arm_mm(lens: LensSpec) -> float:
    """Distance from the flange (pivot) to the lens's rear nodal point, f − 27.8 mm (see the module docstring)."""
    return lens.focal_length_mm - FLANGE_FOCAL_DISTANCE_MM


def sag_tilt_mrad(mount: MountTruth, lens: LensSpec, pitch_deg: float) -> float:
    """Lens droop α = m·g·d·cos p / k (mrad), positive = lens front towards the image's +y."""
    moment_nm = (
        lens.weight_g
        / 1000.0
        * STANDARD_GRAVITY_M_S2
        * lens.center_of_mass_mm
        / 1000.0
        * math.cos(math.radians(pitch_deg))
    )
    return moment_nm / mount.rotational_stiffness_nm_per_mrad


def axial_um(lens: LensSpec, pitch_deg: float) -> float:
    """Axial deflection m·g·sin p / k_axial (µm, + = lens pulled away from the sensor)."""
    return lens.weight_g / 1000.0 * STANDARD_GRAVITY_M_S2 * math.sin(math.radians(pitch_deg)) / AXIAL_STIFFNESS_N_PER_UM


def remount_offset(mount: MountTruth, remount_index: int, *, seed: int) -> RemountOffset:
    """The seating error of the ``remount_index``-th mount, from ``default_rng([seed, remount_index])``."""
    if remount_index < 0:
        raise ValueError(f"remount_index >= 0, got {remount_index}")
    z = np.random.default_rng([seed, remount_index]).standard_normal(4)
    return RemountOffset(
        remount_index=remount_index,
        shift_x_um=float(z[0]) * mount.remount_sigma_um,
        shift_y_um=float(z[1]) * mount.remount_sigma_um,
        tilt_x_arcmin=float(z[2]) * mount.remount_sigma_arcmin,
        tilt_y_arcmin=float(z[3]) * mount.remount_sigma_arcmin,
    )


def remount_offsets(unit: TwinUnit, indices: Iterable[int], *, seed: int) -> list[RemountOffset]:
    """The realised seating errors of several mounts (the truth a repeatability measurement is compared with)."""
    return [remount_offset(unit.mount, i, seed=seed) for i in indices]


def ring_tilt_mrad(mount: MountTruth, knock_times_ns: Iterable[int], time_ns: int) -> tuple[float, float]:
    """Rocking angle (mrad) and angular velocity (mrad/s) at ``time_ns``: impulse responses of all past knocks."""
    omega_n = 2.0 * math.pi * mount.natural_frequency_hz
    zeta = mount.damping_ratio
    omega_d = omega_n * math.sqrt(1.0 - zeta * zeta)
    sigma = zeta * omega_n
    angle = 0.0
    rate = 0.0
    for knock_ns in knock_times_ns:
        if knock_ns > time_ns:
            continue
        t = (time_ns - knock_ns) * 1e-9
        decay = KNOCK_TILT_MRAD * math.exp(-sigma * t)
        s, c = math.sin(omega_d * t), math.cos(omega_d * t)
        angle += decay * s
        rate += decay * (omega_d * c - sigma * s)
    return angle, rate


def mount_pose(
    unit: TwinUnit,
    lens: LensSpec | None,
    snapshot: BenchSnapshot,
    *,
    seed: int,
    design: MountDesign | None = None,
) -> MountPose:
    """Where the lens sits at ``snapshot.time_ns``, beyond the unit's static alignment.

    Parameters
    ----------
    unit
        The twin unit (its :class:`MountTruth` gives stiffness, rocking mode and remount scatter).
    lens
        The mounted lens model, or None for the phone's native lens (fixed: no load, no ringing, no seating).
    snapshot
        The bench state of the capture: pitch, knock times, exposure time, remount index.
    seed
        The twin's seed; with ``snapshot.remount_index`` it fixes the seating error.
    design
        The station's mount (screws, as-built shims) that ``snapshot.shim_stacks_um`` re-shims; None: as built.

    Returns
    -------
    MountPose
        Image shift (µm on the sensor), extra tilt (arcmin), extra flange offset (µm) and the motion smear during
        the exposure (µm, along y: angle 90°).
    """
    if lens is None or not snapshot.lens_attached:
        return STATIC
    mount = unit.mount
    lever_mm = lever_arm_mm(lens)
    droop_mrad = sag_tilt_mrad(mount, lens, snapshot.pitch_deg)
    ring_mrad, ring_rate_mrad_s = ring_tilt_mrad(mount, snapshot.knock_times_ns, snapshot.time_ns)
    rotation_mrad = droop_mrad + ring_mrad
    seat = remount_offset(mount, snapshot.remount_index, seed=seed)
    shims = ShimPose() if design is None else shim_pose(design, dict(snapshot.shim_stacks_um))
    # mm × mrad = µm
    return MountPose(
        image_shift_x_um=seat.shift_x_um - lever_mm * shims.tilt_y_arcmin / _ARCMIN_PER_MRAD,
        image_shift_y_um=lever_mm * rotation_mrad + seat.shift_y_um - lever_mm * shims.tilt_x_arcmin / _ARCMIN_PER_MRAD,
        tilt_x_arcmin=-rotation_mrad * _ARCMIN_PER_MRAD + seat.tilt_x_arcmin + shims.tilt_x_arcmin,
        tilt_y_arcmin=seat.tilt_y_arcmin + shims.tilt_y_arcmin,
        axial_um=axial_um(lens, snapshot.pitch_deg) + shims.flange_offset_um,
        motion_blur_um=abs(lever_mm * ring_rate_mrad_s) * snapshot.exposure_time_s,
        motion_blur_angle_deg=90.0,
    )


def settle_time_ms(mount: MountTruth, lens: LensSpec, *, pixel_pitch_um: float, tolerance_px: float = 0.25) -> float:
    """Time after one knock until the ringing envelope stays within ``tolerance_px`` (ms).

    The envelope of the image motion is A·e^(−ζωn·t) with A = |f − 27.8|·Θ, so it enters the band at
    t = ln(A / tol) / (ζωn); 0 when A ≤ tol.
    """
    amplitude_um = abs(lever_arm_mm(lens)) * KNOCK_TILT_MRAD
    tol_um = tolerance_px * pixel_pitch_um
    if amplitude_um <= tol_um:
        return 0.0
    sigma = mount.damping_ratio * 2.0 * math.pi * mount.natural_frequency_hz
    return 1000.0 * math.log(amplitude_um / tol_um) / sigma


def mount_truth(
    unit: TwinUnit, lens: LensSpec, *, pixel_pitch_um: float, tolerance_px: float = 0.25
) -> MountTruthFigures:
    """The analytic mount figures of ``unit`` carrying ``lens`` (ground truth for the stability tests).

    Parameters
    ----------
    unit, lens
        The twin unit and the mounted lens model.
    pixel_pitch_um
        Read-out pixel pitch the settle tolerance is expressed in (1.6 µm full size, 6.4 µm at binning 4).
    tolerance_px
        The settling band (0.25 px by default).
    """
    mount = unit.mount
    lever_mm = lever_arm_mm(lens)
    droop0 = sag_tilt_mrad(mount, lens, 0.0)
    return MountTruthFigures(
        lever_arm_mm=lever_mm,
        sag_tilt_mrad_horizontal=droop0,
        sag_shift_um_horizontal=lever_mm * droop0,
        axial_um_lens_down=axial_um(lens, 90.0),
        settle_time_ms=settle_time_ms(mount, lens, pixel_pitch_um=pixel_pitch_um, tolerance_px=tolerance_px),
        tolerance_px=tolerance_px,
        pixel_pitch_um=pixel_pitch_um,
        ring_amplitude_um=abs(lever_mm) * KNOCK_TILT_MRAD,
        natural_frequency_hz=mount.natural_frequency_hz,
        damping_ratio=mount.damping_ratio,
        remount_sigma_um=mount.remount_sigma_um,
        remount_sigma_arcmin=mount.remount_sigma_arcmin,
    )
