"""Camera-feature checks against the twin's firmware: a clean firmware passes every check, and each injected defect
(shifted histogram, zebra threshold offset, peaking factor, dropped RAW bit, late sensor switch) is found and
measured. The frames are synthesised here: a noisy diagonal gradient (every luma, every code) with a blob texture
(edges of every contrast)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rig.config.unit import FirmwareTruth
from rig.errors import MeasurementError
from rig.measure.assist import (
    histogram_agreement,
    peaking_agreement,
    peaking_focus,
    raw_bit_depth,
    reference_histogram,
    sensor_switch_latency,
    zebra_agreement,
)
from rig.twin.firmware import apply_raw_defects, assist_outputs, lens_state
from rig.twin.state import BenchState
from tests.measure.test_registration import blob_field

BLACK, WHITE = 64, 1023
ZEBRA_PCT, PEAKING = 80.0, 0.02
# pass limits of a clean feature (chosen above the float32-vs-float64 rounding between two implementations)
MIN_IOU = 0.995
MAX_ZEBRA_ERROR_PCT = 0.2
MAX_PEAKING_RATIO_ERROR = 0.02


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(31)
    h, w = 384, 512
    y, x = np.mgrid[0:h, 0:w]
    gradient = (x / w + y / h) / 2.0
    texture = 0.08 * blob_field(h, w, 12, n=900)
    signal = np.clip(gradient + texture, 0.0, 1.05) * (WHITE - BLACK)
    raw = BLACK + signal + rng.normal(0.0, 1.5, signal.shape)
    return np.clip(np.round(raw), 0, WHITE).astype(np.uint16)


def _phone(raw: np.ndarray, firmware: FirmwareTruth):
    captured = apply_raw_defects(raw, firmware, black_level=BLACK)
    out = assist_outputs(
        captured,
        firmware,
        black_level=BLACK,
        white_level=WHITE,
        zebra_threshold_pct=ZEBRA_PCT,
        peaking_threshold=PEAKING,
    )
    return captured, out


def _checks(raw: np.ndarray, firmware: FirmwareTruth):
    captured, out = _phone(raw, firmware)
    hist = histogram_agreement(captured, out.histogram, black_level=BLACK, white_level=WHITE)
    zebra = zebra_agreement(
        captured, out.zebra_mask, black_level=BLACK, white_level=WHITE, threshold_pct=out.zebra_threshold_pct
    )
    peaking = peaking_agreement(
        captured, out.peaking_mask, black_level=BLACK, white_level=WHITE, threshold=out.peaking_threshold
    )
    bits = raw_bit_depth(captured, black_level=BLACK, white_level=WHITE)
    return hist, zebra, peaking, bits


def test_defect_free_firmware_passes_every_feature_check(frame: np.ndarray) -> None:
    hist, zebra, peaking, bits = _checks(frame, FirmwareTruth())
    assert hist.bin_offset == 0 and hist.intersection == pytest.approx(1.0)
    assert zebra.iou >= MIN_IOU and abs(zebra.threshold_error) <= MAX_ZEBRA_ERROR_PCT
    assert peaking.iou >= MIN_IOU and abs(peaking.threshold_ratio - 1) <= MAX_PEAKING_RATIO_ERROR
    assert bits.missing_codes == 0 and bits.effective_bits == pytest.approx(10.0) and not bits.stuck_bits


@pytest.mark.parametrize("offset", [-5, 3])
def test_shifted_histogram_is_detected_with_its_offset(frame: np.ndarray, offset: int) -> None:
    hist, *_ = _checks(frame, FirmwareTruth(histogram_bin_offset=offset))
    assert hist.bin_offset == offset
    # a smooth gradient's histogram is nearly flat, so the overlap drops only a little: the offset is the finding
    assert hist.intersection_at_offset > 0.99 and hist.intersection < hist.intersection_at_offset - 0.05


@pytest.mark.parametrize("offset_pct", [-3.0, 1.5])
def test_zebra_threshold_offset_is_detected_and_measured(frame: np.ndarray, offset_pct: float) -> None:
    _, zebra, _, _ = _checks(frame, FirmwareTruth(zebra_threshold_offset_pct=offset_pct))
    assert zebra.iou < MIN_IOU
    assert zebra.threshold_error == pytest.approx(offset_pct, abs=MAX_ZEBRA_ERROR_PCT)


@pytest.mark.parametrize("factor", [0.7, 1.3])
def test_peaking_threshold_factor_is_detected_and_measured(frame: np.ndarray, factor: float) -> None:
    _, _, peaking, _ = _checks(frame, FirmwareTruth(peaking_threshold_factor=factor))
    assert peaking.iou < MIN_IOU
    assert peaking.threshold_ratio == pytest.approx(factor, rel=MAX_PEAKING_RATIO_ERROR)


@pytest.mark.parametrize("bits", [9, 8])
def test_dropped_raw_bits_show_as_missing_codes_and_stuck_lsbs(frame: np.ndarray, bits: int) -> None:
    *_, depth = _checks(frame, FirmwareTruth(raw_bits=bits))
    assert depth.effective_bits == pytest.approx(bits, abs=0.02)
    assert depth.stuck_bits == tuple(range(10 - bits)) and depth.lsb_stuck
    assert depth.missing_fraction == pytest.approx(1 - 2.0 ** (bits - 10), abs=0.01)


def test_sensor_switch_latency_is_the_firmware_latency() -> None:
    snap = replace(
        BenchState(clock=lambda: 9_000_000_000).snapshot(), lens_attached=True, lens_attached_at_ns=5_000_000_000
    )
    for latency in (150.0, 2300.0):
        state = lens_state(snap, FirmwareTruth(sensor_switch_latency_ms=latency), lens_code=11)
        assert sensor_switch_latency(state).latency_ms == pytest.approx(latency)
    late = lens_state(snap, FirmwareTruth(sensor_switch_latency_ms=60000.0), lens_code=11)
    with pytest.raises(MeasurementError, match="not switched"):
        sensor_switch_latency(late)


def test_peaking_focus_finds_the_vertex_of_a_coverage_curve() -> None:
    rail = np.linspace(44.0, 56.0, 13)
    # a Gaussian, not a parabola: over ±2 mm of a σ = 2.5 mm peak the parabola's vertex is biased < 0.05 mm
    coverage = 0.30 * np.exp(-0.5 * ((rail - 50.37) / 2.5) ** 2)
    result = peaking_focus(rail, coverage, sfr_best_rail_mm=50.2)
    assert result.peaking_best_rail_mm == pytest.approx(50.37, abs=0.05)
    assert result.difference_mm == pytest.approx(0.17, abs=0.05)
    with pytest.raises(MeasurementError, match="no maximum"):
        peaking_focus(rail, rail * 0.01, sfr_best_rail_mm=50.0)


def test_bit_depth_from_the_code_histogram_equals_the_sorted_sample_definition() -> None:
    """The histogram shortcut gives exactly the order statistics and code set of sorting the samples."""
    rng = np.random.default_rng(11)
    checked = 0
    for trial in range(60):
        raw = np.clip(np.round(rng.normal(rng.uniform(80, 1000), rng.uniform(2, 200), 3000)), 0, 1023)
        raw = raw.astype(np.uint16)
        if trial % 3 == 0:
            raw = (raw >> 1) << 1  # a dropped LSB
        signal = raw.astype(np.int64) - 64
        signal = signal[(signal >= 0) & (signal < 1023 - 64)]
        lo, hi = (int(v) for v in np.percentile(signal, [0.1, 99.9]))
        if hi - lo < 8:
            continue
        inside = signal[(signal >= lo) & (signal <= hi)]
        got = raw_bit_depth(raw, black_level=64, white_level=1023)
        assert got.code_range == (lo, hi)
        assert got.distinct_codes == np.unique(inside).size
        stuck = tuple(b for b in range(10) if (1 << (b + 1)) <= hi - lo and np.unique((inside >> b) & 1).size == 1)
        assert got.stuck_bits == stuck
        checked += 1
    assert checked >= 40


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.int32])
def test_reference_histogram_bins_each_sample_by_the_specification(dtype: type) -> None:
    """The per-code tally binned once equals binning every sample, past one exact-count block and for any dtype."""
    rng = np.random.default_rng(12)
    top = 250 if dtype is np.uint8 else 1100
    raw = rng.integers(0, top, size=(9000, 1000)).astype(dtype)
    black, white = (16, 240) if dtype is np.uint8 else (64, 1023)
    span = white - black
    expected, _ = np.histogram(np.clip(raw.astype(np.int64) - black, 0, span), bins=97, range=(0, span + 1))
    got = reference_histogram(raw, black_level=black, white_level=white, bins=97)
    assert got.dtype == np.int64 and np.array_equal(got, expected)
