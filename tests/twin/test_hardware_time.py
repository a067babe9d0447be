"""The twin's hardware-time ledger charges each physical action its real-bench duration (issue #17).

Motion against GRBL's own law (a rest-to-rest trapezoid from the station's ``$11x`` rate and ``$12x``
acceleration, the textbook L/v + v/a), dwells against their ``P`` word, frames against the stated read-out and
USB rates, the operator against the stated durations, a lens's sensor switch against the unit's firmware latency.
Nothing here asserts wall time: the ledger's figures are the real-bench seconds, whatever ``time_scale`` the twin
runs at.
"""

from __future__ import annotations

import pytest

from rig.config import LensCatalog, StationConfig, TwinUnit
from rig.config.unit import UNITS_DIR, load_unit
from rig.twin.grbl.eeprom import provisioned_settings
from rig.twin.hardware_time import HardwareAction, HardwareCosts, HardwareLedger
from rig.twin.operator import TwinOperator
from rig.twin.server import TwinServer
from rig.twin.state import BenchState
from rig.twin.world import TwinBench
from tests.twin.test_grbl_peer import _start, _trapezoid_duration_s

FAST = 1000.0  # the twin 1000× faster than real: the paced waits are milliseconds


def test_a_move_is_charged_its_trapezoid_and_a_dwell_its_p_word(station: StationConfig) -> None:
    ledger = HardwareLedger(time_scale=FAST)
    settings = provisioned_settings(station)
    for _, _, wire in _start(station, time_scale=FAST, hardware=ledger):
        wire.expect_boot()
        assert wire.send("$H", timeout_s=10) == ["ok"]
        homed = ledger.by_action()[HardwareAction.MOTION]
        assert homed > 0, "homing moves the axes: it costs hardware time"
        assert wire.send("G0 Z-50") == ["ok"]  # from the pull-off at Z -1: 49 mm of rail
        wire.wait_state("Idle")
        rate, accel = settings[112] / 60.0, settings[122]  # mm/s, mm/s²
        moved = ledger.by_action()[HardwareAction.MOTION] - homed
        assert moved == pytest.approx(_trapezoid_duration_s(49.0, rate, accel), rel=1e-9)
        assert wire.send("G4 P0.5") == ["ok"]
        assert ledger.by_action()[HardwareAction.MOTION] - homed - moved == pytest.approx(0.5, abs=1e-12)


def test_the_operator_is_charged_the_stated_durations(catalog: LensCatalog, station: StationConfig) -> None:
    costs = HardwareCosts()
    ledger = HardwareLedger(time_scale=FAST, costs=costs)
    hands = TwinOperator(BenchState(), catalog, mount=station.mount, hardware=ledger, sensor_switch_s=0.15)
    lens = station.reference_lens
    hands.mount_lens(lens)
    hands.remount_lens()
    hands.unmount_lens()
    expected = costs.lens_mount_s + (costs.lens_unmount_s + costs.lens_mount_s) + costs.lens_unmount_s
    spent = ledger.by_action()
    assert spent[HardwareAction.OPERATOR] == pytest.approx(expected, rel=1e-12)
    assert spent[HardwareAction.SENSOR_SWITCH] == pytest.approx(2 * 0.15, rel=1e-12), "two mounts, two switches"
    assert ledger.total_s() == pytest.approx(expected + 2 * 0.15, rel=1e-12)


def test_a_frame_costs_its_exposure_read_out_and_transfer(
    station: StationConfig, golden: TwinUnit, catalog: LensCatalog
) -> None:
    bench = TwinBench(station, golden, catalog)
    bench.hardware = HardwareLedger(time_scale=FAST)
    bench.state.update(exposure_time_s=0.02)
    frame = bench.capture()
    spent = bench.hardware.by_action()
    sensor, costs = station.sensor, bench.hardware.costs
    assert spent[HardwareAction.EXPOSURE] == pytest.approx(0.02, rel=1e-12)
    assert spent[HardwareAction.READOUT] == pytest.approx(sensor.width_px * sensor.height_px / 1.5e9, rel=1e-12)
    # USB 3 at the stated 200 MB/s plus 5 ms of PTP transactions per frame
    assert spent[HardwareAction.TRANSFER] == pytest.approx(len(frame.dng) / 200e6 + 0.005, rel=1e-12)
    assert costs.transfer_s(len(frame.dng)) == spent[HardwareAction.TRANSFER]

    before = bench.hardware.total_s()
    burst = bench.capture_burst(3, frame_interval_s=0.006, start_ns=bench.state.now_ns())
    ring = bench.hardware.total_s() - before
    # from the ring buffer: exposed before the request, only the transfer is new
    assert ring == pytest.approx(sum(costs.transfer_s(len(f.dng)) for f in burst), rel=1e-12)


def test_a_cost_is_never_negative() -> None:
    with pytest.raises(ValueError, match="≥ 0"):
        HardwareLedger().charge(HardwareAction.MOTION, -1.0)


def test_each_mount_charges_the_units_own_sensor_switch_latency(station: StationConfig, catalog: LensCatalog) -> None:
    """The twin server gives its operator the unit's firmware latency (slow-switch.toml: 1800 ms), so a lens
    change costs, besides the hands, the wait the bench has for the phone's M-mount sensor."""
    unit = load_unit(UNITS_DIR / "slow-switch.toml")
    assert unit.firmware.sensor_switch_latency_ms == 1800.0
    twin = TwinServer(station, unit, catalog)
    twin.operator.mount_lens(station.reference_lens)
    twin.operator.remount_lens()
    assert twin.bench.hardware.by_action()[HardwareAction.SENSOR_SWITCH] == pytest.approx(2 * 1.8, rel=1e-12)
