"""TwinBench end to end: DNGs LibRaw reads correctly, determinism by seed, burst timing, sensor switch, CLI."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import rawpy

from rig.cli import main
from rig.config import LensCatalog, StationConfig, TwinUnit
from rig.spec.dng import read_dng
from rig.twin.world import TwinBench


class FakeClock:
    """Simulated time the test controls (ns)."""

    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


def _bench(station: StationConfig, unit: TwinUnit, catalog: LensCatalog, *, seed: int = 5) -> TwinBench:
    bench = TwinBench(station, unit, catalog, seed=seed)
    clock = FakeClock()
    bench.state.clock = clock
    bench.state.mount_lens(unit.lens.id)
    clock.now_ns = 5_000_000_000  # long after the sensor switch and any ringing
    bench.state.update(rail_mm=station.rail.focus_mm, carousel_mm=station.carousel.slots["sfr"], light_pwm=800)
    return bench


def test_rawpy_reads_a_twin_dng(station: StationConfig, catalog: LensCatalog, golden: TwinUnit) -> None:
    frame = _bench(station, golden, catalog).capture()
    with rawpy.imread(io.BytesIO(frame.dng)) as img:
        assert img.raw_image.shape == (station.sensor.height_px, station.sensor.width_px)
        letters = img.color_desc.decode()
        assert "".join(letters[i] for i in img.raw_pattern.ravel()) == "RGGB"
        assert list(img.black_level_per_channel) == [64] * 4
        assert img.white_level == 1023
        assert int(img.raw_image.max()) <= 1023
        assert np.array_equal(img.raw_image, frame.raw)
    image = read_dng(frame.dng)
    assert (image.make, image.model, image.serial) == ("Xiaomi", "12S Ultra Concept", golden.serial)
    assert image.f_number == pytest.approx(1.4)
    assert image.timestamp_ms == pytest.approx(5000.0, abs=1e-3)


def test_same_seed_same_bytes_different_seed_different_noise(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    first = _bench(station, golden, catalog, seed=5).capture()
    again = _bench(station, golden, catalog, seed=5).capture()
    other = _bench(station, golden, catalog, seed=6).capture()
    assert first.dng == again.dng
    assert other.dng != first.dng
    diff = first.raw.astype(np.int32) - other.raw.astype(np.int32)
    # noise differs nearly everywhere, the scene does not: the difference is centred on zero
    assert np.mean(diff != 0) > 0.8
    assert abs(float(diff.mean())) < 0.05


def test_successive_captures_draw_fresh_noise(station: StationConfig, catalog: LensCatalog, golden: TwinUnit) -> None:
    bench = _bench(station, golden, catalog)
    a, b = bench.capture(), bench.capture()
    assert not np.array_equal(a.raw, b.raw)


def test_burst_frames_are_at_simulated_intervals(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    bench = _bench(station, golden, catalog)
    frames = bench.capture_burst(3, frame_interval_s=0.025)
    assert [f.time_ns for f in frames] == [5_000_000_000, 5_025_000_000, 5_050_000_000]
    stamps = [read_dng(f.dng).timestamp_ms for f in frames]
    assert np.diff(stamps) == pytest.approx([25.0, 25.0], abs=1e-3)


def test_native_camera_until_the_sensor_switches(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    bench = TwinBench(station, golden, catalog, seed=1)
    clock = FakeClock()
    bench.state.clock = clock
    bench.state.update(carousel_mm=station.carousel.slots["flat"], light_pwm=500)
    assert read_dng(bench.capture().dng).f_number == pytest.approx(1.9)  # no lens: main camera
    bench.state.mount_lens(golden.lens.id)
    latency_ns = int(golden.firmware.sensor_switch_latency_ms * 1e6)
    clock.now_ns = latency_ns // 2
    early = bench.capture()
    assert early.truth is not None and early.truth.lens_id is None
    clock.now_ns = latency_ns + 1
    late = bench.capture()
    assert late.truth is not None and late.truth.lens_id == golden.lens.id
    assert read_dng(late.dng).f_number == pytest.approx(1.4)


def test_truth_exposes_effective_flange_and_light_gain(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    truth = _bench(station, golden, catalog).truth()
    lens = catalog.get(golden.lens.id)
    # golden: cover as nominal, pose axial 0 at pitch 0 → the static flange offset
    assert truth.flange_offset_um == pytest.approx(golden.mount.flange_offset_um + 0.0, abs=0.05)
    native = catalog.native
    expected_gain = (lens.transmission / lens.max_f_number**2) / (native.transmission / native.f_number**2)
    assert truth.light_gain_over_native == pytest.approx(expected_gain)
    assert truth.t_stop == pytest.approx(lens.max_f_number / lens.transmission**0.5)
    assert truth.decentre_x_px == pytest.approx(truth.decentre_x_um / station.sensor.readout_pitch_um)


def test_cover_error_moves_the_image_back(station: StationConfig, catalog: LensCatalog, golden: TwinUnit) -> None:
    thick = golden.model_copy(update={"mount": golden.mount.model_copy(update={"cover_thickness_mm": 0.6})})
    truth = _bench(station, thick, catalog).truth()
    shift = 1000.0 * (1 - 1 / station.sensor.cover_index) * 0.1  # 0.1 mm thicker than nominal
    assert truth.cover_shift_um == pytest.approx(shift)
    centre = float(truth.defocus_um(0.0, 0.0, rail_mm=station.rail.focus_mm))
    assert centre == pytest.approx(shift - truth.mount_flange_offset_um)


def test_cli_capture_writes_a_dng_and_describes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.dng"
    args = ["--unit", "golden", "--chart", "sfr", "--rail-mm", "0.25", "--light", "0.8", "--exposure-ms", "10"]
    status = main(["twin", "capture", *args, "--out", str(out)])
    assert status == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and "2048×1536" in line and "chart sfr" in line and "defocus at centre" in line
    assert read_dng(out).width == 2048


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--unit", "no-such-unit"], "no-such-unit"),
        (["--unit", "golden", "--exposure-ms", "-1"], "--exposure-ms -1"),
        (["--unit", "golden", "--chart", "star"], "--chart 'star'"),
        (["--unit", "golden", "--light", "1.5"], "--light 1.5"),
        (["--unit", "golden", "--station", "missing.toml"], "missing.toml"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    status = main(["twin", "capture", *args, "--out", str(tmp_path / "x.dng")])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and needle in err
