"""Windowed read-out of the twin: a window is the same pixels a full native read-out has there.

Truth is the twin's own full 8192 × 6144 native-pitch render of the same snapshot (noise-free): the window path
(an offset grid, shading from the nodes around the window, unbinned exposure) must not change the physics, only
where it is evaluated. The noise test checks the per-pixel photon-transfer law of a native pixel (the sensor
model's documented variance, rig.twin.sensor) on a flat window, against the binned frame's.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rig.bench.capture_state import bench_state, stamp
from rig.config import LensCatalog, StationConfig, TwinUnit, load_lens_catalog
from rig.spec.capture_state import read_capture_state, read_readout_window
from rig.spec.dng import read_dng
from rig.spec.ptp import ReadoutWindow, parse_readout_windows, readout_windows_text
from rig.twin import firmware
from rig.twin.render import render
from rig.twin.sensor import gain_dn_per_e
from rig.twin.state import BenchState
from rig.twin.world import TwinBench
from tests.twin.conftest import with_sensor
from tests.twin.test_bench import FakeClock

pytestmark = pytest.mark.timeout(600)

LENS = "summilux-m-35-f1.4-asph-2022"
WINDOWS = (
    ReadoutWindow(3840, 2816, 512, 512),  # the centre square
    ReadoutWindow(0, 0, 256, 192),  # the top-left corner: the sensor's edge, the shading's first nodes
    ReadoutWindow(7934, 6016, 258, 128),  # the bottom-right corner, sides not multiples of the shading nodes
    ReadoutWindow(5362, 1150, 1024, 640),  # an off-axis square (0.4, −0.3) and its neighbourhood
)
SIGNAL_RTOL = 2e-6
"""float32 rounding of the same products evaluated in another order (ε = 6e-8; a few operations)."""


def _snapshot(station: StationConfig, chart: str = "sfr", *, rail_mm: float = 0.0) -> BenchState:
    state = BenchState()
    state.update(
        rail_mm=station.rail.focus_mm + rail_mm,
        carousel_mm=station.carousel.slots[chart],
        light_pwm=800,
        lens_attached=True,
        lens_id=LENS,
        exposure_time_s=0.01,
        f_number=1.4,
    )
    return state


def test_a_window_is_the_full_native_render_at_those_pixels(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    native = with_sensor(station, binning=1)
    assert (native.sensor.width_px, native.sensor.height_px) == (8192, 6144)
    lens = catalog.get(LENS)
    snapshot = _snapshot(native).snapshot()
    full = render(native, golden, catalog, snapshot, lens=lens, noise=False)
    for window in WINDOWS:
        # the binned station's window: a window is read at the native pitch whatever the station's binning
        part = render(station, golden, catalog, snapshot, lens=lens, noise=False, window=window)
        rows = slice(window.y_px, window.y_px + window.height_px)
        cols = slice(window.x_px, window.x_px + window.width_px)
        np.testing.assert_allclose(part.signal_dn, full.signal_dn[rows, cols], rtol=SIGNAL_RTOL, atol=1e-4)
        # codes are the signal rounded: equal except where float32 rounding straddles a half code
        differ = np.count_nonzero(part.raw != full.raw[rows, cols])
        assert differ <= 1e-4 * part.raw.size, f"{window.text}: {differ} codes differ"
        assert np.max(np.abs(part.raw.astype(int) - full.raw[rows, cols])) <= 1
        assert part.signal_dn.max() > 2 * part.signal_dn.min() or window.width_px < 512  # edges are in view


def test_a_dot_grid_window_off_axis_has_every_dot_of_the_full_render(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    native = with_sensor(station, binning=1)
    lens = catalog.get(LENS)
    snapshot = _snapshot(native, "dotgrid").snapshot()
    full = render(native, golden, catalog, snapshot, lens=lens, noise=False)
    window = ReadoutWindow(6000, 4000, 512, 512)  # off axis, far from the centre the dots are laid out about
    part = render(station, golden, catalog, snapshot, lens=lens, noise=False, window=window)
    rows = slice(window.y_px, window.y_px + window.height_px)
    cols = slice(window.x_px, window.x_px + window.width_px)
    np.testing.assert_allclose(part.signal_dn, full.signal_dn[rows, cols], rtol=SIGNAL_RTOL, atol=1e-4)
    assert part.signal_dn.max() > 2 * part.signal_dn.min()  # dots are in view


def _bench(station: StationConfig, unit: TwinUnit, chart: str) -> TwinBench:
    """A twin bench with the lens mounted long ago (sensor switched, mount settled) and ``chart`` lit."""
    bench = TwinBench(station, unit, load_lens_catalog(), seed=3)
    clock = FakeClock()
    bench.state.clock = clock
    bench.state.mount_lens(LENS)
    clock.now_ns = 5_000_000_000
    bench.state.update(
        rail_mm=station.rail.focus_mm, carousel_mm=station.carousel.slots[chart], light_pwm=800, f_number=1.4
    )
    assert bench.imaging_lens(bench.state.snapshot()) is not None
    return bench


def test_window_noise_is_a_native_pixels_and_firmware_bits_apply(station: StationConfig, golden: TwinUnit) -> None:
    """On the flat chart a native pixel's variance is g₁·S + (σ_r·g₁)² + 1/12 (no binning average); the firmware's
    dropped raw bits apply to a window as to a frame."""
    window = ReadoutWindow(4000, 3000, 256, 256)  # near the centre: shading is flat to < 0.1 % over it
    clean = _bench(station, golden, "flat")
    (flat,) = clean.capture_windows([window])
    assert flat.raw.shape == (256, 256)
    g1 = gain_dn_per_e(golden.sensor, iso=100)
    green = flat.raw[0::2, 1::2].astype(float) - station.sensor.black_level_dn
    mean = float(green.mean())
    expected = g1 * mean + (golden.sensor.read_noise_e * g1) ** 2 + 1 / 12
    assert mean > 100
    assert float(green.var(ddof=1)) == pytest.approx(expected, rel=0.08)  # 16 k samples: ±1.1 % (1σ)
    binned = clean.capture().raw
    b = station.sensor.binning
    quads = binned[3000 // b : 3000 // b + 64, 4000 // b : 4000 // b + 64][0::2, 1::2].astype(float)
    # a binned pixel averages b² native ones: its photon-noise variance is b² times smaller at the same mean
    assert float(quads.var(ddof=1)) == pytest.approx(
        g1 * float(quads.mean() - station.sensor.black_level_dn) / b**2
        + (golden.sensor.read_noise_e * g1 / b) ** 2
        + 1 / 12,
        rel=0.3,
    )

    unit = golden.model_copy(update={"firmware": golden.firmware.model_copy(update={"raw_bits": 8})})
    (coarse,) = _bench(station, unit, "flat").capture_windows([window])
    step = 1 << (firmware.FULL_RAW_BITS - 8)
    assert np.all((coarse.raw.astype(int) - station.sensor.black_level_dn) % step == 0)


def test_window_dngs_say_where_they_sit(station: StationConfig, golden: TwinUnit) -> None:
    bench = _bench(station, golden, "sfr")
    frames = bench.capture_windows(WINDOWS[:2])
    assert bench.frames_rendered == 1  # one exposure
    for frame, window in zip(frames, WINDOWS[:2], strict=True):
        image = read_dng(frame.dng)
        assert (image.width, image.height) == (window.width_px, window.height_px)
        state = read_readout_window(frame.dng, source="window")
        assert state is not None and state.window == window
        assert (state.sensor_width_px, state.sensor_height_px, state.pixel_pitch_um) == (8192, 6144, 1.6)
    whole = bench.capture()
    assert read_readout_window(whole.dng, source="frame") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,0,64,64", "even"),
        ("0,0,64,63", "even"),
        ("8000,0,256,256", "outside the 8192×6144 sensor"),
        ("0,0,2048,64", "sides must be 16..1024"),
        ("0,0,64,64;32,32,64,64", "overlap"),
        (";".join(f"{64 * k},0,16,16" for k in range(13)), "at most 12"),
        ("0,0,64", "expected x,y,w,h"),
        ("a,b,c,d", "expected x,y,w,h"),
    ],
)
def test_the_spec_refuses_bad_windows_in_one_line(text: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected) as caught:
        parse_readout_windows(text, sensor_width_px=8192, sensor_height_px=6144)
    assert "\n" not in str(caught.value)


def test_windows_round_trip_through_their_text() -> None:
    assert parse_readout_windows("", sensor_width_px=8192, sensor_height_px=6144) == ()
    text = readout_windows_text(WINDOWS)
    assert parse_readout_windows(text, sensor_width_px=8192, sensor_height_px=6144) == WINDOWS


def test_the_bench_stamp_keeps_the_phones_window(station: StationConfig, golden: TwinUnit) -> None:
    """The bench replaces the DNG's XMP with its own state; the window the phone wrote must survive in it."""
    (frame,) = _bench(station, golden, "sfr").capture_windows(WINDOWS[:1])
    window = read_readout_window(frame.dng, source="phone")
    assert window is not None
    state = bench_state(
        station, tag="sharp-00", chart="sfr", rail_mm=0.0, pitch_deg=0.0, light_level=0.8, exposure_time_s=0.01, iso=100
    )
    state = replace(state, pixel_pitch_um=window.pixel_pitch_um, window=window)
    stamped = stamp(frame.dng, state)
    assert read_capture_state(stamped, source="stamped") == state
    assert read_readout_window(stamped, source="stamped") == window
    assert read_capture_state(frame.dng, source="phone") is None  # the phone's packet holds no bench state
