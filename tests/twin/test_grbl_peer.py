"""The twin's GRBL peer on the wire: raw bytes through pyserial on its pty, checked against GRBL 1.1's documented
format, codes and the trapezoidal motion law."""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Iterator

import pytest
import serial

from rig.config.station import StationConfig, load_station
from rig.devices.grbl import GrblController
from rig.spec.types import StageState
from rig.twin.grbl import GrblPeer, TrapezoidProfile
from rig.twin.state import BenchState

pytestmark = pytest.mark.timeout(30)

# Durations across a pty on a loaded 2-core CI machine: the poll period and scheduling add a few ms per move,
# so real-time durations of 0.2–0.6 s are compared with a 25 % relative tolerance.
DURATION_RTOL = 0.25
STATUS_RE = re.compile(
    r"^<(?P<state>Idle|Run|Hold:[01]|Home|Alarm)\|MPos:(?P<pos>-?\d+\.\d{3},-?\d+\.\d{3},-?\d+\.\d{3})"
    r"(\|Bf:\d+,\d+)?\|FS:\d+,\d+(\|WCO:-?\d+\.\d{3},-?\d+\.\d{3},-?\d+\.\d{3})?(\|Ov:\d+,\d+,\d+)?(\|A:[SCF]+)?>$"
)


class Wire:
    """A bare serial client: send lines and realtime bytes, read lines with a deadline."""

    def __init__(self, port: str) -> None:
        self.serial = serial.serial_for_url(port, timeout=0.05)

    def readline(self, timeout_s: float = 2.0) -> str:
        end = time.monotonic() + timeout_s
        buffer = b""
        while time.monotonic() < end:
            buffer += self.serial.read(1)
            if buffer.endswith(b"\n"):
                return buffer.decode().strip()
        raise AssertionError(f"no line within {timeout_s} s (got {buffer!r})")

    def no_line(self, wait_s: float = 0.2) -> bool:
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            if self.serial.in_waiting:
                return False
            time.sleep(0.01)
        return True

    def send(self, line: str) -> list[str]:
        """A line and every reply up to and including its ok/error."""
        self.serial.write(line.encode() + b"\n")
        replies = []
        while True:
            reply = self.readline()
            replies.append(reply)
            if reply == "ok" or reply.startswith("error:"):
                return replies

    def status(self) -> tuple[str, tuple[float, float, float]]:
        self.serial.write(b"?")
        line = self.readline()
        match = STATUS_RE.match(line)
        assert match, f"not a GRBL 1.1 status report: {line!r}"
        x, y, z = (float(v) for v in match["pos"].split(","))
        return match["state"], (x, y, z)

    def wait_state(self, state: str, timeout_s: float = 5.0) -> tuple[float, float, float]:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            now_state, pos = self.status()
            if now_state == state:
                return pos
            time.sleep(0.002)
        raise AssertionError(f"not {state} within {timeout_s} s")


def _start(station: StationConfig, time_scale: float) -> Iterator[tuple[BenchState, GrblPeer, Wire]]:
    state = BenchState()
    with GrblPeer(state, station, time_scale=time_scale) as peer:
        assert peer.path is not None
        wire = Wire(peer.path)
        try:
            assert wire.readline() == "Grbl 1.1h ['$' for help]"
            assert wire.readline() == "[MSG:'$H'|'$X' to unlock]"
            yield state, peer, wire
        finally:
            wire.serial.close()


@pytest.fixture
def station() -> StationConfig:
    return load_station()


@pytest.fixture
def grbl(station: StationConfig) -> Iterator[tuple[BenchState, GrblPeer, Wire]]:
    yield from _start(station, time_scale=50.0)


def _trapezoid_duration_s(length: float, rate: float, accel: float) -> float:
    """Rest-to-rest time over ``length`` with speed limit ``rate`` and acceleration ``accel`` (textbook)."""
    if length >= rate * rate / accel:
        return length / rate + rate / accel
    return 2.0 * math.sqrt(length / accel)


# ------------------------------------------------------------------------------------------- profile law
@pytest.mark.parametrize(("length", "rate", "accel"), [(80.0, 10.0, 200.0), (16.0, 60.0, 180.0), (0.3, 10.0, 20.0)])
def test_profile_follows_the_trapezoid_law(length: float, rate: float, accel: float) -> None:
    profile = TrapezoidProfile.plan(0.0, length, v0=0.0, v_max=rate, accel=accel)
    assert profile.duration_s == pytest.approx(_trapezoid_duration_s(length, rate, accel), rel=1e-12)
    assert profile.at(profile.duration_s) == (length, 0.0)
    # symmetric profile: half the distance at half the time, top speed never above the limit
    assert profile.at(profile.duration_s / 2)[0] == pytest.approx(length / 2, rel=1e-9)
    assert profile.v_peak <= rate + 1e-12
    t = 0.5 * profile.t_acc
    assert profile.at(t)[0] == pytest.approx(0.5 * accel * t * t, rel=1e-12)


