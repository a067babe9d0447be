"""Mount dynamics against hand-derived physics: sag m·g·d·cos p / k, impulse response of a damped oscillator,
seeded remount scatter."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from rig.config import load_lens_catalog
from rig.config.unit import LensSample, MountTruth, TwinUnit
from rig.twin.mount import mount_pose, mount_truth, remount_offsets
from rig.twin.pose import STATIC
from rig.twin.state import BenchSnapshot, BenchState

LENS_ID = "apo-summicron-m-90-f2-asph"


def _unit(**mount: float) -> TwinUnit:
    return TwinUnit(serial="XM12SU-000100", mount=MountTruth(**mount), lens=LensSample(id=LENS_ID))


def _snap(**kw: object) -> BenchSnapshot:
    """A bench state with the lens on; fields not given keep BenchState's defaults (robust to new fields)."""
    base = replace(
        BenchState(clock=lambda: 10**9).snapshot(), lens_attached=True, lens_attached_at_ns=0, remount_index=1
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_sag_matches_hand_computed_moment_over_stiffness() -> None:
    lens = load_lens_catalog().get(LENS_ID)
    unit = _unit(rotational_stiffness_nm_per_mrad=0.5, remount_sigma_um=0.0, remount_sigma_arcmin=0.0)
    # 0.5 kg at 40 mm: 0.5·9.80665·0.040 = 0.196133 N·m → 0.392266 mrad; lever 90 − 27.8 = 62.2 mm
    alpha_mrad = 0.5 * 9.80665 * 0.040 / 0.5
    for pitch in (-90.0, -45.0, 0.0, 30.0, 90.0):
        pose = mount_pose(unit, lens, _snap(pitch_deg=pitch), seed=3)
        expected_um = 62.2 * alpha_mrad * math.cos(math.radians(pitch))
        assert pose.image_shift_y_um == pytest.approx(expected_um, abs=1e-9)
        assert pose.image_shift_x_um == 0.0
        # the sensor's +y half ends up nearer the lens: negative tilt_x, |α| in arcmin
        assert pose.tilt_x_arcmin == pytest.approx(-alpha_mrad * math.cos(math.radians(pitch)) * 3.437747, rel=1e-6)
        # lens down stretches the bayonet (+), lens up compresses it
        assert math.copysign(1.0, pose.axial_um) == math.copysign(1.0, math.sin(math.radians(pitch))) or pitch == 0
    truth = mount_truth(unit, lens, pixel_pitch_um=6.4)
    assert truth.sag_shift_um(0.0) == pytest.approx(62.2 * alpha_mrad, rel=1e-12)


def test_wide_lens_moves_the_image_against_the_droop() -> None:
    lens = load_lens_catalog().get("elmarit-m-24-f2.8-asph")  # f = 24 < 27.8 mm: nodal point behind the pivot
    pose = mount_pose(_unit(rotational_stiffness_nm_per_mrad=0.2, remount_sigma_um=0.0), lens, _snap(), seed=0)
    assert pose.image_shift_y_um < 0 < -pose.tilt_x_arcmin


def test_no_lens_or_native_lens_is_static() -> None:
    lens = load_lens_catalog().get(LENS_ID)
    unit = _unit(rotational_stiffness_nm_per_mrad=0.5)
    assert mount_pose(unit, None, _snap(), seed=1) == STATIC
    assert mount_pose(unit, lens, _snap(lens_attached=False), seed=1) == STATIC


def test_remount_scatter_is_deterministic_per_mount_and_has_the_unit_sigma() -> None:
    unit = _unit(remount_sigma_um=1.5, remount_sigma_arcmin=0.4)
    lens = load_lens_catalog().get(LENS_ID)
    still = _unit(remount_sigma_um=1.5, remount_sigma_arcmin=0.4, rotational_stiffness_nm_per_mrad=1e9)
    a = mount_pose(still, lens, _snap(remount_index=7, pitch_deg=90.0), seed=11)
    b = mount_pose(still, lens, _snap(remount_index=7, pitch_deg=90.0, time_ns=10**9), seed=11)
    c = mount_pose(still, lens, _snap(remount_index=8, pitch_deg=90.0), seed=11)
    assert a == b and a != c
    offsets = remount_offsets(unit, range(1, 4001), seed=5)
    shifts = np.array([[o.shift_x_um, o.shift_y_um] for o in offsets])
    tilts = np.array([[o.tilt_x_arcmin, o.tilt_y_arcmin] for o in offsets])
    # σ of a 4000-sample std is σ/√8000 ≈ 1.1 %: 4 % is a 3.5σ band
    assert shifts.std(axis=0, ddof=1) == pytest.approx([1.5, 1.5], rel=0.04)
    assert tilts.std(axis=0, ddof=1) == pytest.approx([0.4, 0.4], rel=0.04)
    assert abs(np.corrcoef(shifts[:, 0], tilts[:, 0])[0, 1]) < 0.06


def test_knock_rings_at_the_damped_frequency_and_decays_at_zeta_omega() -> None:
    lens = load_lens_catalog().get(LENS_ID)
    unit = _unit(
        rotational_stiffness_nm_per_mrad=1e9,
        natural_frequency_hz=50.0,
        damping_ratio=0.1,
        remount_sigma_um=0.0,
        remount_sigma_arcmin=0.0,
    )
    knock_ns = 1_000_000_000
    t_ns = knock_ns + np.arange(0, 200_000_000, 50_000)
    y = np.array(
        [
            mount_pose(unit, lens, _snap(time_ns=int(t), knock_times_ns=(knock_ns,)), seed=0).image_shift_y_um
            for t in t_ns
        ]
    )
    t_s = (t_ns - knock_ns) * 1e-9
    # zero crossings every half damped period: fd = 50·√(1 − 0.01)
    crossings = t_s[1:][np.diff(np.signbit(y)) != 0]
    fd = 50.0 * math.sqrt(1 - 0.01)
    assert np.diff(crossings).mean() == pytest.approx(0.5 / fd, rel=2e-3)
    # successive positive peaks shrink by exp(−ζωn·Td)
    peaks = [y[(t_s >= k / fd) & (t_s < (k + 1) / fd)].max() for k in range(3)]
    ratio = math.exp(-0.1 * 2 * math.pi * 50.0 / fd)
    assert peaks[1] / peaks[0] == pytest.approx(ratio, rel=1e-2)
    assert peaks[2] / peaks[1] == pytest.approx(ratio, rel=1e-2)
    # no ringing before the knock (only the 1e-8 µm sag of a near-rigid mount)
    assert mount_pose(
        unit, lens, _snap(time_ns=knock_ns - 1, knock_times_ns=(knock_ns,)), seed=0
    ).image_shift_y_um == pytest.approx(0.0, abs=1e-6)
    # settle time: |y| stays within 0.25 px after it, and left the band less than half a period before it
    truth = mount_truth(unit, lens, pixel_pitch_um=6.4)
    tol = 0.25 * 6.4
    after = t_s >= truth.settle_time_ms / 1000
    assert np.abs(y[after]).max() <= tol
    last_out = t_s[np.abs(y) > tol].max()
    assert truth.settle_time_ms / 1000 - last_out < 0.5 / fd


def test_motion_blur_is_image_speed_times_exposure() -> None:
    lens = load_lens_catalog().get(LENS_ID)
    unit = _unit(rotational_stiffness_nm_per_mrad=1e9, remount_sigma_um=0.0, remount_sigma_arcmin=0.0)
    knocks = (0,)
    t, dt = 3_300_000, 1_000
    pose = mount_pose(unit, lens, _snap(time_ns=t, knock_times_ns=knocks, exposure_time_s=0.002), seed=0)
    y0 = mount_pose(unit, lens, _snap(time_ns=t - dt, knock_times_ns=knocks), seed=0).image_shift_y_um
    y1 = mount_pose(unit, lens, _snap(time_ns=t + dt, knock_times_ns=knocks), seed=0).image_shift_y_um
    speed_um_s = abs(y1 - y0) / (2 * dt * 1e-9)
    assert pose.motion_blur_um == pytest.approx(speed_um_s * 0.002, rel=1e-4)
    assert pose.motion_blur_angle_deg == 90.0
