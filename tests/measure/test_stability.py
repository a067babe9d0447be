"""Stability measurements against the twin's analytic mount truth, through frames rendered here and registered.

Units are drawn at random (seeded): rotational stiffness, rocking mode, damping, remount scatter. Each frame is the
blob field of test_registration shifted by the pose :func:`rig.twin.mount.mount_pose` gives for that bench state
(µm → px at the binned 6.4 µm pitch), with shot and read noise; the measurement only sees the frames.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from rig.config import load_lens_catalog
from rig.config.unit import LensSample, MountTruth, TwinUnit
from rig.errors import MeasurementError
from rig.measure.registration import register
from rig.measure.stability import remount_repeatability, sag_vs_pitch, settling_time
from rig.twin.mount import lever_arm_mm, mount_pose, mount_truth, remount_offsets
from rig.twin.state import BenchSnapshot, BenchState
from tests.measure.test_registration import blob_field

PITCH_UM = 6.4
REL_TOL = 0.10  # brief: within 10 % of the unit's true values
SIZE = 320
LENSES = ("apo-summicron-m-90-f2-asph", "summilux-m-50-f1.4-asph-2023", "noctilux-m-50-f0.95-asph")


def _unit(rng: np.random.Generator) -> TwinUnit:
    return TwinUnit(
        serial="XM12SU-000200",
        mount=MountTruth(
            rotational_stiffness_nm_per_mrad=float(rng.uniform(0.05, 0.3)),
            natural_frequency_hz=float(rng.uniform(40.0, 80.0)),
            damping_ratio=float(rng.uniform(0.05, 0.15)),
            remount_sigma_um=float(rng.uniform(0.8, 2.5)),
            remount_sigma_arcmin=float(rng.uniform(0.2, 0.6)),
        ),
        lens=LensSample(id=LENSES[int(rng.integers(len(LENSES)))]),
    )


def _snap(**kw: object) -> BenchSnapshot:
    """A bench state with the lens on; fields not given keep BenchState's defaults (robust to new fields)."""
    base = replace(
        BenchState(clock=lambda: 10**9).snapshot(), lens_attached=True, lens_attached_at_ns=0, remount_index=1
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _frame(shift_x_um: float, shift_y_um: float, rng: np.random.Generator) -> np.ndarray:
    clean = 400 + 300 * blob_field(SIZE, SIZE, 21, shift=(shift_x_um / PITCH_UM, shift_y_um / PITCH_UM), n=220)
    return clean + rng.normal(0.0, 1.0, clean.shape) * np.sqrt(0.16 * clean + 4.0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [101, 202])
def test_sag_across_pitch_matches_the_analytic_sag(seed: int) -> None:
    rng = np.random.default_rng(seed)
    unit = _unit(rng)
    lens = load_lens_catalog().get(unit.lens.id)
    pitches = np.array([-90.0, -60.0, -30.0, 0.0, 30.0, 60.0, 90.0])
    frames = []
    for p in pitches:
        pose = mount_pose(unit, lens, _snap(pitch_deg=float(p)), seed=seed)
        frames.append(_frame(pose.image_shift_x_um, pose.image_shift_y_um, rng))
    shifts = [(r.dx_px, r.dy_px) for r in (register(frames[0], f) for f in frames)]
    sag = sag_vs_pitch(pitches, shifts, pixel_pitch_um=PITCH_UM, lever_arm_mm=lever_arm_mm(lens))
    truth = mount_truth(unit, lens, pixel_pitch_um=PITCH_UM)
    assert sag.sag_y_um == pytest.approx(truth.sag_shift_um_horizontal, rel=REL_TOL)
    assert sag.sag_tilt_arcmin == pytest.approx(truth.sag_tilt_arcmin(0.0), rel=REL_TOL)
    assert abs(sag.sag_x_um) < 0.05 * PITCH_UM  # gravity acts across y only


def test_remount_sigma_matches_the_realised_seating_errors() -> None:
    rng = np.random.default_rng(303)
    unit = _unit(rng)
    lens = load_lens_catalog().get(unit.lens.id)
    n = 12
    frames = []
    for index in range(1, n + 1):
        pose = mount_pose(unit, lens, _snap(remount_index=index, pitch_deg=90.0), seed=7)
        frames.append(_frame(pose.image_shift_x_um, pose.image_shift_y_um, rng))
    shifts = [(r.dx_px, r.dy_px) for r in (register(frames[0], f) for f in frames)]
    truth = remount_offsets(unit, range(1, n + 1), seed=7)
    tilts = [(o.tilt_x_arcmin, o.tilt_y_arcmin) for o in truth]  # stands in for the through-focus tilt fit
    measured = remount_repeatability(shifts, pixel_pitch_um=PITCH_UM, tilts_arcmin=tilts)
    true_xy = np.array([(o.shift_x_um, o.shift_y_um) for o in truth])
    true_sigma = math.sqrt(float(np.mean(true_xy.std(axis=0, ddof=1) ** 2)))
    assert measured.sigma_um == pytest.approx(true_sigma, rel=REL_TOL)
    assert measured.n == n and measured.range_um > 2 * measured.sigma_um
    assert measured.sigma_arcmin is not None and measured.sigma_arcmin > 0


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "knock_known"), [(404, True), (505, False)])
def test_settle_time_matches_the_analytic_envelope(seed: int, knock_known: bool) -> None:
    rng = np.random.default_rng(seed)
    unit = _unit(rng)
    lens = load_lens_catalog().get(unit.lens.id)
    truth = mount_truth(unit, lens, pixel_pitch_um=PITCH_UM)
    knock_ns = 2 * 10**9
    # a 400 fps burst starting 1.3 ms after the knock, long enough to see the ringing die
    frame_ns = knock_ns + 1_300_000 + np.arange(48) * 2_500_000
    frames, stamps = [], []
    for t in frame_ns:
        pose = mount_pose(unit, lens, _snap(time_ns=int(t), pitch_deg=90.0, knock_times_ns=(knock_ns,)), seed=1)
        frames.append(_frame(pose.image_shift_x_um, pose.image_shift_y_um, rng))
        stamps.append(t / 1e6)
    settled = _frame(
        *(lambda p: (p.image_shift_x_um, p.image_shift_y_um))(mount_pose(unit, lens, _snap(pitch_deg=90.0), seed=1)),
        rng,
    )
    shifts = [(r.dx_px, r.dy_px) for r in (register(settled, f) for f in frames)]
    result = settling_time(stamps, shifts, knock_time_ms=knock_ns / 1e6 if knock_known else None)
    assert result.settle_time_ms == pytest.approx(truth.settle_time_ms, rel=REL_TOL), (result, truth)
    assert result.decay_per_s == pytest.approx(
        unit.mount.damping_ratio * 2 * math.pi * unit.mount.natural_frequency_hz, rel=REL_TOL
    )


def test_burst_without_timestamps_and_too_few_pitches_are_refused() -> None:
    shifts = np.zeros((10, 2))
    with pytest.raises(MeasurementError, match="timestamp"):
        settling_time([float(i) for i in range(9)] + [None], shifts)
    with pytest.raises(MeasurementError, match="three pitches"):
        sag_vs_pitch([0.0, 90.0], np.zeros((2, 2)), pixel_pitch_um=PITCH_UM, lever_arm_mm=22.2)
    with pytest.raises(MeasurementError, match="lever arm"):
        sag_vs_pitch([-90, 0.0, 90.0], np.zeros((3, 2)), pixel_pitch_um=PITCH_UM, lever_arm_mm=0.2)
