"""The twin phone's image pipeline in worker processes (``[twin] render_processes``, issue #17).

Where a frame is rendered must not change a byte of it: the same bench, seed and clock give the same DNG bytes
rendered on the twin's own thread and in the worker pool, for a frame, a windowed read-out and a burst (whose frames
render side by side); a burst's faults see its frames in exposure order in both; an error inside a worker reaches
the capture as an error naming what failed; a worker that dies loses that exposure only.
"""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from rig import workers
from rig.config import LensCatalog, StationConfig, TwinUnit
from rig.spec.ptp import ReadoutWindow
from rig.twin import image_pipeline
from rig.twin.image_pipeline import ImagePipeline
from rig.twin.world import TwinBench


class FakeClock:
    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


def _station(station: StationConfig, processes: int) -> StationConfig:
    assert station.twin is not None
    return station.model_copy(update={"twin": station.twin.model_copy(update={"render_processes": processes})})


def _bench(station: StationConfig, unit: TwinUnit, catalog: LensCatalog, processes: int) -> TwinBench:
    bench = TwinBench(_station(station, processes), unit, catalog, seed=7)
    clock = FakeClock()
    bench.state.clock = clock
    bench.state.mount_lens(unit.lens.id)
    clock.now_ns = 5_000_000_000  # long after the sensor switch and any ringing
    bench.state.update(rail_mm=station.rail.focus_mm + 0.05, carousel_mm=station.carousel.slots["sfr"], light_pwm=800)
    return bench


def _bare_job(at: StationConfig, window: ReadoutWindow | None = None) -> image_pipeline.FrameJob:
    """A job that holds only the read-out's shape (enough for where and how it renders, not to render it)."""
    return image_pipeline.FrameJob(
        station=at, unit=None, lenses=None, snapshot=None, lens=None, pose=None, chart_pose=None,  # type: ignore[arg-type]
        noise_seed=(1, 0), noise=True, window=window,
    )  # fmt: skip


