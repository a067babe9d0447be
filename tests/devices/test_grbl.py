"""The GRBL driver's own behaviour against the twin's GRBL peer, across a real pseudo-terminal.

The behaviour every GRBL controller must show is in test_grbl_conformance.py (which also runs against real
hardware); here: parsing, lifecycle, the station's budgets and poll rate, bad station input, and the bench faults
of issue #8.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rig.config.loader import FIXTURES_DIR
from rig.config.station import StationConfig, load_station
from rig.devices.grbl import GrblController, GrblLight, GrblStage, parse_status
from rig.devices.protocols import Light, Stage
from rig.errors import (
    ArgumentError,
    ConfigError,
    DeviceAlarm,
    DeviceCommandError,
    DeviceLost,
    DeviceStateError,
    DeviceTimeout,
)
from rig.spec.grbl import alarm_meaning, error_meaning
from rig.spec.types import Axis, StageState
from rig.twin.grbl import GrblFaults, GrblPeer
from rig.twin.state import BenchState

pytestmark = pytest.mark.timeout(60)

TIME_SCALE = 50.0
POSITION_TOL = 0.001  # GRBL reports positions with 3 decimals


@dataclass
class Bench:
    state: BenchState
    peer: GrblPeer
    controller: GrblController
    stage: GrblStage
    light: GrblLight


@pytest.fixture
def station() -> StationConfig:
    return load_station()


def _bench(
    station: StationConfig, *, faults: GrblFaults | None = None, move_timeout_s: float = 10.0
) -> Iterator[Bench]:
    state = BenchState()
    peer = GrblPeer(state, station, time_scale=TIME_SCALE, faults=faults)
    controller = GrblController.for_station(station, peer.start())
    controller.timeout_s, controller.move_timeout_s = 2.0, move_timeout_s
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
    report = parse_status("<Run|MPos:-5.000,10.500,3.125|Bf:15,128|FS:500,8000|Pn:XZ|Ov:100,100,100|A:SF>")
    assert report.mpos == (-5.0, 10.5, 3.125) and report.pins == "XZ"
    assert (report.feed_per_min, report.spindle) == (500.0, 8000.0)
    assert (report.report.planner_blocks_free, report.report.rx_bytes_free) == (15, 128)
    assert report.report.overrides_pct == (100, 100, 100) and report.report.accessories == "SF"
    # WPos form ($10=0): machine position is WPos + WCO, with WCO remembered from an earlier report.
    report = parse_status("<Hold:0|WPos:1.000,2.000,3.000|F:250>", wco=(10.0, 20.0, 30.0))
    assert report.state is StageState.HOLD and report.substate == 0 and report.spindle is None
    assert report.mpos == (11.0, 22.0, 33.0) and report.wpos == (1.0, 2.0, 3.0) and report.feed_per_min == 250.0
    # the Protocol's position is the work (= station) position
    assert report.to_stage_status().position == {Axis.CAROUSEL: 1.0, Axis.PITCH: 2.0, Axis.RAIL: 3.0}


@pytest.mark.parametrize("line", ["Idle|MPos:0,0,0", "<Flying|MPos:0,0,0>", "<Idle|MPos:0,x,0>", "<Idle|FS:0,0>"])
def test_malformed_status_report_is_a_device_error(line: str) -> None:
    with pytest.raises(DeviceCommandError):
        parse_status(line)


def test_code_meanings_are_grbls_own() -> None:
    assert "Unsupported or invalid g-code command" in error_meaning(20)
    assert error_meaning(2).startswith("error:2 Bad number format")
    assert alarm_meaning(2).startswith("ALARM:2 Soft limit")
    assert "Hard limit has been triggered" in alarm_meaning(1)


# ------------------------------------------------------------------------------------------- station settings
def test_poll_rates_are_within_grbls_guidance() -> None:
    # gnea/grbl interface.md: status reports at about 5 Hz, 10 Hz at most
    for path in sorted((FIXTURES_DIR / "stations").glob("*.toml")):
        assert 0.1 <= load_station(path).stage.poll_interval_s <= 1.0, path
    assert GrblController("x").poll_interval_s == 0.2


def _station_file(tmp_path: Path, old: str, new: str) -> Path:
    text = (FIXTURES_DIR / "stations" / "twin.toml").read_text()
    assert old in text
    path = tmp_path / "station.toml"
    path.write_text(text.replace(old, new))
    return path


def test_a_range_outside_the_travel_is_one_line_naming_the_axis(tmp_path: Path) -> None:
    path = _station_file(tmp_path, "work_offset = -105.0", "work_offset = -20.0")
    with pytest.raises(ConfigError) as info:
        load_station(path)
    message = str(info.value)
    assert "\n" not in message
    assert "stage.axes.rail.work_offset = -20.0" in message and "[0, 100] mm" in message and "[-110, -1]" in message


def test_an_incomplete_axis_mapping_is_one_line_naming_the_axis(tmp_path: Path) -> None:
    text = (FIXTURES_DIR / "stations" / "twin.toml").read_text()
    start = text.index("[stage.axes.pitch]")
    end = text.index("[stage.axes.rail]")
    path = tmp_path / "station.toml"
    path.write_text(text[:start] + text[end:])
    with pytest.raises(ConfigError, match=r"stage\.axes\.pitch = \(missing\)"):
        load_station(path)
    path.write_text(text.replace("steps_per_unit = 40.0", "steps_per_unit = nan"))
    with pytest.raises(ConfigError, match=r"stage\.axes\.pitch\.steps_per_unit = nan"):
        load_station(path)


def test_bad_station_mapping_exits_2_before_anything_moves(tmp_path: Path) -> None:
    path = _station_file(tmp_path, "travel = 190.0", "travel = 150.0")
    result = subprocess.run(
        [sys.executable, "-m", "rig", "station", "configure", "--station", str(path), "--dry-run"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "stage.axes.pitch.work_offset" in lines[0] and "travel 150" in lines[0]


def test_controller_travel_shorter_than_the_station_is_bad_input(station: StationConfig) -> None:
    peer = GrblPeer(BenchState(), station, time_scale=TIME_SCALE, settings={132: 60.0})
    controller = GrblController.for_station(station, peer.start())
    try:
        with pytest.raises(ConfigError, match=r"stage\.axes\.rail\.travel = 110\.0: expected at most .*\$132 = 60"):
            controller.open()
    finally:
        peer.stop()


# ------------------------------------------------------------------------------------------- lifecycle
def test_drivers_satisfy_the_protocols(bench: Bench) -> None:
    assert isinstance(bench.stage, Stage)
    assert isinstance(bench.light, Light)


def test_open_reads_banner_and_the_homing_lock(bench: Bench) -> None:
    assert bench.controller.version == "1.1h"
    assert "[MSG:'$H'|'$X' to unlock]" in bench.controller.messages
    assert bench.controller.rx_buffer_bytes == 128
    assert bench.stage.status().state is StageState.ALARM


def test_calls_before_open_name_the_state() -> None:
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


def test_moves_before_homing_are_refused_before_sending(bench: Bench) -> None:
    with pytest.raises(DeviceStateError, match="position unknown"):
        bench.stage.move_to(rail_mm=10.0)


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


def test_invalid_commands_give_grbls_meaning(homed: Bench) -> None:
    with pytest.raises(DeviceCommandError, match="error:20 Unsupported command") as info:
        homed.controller.command("G2 X1 Y1 I1")
    assert info.value.code == 20
    with pytest.raises(DeviceCommandError, match="error:2 Bad number format"):
        homed.controller.command("G1 Zabc")
    homed.controller.command("$G")  # the controller still answers after errors


def test_gcode_is_locked_until_homed(bench: Bench) -> None:
    with pytest.raises(DeviceCommandError, match="error:9 G-code lock") as info:
        bench.light.set_level(0.2)
    assert info.value.code == 9


def test_knock_pulses_the_knocker_once(homed: Bench) -> None:
    before = len(homed.state.knock_times_ns)
    homed.stage.knock()
    homed.stage.knock()
    times = homed.state.knock_times_ns
    assert len(times) == before + 2
    pulse_ns = homed.stage.station.knocker.pulse_ms * 1e6 / TIME_SCALE
    assert times[-1] - times[-2] >= pulse_ns


def test_a_move_from_rest_takes_its_direction_from_where_the_last_move_came_to_rest(homed: Bench) -> None:
    """One status round trip less a move (issue #17): after a move GRBL reported Idle at, the next move's feed
    comes from that position; after anything that may have moved the axes (homing, a reset) it asks again."""
    calls: list[str] = []
    controller = homed.controller
    status, command = controller.status, controller.command

    def spied_status() -> object:
        calls.append("?")
        return status()

    def spied_command(line: str, **kwargs: object) -> object:
        calls.append(line)
        return command(line, **kwargs)  # type: ignore[arg-type]

    controller.status = spied_status  # type: ignore[method-assign]
    controller.command = spied_command  # type: ignore[method-assign]
    stage = homed.stage
    rail = stage.station.rail
    targets = [rail.focus_mm - 1.0, rail.focus_mm + 0.5, rail.focus_mm]
    for target in targets:
        reached = stage.move_to(rail_mm=target)
        assert reached.position[Axis.RAIL] == pytest.approx(target, abs=POSITION_TOL)
    moves = [i for i, line in enumerate(calls) if line.startswith("G90 G21 G1")]
    assert len(moves) == 3
    assert calls[: moves[0]] == ["?"]  # first move after homing: where is it?
    # after that, the Idle report that ended the last move (after its zero dwell) is the only status in between
    assert all(calls[i - 2 : i] == ["G4 P0", "?"] for i in moves[1:]), calls
    assert calls.count("?") == 1 + len(moves), calls
    # the rail feed (station rate) whatever the direction: the same words as a status-first move would send
    assert all(calls[i].endswith(f"F{rail.max_rate_mm_min:.1f}") for i in moves), [calls[i] for i in moves]
    calls.clear()
    stage.abort()
    stage.recover()
    stage.move_to(rail_mm=rail.focus_mm)
    first = next(i for i, line in enumerate(calls) if line.startswith("G90 G21 G1"))
    assert calls[first - 2 : first] == ["?", "?"], calls  # homing's own check, then: a reset forgot where they rest


# ------------------------------------------------------------------------------------------- faults (issue #8)
def test_port_vanishing_mid_move_raises_device_lost(homed: Bench) -> None:
    homed.peer.set_faults(vanish_mid_move=True)
    with pytest.raises(DeviceLost, match="stage lost"):
        homed.stage.move_to(rail_mm=100.0)
    assert homed.peer.vanished


def test_status_stuck_in_run_times_out_at_move_timeout(station: StationConfig) -> None:
    move_timeout_s = 0.5
    for bench in _bench(station, faults=GrblFaults(stuck_in_run=True), move_timeout_s=move_timeout_s):
        bench.stage.home()
        start = time.monotonic()
        with pytest.raises(DeviceTimeout, match=r"not Idle within 0\.5 s") as info:
            bench.stage.move_to(rail_mm=10.0)
        elapsed = time.monotonic() - start
        assert elapsed >= move_timeout_s  # bounded below by the budget (no upper wall-clock bound)
        assert "<Run|" in str(info.value)
        bench.stage.abort()  # the dwell's late ok comes with the reset, before the banner
        bench.peer.set_faults(stuck_in_run=False)
        bench.stage.recover()
        assert bench.stage.move_to(rail_mm=20.0).position[Axis.RAIL] == pytest.approx(20.0, abs=POSITION_TOL)


def test_hard_limit_mid_move_is_an_alarm_the_stage_recovers_from(homed: Bench) -> None:
    homed.stage.move_to(rail_mm=10.0)
    homed.peer.set_faults(alarm_mid_move=True)
    with pytest.raises(DeviceAlarm, match="ALARM:1 Hard limit") as info:
        homed.stage.move_to(rail_mm=90.0)
    assert info.value.code == 1 and homed.controller.position_lost
    assert 10.0 < homed.state.rail_mm < 90.0  # stopped where the switch tripped
    homed.stage.recover()
    assert homed.stage.move_to(rail_mm=90.0).position[Axis.RAIL] == pytest.approx(90.0, abs=POSITION_TOL)


def test_injected_error_reaches_the_caller_once(homed: Bench) -> None:
    homed.peer.set_faults(error_next_command=22)
    with pytest.raises(DeviceCommandError, match="error:22 Undefined feed rate"):
        homed.light.set_level(0.5)
    homed.light.set_level(0.5)
    assert homed.state.light_pwm == 500 and homed.light.level == 0.5


def test_a_signal_interrupting_the_drain_is_waited_out_not_a_lost_device(
    homed: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tcdrain(3) fails with EINTR when a signal with a handler arrives; CPython's termios does not retry it (it
    is not among PEP 475's functions). A pty drains at once, so the interruption is injected where pyserial calls
    it: twice EINTR, then the real call. The command must complete; an EIO from the same call stays DeviceLost."""
    import errno
    import termios

    import serial.serialposix

    real_tcdrain = termios.tcdrain
    interruptions = {"left": 2}

    def interrupted_tcdrain(fd: int) -> None:
        if interruptions["left"]:
            interruptions["left"] -= 1
            raise termios.error(errno.EINTR, "Interrupted system call")
        real_tcdrain(fd)

    monkeypatch.setattr(serial.serialposix.termios, "tcdrain", interrupted_tcdrain)
    assert homed.stage.move_to(rail_mm=12.5).position[Axis.RAIL] == pytest.approx(12.5, abs=POSITION_TOL)
    assert interruptions["left"] == 0

    def failing_tcdrain(fd: int) -> None:
        raise termios.error(errno.EIO, "Input/output error")

    monkeypatch.setattr(serial.serialposix.termios, "tcdrain", failing_tcdrain)
    with pytest.raises(DeviceLost, match="Input/output error"):
        homed.controller.command("$G")


def test_port_dropping_after_n_commands_is_device_lost(homed: Bench) -> None:
    homed.peer.set_faults(drop_after_commands=2)
    homed.controller.command("$G")
    homed.controller.command("$G")
    with pytest.raises(DeviceLost):
        homed.controller.command("$G")


def test_station_configure_writes_the_required_settings(station: StationConfig, capsys: pytest.CaptureFixture) -> None:
    from rig.cli import main

    wrong = {13: 1, 30: 500, 22: 0, 20: 0, 132: 60.0}
    peer = GrblPeer(BenchState(), station, time_scale=TIME_SCALE, settings=wrong)
    port = peer.start()
    try:
        assert main(["station", "configure", "--port", port, "--dry-run"]) == 0
        assert peer.settings[13] == 1  # a dry run writes nothing
        assert main(["station", "configure", "--port", port]) == 0
        out = capsys.readouterr().out
        assert "$13=0" in out and "$30=1000" in out and "$132=110.000" in out
        assert out.index("$22=1") < out.index("$20=1")  # homing first, or GRBL refuses soft limits (error:10)
        with GrblController.for_station(station, port) as controller:  # the handshake now passes
            assert controller.settings[13] == 0
    finally:
        peer.stop()
