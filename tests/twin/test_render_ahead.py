"""The twin phone renders its next frame while the rail still moves to it (issue #17, takt at real speed).

A render started ahead must never change a frame: the capture takes it only when its own job equals the one
rendered ahead in everything but the time, so the DNG bytes equal those of a bench that rendered at the capture
(same seed, same clock), whether the render ahead is taken or thrown away. The GRBL peer says where a move will
rest as it starts; a move too short to hide a render starts none.
"""

from __future__ import annotations

import pytest

from rig.config import LensCatalog, StationConfig, TwinUnit
from rig.twin.grbl.eeprom import provisioned_settings
from rig.twin.state import AxesAtRest, BenchState
from rig.twin.world import RENDER_AHEAD_MIN_S, TwinBench
from tests.twin.test_grbl_peer import _start, _trapezoid_duration_s


class SteppedClock:
    """A phone clock the test sets: both benches of a comparison read the same times."""

    def __init__(self) -> None:
        self.now_ns = 5_000_000_000  # long after the sensor switch

    def __call__(self) -> int:
        return self.now_ns


def _bench(station: StationConfig, unit: TwinUnit, catalog: LensCatalog) -> tuple[TwinBench, SteppedClock]:
    assert station.twin is not None
    pooled = station.model_copy(update={"twin": station.twin.model_copy(update={"render_processes": 2})})
    bench = TwinBench(pooled, unit, catalog, seed=11)
    clock = SteppedClock()
    bench.state.clock = clock
    bench.state.mount_lens(unit.lens.id)
    clock.now_ns = 5_000_000_000
    bench.state.update(carousel_mm=station.carousel.slots["sfr"], light_pwm=800, rail_mm=station.rail.focus_mm)
    bench.hardware.time_scale = 1000.0  # the pacing is not what this is about
    return bench, clock


def _move(bench: TwinBench, clock: SteppedClock, rail_mm: float, *, announce_rail_mm: float | None = None) -> None:
    """What the GRBL peer does: announce the rest as the move starts, then the axes get there."""
    snap = bench.state.snapshot()
    rest = AxesAtRest(
        carousel_mm=snap.carousel_mm,
        pitch_deg=snap.pitch_deg,
        rail_mm=rail_mm if announce_rail_mm is None else announce_rail_mm,
        in_s=0.3,
    )
    bench.state.announce_rest(rest)
    clock.now_ns += 307_000_000  # the capture comes a status poll after the axes rest: not at the announced time
    bench.state.update(rail_mm=rail_mm)


