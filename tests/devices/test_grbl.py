"""The GRBL driver against the twin's GRBL peer, across a real pseudo-terminal (no in-process shortcut)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from rig.config.station import StationConfig, load_station
from rig.devices.grbl import GrblController, GrblLight, GrblStage, parse_status
from rig.devices.protocols import Light, Stage
from rig.errors import ArgumentError, DeviceAlarm, DeviceCommandError, DeviceLost, DeviceStateError, DeviceTimeout
from rig.spec.grbl import alarm_meaning, error_meaning
from rig.spec.types import Axis, StageState
from rig.twin.grbl_peer import GrblFaults, GrblPeer
from rig.twin.state import BenchState

pytestmark = pytest.mark.timeout(30)

TIME_SCALE = 50.0  # fast simulated motion: the longest move here (300 mm carousel) takes ~0.07 s real
POSITION_TOL = 0.001  # GRBL reports MPos with 3 decimals
POLL_S = 0.005


@dataclass
class Bench:
    state: BenchState
    peer: GrblPeer
    controller: GrblController
    stage: GrblStage
    light: GrblLight


def _station(**rail: float) -> StationConfig:
    station = load_station()
    if rail:
        station = station.model_copy(update={"rail": station.rail.model_copy(update=rail)})
    return station


@pytest.fixture
def station() -> StationConfig:
    return _station()


def _bench(
    station: StationConfig,
    *,
    peer_station: StationConfig | None = None,
    faults: GrblFaults | None = None,
    move_timeout_s: float = 10.0,
) -> Iterator[Bench]:
    state = BenchState()
    peer = GrblPeer(state, peer_station or station, time_scale=TIME_SCALE, faults=faults)
    port = peer.start()
    controller = GrblController(port, timeout_s=2.0, move_timeout_s=move_timeout_s, poll_interval_s=POLL_S)
    stage, light = GrblStage(controller, station), GrblLight(controller, station)
    try:
        with stage, light:
            yield Bench(state, peer, controller, stage, light)
    finally:
        peer.stop()


@pytest.fixture
def bench(station: StationConfig) -> Iterator[Bench]:
    yield from _bench(station)


@pytest.fixture
def homed(bench: Bench) -> Bench:
    bench.stage.home()
    return bench


# ------------------------------------------------------------------------------------------- status parsing
def test_status_report_in_the_documented_forms_parses() -> None:
    # Examples from gnea/grbl doc/markdown/interface.md (1.1 status report).
    report = parse_status("<Idle|MPos:0.000,0.000,0.000|FS:0,0|WCO:0.000,0.000,0.000>")
    assert report.state is StageState.IDLE and report.mpos == (0.0, 0.0, 0.0) and report.substate is None
    report = parse_status("<Run|MPos:-5.000,10.500,3.125|Bf:15,128|FS:500,8000|Ov:100,100,100|A:SF>")
    assert report.mpos == (-5.0, 10.5, 3.125)
    assert (report.feed_mm_min, report.spindle) == (500.0, 8000.0)
    assert (report.planner_blocks_free, report.rx_bytes_free) == (15, 128)
    assert report.overrides_pct == (100, 100, 100) and report.accessories == "SF"
    # WPos form ($10=0): machine position is WPos + WCO, with WCO remembered from an earlier report.
    report = parse_status("<Hold:0|WPos:1.000,2.000,3.000|F:250>", wco=(10.0, 20.0, 30.0))
    assert report.state is StageState.HOLD and report.substate == 0
    assert report.mpos == (11.0, 22.0, 33.0) and report.wpos == (1.0, 2.0, 3.0) and report.feed_mm_min == 250.0
    status = report.to_stage_status()
    assert status.position == {Axis.CAROUSEL: 11.0, Axis.PITCH: 22.0, Axis.RAIL: 33.0}


@pytest.mark.parametrize("line", ["Idle|MPos:0,0,0", "<Flying|MPos:0,0,0>", "<Idle|MPos:0,x,0>", "<Idle|FS:0,0>"])
def test_malformed_status_report_is_a_device_error(line: str) -> None:
    with pytest.raises(DeviceCommandError):
        parse_status(line)


def test_code_meanings_are_grbls_own() -> None:
    assert "Unsupported or invalid g-code command" in error_meaning(20)
    assert error_meaning(2).startswith("error:2 Bad number format")
    assert alarm_meaning(2).startswith("ALARM:2 Soft limit")
    assert "Hard limit has been triggered" in alarm_meaning(1)


# ------------------------------------------------------------------------------------------- lifecycle
def test_drivers_satisfy_the_protocols(bench: Bench) -> None:
    assert isinstance(bench.stage, Stage)
    assert isinstance(bench.light, Light)


def test_open_reads_banner_and_the_homing_lock(bench: Bench) -> None:
    assert bench.controller.version == "1.1h"
    assert "[MSG:'$H'|'$X' to unlock]" in bench.controller.messages
    assert bench.stage.status().state is StageState.ALARM


def test_calls_before_open_name_the_state(station: StationConfig) -> None:
    controller = GrblController("/dev/null-no-such-port")
    with pytest.raises(DeviceStateError, match="not open"):
        controller.status()
    with pytest.raises(DeviceLost, match="stage lost: cannot open /dev/null-no-such-port"):
        controller.open()


def test_controller_is_shared_until_the_last_close(bench: Bench) -> None:
    bench.light.close()
    assert bench.controller.is_open
    assert bench.stage.status().state is StageState.ALARM
    bench.light.open()  # balance the fixture's close


# ------------------------------------------------------------------------------------------- motion
def test_home_then_absolute_moves_reach_their_targets(homed: Bench) -> None:
    stage, state = homed.stage, homed.state
    assert stage.status().state is StageState.IDLE
    for target in ({"rail_mm": 73.25}, {"pitch_deg": -42.5, "carousel_mm": 12.0}, {"rail_mm": 0.5, "pitch_deg": 90.0}):
        status = stage.move_to(**target)
        assert status.state is StageState.IDLE
        axis_of = {"rail_mm": Axis.RAIL, "carousel_mm": Axis.CAROUSEL, "pitch_deg": Axis.PITCH}
        for name, value in target.items():
            assert status.position[axis_of[name]] == pytest.approx(value, abs=POSITION_TOL)
            assert getattr(state, name) == pytest.approx(value, abs=POSITION_TOL)
    stage.select_chart("dotgrid")
    assert stage.status().position[Axis.CAROUSEL] == pytest.approx(200.0, abs=POSITION_TOL)


def test_targets_outside_the_station_are_refused_before_sending(homed: Bench) -> None:
    before = homed.stage.status().position
    with pytest.raises(ArgumentError, match=r"rail_mm = 150: expected within \[0, 100\] mm"):
        homed.stage.move_to(rail_mm=150.0, carousel_mm=10.0)
    with pytest.raises(ArgumentError, match=r"pitch_deg = -91: expected within \[-90, 90\] deg"):
        homed.stage.move_to(pitch_deg=-91.0)
    with pytest.raises(ArgumentError, match="finite"):
        homed.stage.move_to(rail_mm=float("nan"))
    with pytest.raises(ArgumentError, match="sfr, flat, dotgrid"):
        homed.stage.select_chart("siemens-star")
    assert homed.stage.status().position == before  # nothing moved, nothing clipped


def test_soft_limit_alarm_is_reported_and_recovered(station: StationConfig) -> None:
    # The controller's EEPROM travel ($132 = 60 mm) is tighter than the station file (100 mm): the driver's
    # own check passes and GRBL itself refuses the move.
    for bench in _bench(station, peer_station=_station(max_mm=60.0, focus_mm=30.0)):
        bench.stage.home()
        bench.stage.move_to(rail_mm=20.0)
        with pytest.raises(DeviceAlarm, match="ALARM:2 Soft limit") as info:
            bench.stage.move_to(rail_mm=90.0)
        assert info.value.code == 2
        assert bench.state.rail_mm == pytest.approx(20.0, abs=POSITION_TOL)  # rejected before any motion
        with pytest.raises(DeviceAlarm, match="recover"):
            bench.light.set_level(0.5)  # GRBL ignores lines until reset; the driver says so instead of hanging
        bench.stage.recover()
        assert bench.stage.status().state is StageState.IDLE
        assert bench.stage.move_to(rail_mm=55.0).position[Axis.RAIL] == pytest.approx(55.0, abs=POSITION_TOL)


def test_invalid_commands_give_grbls_meaning(homed: Bench) -> None:
    with pytest.raises(DeviceCommandError, match="error:20 Unsupported command") as info:
        homed.controller.command("G38.2 Z-5 F10")
    assert info.value.code == 20
    with pytest.raises(DeviceCommandError, match="error:2 Bad number format"):
        homed.controller.command("G1 Zabc")
    homed.controller.command("$X")  # the controller still answers after errors


def test_gcode_is_locked_until_homed(bench: Bench) -> None:
    with pytest.raises(DeviceCommandError, match="error:9 G-code lock") as info:
        bench.light.set_level(0.2)
    assert info.value.code == 9


# ------------------------------------------------------------------------------------------- light, knocker
def test_light_level_sets_the_panel_pwm(homed: Bench) -> None:
    light, state = homed.light, homed.state
    pwm_max = homed.stage.station.light.pwm_max
    for level in (0.0, 0.2504, 1.0):
        light.set_level(level)
        assert state.light_pwm == round(level * pwm_max)
        assert light.level == pytest.approx(round(level * pwm_max) / pwm_max)
    light.off()
    assert state.light_pwm == 0.0 and light.level == 0.0
    for bad in (1.01, -0.1, float("inf")):
        with pytest.raises(ArgumentError, match="light level"):
            light.set_level(bad)


def test_knock_pulses_the_knocker_once(homed: Bench) -> None:
    before = len(homed.state.knock_times_ns)
    homed.stage.knock()
    homed.stage.knock()
    times = homed.state.knock_times_ns
    assert len(times) == before + 2
    # the second pulse starts after the first dwell (pulse_ms at the simulated time scale) has passed
    pulse_ns = homed.stage.station.knocker.pulse_ms * 1e6 / TIME_SCALE
    assert times[-1] - times[-2] >= pulse_ns


# ------------------------------------------------------------------------------------------- faults (issue #8)
def test_port_vanishing_mid_move_raises_device_lost(homed: Bench) -> None:
    homed.peer.set_faults(vanish_mid_move=True)
    start = time.monotonic()
    with pytest.raises(DeviceLost, match="stage lost"):
        homed.stage.move_to(rail_mm=100.0)
    assert time.monotonic() - start < homed.controller.timeout_s
    assert homed.peer.vanished


def test_status_stuck_in_run_times_out_at_move_timeout(station: StationConfig) -> None:
    move_timeout_s = 0.5
    for bench in _bench(station, faults=GrblFaults(stuck_in_run=True), move_timeout_s=move_timeout_s):
        bench.stage.home()
        start = time.monotonic()
        with pytest.raises(DeviceTimeout, match=r"not Idle within 0\.5 s") as info:
            bench.stage.move_to(rail_mm=10.0)
        elapsed = time.monotonic() - start
        # bounded below by the timeout; above by one poll and one status round trip on a loaded machine
        assert move_timeout_s <= elapsed < move_timeout_s + 1.0
        assert "<Run|" in str(info.value)


def test_hard_limit_mid_move_is_an_alarm_the_stage_recovers_from(homed: Bench) -> None:
    homed.stage.move_to(rail_mm=10.0)
    homed.peer.set_faults(alarm_mid_move=True)
    with pytest.raises(DeviceAlarm, match="ALARM:1 Hard limit") as info:
        homed.stage.move_to(rail_mm=90.0)
    assert info.value.code == 1
    assert 10.0 < homed.state.rail_mm < 90.0  # stopped where the switch tripped
    homed.stage.recover()
    assert homed.stage.move_to(rail_mm=90.0).position[Axis.RAIL] == pytest.approx(90.0, abs=POSITION_TOL)


def test_injected_error_reaches_the_caller_once(homed: Bench) -> None:
    homed.peer.set_faults(error_next_command=22)
    with pytest.raises(DeviceCommandError, match="error:22 Undefined feed rate"):
        homed.light.set_level(0.5)
    homed.light.set_level(0.5)
    assert homed.state.light_pwm == 500


def test_port_dropping_after_n_commands_is_device_lost(homed: Bench) -> None:
    homed.peer.set_faults(drop_after_commands=2)
    homed.light.set_level(0.1)
    homed.light.set_level(0.2)
    with pytest.raises(DeviceLost):
        homed.light.set_level(0.3)
    assert homed.state.light_pwm == 200
