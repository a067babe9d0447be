"""The through-focus sweep downloads the phone's assists of frame k while the rail moves to frame k+1 (issue #17),
on the twin through the real drivers, without ever touching the phone from two threads at once.

Ground truth is the order in which the phone driver's calls began and ended (recorded around the driver, on the
thread that made them) and the twin's own rail position at each capture.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from rig.bench import procedures as proc
from rig.bench.open import BenchDevices, open_bench
from rig.bench.ops import BenchOps
from rig.bench.pipeline import PipelineMode
from rig.config.resolve import load_station_lenses
from rig.config.unit import UNITS_DIR, load_unit
from tests.ptpip_twin import small_station

pytestmark = pytest.mark.timeout(240)

RAILS_MM = np.linspace(-0.5, 0.5, 6)  # the fewest frames a flange fit takes
RAIL_TOL_MM = 1e-3


@dataclass(frozen=True)
class Call:
    name: str
    thread: str
    started_s: float
    ended_s: float


@pytest.fixture
def devices() -> Iterator[BenchDevices]:
    station = small_station()
    opened = open_bench(station, load_station_lenses(station), unit=load_unit(UNITS_DIR / "golden.toml"))
    try:
        yield opened
    finally:
        opened.close()


def _recorded(obj: Any, name: str, calls: list[Call], lock: threading.Lock) -> None:
    method: Callable[..., Any] = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return method(*args, **kwargs)
        finally:
            with lock:
                calls.append(Call(name, threading.current_thread().name, started, time.monotonic()))

    setattr(obj, name, wrapper)


@pytest.mark.parametrize("mode", list(PipelineMode))
def test_assists_are_fetched_beside_the_next_move_and_before_the_next_capture(
    devices: BenchDevices, mode: PipelineMode
) -> None:
    bench = BenchOps.on(devices, pipeline=mode)
    lens = load_station_lenses(devices.station).get(devices.station.reference_lens)
    assert devices.twin is not None
    try:
        proc.ensure_lens(bench, lens)
        calls: list[Call] = []
        lock = threading.Lock()
        for name in ("capture", "assist_outputs"):
            _recorded(bench.phone, name, calls, lock)
        rails_at_capture: list[float] = []
        devices.twin.bench.capture_listeners.append(
            lambda _: rails_at_capture.append(devices.twin.bench.state.rail_mm)  # type: ignore[union-attr]
        )
        sweep = proc.through_focus_at(bench, lens, RAILS_MM, t_stop=lens.t_stop)
    finally:
        bench.pool.close()
    captures = [c for c in calls if c.name == "capture"]
    fetches = [c for c in calls if c.name == "assist_outputs"]
    assert len(captures) == len(fetches) == len(RAILS_MM) == len(sweep.assists)
    main = threading.main_thread().name
    assert all(c.thread == main for c in captures)
    # pipelined, the downloads run off the bench's thread (beside the move); serial, inline
    assert all((f.thread != main) is (mode is PipelineMode.ON) for f in fetches)
    for k in range(len(RAILS_MM)):
        assert fetches[k].started_s >= captures[k].ended_s  # the assists of frame k, not of an earlier one
        if k + 1 < len(RAILS_MM):
            assert fetches[k].ended_s <= captures[k + 1].started_s  # taken before the next capture replaces them
    station = devices.station
    np.testing.assert_allclose(rails_at_capture, station.rail.focus_mm + RAILS_MM, atol=RAIL_TOL_MM)