def test_the_station_file_chooses_where_frames_render(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    assert station.twin is not None and station.twin.render_processes == 2  # the shipped twin station
    assert _bench(station, golden, catalog, 0).pipeline.processes == 0
    assert _bench(station, golden, catalog, 2).pipeline.processes == 2


def test_pool_and_own_thread_write_identical_frames(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    here, pool = _bench(station, golden, catalog, 0), _bench(station, golden, catalog, 2)
    windows = [ReadoutWindow(1000, 800, 128, 96), ReadoutWindow(5000, 3000, 64, 64)]
    for bench in (here, pool):
        bench.hardware.time_scale = 1000.0  # the pacing is not what this test is about
    frames = {}
    for name, bench in (("here", here), ("pool", pool)):
        single = bench.capture()
        win = bench.capture_windows(windows)
        burst = bench.capture_burst(3, frame_interval_s=0.01)
        frames[name] = [single, *win, *burst]
    assert len(frames["pool"]) == 1 + 2 + 3
    for a, b in zip(frames["here"], frames["pool"], strict=True):
        assert a.dng == b.dng  # bit-identical: the pixels, the metadata, the window's XMP
        assert (a.raw == b.raw).all()
        assert a.chart == b.chart and a.truth == b.truth and a.window == b.window
    # and the frames are frames of the scene, not one frame repeated: noise differs between the burst's frames
    burst = frames["pool"][3:]
    assert burst[0].dng != burst[1].dng != burst[2].dng


def test_a_burst_rendered_side_by_side_keeps_exposure_order_for_faults(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    """Fault listeners hear a burst's frames in order, and a light disturbance armed by frame k's listener
    reaches frame k + 1 of the same burst, in both modes alike."""
    results = {}
    for processes in (0, 2):
        bench = _bench(station, golden, catalog, processes)
        bench.hardware.time_scale = 1000.0
        heard: list[int] = []
        dim_from: list[int] = []

        def listener(counter: int, heard: list[int] = heard, dim_from: list[int] = dim_from) -> None:
            heard.append(counter)
            if counter == 1:
                dim_from.append(counter + 1)  # from the next frame on, the panel gives half its light

        bench.capture_listeners.append(listener)
        bench.light_factor = lambda counter, dim_from=dim_from: 0.5 if dim_from and counter >= dim_from[0] else 1.0
        frames = bench.capture_burst(4, frame_interval_s=0.01)
        results[processes] = ([f.dng for f in frames], heard, [float(f.raw.mean()) for f in frames])
    assert results[0] == results[2]
    _, heard, means = results[2]
    assert heard == [0, 1, 2, 3]
    black = station.sensor.black_level_dn
    # frames 2 and 3 got half the light of frames 0 and 1: their mean signal above black halves (±3 %: noise)
    for k in (2, 3):
        assert (means[k] - black) / (means[k - 2] - black) == pytest.approx(0.5, rel=0.03)


def test_an_error_in_a_worker_reaches_the_capture_naming_it(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    """A carousel slot naming a chart there is no file for: the renderer's ConfigError, here and from a worker
    (whose exception class does not cross the process boundary as itself: its message does)."""
    slots = {**station.carousel.slots, "no-such-chart": 250.0}
    broken = station.model_copy(update={"carousel": station.carousel.model_copy(update={"slots": slots})})
    messages = []
    for processes in (0, 2):
        bench = _bench(broken, golden, catalog, processes)
        bench.hardware.time_scale = 1000.0
        bench.state.update(carousel_mm=250.0)
        with pytest.raises(Exception) as caught:
            bench.capture()
        messages.append(str(caught.value))
        bench.state.update(carousel_mm=station.carousel.slots["sfr"])
        assert bench.capture().chart == "sfr"  # the phone (and the pool) still work
    here, pool = messages
    assert "no-such-chart" in here and "expected one of" in here
    assert here in pool


def test_a_worker_that_dies_loses_that_exposure_only(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    bench = _bench(station, golden, catalog, 2)
    bench.hardware.time_scale = 1000.0
    bench.capture()  # the pool's workers exist
    pool = image_pipeline._shared_pool(2)
    for pid in list(pool._processes):  # type: ignore[attr-defined] - the executor's own table of its workers
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(Exception, match=r"(?i)process"):
        for _ in range(3):  # the executor notices the dead workers at the latest on the next job
            bench.capture()
    frame = bench.capture()  # a new pool
    assert frame.raw.shape == (station.sensor.height_px, station.sensor.width_px)


def test_render_processes_must_be_a_count() -> None:
    with pytest.raises(ValueError, match="≥ 0"):
        ImagePipeline(-1)


def test_workers_that_cannot_start_leave_the_frames_to_the_twin(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no process may be spawned (the interpreter is not executable for this user: an unprivileged run),
    the twin renders on its own thread instead of failing the capture: the same bytes."""

    def refuse(processes: int) -> None:
        raise PermissionError(13, "Permission denied", "/root/.pyenv/versions/3.11.7/bin/python3")

    expected = _bench(station, golden, catalog, 0).capture().dng
    monkeypatch.setattr(image_pipeline, "_shared_pool", refuse)
    bench = _bench(station, golden, catalog, 2)
    bench.pipeline.warm_up()
    assert bench.pipeline.processes == 0
    bench = _bench(station, golden, catalog, 2)
    assert bench.capture().dng == expected
    assert bench.pipeline.processes == 0


def test_full_size_frames_develop_on_the_twin_thread_binned_and_windows_in_workers(station: StationConfig) -> None:
    """Handing a 200 MB full-size frame back through a pipe costs more than the second core gains (measured:
    :data:`rig.twin.image_pipeline.MAX_WORKER_PIXELS`); a binned read-out and native windows go to the workers."""
    full = station.model_copy(update={"sensor": station.sensor.model_copy(update={"binning": 1})})

    assert station.sensor.width_px * station.sensor.height_px == 2048 * 1536
    assert image_pipeline.worth_a_worker(_bare_job(station))
    assert not image_pipeline.worth_a_worker(_bare_job(full))
    assert image_pipeline.worth_a_worker(_bare_job(full, ReadoutWindow(0, 0, 1024, 1024)))


def test_an_interpreter_this_user_may_not_execute_is_not_spawned(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked before multiprocessing is touched: its resource tracker, unable to start, would warn on stderr."""

    def no_pool(processes: int) -> None:
        raise AssertionError("the pool must not be started")

    monkeypatch.setattr(workers.os, "access", lambda path, mode: False)
    monkeypatch.setattr(image_pipeline, "_shared_pool", no_pool)
    bench = _bench(station, golden, catalog, 2)
    bench.pipeline.warm_up()
    assert bench.pipeline.processes == 0
    assert len(bench.capture().dng) > 1_000_000


def test_a_burst_of_frames_too_large_for_the_workers_renders_on_threads_to_the_same_bytes(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames the workers do not take (a full-size read-out; here every frame, by lowering the bound) develop in
    the bench process, a burst's on ``render_processes`` threads side by side: the bytes of one after another."""
    monkeypatch.setattr(image_pipeline, "MAX_WORKER_PIXELS", 0)
    where: list[str] = []
    develop = image_pipeline.develop

    def spied(job: image_pipeline.FrameJob) -> image_pipeline.DevelopedFrame:
        where.append(threading.current_thread().name)
        return develop(job)

    monkeypatch.setattr(image_pipeline, "develop", spied)
    bursts = {}
    for processes in (0, 2):
        bench = _bench(station, golden, catalog, processes)
        bench.hardware.time_scale = 1000.0
        where.clear()
        bursts[processes] = [f.dng for f in bench.capture_burst(4, frame_interval_s=0.01)]
        if processes:
            assert len(where) == 4 and all(name.startswith("twin-develop") for name in where), where
        else:
            assert where == [threading.current_thread().name] * 4
    assert bursts[0] == bursts[2]
    assert len(set(bursts[2])) == 4  # four frames, not one repeated


def test_full_size_frames_render_as_bands_and_frames_for_the_workers_whole(station: StationConfig) -> None:
    """The bench process renders a full-size read-out as bands of rows side by side on threads; a binned frame and
    a window (the workers' jobs) render whole, from their job's own noise stream."""
    full = station.model_copy(update={"sensor": station.sensor.model_copy(update={"binning": 1})})

    assert image_pipeline.frame_bands(_bare_job(full)) == [(0, 3072), (3072, 6144)]
    assert image_pipeline.frame_bands(_bare_job(station)) == [None]
    assert image_pipeline.frame_bands(_bare_job(full, ReadoutWindow(0, 0, 1024, 1024))) == [None]


@pytest.mark.parametrize("chart", ["sfr", "dotgrid"])
def test_a_frames_bands_stacked_are_the_whole_frame(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit, chart: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without noise, the bands' expected signal stacked is the whole frame's, pixel for pixel (the same optics,
    chart placement and shading at the same pixels; tolerance 1e-4 of the peak for float32 summation order). On
    the binned frame, banded here by lowering the workers' bound (a full-size one takes seconds a render). The
    check can fail: a band's grid two rows off moves every edge, ~250 DN."""
    from rig.twin.render import render

    monkeypatch.setattr(image_pipeline, "MAX_WORKER_PIXELS", 0)
    bench = _bench(station, golden, catalog, 0)
    bench.state.update(carousel_mm=station.carousel.slots[chart])
    (job,) = bench._jobs_at(0, bench.state.snapshot(), (None,), noise=False)
    bands = image_pipeline.frame_bands(job)
    assert bands == [(0, 768), (768, 1536)] and len(bands) == image_pipeline.READOUT_BANDS

    def signal(rows: tuple[int, int] | None) -> np.ndarray:
        return render(
            station, golden, catalog, job.snapshot, lens=job.lens, pose=job.pose, chart_pose=job.chart_pose,
            noise=False, rows=rows,
        ).signal_dn  # fmt: skip

    whole = signal(None)
    stacked = np.concatenate([signal(rows) for rows in bands])
    assert stacked.shape == whole.shape
    assert float(np.max(np.abs(stacked - whole))) <= 1e-4 * float(whole.max())
    assert image_pipeline.render_frame(job).raw.shape == whole.shape
    with pytest.raises(ValueError, match="even row"):
        signal((1, 5))


def test_a_lone_frame_rendered_here_renders_its_bands_on_threads_to_the_same_bytes(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``render_processes`` ≥ 2 a banded frame's bands render side by side on threads; one after the other
    with 0: the same DNG bytes (each band draws from a stream of its own)."""
    monkeypatch.setattr(image_pipeline, "MAX_WORKER_PIXELS", 0)
    where: list[str] = []
    render_band = image_pipeline.render_band

    def spied(job: image_pipeline.FrameJob, index: int) -> image_pipeline.RenderedFrame:
        where.append(threading.current_thread().name)
        return render_band(job, index)

    monkeypatch.setattr(image_pipeline, "render_band", spied)
    frames = {}
    for processes in (0, 2):
        where.clear()
        frames[processes] = _bench(station, golden, catalog, processes).capture().dng
        if processes:
            assert len(where) == 2 and all(name.startswith("twin-develop") for name in where), where
        else:
            assert where == [threading.current_thread().name] * 2
    assert frames[0] == frames[2]