def test_stop_profile_decelerates_at_the_acceleration_limit() -> None:
    stop = TrapezoidProfile.stop(5.0, v0=10.0, accel=200.0, s_limit=100.0)
    assert stop.duration_s == pytest.approx(10.0 / 200.0)
    assert stop.s_end == pytest.approx(5.0 + 10.0**2 / (2 * 200.0))


# ------------------------------------------------------------------------------------------- protocol
def test_every_line_gets_exactly_one_answer_and_status_any_time(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    _, _, wire = grbl
    assert wire.status()[0] == "Alarm"
    assert wire.send("") == ["ok"]
    assert wire.send("$X") == ["[MSG:Caution: Unlocked]", "ok"]
    assert wire.status()[0] == "Idle"
    assert wire.send("$I") == ["[VER:1.1h.20190830:]", "[OPT:V,15,128]", "ok"]
    assert wire.send("g21 (comment) g90 ; trailing") == ["ok"]
    assert wire.send("$G") == ["[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]", "ok"]
    assert wire.no_line(0.05)


def test_settings_listing_comes_from_the_station(
    grbl: tuple[BenchState, GrblPeer, Wire], station: StationConfig
) -> None:
    _, _, wire = grbl
    replies = wire.send("$$")
    assert replies[-1] == "ok"
    settings = dict(line[1:].split("=") for line in replies[:-1])
    assert settings["20"] == "1" and settings["21"] == "1" and settings["22"] == "1"
    assert float(settings["110"]) == station.carousel.max_rate_mm_min
    assert float(settings["111"]) == station.fixture.max_rate_deg_min
    assert float(settings["112"]) == station.rail.max_rate_mm_min
    assert float(settings["122"]) == station.rail.accel_mm_s2
    assert float(settings["131"]) == station.fixture.max_deg - station.fixture.min_deg
    assert float(settings["132"]) == station.rail.max_mm - station.rail.min_mm
    assert re.fullmatch(r"\d+\.\d{3}", settings["120"])  # float settings with 3 decimals, integer ones without


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("G5 X1", 20),  # unsupported G-code
        ("G1 Xabc", 2),  # bad number format
        ("1 G0", 1),  # no command letter
        ("G0 G1 X1", 21),  # two motion commands
        ("G0 X1 X2", 25),  # repeated word
        ("G4", 28),  # dwell without P
        ("G1 X1 F-5", 4),  # negative feed
        ("G1 X1", 22),  # feed rate never set
        ("G0 P1", 36),  # unused value word
        ("$Q", 3),  # unknown $ command
        ("G0 X" + "1" * 80, 11),  # line overflow
        ("$20=1.5.5", 2),
    ],
)
def test_bad_lines_get_grbls_error_codes(grbl: tuple[BenchState, GrblPeer, Wire], line: str, code: int) -> None:
    _, _, wire = grbl
    wire.send("$X")
    assert wire.send(line) == [f"error:{code}"]


def test_gcode_is_locked_in_alarm(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    _, _, wire = grbl
    assert wire.send("G0 Z1") == ["error:9"]


def test_spindle_and_coolant_drive_light_and_knocker(
    grbl: tuple[BenchState, GrblPeer, Wire], station: StationConfig
) -> None:
    state, _, wire = grbl
    wire.send("$X")
    assert wire.send("M3 S420") == ["ok"]
    assert state.light_pwm == 420
    wire.send("S5000")  # GRBL clamps S to $30 (the station's PWM full scale)
    assert state.light_pwm == station.light.pwm_max
    wire.send("M5")
    assert state.light_pwm == 0
    wire.send("M8")
    assert len(state.knock_times_ns) == 1
    wire.send("M9")
    assert len(state.knock_times_ns) == 1


# ------------------------------------------------------------------------------------------- motion
def test_homing_takes_time_and_ends_at_machine_zero(station: StationConfig) -> None:
    state = BenchState(rail_mm=60.0, carousel_mm=150.0, pitch_deg=-45.0)
    time_scale = 20.0
    with GrblPeer(state, station, time_scale=time_scale) as peer:
        assert peer.path is not None
        wire = Wire(peer.path)
        wire.readline(), wire.readline()
        start = time.monotonic()
        assert wire.send("$H") == ["ok"]
        elapsed = time.monotonic() - start
        wire.serial.close()
    rail = _trapezoid_duration_s(60.0, station.rail.max_rate_mm_min / 60, station.rail.accel_mm_s2)
    # X and Y together: the path is limited by whichever axis is slower along the diagonal
    length = math.hypot(150.0, 45.0)
    ux, uy = 150.0 / length, 45.0 / length
    rate = min(station.carousel.max_rate_mm_min / 60 / ux, station.fixture.max_rate_deg_min / 60 / uy)
    accel = min(station.carousel.accel_mm_s2 / ux, station.fixture.accel_deg_s2 / uy)
    expected = (rail + _trapezoid_duration_s(length, rate, accel)) / time_scale
    assert elapsed == pytest.approx(expected, rel=DURATION_RTOL)
    assert (state.rail_mm, state.carousel_mm, state.pitch_deg) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("axis", "distance", "accel", "time_scale"),
    [
        ("Z", 80.0, 200.0, 20.0),  # rail: cruise-dominated trapezoid, 8.05 s simulated
        ("Y", 16.0, 180.0, 2.0),  # pitch: triangle (never reaches 60 °/s), 0.60 s simulated
        ("Z", 20.0, 5.0, 20.0),  # rail with a slow accel: L/v + v/a = 2 + 2 s
    ],
)
def test_move_duration_follows_rate_and_acceleration(
    station: StationConfig, axis: str, distance: float, accel: float, time_scale: float
) -> None:
    if axis == "Z":
        station = station.model_copy(update={"rail": station.rail.model_copy(update={"accel_mm_s2": accel})})
        rate = station.rail.max_rate_mm_min / 60
    else:
        rate = station.fixture.max_rate_deg_min / 60
    for state, _, wire in _start(station, time_scale):
        wire.send("$H")
        start = time.monotonic()
        wire.send(f"G1 {axis}{distance} F100000")
        wire.wait_state("Idle")
        elapsed = time.monotonic() - start
        expected = _trapezoid_duration_s(distance, rate, accel) / time_scale
        assert elapsed == pytest.approx(expected, rel=DURATION_RTOL)
        assert {"Z": state.rail_mm, "Y": state.pitch_deg}[axis] == distance


