"""Closing the bench leaves it dark: whatever ended the run, ``BenchDevices.close`` switches the light off.

Ground truth is the twin bench's light PWM, which only the GRBL peer writes (on ``M3 S…``/``M5`` and on its
own reset), not anything the driver reports.
"""

from __future__ import annotations

import pytest

from rig.bench.open import open_bench
from rig.config.resolve import load_station_lenses
from rig.config.station import load_station
from rig.config.unit import UNITS_DIR, load_unit

pytestmark = pytest.mark.timeout(180)


def test_close_switches_a_light_left_on_off() -> None:
    station = load_station()
    devices = open_bench(station, load_station_lenses(station), unit=load_unit(UNITS_DIR / "golden.toml"))
    try:
        devices.stage.home()  # G-code is locked until homed, as at the start of every run
        devices.light.set_level(0.8)
        assert devices.twin is not None and devices.twin.bench.state.light_pwm > 0  # the test can fail
    finally:
        devices.close()
    assert devices.twin.bench.state.light_pwm == 0
