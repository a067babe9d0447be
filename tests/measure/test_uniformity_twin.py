"""Light intake measured on twin captures (TwinBench, the binned 2048 × 1536 test sensor) against the twin's truth:
the effective T-stop against the station's light calibration, and the gain of the Summilux at f/1.4 over the
phone's native f/1.9 lens."""

from __future__ import annotations

import math

import pytest

from rig.config import load_lens_catalog, load_station
from rig.config.loader import FIXTURES_DIR
from rig.config.unit import load_unit
from rig.measure.uniformity import light_gain, measure_uniformity, t_stop
from rig.twin.world import TwinBench

T_STOP_TOL_STOPS = 0.03  # brief: within 0.03 stops (of light: 2·log₂ of the T-stop ratio)
GAIN_RTOL = 0.02  # brief: within 2 %


class _Clock:
    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


@pytest.mark.slow
def test_t_stop_and_gain_over_native_on_twin_captures() -> None:
    station = load_station()
    unit = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    bench = TwinBench(station, unit, load_lens_catalog(), seed=3)
    clock = _Clock()
    bench.state.clock = clock
    level = 0.6
    bench.state.update(
        carousel_mm=station.carousel.slots["flat"],
        light_pwm=level * station.light.pwm_max,
        exposure_time_s=0.004,
        iso=100,
    )
    sensor = station.sensor
    kw = dict(
        black_level=sensor.black_level_dn, white_level=sensor.white_level_dn, pixel_pitch_um=sensor.readout_pitch_um
    )
    native = bench.capture()
    assert native.truth is not None and native.truth.lens_id is None
    bench.state.mount_lens(unit.lens.id)
    clock.now_ns = int((unit.firmware.sensor_switch_latency_ms + 50) * 1e6)  # after the switch to the M sensor
    m_lens = bench.capture()
    truth = m_lens.truth
    assert truth is not None and truth.lens_id == unit.lens.id
    signal = measure_uniformity(m_lens.raw, **kw).centre_signal_dn  # type: ignore[arg-type]
    measured = t_stop(
        signal,
        response_dn_per_cd_m2_s=station.light.response_dn_per_cd_m2_s,
        luminance_cd_m2=level * station.light.luminance_cd_m2_at_max,
        exposure_time_s=0.004,
        iso=100,
    )
    assert 2 * abs(math.log2(measured.t_stop / truth.t_stop)) <= T_STOP_TOL_STOPS, (measured, truth.t_stop)
    gain = light_gain(m_lens.raw, native.raw, **kw)  # type: ignore[arg-type]
    assert gain.gain_x == pytest.approx(truth.light_gain_over_native, rel=GAIN_RTOL)
