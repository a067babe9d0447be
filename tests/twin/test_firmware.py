"""The phone's firmware: dropped RAW bits, histogram/zebra/peaking with their injectable defects, sensor switch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rig.config.unit import FirmwareTruth
from rig.twin.firmware import apply_raw_defects, assist_outputs, lens_state, raw_histogram
from rig.twin.state import BenchState

BLACK, WHITE = 64, 1023


def _ramp(h: int = 64, w: int = 960) -> np.ndarray:
    """Every code black..white−1 along x, identical in all four Bayer channels."""
    codes = BLACK + np.repeat(np.arange(w // 2), 2) * (WHITE - BLACK) // (w // 2)
    return np.tile(codes, (h, 1)).astype(np.uint16)


def test_dropped_lsb_leaves_only_even_signal_codes() -> None:
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 1024, size=(64, 64)).astype(np.uint16)
    assert np.array_equal(apply_raw_defects(raw, FirmwareTruth(), black_level=BLACK), raw)
    nine = apply_raw_defects(raw, FirmwareTruth(raw_bits=9), black_level=BLACK).astype(int)
    assert np.all((nine - BLACK) % 2 == 0)
    assert np.all((raw.astype(int) - nine >= 0) & (raw.astype(int) - nine <= 1) | (raw < BLACK))
    eight = apply_raw_defects(raw, FirmwareTruth(raw_bits=8), black_level=BLACK).astype(int)
    assert len(np.unique(eight[raw >= BLACK] % 4)) == 1


def test_histogram_counts_every_sample_and_the_defect_shifts_it() -> None:
    raw = np.full((8, 8), BLACK + 480, dtype=np.uint16)  # 480 of 960 codes: bin 128 of 256
    clean = assist_outputs(
        raw, FirmwareTruth(), black_level=BLACK, white_level=WHITE, zebra_threshold_pct=90, peaking_threshold=0.05
    )
    assert clean.histogram.sum() == 64 and clean.histogram[128] == 64
    bad = assist_outputs(
        raw,
        FirmwareTruth(histogram_bin_offset=-3),
        black_level=BLACK,
        white_level=WHITE,
        zebra_threshold_pct=90,
        peaking_threshold=0.05,
    )
    assert bad.histogram[125] == 64


@pytest.mark.parametrize("bins", [256, 100, 7])
def test_histogram_bins_each_sample_by_the_specification(bins: int) -> None:
    # codes below black, at white and beyond it (a 10-bit mosaic in a uint16 can hold them), odd bin counts, and
    # more samples than one counting chunk: the per-code count must bin exactly as each sample would be
    rng = np.random.default_rng(11)
    raw = rng.integers(0, 1100, size=(1100, 1024)).astype(np.uint16)
    span = WHITE - BLACK
    signal = np.clip(raw.astype(np.int64) - BLACK, 0, span)
    expected = np.bincount(np.minimum(signal * bins // (span + 1), bins - 1).ravel(), minlength=bins)
    out = raw_histogram(raw, black_level=BLACK, white_level=WHITE, bins=bins)
    assert out.dtype == np.int64 and np.array_equal(out, expected)


def test_zebra_marks_quads_above_the_threshold_and_the_offset_moves_the_edge() -> None:
    raw = _ramp()
    luma_x = (np.arange(480) * (WHITE - BLACK) // 480) / (WHITE - BLACK)  # per quad column
    for offset in (0.0, -5.0, 7.5):
        out = assist_outputs(
            raw,
            FirmwareTruth(zebra_threshold_offset_pct=offset),
            black_level=BLACK,
            white_level=WHITE,
            zebra_threshold_pct=80.0,
            peaking_threshold=1.0,
        )
        assert out.zebra_mask.shape == (32, 480)
        assert out.zebra_threshold_pct == 80.0  # the phone reports what was asked for
        expected = luma_x >= (80.0 + offset) / 100 - 1e-6
        assert np.array_equal(out.zebra_mask[0], expected)


def test_peaking_marks_a_step_and_the_factor_hides_it() -> None:
    raw = np.full((64, 64), BLACK, dtype=np.uint16)
    raw[:, 32:] = BLACK + 480  # a 50 % step between quad columns 15 and 16
    out = assist_outputs(
        raw, FirmwareTruth(), black_level=BLACK, white_level=WHITE, zebra_threshold_pct=90, peaking_threshold=0.2
    )
    # Sobel slope across the step is 0.5/2 = 0.25 per quad at the two columns beside it
    assert out.peaking_mask[:, 15].all() and out.peaking_mask[:, 16].all()
    assert out.peaking_mask.sum() == 2 * 32
    hidden = assist_outputs(
        raw,
        FirmwareTruth(peaking_threshold_factor=1.5),
        black_level=BLACK,
        white_level=WHITE,
        zebra_threshold_pct=90,
        peaking_threshold=0.2,
    )
    assert not hidden.peaking_mask.any()


def test_sensor_switches_after_the_firmware_latency() -> None:
    fw = FirmwareTruth(sensor_switch_latency_ms=240.0)
    snap = replace(
        BenchState(clock=lambda: 2_100_000_000).snapshot(), lens_attached=True, lens_attached_at_ns=2_000_000_000
    )
    early = lens_state(snap, fw, lens_code=11)
    assert early.active_sensor == "main" and early.sensor_switched_at_ms is None
    late = lens_state(replace(snap, time_ns=2_300_000_000), fw, lens_code=11)
    assert late.active_sensor == "m_mount"
    assert late.sensor_switched_at_ms - late.attached_at_ms == pytest.approx(240.0)
