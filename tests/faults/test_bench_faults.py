"""Bench faults injected into a running twin, met by the real drivers and the plans' BenchOps (issue #8).

Each test breaks the twin through its fault API (:attr:`TwinServer.faults`) and checks what BenchOps does
against what the twin knows: where the axes really are, which frames the phone really rendered and with how much
light, whether the lens really is on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.bench import procedures as proc
from rig.bench.open import open_bench
from rig.bench.ops import RECONNECT_ATTEMPTS, BenchOps
from rig.config.faults import FaultKind, FaultPlan, FaultSpec
from rig.config.lenses import LensCatalog, LensSpec
from rig.config.resolve import load_station_lenses
from rig.config.station import StationConfig, load_station
from rig.config.unit import UNITS_DIR, load_unit
from rig.errors import ConfigError, DeviceError, DeviceStateError, MeasurementError
from rig.spec.dng import DngImage
from rig.twin.server import TwinServer

pytestmark = pytest.mark.timeout(120)

MOVE_TIMEOUT_S = 1.5  # the twin's moves take < 0.3 s real: a stuck controller is noticed quickly
PHONE_TIMEOUT_S = 3.0
POSITION_TOL_MM = 0.001  # GRBL reports 3 decimals


def _station() -> StationConfig:
    station = load_station()
    return station.model_copy(
        update={
            "stage": station.stage.model_copy(update={"move_timeout_s": MOVE_TIMEOUT_S}),
            "phone": station.phone.model_copy(update={"timeout_s": PHONE_TIMEOUT_S}),
        }
    )


class Rig:
    """The golden twin unit on the bench exactly as the plugin opens it (open_bench), with BenchOps on top."""

    def __init__(self, station: StationConfig, lenses: LensCatalog) -> None:
        self.devices = open_bench(station, lenses, unit=load_unit(UNITS_DIR / "golden.toml"))
        assert self.devices.twin is not None
        self.server = self.devices.twin
        self.phone = self.devices.phone
        self.bench = BenchOps.on(self.devices)

    def close(self) -> None:
        self.devices.close()


@pytest.fixture(scope="module")
def station() -> StationConfig:
    return _station()


@pytest.fixture(scope="module")
def lenses(station: StationConfig) -> LensCatalog:
    return load_station_lenses(station)


@pytest.fixture(scope="module")
def lens(station: StationConfig, lenses: LensCatalog) -> LensSpec:
    return lenses.get(station.reference_lens)


@pytest.fixture
def rig(station: StationConfig, lenses: LensCatalog, lens: LensSpec) -> Iterator[Rig]:
    r = Rig(station, lenses)
    try:
        proc.ensure_lens(r.bench, lens)
        yield r
    finally:
        r.close()


def _flat(rig: Rig, lens: LensSpec, tag: str) -> proc.Frame:
    return proc.flat_field(rig.bench, t_stop=lens.t_stop, tag=tag)


# ------------------------------------------------------------------------------------------- fault plans as data
def test_fault_units_load_with_their_plans() -> None:
    recoverable = load_unit(UNITS_DIR / "fault-recoverable.toml")
    assert recoverable.faults is not None
    kinds = [s.kind for s in recoverable.faults.inject]
    assert FaultKind.GRBL_ALARM in kinds and FaultKind.PHONE_REBOOT in kinds
    assert load_unit(UNITS_DIR / "golden.toml").faults is None


def test_a_fault_plan_with_an_unknown_kind_names_file_field_and_value(tmp_path: Path) -> None:
    unit = tmp_path / "u.toml"
    unit.write_text('serial = "XM12SU-000001"\n[lens]\nid = "x"\n[[faults.inject]]\nkind = "gremlins"\n')
    with pytest.raises(ConfigError) as info:
        load_unit(unit)
    message = str(info.value)
    assert str(unit) in message and "faults.inject[0].kind" in message and "'gremlins'" in message


def test_power_up_faults_reach_the_peers_constructors(station: StationConfig, lenses: LensCatalog) -> None:
    plan = FaultPlan(
        inject=[FaultSpec(kind=FaultKind.GRBL_ERROR, code=20), FaultSpec(kind=FaultKind.CORRUPT_DNG, after_captures=0)]
    )
    server = TwinServer(station, load_unit(UNITS_DIR / "golden.toml"), lenses, faults=plan)
    assert server.grbl.faults.error_next_command == 20
    assert server.ptp.faults.corrupt_downloads == 1
    assert [f.kind for f in server.faults.fired] == [FaultKind.GRBL_ERROR, FaultKind.CORRUPT_DNG]
    assert server.faults.pending == []


# ------------------------------------------------------------------------------------------- stage
def test_alarm_mid_move_is_unlocked_rehomed_and_the_move_repeated(rig: Rig) -> None:
    rig.bench.place(chart="sfr", rail_mm=-5.0)
    rig.server.faults.inject("grbl_alarm")
    rig.bench.place(chart="sfr", rail_mm=5.0)
    station = rig.bench.station
    assert rig.server.bench.state.rail_mm == pytest.approx(station.rail.focus_mm + 5.0, abs=POSITION_TOL_MM)
    assert rig.bench.retries.count == 1
    assert "ALARM:1" in rig.bench.retries.events[0] and "retrying" in rig.bench.retries.events[0]


def test_a_controller_stuck_in_run_is_reset_rehomed_and_the_move_repeated(rig: Rig) -> None:
    rig.bench.place(chart="sfr", rail_mm=0.0)
    rig.server.faults.inject("grbl_stuck", duration_s=0.5)  # clears before the move timeout fires
    rig.bench.place(chart="flat", rail_mm=2.0)
    state = rig.server.bench.state
    station = rig.bench.station
    assert state.rail_mm == pytest.approx(station.rail.focus_mm + 2.0, abs=POSITION_TOL_MM)
    assert state.carousel_mm == pytest.approx(station.carousel.slots["flat"], abs=POSITION_TOL_MM)
    assert rig.bench.retries.count == 1 and "not Idle within 1.5 s" in rig.bench.retries.events[0]


def test_an_error_reply_is_retried_once(rig: Rig) -> None:
    rig.bench.set_light(0.5)
    rig.server.faults.inject("grbl_error", code=22)
    rig.bench.set_light(0.7)
    assert rig.server.bench.state.light_pwm == pytest.approx(700)
    assert rig.bench.retries.count == 1 and "error:22" in rig.bench.retries.events[0]


# ------------------------------------------------------------------------------------------- phone
@pytest.mark.parametrize("kind", ["corrupt_dng", "truncated_dng", "download_drop"])
def test_a_bad_or_lost_frame_is_recaptured_never_measured(rig: Rig, lens: LensSpec, kind: str) -> None:
    rig.server.faults.inject(kind)
    rendered_before = rig.server.bench.frames_rendered
    frame = _flat(rig, lens, "flat")
    # the phone rendered two frames (the bad one and the recapture); the one handed on is a valid DNG
    assert rig.server.bench.frames_rendered == rendered_before + 2
    assert (frame.image.width, frame.image.height) == (
        rig.bench.station.sensor.width_px,
        rig.bench.station.sensor.height_px,
    )
    assert rig.bench.retries.count >= 1 and "capture: attempt 1 failed" in rig.bench.retries.events[0]


def test_a_burst_repeated_after_a_bad_frame_hands_its_frames_over_again(rig: Rig, lens: LensSpec) -> None:
    """The burst's third frame comes corrupted on the first try, after two frames were handed on for analysis: the
    repeated burst hands over all four again from index 0, and each index's last image is the returned frame's."""
    _flat(rig, lens, "flat")  # placed and exposed
    handed: list[tuple[int, bytes]] = []

    def on_image(index: int, image: DngImage) -> None:
        handed.append((index, image.raw.tobytes()))
        if len(handed) == 2:
            rig.server.faults.inject("corrupt_dng")  # the next download: frame 2 of this first try

    frames = rig.bench.burst(4, tag="burst", on_image=on_image)
    assert [i for i, _ in handed] == [0, 1, 0, 1, 2, 3]
    last = dict(handed)
    assert [last[i] for i in range(4)] == [f.raw.tobytes() for f in frames]
    assert rig.bench.retries.count == 1 and "burst of 4: attempt 1 failed" in rig.bench.retries.events[0]


def test_a_capture_that_never_completes_ends_in_a_device_error_within_the_retry_budget(
    rig: Rig, lens: LensSpec
) -> None:
    # The hung capture keeps libgphoto2's worker (and its TCP session) blocked, and the phone serves one host at a
    # time: no reconnect can succeed, so the bounded retries must give up and the step ends as ERROR.
    # Bounded is a count, not a wall-clock budget (a loaded host stretches every connect): each retried operation
    # gives up after its attempts, and the capture's own timeout is what ended the first attempt.
    rig.server.faults.inject("stuck_capture")
    with pytest.raises(DeviceError) as info:
        _flat(rig, lens, "stuck")
    assert "phone" in str(info.value)
    events = rig.bench.retries.events
    assert any("did not finish within 3.0 s" in e for e in events), events
    per_operation: dict[str, int] = {}
    for event in events:
        what = event.split(": attempt ", 1)[0]
        per_operation[what] = per_operation.get(what, 0) + 1
    # a capture is tried `attempts` times (the last failure is raised, not logged); before each retry the phone is
    # reconnected, itself tried RECONNECT_ATTEMPTS times
    assert 0 < per_operation.pop("capture") < rig.bench.attempts, events
    reconnects = per_operation.pop("reconnect phone", 0)
    assert reconnects <= (rig.bench.attempts - 1) * (RECONNECT_ATTEMPTS - 1), events
    assert not per_operation, per_operation


def test_a_phone_reboot_is_met_by_reconnecting_with_backoff(rig: Rig, lens: LensSpec) -> None:
    _flat(rig, lens, "before")
    rig.server.faults.inject("phone_reboot", downtime_s=1.0)
    frame = _flat(rig, lens, "after")
    assert frame.image.width == rig.bench.station.sensor.width_px
    assert any("DeviceLost" in e for e in rig.bench.retries.events), rig.bench.retries.events
    assert rig.phone.identity().serial == rig.server.unit.serial


def test_a_lens_knocked_off_stops_every_frame_until_the_plan_mounts_one(rig: Rig, lens: LensSpec) -> None:
    _flat(rig, lens, "with-lens")
    rig.server.faults.inject("lens_removed")
    for _ in range(2):  # not only the first frame after the fault: every frame until a lens change by the plan
        with pytest.raises(DeviceStateError, match=r"lens changed mid-test.*now"):
            _flat(rig, lens, "no-lens")
    assert not rig.server.bench.state.lens_attached  # the truth: the lens really is off
    proc.ensure_lens(rig.bench, lens)
    assert _flat(rig, lens, "remounted").image.width > 0


# ------------------------------------------------------------------------------------------- light
def test_a_steady_panel_passes_the_repeat_check(rig: Rig, lens: LensSpec) -> None:
    change = proc.check_light_steady(rig.bench, _flat(rig, lens, "flat"), tag="repeat")
    assert abs(change) < proc.LIGHT_REPEAT_TOLERANCE / 5  # noise alone is far inside the tolerance


@pytest.mark.parametrize(
    ("kind", "size"), [("light_flicker", {"amplitude_pct": 3.0}), ("light_drift", {"drift_pct_per_capture": -2.0})]
)
def test_a_flickering_or_drifting_panel_is_light_unstable(rig: Rig, lens: LensSpec, kind: str, size: dict) -> None:
    rig.server.faults.inject(kind, **size)
    first_index = rig.server.bench.frames_rendered
    frame = _flat(rig, lens, "flat")
    with pytest.raises(MeasurementError, match="light unstable") as info:
        proc.check_light_steady(rig.bench, frame, tag="repeat")
    # the change reported is the luminance change the twin applied between the two frames (within 0.1 %)
    truth = rig.server.faults.light_factor(first_index + 1) / rig.server.faults.light_factor(first_index) - 1
    reported = float(str(info.value).split("differs by ")[1].split(" %")[0]) / 100
    assert reported == pytest.approx(truth, abs=1e-3)


# ------------------------------------------------------------------------------------------- homing ahead
class _CountedHoming:
    """The devices of a golden twin bench whose stage counts its homing cycles (begun ahead or by BenchOps)."""

    def __init__(self, station: StationConfig, lenses: LensCatalog) -> None:
        self.devices = open_bench(station, lenses, unit=load_unit(UNITS_DIR / "golden.toml"))
        assert self.devices.twin is not None
        self.server = self.devices.twin
        self.cycles = 0
        home = self.devices.stage.home

        def counted() -> None:
            self.cycles += 1
            home()

        self.devices.stage.home = counted  # type: ignore[method-assign]


def test_homing_begun_ahead_is_the_first_moves_homing(station: StationConfig, lenses: LensCatalog) -> None:
    bench = _CountedHoming(station, lenses)
    try:
        bench.devices.start_homing()
        bench.devices.start_homing()  # a second call starts nothing
        ops = BenchOps.on(bench.devices)
        ops.set_light(0.4)  # waits for the cycle: GRBL takes no command while homing
        ops.place(chart="sfr", rail_mm=1.0)
        assert bench.cycles == 1 and ops.homed and ops.retries.count == 0
        assert bench.server.bench.state.rail_mm == pytest.approx(station.rail.focus_mm + 1.0, abs=POSITION_TOL_MM)
        assert bench.server.bench.state.light_pwm == pytest.approx(400)
    finally:
        bench.devices.close()


def test_homing_begun_ahead_that_alarms_is_a_retry_and_the_bench_homes_again(
    station: StationConfig, lenses: LensCatalog
) -> None:
    bench = _CountedHoming(station, lenses)
    try:
        bench.server.grbl.set_faults(homing_failure=9)  # ALARM:9, the switch not found (one-shot)
        bench.devices.start_homing()
        ops = BenchOps.on(bench.devices)
        ops.place(chart="flat", rail_mm=2.0)
        assert bench.cycles == 2 and ops.homed
        assert ops.retries.count == 1 and "begun ahead of the plan" in ops.retries.events[0]
        assert "ALARM:9" in ops.retries.events[0]
        state = bench.server.bench.state
        assert state.carousel_mm == pytest.approx(station.carousel.slots["flat"], abs=POSITION_TOL_MM)
    finally:
        bench.devices.close()


def test_homing_begun_ahead_on_a_lost_port_is_the_first_moves_device_lost(
    station: StationConfig, lenses: LensCatalog
) -> None:
    bench = _CountedHoming(station, lenses)
    try:
        bench.server.grbl.set_faults(drop_after_commands=0)  # the port closes when $H arrives
        bench.devices.start_homing()
        ops = BenchOps.on(bench.devices)
        with pytest.raises(DeviceError, match="stage lost"):
            ops.place(chart="sfr")
        assert bench.cycles == 1, "a lost port is not homed again (the step ends ERROR; a resume reopens it)"
    finally:
        bench.devices.close()


def test_a_stage_the_command_cannot_open_ahead_is_each_steps_recorded_error(tmp_path: Path) -> None:
    """The rig command opens the bench before pytest starts (BenchAhead); the error it meets there reaches the
    record exactly as when the plan's fixture met it: each step that needs the bench ends ERROR with it."""
    import json
    import re
    import subprocess
    import sys

    from rig.config.loader import FIXTURES_DIR

    text = (FIXTURES_DIR / "stations" / "twin.toml").read_text(encoding="utf-8")
    text = text.replace('[stage]\nport = "twin"', '[stage]\nport = "/dev/ttyNOPE-rig"', 1)
    text = text.replace('[phone]\nport = "twin"', '[phone]\nport = "ptpip:127.0.0.1:1"', 1)
    text = re.sub(r"(?ms)^\[twin\].*?(?=^\[|\Z)", "", text)  # a real station: no twin table
    station_file = tmp_path / "station.toml"
    station_file.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "rig", "signoff", "--station", str(station_file), "--unit-serial", "XM12SU-000009",
         "--reports", str(tmp_path / "reports"), "--json"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    summary = json.loads(result.stdout)
    assert summary["headline"] == "ERROR" and result.returncode == summary["exit_status"] == 3
    steps = summary["steps"]
    assert steps and all(s["verdict"] == "ERROR" for s in steps)
    assert all("stage lost: cannot open /dev/ttyNOPE-rig" in s["error"] for s in steps)
