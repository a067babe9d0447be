"""A sweep's MTF50 rows measured while the rail moves (issue #17): the serial bench's bits, in analysis processes.

Ground truth is :func:`rig.measure.focus.edge_mtf50_row` over the edges found on the reference frame, run inline on
the same twin-rendered frames: the rows :class:`~rig.bench.sweep_rows.SweepRows` assembles from values measured
ahead (on each early frame's own edges) and values measured afterwards must equal it bit for bit.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np
import pytest

from rig import workers
from rig.bench import sweep_rows
from rig.bench.pipeline import ANALYSIS_NICENESS, ANALYSIS_POOL, MeasurementPool, PipelineMode, analysis_cpu_s
from rig.bench.sweep_rows import SweepRows, roi_box
from rig.config import load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.errors import MeasurementError
from rig.measure.edges import crops_mtf50, edge_crops, find_edges
from rig.measure.focus import edge_mtf50_row, sweep_reference_index
from rig.measure.sfr import EdgeOrientation
from rig.twin.render import render
from rig.twin.state import BenchState

pytestmark = pytest.mark.timeout(300)


@dataclass(frozen=True)
class _Image:
    cfa_pattern: str
    black_level: int
    white_level: int


@dataclass(frozen=True)
class _Frame:  # what SweepRows reads of a bench Frame
    raw: np.ndarray
    image: _Image


@pytest.fixture(scope="module")
def sweep() -> list[_Frame]:
    """Seven binned twin frames of the golden unit across ±1.5 mm of rail (±94 µm of focus at 50 mm), noise on."""
    station = load_station()
    catalog = load_lens_catalog()
    unit = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    lens = catalog.get(unit.lens.id)
    state = BenchState()
    state.update(carousel_mm=station.carousel.slots["sfr"], light_pwm=1000, exposure_time_s=0.02, f_number=2.0)
    state.mount_lens(lens.id)
    rng = np.random.default_rng(17)
    sensor = station.sensor
    image = _Image(sensor.cfa_pattern, sensor.black_level_dn, sensor.white_level_dn)
    frames = []
    for z in station.rail.focus_mm + np.linspace(-1.5, 1.5, 7):
        state.update(rail_mm=float(z))
        frames.append(_Frame(render(station, unit, catalog, state.snapshot(), lens=lens, rng=rng).raw, image))
    return frames


def _serial_rows(frames: list[_Frame]) -> tuple[list, list[np.ndarray]]:
    reference = frames[sweep_reference_index(np.arange(len(frames)))]
    image = reference.image
    rois = find_edges(reference.raw, cfa_pattern=image.cfa_pattern, black_level=image.black_level)
    rows = [
        edge_mtf50_row(f.raw, rois, cfa_pattern=image.cfa_pattern, black_level=image.black_level,
                       white_level=image.white_level)
        for f in frames
    ]  # fmt: skip
    return rois, rows


@pytest.mark.parametrize("processes", [0, 1, 2])  # 2: each row split over two processes
def test_rows_measured_ahead_are_the_serial_rows_bit_for_bit(sweep: list[_Frame], processes: int) -> None:
    rois, serial = _serial_rows(sweep)
    first = sweep[0]
    own = find_edges(first.raw, cfa_pattern=first.image.cfa_pattern, black_level=first.image.black_level)
    shared = {roi_box(r) for r in rois} & {roi_box(r) for r in own}
    # the test takes both paths: edges whose value was measured ahead, and edges measured after the reference
    assert 0 < len(shared) < len(rois), (len(shared), len(rois))

    for mode in PipelineMode:
        pool = MeasurementPool(mode=mode, processes=processes)
        try:
            rows = SweepRows(pool, sweep_reference_index(np.arange(len(sweep))))
            for frame in sweep:
                rows.add(frame)  # type: ignore[arg-type] - a stand-in with the fields SweepRows reads
            result = rows.result()
        finally:
            pool.close()
        assert result is not None
        edges, measured = result
        assert [roi_box(r) for r in edges] == [roi_box(r) for r in rois]
        assert len(measured) == len(serial)
        for got, want in zip(measured, serial, strict=True):
            assert got.tobytes() == want.tobytes(), f"{mode}: rows differ in their bits"
    assert np.isfinite(np.concatenate(serial)).mean() > 0.9  # most edges of the sweep have an MTF50


def test_a_sweep_that_never_reaches_its_reference_has_no_rows(sweep: list[_Frame]) -> None:
    pool = MeasurementPool(mode=PipelineMode.ON)
    try:
        rows = SweepRows(pool, reference=5)
        for frame in sweep[:3]:
            rows.add(frame)  # type: ignore[arg-type]
        assert rows.result() is None
    finally:
        pool.close()


def test_compute_in_a_process_gives_the_threads_bits_and_raises_the_functions_error(sweep: list[_Frame]) -> None:
    frame = sweep[3]
    image = frame.image
    rois = find_edges(frame.raw, cfa_pattern=image.cfa_pattern, black_level=image.black_level)[:8]
    args = (edge_crops(frame.raw, rois), [r.orientation for r in rois])
    kwargs = {"cfa_pattern": image.cfa_pattern, "black_level": image.black_level, "white_level": image.white_level}
    pool = MeasurementPool(mode=PipelineMode.ON, processes=1)
    assert pool.processes == 1
    here = crops_mtf50(*args, **kwargs)
    counted = analysis_cpu_s()
    assert pool.compute(crops_mtf50, *args, **kwargs).tobytes() == here.tobytes()
    # scheduled below the bench process, whose captures the hardware waits for
    assert pool.compute(os.nice, 0) == min(19, os.nice(0) + ANALYSIS_NICENESS)
    # the worker's CPU joins the step's (8 edge SFRs: ~15 ms of CPU, on a ns-resolution process clock)
    assert analysis_cpu_s() > counted
    with pytest.raises(ValueError, match="1 crops but 0 orientations"):
        pool.compute(crops_mtf50, [args[0][0]], [])
    from rig.measure.sfr import slanted_edge_sfr

    with pytest.raises(MeasurementError):  # the bench's own error class crosses the process boundary as itself
        pool.compute(slanted_edge_sfr, np.zeros((40, 40)), orientation=EdgeOrientation.VERTICAL)


def test_a_killed_analysis_process_fails_that_analysis_only(sweep: list[_Frame]) -> None:
    frame = sweep[3]
    rois = find_edges(frame.raw, cfa_pattern=frame.image.cfa_pattern, black_level=frame.image.black_level)[:2]
    crops, orientations = edge_crops(frame.raw, rois), [r.orientation for r in rois]
    pool = MeasurementPool(mode=PipelineMode.ON, processes=1)
    want = pool.compute(crops_mtf50, crops, orientations, cfa_pattern=frame.image.cfa_pattern)
    executor = workers.shared_pool(ANALYSIS_POOL, 1)
    for pid in list(executor._processes):  # type: ignore[attr-defined] - the executor's own table of its workers
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(BrokenProcessPool):
        for _ in range(3):  # the executor notices the dead worker at the latest on the next job
            pool.compute(crops_mtf50, crops, orientations, cfa_pattern=frame.image.cfa_pattern)
    again = pool.compute(crops_mtf50, crops, orientations, cfa_pattern=frame.image.cfa_pattern)  # a new pool
    assert again.tobytes() == want.tobytes()


def test_no_process_where_none_may_start_and_none_in_the_serial_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the interpreter is not executable for this user, analyses run on the pool's threads: the same numbers
    (checked before multiprocessing is touched, whose resource tracker would warn on stderr)."""
    assert MeasurementPool(mode=PipelineMode.OFF, processes=2).processes == 0
    monkeypatch.setattr(workers.os, "access", lambda path, mode: False)
    pool = MeasurementPool(mode=PipelineMode.ON, processes=2)
    assert pool.processes == 0
    pool.warm_up()
    assert pool.compute(os.getpid) == os.getpid()  # ran here


def test_frames_too_large_to_measure_ahead_wait_for_the_reference(
    sweep: list[_Frame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full-size read-outs (here every frame, by lowering the bound) are measured only on the reference's edges:
    the same rows, nothing found ahead."""
    monkeypatch.setattr(sweep_rows, "AHEAD_MAX_PIXELS", 0)
    _, serial = _serial_rows(sweep)
    pool = MeasurementPool(mode=PipelineMode.ON)
    found: list[int] = []
    original = sweep_rows.find_edges

    def counted(*args: object, **kwargs: object) -> object:
        found.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sweep_rows, "find_edges", counted)
    try:
        rows = SweepRows(pool, sweep_reference_index(np.arange(len(sweep))))
        for frame in sweep:
            rows.add(frame)  # type: ignore[arg-type]
        result = rows.result()
    finally:
        pool.close()
    assert result is not None and len(found) == 1  # the reference's edges only
    assert all(got.tobytes() == want.tobytes() for got, want in zip(result[1], serial, strict=True))