def test_bench_state_follows_the_move_continuously(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    state, _, wire = grbl
    wire.send("$H")
    wire.send("G1 Z60 F600")  # 6.05 s simulated, 0.12 s real
    samples = []
    while True:
        samples.append(state.rail_mm)
        if wire.status()[0] == "Idle":
            break
    samples.append(state.rail_mm)
    inner = [s for s in samples if 0.0 < s < 60.0]
    assert len(set(inner)) >= 5, samples  # intermediate positions, not a jump to the target
    assert all(b >= a for a, b in itertools.pairwise(samples))  # monotonic, no overshoot
    assert samples[-1] == 60.0


def test_feed_hold_decelerates_and_cycle_start_resumes(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    state, _, wire = grbl
    wire.send("$H")
    wire.send("G1 Z90 F600")  # 9 s simulated, 0.18 s real at ×50
    wire.wait_state("Run")
    wire.serial.write(b"!")
    held_at = wire.wait_state("Hold:0", timeout_s=1.0)
    assert 0.0 < held_at[2] < 90.0
    time.sleep(0.05)  # held: the position must not creep
    assert wire.status() == ("Hold:0", held_at)
    wire.serial.write(b"~")
    assert wire.wait_state("Idle")[2] == 90.0
    assert state.rail_mm == 90.0


def test_soft_limit_alarm_is_critical_until_reset(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    state, _, wire = grbl
    wire.send("$H")
    wire.serial.write(b"G0 Z101\n")
    assert wire.readline() == "ALARM:2"
    assert wire.readline() == "[MSG:Reset to continue]"
    assert wire.status() == ("Alarm", (0.0, 0.0, 0.0))  # refused before any motion
    wire.serial.write(b"$X\n")
    assert wire.no_line(0.1)  # nothing but '?' is answered until a soft reset
    wire.serial.write(b"\x18")
    assert wire.readline() == "Grbl 1.1h ['$' for help]"
    assert wire.readline() == "[MSG:'$H'|'$X' to unlock]"
    assert wire.send("$X")[-1] == "ok"
    assert state.rail_mm == 0.0


def test_hard_limit_mid_move_when_soft_limits_are_off(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    state, _, wire = grbl
    wire.send("$H")
    assert wire.send("$20=0") == ["ok"]
    wire.send("G1 Z120 F600")
    assert wire.readline() == "ALARM:1"
    assert wire.readline() == "[MSG:Reset to continue]"
    assert 99.9 < state.rail_mm < 100.1  # stopped at the switch at the end of travel


def test_soft_reset_mid_move_aborts_with_alarm_3(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    state, _, wire = grbl
    wire.send("$H")
    wire.send("G1 Z90 F600")
    wire.wait_state("Run")
    wire.serial.write(b"\x18")
    assert wire.readline() == "ALARM:3"
    assert wire.readline() == "Grbl 1.1h ['$' for help]"
    assert wire.readline() == "[MSG:'$H'|'$X' to unlock]"
    state_name, position = wire.status()
    assert state_name == "Alarm" and 0.0 < position[2] < 90.0 and position[2] == pytest.approx(state.rail_mm, abs=1e-3)


def test_wpos_and_buffer_fields_parse_with_the_driver(station: StationConfig) -> None:
    state = BenchState()
    with GrblPeer(state, station, time_scale=50.0) as peer:
        assert peer.path is not None
        with GrblController(peer.path, timeout_s=2.0, poll_interval_s=0.005) as controller:
            controller.command("$10=2")  # WPos + buffer state
            controller.command("$H")
            controller.command("G0 X12.5 Y-3")
            status = controller.wait_idle()
            assert status.state is StageState.IDLE
            assert status.mpos == (12.5, -3.0, 0.0)
            assert status.planner_blocks_free == 15 and status.rx_bytes_free is not None