def test_a_frame_rendered_ahead_is_the_frame_rendered_at_the_capture(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    ahead, ahead_clock = _bench(station, golden, catalog)
    plain, plain_clock = _bench(station, golden, catalog)
    rails = [station.rail.focus_mm + d for d in (-0.04, 0.0, 0.04)]
    ahead_frames, plain_frames = [], []
    for rail in rails:
        _move(ahead, ahead_clock, rail)
        ahead_frames.append(ahead.capture())
        plain_clock.now_ns += 307_000_000
        plain.state.update(rail_mm=rail)
        plain_frames.append(plain.capture())
    assert ahead.pipeline.ahead_taken == 3 and ahead.pipeline.ahead_dropped == 0
    assert plain.pipeline.ahead_taken == 0
    for a, p in zip(ahead_frames, plain_frames, strict=True):
        assert a.dng == p.dng  # bit-identical, the capture's own timestamp included
        assert a.time_ns == p.time_ns
    assert ahead_frames[0].dng != ahead_frames[1].dng  # three rail positions, three frames


@pytest.mark.parametrize("change", ["rail", "exposure", "lens off", "knock"])
def test_a_render_ahead_the_bench_outran_is_thrown_away(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit, change: str
) -> None:
    """The rail did not stop where announced (an alarm mid-move), the exposure was set after the move, the lens
    came off, the mount was knocked: the capture renders anew, and its frame is the plain bench's."""
    ahead, ahead_clock = _bench(station, golden, catalog)
    plain, plain_clock = _bench(station, golden, catalog)
    rail = station.rail.focus_mm + 0.02
    _move(ahead, ahead_clock, rail, announce_rail_mm=rail + 0.5 if change == "rail" else None)
    plain_clock.now_ns += 307_000_000
    plain.state.update(rail_mm=rail)
    for bench in (ahead, plain):
        if change == "exposure":
            bench.state.update(exposure_time_s=0.02)
        elif change == "lens off":
            bench.state.unmount_lens()
        elif change == "knock":
            bench.state.knock()
    for clock in (ahead_clock, plain_clock):
        clock.now_ns += 1_000_000  # 1 ms into the ringing
    a, p = ahead.capture(), plain.capture()
    assert ahead.pipeline.ahead_taken == 0 and ahead.pipeline.ahead_dropped == 1
    assert a.dng == p.dng


def test_a_short_move_renders_nothing_ahead(station: StationConfig, catalog: LensCatalog, golden: TwinUnit) -> None:
    bench, _ = _bench(station, golden, catalog)
    snap = bench.state.snapshot()
    short = AxesAtRest(snap.carousel_mm, snap.pitch_deg, snap.rail_mm + 0.01, in_s=0.5 * RENDER_AHEAD_MIN_S)
    bench.state.announce_rest(short)
    bench.state.update(rail_mm=short.rail_mm)
    bench.capture()
    assert bench.pipeline.ahead_taken == 0 and bench.pipeline.ahead_dropped == 0


def test_a_render_ahead_that_fails_leaves_the_error_to_the_capture(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    """A chart slot with no chart file: the render ahead fails in the worker; the capture renders anew and raises
    the renderer's own error, as without the render ahead."""
    slots = {**station.carousel.slots, "no-such-chart": 250.0}
    broken = station.model_copy(update={"carousel": station.carousel.model_copy(update={"slots": slots})})
    bench, clock = _bench(broken, golden, catalog)
    bench.state.update(carousel_mm=250.0)
    _move(bench, clock, station.rail.focus_mm + 0.01)
    with pytest.raises(Exception, match="no-such-chart"):
        bench.capture()
    assert bench.pipeline.ahead_taken == 0 and bench.pipeline.ahead_dropped == 1


def test_the_grbl_peer_announces_where_a_move_rests(station: StationConfig) -> None:
    """On the GRBL wire: homing announces nothing (the phone is not shooting then); one G0 is announced once, as
    it starts, at the position the bench state holds once Idle, in the planned trapezoid's wall time."""
    state = BenchState()
    heard: list[AxesAtRest] = []
    state.motion_listeners.append(heard.append)
    scale = 20.0
    settings = provisioned_settings(station)
    for _, _, wire in _start(station, time_scale=scale, state=state):
        wire.expect_boot()
        assert wire.send("$H", timeout_s=10) == ["ok"]
        assert heard == []
        assert wire.send("G0 Z-50") == ["ok"]  # from the pull-off at Z -1: 49 mm of rail
        wire.wait_state("Idle")
    assert len(heard) == 1
    rest, snap = heard[0], state.snapshot()
    assert (rest.carousel_mm, rest.pitch_deg, rest.rail_mm) == (snap.carousel_mm, snap.pitch_deg, snap.rail_mm)
    rate, accel = settings[112] / 60.0, settings[122]  # mm/s, mm/s²
    assert rest.in_s == pytest.approx(_trapezoid_duration_s(49.0, rate, accel) / scale, rel=1e-9)


def test_the_pool_is_what_renders_ahead(station: StationConfig, catalog: LensCatalog, golden: TwinUnit) -> None:
    """With no workers (render_processes = 0) nothing renders ahead: it would compete with the bench's thread."""
    assert station.twin is not None
    here = station.model_copy(update={"twin": station.twin.model_copy(update={"render_processes": 0})})
    bench = TwinBench(here, golden, catalog, seed=11)
    bench.hardware.time_scale = 1000.0
    bench.state.mount_lens(golden.lens.id)
    bench.state.announce_rest(AxesAtRest(0.0, 0.0, station.rail.focus_mm, in_s=1.0))
    bench.state.update(rail_mm=station.rail.focus_mm)
    bench.capture()
    assert bench.pipeline.ahead_taken == bench.pipeline.ahead_dropped == 0
