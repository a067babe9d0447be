"""Registration of noisy twin captures (TwinBench, binned 2048 × 1536) against the image shift the twin's mount
model put between them: a soft mount sagging between fixture pitches −90° and 0°."""

from __future__ import annotations

import pytest

from rig.config import load_lens_catalog, load_station
from rig.config.loader import FIXTURES_DIR
from rig.config.unit import load_unit
from rig.measure.imageio import bayer_mean
from rig.measure.registration import register
from rig.twin.mount import mount_pose
from rig.twin.world import TwinBench

NOISY_SHIFT_TOL_PX = 0.05  # brief: ≤ 0.05 px on noisy twin captures
LENS = "apo-summicron-m-90-f2-asph"


class _Clock:
    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


@pytest.mark.slow
@pytest.mark.parametrize("chart", ["dotgrid", "sfr"])
def test_twin_frames_register_to_the_mount_shift(chart: str) -> None:
    station = load_station()
    golden = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    unit = golden.model_copy(
        update={
            "mount": golden.mount.model_copy(update={"rotational_stiffness_nm_per_mrad": 0.4}),
            "lens": golden.lens.model_copy(update={"id": LENS}),
        }
    )
    catalog = load_lens_catalog()
    bench = TwinBench(station, unit, catalog, seed=5)
    clock = _Clock()
    bench.state.clock = clock
    bench.state.update(
        carousel_mm=station.carousel.slots[chart],
        rail_mm=station.rail.focus_mm,
        light_pwm=0.7 * station.light.pwm_max,
        exposure_time_s=0.004,
        iso=100,
    )
    bench.state.mount_lens(LENS)
    clock.now_ns = int((unit.firmware.sensor_switch_latency_ms + 50) * 1e6)
    frames, poses = [], []
    for pitch in (-90.0, 0.0):
        bench.state.update(pitch_deg=pitch)
        frame = bench.capture()
        frames.append(bayer_mean(frame.raw))
        poses.append(mount_pose(unit, catalog.get(LENS), frame.snapshot, seed=5))
    pitch_um = station.sensor.readout_pitch_um
    expected_dx = (poses[1].image_shift_x_um - poses[0].image_shift_x_um) / pitch_um
    expected_dy = (poses[1].image_shift_y_um - poses[0].image_shift_y_um) / pitch_um
    assert abs(expected_dy) > 2.0  # the sag is several pixels: a real test of sub-pixel accuracy
    r = register(frames[0], frames[1])
    # quad means are half-size: ×2 back to read-out pixels
    assert abs(2 * r.dx_px - expected_dx) <= NOISY_SHIFT_TOL_PX, (r, expected_dx)
    assert abs(2 * r.dy_px - expected_dy) <= NOISY_SHIFT_TOL_PX, (r, expected_dy)
