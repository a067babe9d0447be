"""The twin's GRBL peer on the wire: raw bytes through pyserial on its pty, checked against GRBL 1.1h's documented
format and codes (gnea/grbl doc/markdown/interface.md, commands.md, doc/csv) and the trapezoidal motion law.

Motion timing runs on an injected :class:`~rig.twin.clock.ManualClock`: durations are asserted exactly (to the
clock's nanosecond), whatever the machine's load.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Iterator

import pytest
import serial

from rig.config.station import StationConfig, load_station
from rig.twin.clock import ManualClock
from rig.twin.grbl import GrblPeer, TrapezoidProfile
from rig.twin.state import BenchState

pytestmark = pytest.mark.timeout(30)

STATUS_RE = re.compile(
    r"^<(?P<state>Idle|Run|Hold:[01]|Jog|Home|Alarm|Check|Sleep)\|(?P<kind>MPos|WPos):"
    r"(?P<pos>-?\d+\.\d{3,4},-?\d+\.\d{3,4},-?\d+\.\d{3,4})"
    r"(\|Bf:\d+,\d+)?\|FS:\d+,\d+(\|Pn:[XYZPDHRS]+)?(\|WCO:-?\d+\.\d{3,4},-?\d+\.\d{3,4},-?\d+\.\d{3,4})?"
    r"(\|Ov:\d+,\d+,\d+)?(\|A:[SCF]+)?>$"
)
BANNER_LINES = ["", "Grbl 1.1h ['$' for help]"]
UNLOCK = "[MSG:'$H'|'$X' to unlock]"


class Wire:
    """A bare serial client: send lines and realtime bytes, read lines (blank ones too) with a deadline."""

    def __init__(self, port: str) -> None:
        self.serial = serial.serial_for_url(port, timeout=0.02)
        self.last_report = ""

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

    def send(self, line: str, timeout_s: float = 2.0) -> list[str]:
        """A line and every reply up to and including its ok/error."""
        self.serial.write(line.encode() + b"\n")
        replies = []
        while True:
            reply = self.readline(timeout_s)
            replies.append(reply)
            if reply == "ok" or reply.startswith("error:"):
                return replies

    def status(self) -> tuple[str, tuple[float, float, float]]:
        self.serial.write(b"?")
        line = self.readline()
        match = STATUS_RE.match(line)
        assert match, f"not a GRBL 1.1 status report: {line!r}"
        self.last_report = line
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

    def expect_boot(self, *, locked: bool = True) -> None:
        assert [self.readline(), self.readline()] == BANNER_LINES
        if locked:
            assert self.readline() == UNLOCK


def _start(
    station: StationConfig, time_scale: float, *, state: BenchState | None = None, **peer: object
) -> Iterator[tuple[BenchState, GrblPeer, Wire]]:
    state = state or BenchState()
    with GrblPeer(state, station, time_scale=time_scale, **peer) as peer_:  # type: ignore[arg-type]
        assert peer_.path is not None
        wire = Wire(peer_.path)
        try:
            yield state, peer_, wire
        finally:
            wire.serial.close()


@pytest.fixture
def station() -> StationConfig:
    return load_station()


@pytest.fixture
def grbl(station: StationConfig) -> Iterator[tuple[BenchState, GrblPeer, Wire]]:
    for state, peer, wire in _start(station, time_scale=50.0):
        wire.expect_boot()
        yield state, peer, wire


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
def test_every_line_gets_exactly_one_answer(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    _, _, wire = grbl
    assert wire.status()[0] == "Alarm"
    assert wire.send("") == ["ok"]
    assert wire.send("$X") == ["[MSG:Caution: Unlocked]", "ok"]
    assert wire.status()[0] == "Idle"
    assert wire.send("$I") == ["[VER:1.1h.20190830:]", "[OPT:V,15,128]", "ok"]
    assert wire.send("g21 (comment) g90 ; trailing") == ["ok"]
    assert wire.send("$G") == ["[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]", "ok"]
    assert wire.no_line(0.05)


def test_status_report_fields_as_the_firmware_reports_them(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    _, _, wire = grbl
    wire.send("$X")
    assert wire.send("$10=3") == ["ok"]  # MPos + buffer state
    wire.status()
    assert "|Bf:15,128|" in wire.last_report  # 15 planner blocks and all 128 RX bytes free (serial.c)
    reports = [wire.status() and wire.last_report for _ in range(12)]
    assert sum("WCO:" in r for r in reports) == 1 and sum("Ov:" in r for r in reports) >= 1  # rotating fields
    assert wire.send("$10=0") == ["ok"]
    wire.status()
    assert "WPos:" in wire.last_report and "Bf:" not in wire.last_report


def test_settings_come_from_the_station(grbl: tuple[BenchState, GrblPeer, Wire], station: StationConfig) -> None:
    _, _, wire = grbl
    replies = wire.send("$$")
    assert replies[-1] == "ok"
    settings = dict(line[1:].split("=") for line in replies[:-1])
    assert settings["20"] == "1" and settings["21"] == "1" and settings["22"] == "1" and settings["13"] == "0"
    assert float(settings["112"]) == station.rail.max_rate_mm_min
    assert float(settings["132"]) == station.stage.axes.rail.travel
    assert float(settings["102"]) == station.stage.axes.rail.steps_per_unit
    assert re.fullmatch(r"\d+\.\d{3}", settings["120"])  # float settings with 3 decimals, integer ones without


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("G5 X1", 20),  # unsupported G-code
        ("G2 X1 Y1 I1", 20),  # arcs are not modelled
        ("G1 Xabc", 2),  # bad number format
        ("1 G0", 1),  # no command letter
        ("G0 G1 X1", 21),  # two motion commands
        ("G0 X1 X2", 25),  # repeated word
        ("G4", 28),  # dwell without P
        ("G1 X-1 F-5", 4),  # negative feed
        ("G1 X-1", 22),  # feed rate never set
        ("G0 P1", 36),  # unused value word
        ("G10 L2 P7 X0", 29),  # no G60
        ("G53 G1 X-1", 22),
        ("$Q", 3),  # unknown $ command
        ("G0 X" + "1" * 80, 11),  # line overflow
        ("$20=1.5.5", 2),
        ("$J=G91 X-1", 22),  # a jog needs F
        ("$J=G91 M8 X-1 F100", 16),  # prohibited word in a jog
        ("$J=G91 X-500 F100", 15),  # past the travel: refused, no alarm
    ],
)
def test_bad_lines_get_grbls_error_codes(grbl: tuple[BenchState, GrblPeer, Wire], line: str, code: int) -> None:
    _, _, wire = grbl
    wire.send("$X")
    assert wire.send(line) == [f"error:{code}"]
    assert wire.status()[0] == "Idle"


def test_gcode_is_locked_in_alarm(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    _, _, wire = grbl
    assert wire.send("G0 Z-1") == ["error:9"]


def test_spindle_is_clamped_to_30_and_drives_the_panel(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    state, _, wire = grbl
    wire.send("$X")
    assert wire.send("M3 S420") == ["ok"]
    assert state.light_pwm == 420 and wire.status() and "|FS:0,420" in wire.last_report
    wire.send("S5000")  # spindle_compute_pwm_value clamps S to $30
    assert state.light_pwm == 1000 and wire.status() and "|FS:0,1000" in wire.last_report
    wire.send("M5")
    assert state.light_pwm == 0
    wire.send("M8")
    assert len(state.knock_times_ns) == 1
    wire.send("M9")
    assert len(state.knock_times_ns) == 1


def test_short_spindle_max_clamps_the_panel_at_full_duty(station: StationConfig) -> None:
    for state, _, wire in _start(station, 50.0, settings={30: 500}):
        wire.expect_boot()
        wire.send("$X")
        wire.send("M3 S500")
        assert state.light_pwm == station.light.pwm_max  # 500 of $30 = 500 is full duty, not half
        assert wire.status() and "|FS:0,500" in wire.last_report


def test_inches_reported_when_13_is_set(station: StationConfig) -> None:
    for _, _, wire in _start(station, 50.0, settings={13: 1}):
        wire.expect_boot()
        wire.send("$H")
        _, pos = wire.status()
        assert pos == pytest.approx((-1 / 25.4, -1 / 25.4, -1 / 25.4), abs=1e-4)  # -1 mm pull-off in inches
        assert re.search(r"MPos:-0\.0394,", wire.last_report)  # 4 decimals in inches (report.c)


def test_lost_eeprom_reports_error_7_and_its_defaults_at_power_up(station: StationConfig) -> None:
    for _, peer, wire in _start(station, 50.0, eeprom_lost=True):
        assert wire.readline() == "error:7"
        dump = [wire.readline() for _ in range(34)]
        assert "$22=0" in dump and "$110=500.000" in dump and "$120=10.000" in dump  # defaults.h DEFAULTS_GENERIC
        wire.expect_boot(locked=False)  # homing is off now: no alarm lock
        assert wire.status()[0] == "Idle"
        assert peer.settings[22] == 0


# ------------------------------------------------------------------------------------------- machine space
def test_homing_leaves_machine_space_negative_at_the_pull_off(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    state, _, wire = grbl
    assert wire.send("$H", timeout_s=10) == ["ok"]
    assert wire.status() == ("Idle", (-1.0, -1.0, -1.0))  # $27 = 1 mm off each switch at MPos 0
    # the switches sit at the station's -work_offset: 305 mm carousel, 95° pitch, 105 mm rail
    assert (state.carousel_mm, state.pitch_deg, state.rail_mm) == pytest.approx((304.0, 94.0, 104.0))
    assert wire.send("G0 Z-50") == ["ok"]
    assert wire.wait_state("Idle")[2] == -50.0 and state.rail_mm == pytest.approx(55.0)


def test_work_offsets_g10_g92_g53_and_g28(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    state, _, wire = grbl
    wire.send("$H", timeout_s=10)
    assert wire.send("G10 L2 P1 X-305 Y-95 Z-105") == ["ok"]
    wire.send("G0 Z50")
    wire.wait_state("Idle")
    assert state.rail_mm == pytest.approx(50.0) and wire.status()[1][2] == -55.0
    assert wire.send("$10=0") == ["ok"]
    assert wire.status()[1][2] == 50.0  # WPos = MPos - WCO
    assert wire.send("G92 Z0") == ["ok"]  # here is work zero now
    assert wire.status()[1][2] == 0.0
    assert wire.send("G92.1") == ["ok"]
    assert wire.send("G10 L20 P1 Z10") == ["ok"]  # offsets so that here reads 10
    assert wire.status()[1][2] == 10.0
    wire.send("G53 G0 Z-2")  # machine coordinates for one block
    wire.wait_state("Idle")
    assert state.rail_mm == pytest.approx(103.0)
    assert wire.send("G28.1") == ["ok"]
    wire.send("G53 G0 Z-80")
    wire.wait_state("Idle")
    assert wire.send("G28") == ["ok"]
    wire.wait_state("Idle")
    assert state.rail_mm == pytest.approx(103.0)
    assert "[G28:-1.000,-1.000,-2.000]" in wire.send("$#")


def test_jog_and_jog_cancel(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    _, _, wire = grbl
    wire.send("$H", timeout_s=10)
    assert wire.send("$J=G91 Z-60 F600") == ["ok"]
    wire.wait_state("Jog")
    wire.serial.write(b"\x85")
    stopped = wire.wait_state("Idle")
    assert -60.0 < stopped[2] < -1.0
    time.sleep(0.05)
    assert wire.status() == ("Idle", stopped)  # the rest of the jog was dropped
    assert wire.send("$G")[0].startswith("[GC:G0 ")  # a jog leaves the parser state alone


def test_check_mode_parses_without_moving_then_resets(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    _, _, wire = grbl
    wire.send("$H", timeout_s=10)
    assert wire.send("$C") == ["[MSG:Enabled]", "ok"]
    assert wire.send("G0 Z-50") == ["ok"]
    assert wire.send("G5") == ["error:20"]
    assert wire.status() == ("Check", (-1.0, -1.0, -1.0))
    assert wire.send("$C") == ["[MSG:Disabled]", "ok"]
    wire.expect_boot(locked=False)
    assert wire.status()[0] == "Idle"


def test_startup_lines_run_after_homing_and_report_their_status(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    _, _, wire = grbl
    wire.send("$X")
    assert wire.send("$N0=G20") == ["ok"]
    assert wire.send("$N") == ["$N0=G20", "$N1=", "ok"]
    wire.send("G21")
    assert wire.send("$H", timeout_s=10) == ["ok"]
    assert wire.readline() == ">G20:ok"
    assert " G20 " in wire.send("$G")[0]


def test_sleep_then_reset_comes_back_locked(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    _, _, wire = grbl
    wire.send("$X")
    assert wire.send("$SLP") == ["ok"]
    assert wire.readline() == "[MSG:Sleeping]"
    assert wire.status()[0] == "Sleep"
    wire.serial.write(b"\x18")
    wire.expect_boot(locked=True)


# ------------------------------------------------------------------------------------------- alarms
def test_soft_limit_alarm_is_silent_and_blind_to_reset_for_500_ms(station: StationConfig) -> None:
    clock = ManualClock()
    for _, peer, wire in _start(station, 1.0, clock=clock, boot_delay_s=0.0):
        _boot_on(clock, wire)
        wire.send("$X")
        wire.serial.write(b"G53 G0 Z1\n")  # past machine zero: refused before motion
        assert wire.readline() == "ALARM:2"
        wire.serial.write(b"?")
        clock.advance(0.499)
        queries = peer.status_queries
        wire.serial.write(b"\x18?")  # inside report_alarm_message's 500 ms: the reset is discarded
        # the clock may move on only once the peer has read the reset: the '?' behind it is counted (never answered)
        # when it is read, so a slow host can no longer let the reset arrive after the window has closed
        deadline = time.monotonic() + 30.0
        while peer.status_queries < queries + 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert peer.status_queries >= queries + 1, "the peer never read the reset"
        assert wire.no_line(0.1)
        clock.advance(0.001)
        assert wire.readline() == "[MSG:Reset to continue]"
        wire.serial.write(b"?$X\n")
        assert wire.no_line(0.1)  # not even '?' is answered in the critical loop
        wire.serial.write(b"\x18")
        assert wire.readline() == "ok"  # the interrupted line's own, stale, ok
        wire.expect_boot()
        assert wire.status() == ("Alarm", (0.0, 0.0, 0.0))


def test_hard_limit_mid_move_when_soft_limits_are_off(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    state, _, wire = grbl
    wire.send("$H", timeout_s=10)
    assert wire.send("$20=0") == ["ok"]
    wire.send("G1 Z-120 F600")
    assert wire.readline() == "ALARM:1"
    assert wire.readline() == "[MSG:Reset to continue]"
    assert state.rail_mm == pytest.approx(-5.0, abs=0.1)  # stopped on the far switch: machine -110 = station -5
    wire.serial.write(b"\x18")
    wire.expect_boot()
    wire.status()
    assert "|Pn:Z" in wire.last_report  # still on the switch


def test_soft_reset_mid_move_aborts_with_alarm_3_then_the_banner(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    _, _, wire = grbl
    wire.send("$10=3")  # MPos and the buffer state (Bf) in every status report (settings.md, $10)
    wire.send("$H", timeout_s=10)
    wire.send("G1 Z-90 F60")  # ≈ 1.8 s of twin time at ×50: still moving while the test looks
    wire.serial.write(b"G4 P0\n")  # waits for the motion: the line the reset interrupts
    wire.wait_state("Run")
    # A reset discards what is still in GRBL's RX buffer: only a dwell the parser has taken is owed an ok. The
    # status report's Bf says so (RX bytes free back at the buffer size); a loaded host may take a moment.
    for _ in range(500):
        if re.search(r"\|Bf:\d+,128\b", wire.last_report):
            break
        wire.status()
    else:
        raise AssertionError(f"the dwell never left the RX buffer: {wire.last_report}")
    wire.serial.write(b"\x18")
    assert wire.readline() == "ALARM:3"
    assert wire.readline() == "ok"  # the dwell's stale ok, after the 500 ms of the alarm report
    wire.expect_boot()
    state_name, position = wire.status()
    assert state_name == "Alarm" and -90.0 < position[2] < -1.0


@pytest.mark.parametrize("alarm", [8, 9])
def test_homing_failure_resets_by_itself(station: StationConfig, alarm: int) -> None:
    for _, peer, wire in _start(station, 50.0):
        wire.expect_boot()
        peer.set_faults(homing_failure=alarm)
        wire.serial.write(b"$H\n")
        assert wire.readline(5.0) == f"ALARM:{alarm}"
        assert wire.readline() == "ok"
        wire.expect_boot()


def test_homing_fails_when_the_direction_mask_points_away_from_the_switch(station: StationConfig) -> None:
    for _, _, wire in _start(station, 50.0, settings={23: 4}):  # Z homes negative, the switch is at the + end
        wire.expect_boot()
        wire.serial.write(b"$H\n")
        assert wire.readline(10.0) == "ALARM:9"  # not found within 1.5 × $132


def test_probe_without_contact_alarms_then_answers_its_line(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    _, _, wire = grbl
    wire.send("$H", timeout_s=10)
    assert wire.send("G38.2 Z-5 F600") == ["ALARM:5", "[PRB:-1.000,-1.000,-5.000:0]", "ok"]
    assert wire.send("$G")[-1] == "ok"
    assert wire.send("G0 Z-2") == ["error:9"]  # in alarm now


# ------------------------------------------------------------------------------------------- timing on the clock
def _boot_on(clock: ManualClock, wire: Wire) -> None:
    """Let the peer notice the client and boot: its boot delay runs on the manual clock."""
    end = time.monotonic() + 5.0
    while time.monotonic() < end:
        clock.advance(0.05)
        if wire.serial.in_waiting:
            break
        time.sleep(0.01)
    wire.expect_boot()


@pytest.mark.parametrize(
    ("axis", "distance", "feed", "rate", "accel"),
    [
        ("Z", 80.0, 100_000, 10.0, 200.0),  # rail: trapezoid, L/v + v/a = 8.05 s
        ("Y", 16.0, 100_000, 60.0, 180.0),  # pitch: triangle (never reaches 60 °/s), 2·√(L/a) = 0.596 s
        ("Z", 20.0, 300, 5.0, 200.0),  # rail at F300: the feed, not $112, limits
    ],
)
def test_move_durations_are_exactly_the_planned_trapezoid(
    station: StationConfig, axis: str, distance: float, feed: float, rate: float, accel: float
) -> None:
    clock = ManualClock()
    index = "XYZ".index(axis)
    # powered up at the station's far ends: machine 0 there is 5 units from the switches, 100+ from the far ones
    state = BenchState(rail_mm=100.0, carousel_mm=300.0, pitch_deg=90.0)
    for _, peer, wire in _start(station, 1.0, clock=clock, boot_delay_s=0.0, state=state):
        _boot_on(clock, wire)
        wire.send("$X")
        expected = _trapezoid_duration_s(distance, rate, accel)
        start = [0.0, 0.0, 0.0]
        target = list(start)
        target[index] = -distance
        assert peer.planned_duration_s(tuple(start), tuple(target), feed) == pytest.approx(expected, abs=1e-12)
        assert wire.send(f"G1 {axis}-{distance} F{feed}") == ["ok"]
        time.sleep(0.01)
        clock.advance(expected - 1e-6)
        state, pos = wire.status()
        assert state == "Run" and -distance <= pos[index] <= -distance + 1e-3
        clock.advance(2e-6)
        assert wire.status() == ("Idle", tuple(target))


def test_dwell_lasts_exactly_p_seconds_of_simulated_time(station: StationConfig) -> None:
    clock = ManualClock()
    for _, _, wire in _start(station, 4.0, clock=clock, boot_delay_s=0.0):  # simulated time 4× the clock
        _boot_on(clock, wire)
        wire.send("$X")
        wire.serial.write(b"G4 P2\n")
        time.sleep(0.1)  # let the peer take the line (its dwell starts on the clock's now)
        clock.advance(0.5 - 1e-6)  # 2 s simulated = 0.5 s of clock
        assert wire.no_line(0.1)
        clock.advance(2e-6)
        assert wire.readline() == "ok"


def test_bench_state_follows_the_move_continuously(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    state, _, wire = grbl
    wire.send("$H", timeout_s=10)
    start = state.rail_mm
    wire.send("G1 Z-61 F600")  # 6.05 s simulated, 0.12 s real
    samples = []
    while True:
        samples.append(state.rail_mm)
        if wire.status()[0] == "Idle":
            break
    samples.append(state.rail_mm)
    inner = [s for s in samples if 44.0 < s < start]
    assert len(set(inner)) >= 5, samples  # intermediate positions, not a jump to the target
    assert all(b <= a for a, b in itertools.pairwise(samples))  # monotonic, no overshoot
    assert samples[-1] == pytest.approx(44.0)


def test_feed_hold_decelerates_and_cycle_start_resumes(grbl: tuple[BenchState, GrblPeer, Wire]) -> None:
    _, _, wire = grbl
    wire.send("$H", timeout_s=10)
    wire.send("G1 Z-91 F600")  # 9 s simulated, 0.18 s real at ×50
    wire.wait_state("Run")
    wire.serial.write(b"!")
    held_at = wire.wait_state("Hold:0", timeout_s=1.0)
    assert -91.0 < held_at[2] < -1.0
    time.sleep(0.05)  # held: the position must not creep
    assert wire.status() == ("Hold:0", held_at)
    wire.serial.write(b"~")
    assert wire.wait_state("Idle")[2] == -91.0
