"""Measure while the bench moves: a bounded pool that analyses frame k while frame k+1 is moved to, exposed and
transferred (issue #17).

A real station spends most of a sign-off moving the rail, changing lenses and transferring frames; the
measurements (SFR of every edge, registration) are CPU work that needs nothing but the pixels. Procedures hand
each frame's analysis to :meth:`MeasurementPool.submit` as soon as it is captured and collect the results before
their step ends, so

- a fault in an analysis is raised by :meth:`~concurrent.futures.Future.result` inside the step that submitted
  it: the step ends ERROR with that reason, exactly as when it ran inline;
- the results are the same numbers whatever the mode: each task is a pure function of its frames, results are
  collected in submission order, and the BLAS thread count (which changes the order of floating-point
  reductions) is the same in both modes.

The SFR of a sweep frame's 76 edges is thousands of small numpy calls, which on threads take turns on the
interpreter lock: two analysis threads made one core's work (a row of MTF50 took 0.4–0.55 s of wall on a thread
against 0.13 s of CPU alone). :meth:`MeasurementPool.compute` runs such a pure function in one of the pool's
analysis *processes* (:mod:`rig.workers`, pool ``bench-measure``) while its thread waits; a worker's exception is
raised there as the function's own, a worker that died ends that step ERROR and the next analysis starts a new
pool. Where no process may be started, the thread runs the function itself: the same numbers.

Why one BLAS/OpenMP thread: the parallelism is the pool's and the twin's render thread's; OpenBLAS's own threads
spinning against them made registration 3.4–3.8× slower on two cores (issue #17). ``threadpoolctl`` sets the
limit process-wide (OpenBLAS has one global thread count), for the whole run, in both modes.

References
----------
threadpoolctl, ``threadpool_limits`` (https://github.com/joblib/threadpoolctl): limits native thread pools of
BLAS and OpenMP libraries loaded in the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, TypeVar

from threadpoolctl import threadpool_limits

from rig.workers import can_spawn, drop_pool, run_in_worker, shared_pool, warm

T = TypeVar("T")

DEFAULT_WORKERS = 2
"""Two analysis threads: the bench's own thread mostly waits on the stage and the phone, so two workers and the
twin's renderer share a two-core station without oversubscribing it much."""

DEFAULT_PROCESSES = 2
"""Analysis processes of a bench's pool: one a core of the two-core station PC (the twin's render workers take
their turns beside them; a frame's analysis waits on the stage most of the time anyway)."""
ANALYSIS_POOL = "bench-measure"
ANALYSIS_IMPORTS = ("rig.measure.edges", "rig.measure.registration")
"""What an analysis process imports as it starts: what :func:`~rig.measure.edges.crops_mtf50` and
:func:`~rig.measure.registration.raw_shift_px` need (not the focus module's scipy.optimize: 0.4 s of CPU a
worker)."""
ANALYSIS_NICENESS = 10
"""How far below the bench process the analysis processes are scheduled: they use every idle cycle, but a capture
(the download, the DNG check, the next move's G-code) is what the hardware waits for. At real rail speed the sweep's
11 captures took 1.01 s at equal priority and 0.86 s at this one (one instrumented sign-off each, same machine)."""

_BLAS_LIMIT_LOCK = threading.Lock()
_blas_limited: Any = None  # the process-wide threadpoolctl limit, once taken


class PipelineMode(StrEnum):
    """How a run schedules its frame analyses."""

    ON = "on"  # analyses run in the pool while the bench takes the next frame
    OFF = "off"  # analyses run inline, one after the other (the serial bench; same numbers)


def limit_native_threads() -> None:
    """One BLAS and one OpenMP thread for the rest of the process (idempotent)."""
    global _blas_limited
    with _BLAS_LIMIT_LOCK:
        if _blas_limited is None:
            _blas_limited = threadpool_limits(limits=1)


class MeasurementPool:
    """A bounded pool of analysis threads, or (``mode=OFF``) the same interface running every task inline.

    Parameters
    ----------
    mode
        :attr:`PipelineMode.ON` to overlap analyses with the bench's next moves, OFF to run them in turn.
    workers
        Threads of the pool (ON only).
    processes
        Analysis processes :meth:`compute` hands its functions to (ON only; 0: the calling thread computes).
    """

    def __init__(
        self, *, mode: PipelineMode = PipelineMode.ON, workers: int = DEFAULT_WORKERS, processes: int = 0
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be ≥ 1, got {workers}")
        if processes < 0:
            raise ValueError(f"processes must be ≥ 0, got {processes}")
        self.mode = mode
        self.workers = workers
        self.processes = processes if mode is PipelineMode.ON and can_spawn() else 0
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Start the analysis processes now, without waiting: each imports :data:`ANALYSIS_IMPORTS` (~0.2 s) as
        it starts, which the first frame's analysis should not wait for."""
        for _ in range(self.processes):
            try:
                _analysis_pool(self.processes).submit(warm)
            except OSError:
                self.processes = 0  # no process may be started here: compute() computes on the thread

    def compute(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in an analysis process, waited for; on this thread without processes.

        For a pure, CPU-bound function of picklable arguments, called from a task of this pool (whose thread
        then waits without holding the interpreter lock). Its exception is raised here.
        """
        return self.compute_each(fn, [args], **kwargs)[0]

    def compute_each(self, fn: Callable[..., T], calls: Sequence[Sequence[Any]], /, **kwargs: Any) -> list[T]:
        """``[fn(*args, **kwargs) for args in calls]``, side by side in the analysis processes, waited for; in
        turn on this thread without processes. The first exception (in order) is raised here."""
        if self.processes:
            try:
                pool = _analysis_pool(self.processes)
            except OSError:
                self.processes = 0
            else:
                try:
                    timed = gather([pool.submit(run_in_worker, _timed, fn, *args, **kwargs) for args in calls])
                except BrokenProcessPool:
                    drop_pool(pool)  # a worker died (killed, out of memory): this analysis is lost, not the next
                    raise
                _count_worker_cpu(sum(cpu_s for _, cpu_s in timed))
                return [result for result, _ in timed]
        limit_native_threads()
        return [fn(*args, **kwargs) for args in calls]

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                limit_native_threads()
                self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="rig-measure")
            return self._executor

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)``: in the pool (ON) or now (OFF). Its exception, if any, is raised by
        ``result()`` of the returned future, in the caller's step."""
        if self.mode is PipelineMode.ON:
            return self._pool().submit(fn, *args, **kwargs)
        limit_native_threads()
        done: Future[T] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except Exception as exc:  # kept for result(), as the pool keeps a worker's exception
            done.set_exception(exc)
        return done

    def map(self, fn: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        """``[fn(item) for item in items]``, spread over the pool (ON); results in order."""
        return gather([self.submit(fn, item) for item in items])

    def close(self) -> None:
        """Wait for running analyses and stop the threads (a pool is reopened on the next submit)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


@contextmanager
def device_lane(mode: PipelineMode) -> Iterator[MeasurementPool]:
    """One thread for a device call that can run while the bench's own thread drives another device (a phone
    download while the stage moves), or (``mode=OFF``) the same call inline; the thread ends with the block.

    The caller keeps the devices apart: nothing else talks to the device the lane uses until its result is taken.
    """
    lane = MeasurementPool(mode=mode, workers=1)
    try:
        yield lane
    finally:
        lane.close()


def _analysis_pool(processes: int) -> Executor:
    return shared_pool(ANALYSIS_POOL, processes, niceness=ANALYSIS_NICENESS, imports=ANALYSIS_IMPORTS)


_worker_cpu_lock = threading.Lock()
_worker_cpu_s = 0.0


def analysis_cpu_s() -> float:
    """CPU seconds the analysis processes spent on this process's :meth:`MeasurementPool.compute` calls so far
    (a step's CPU is the bench process's own plus this: the workers are not reaped until the run ends)."""
    with _worker_cpu_lock:
        return _worker_cpu_s


def _count_worker_cpu(cpu_s: float) -> None:
    global _worker_cpu_s
    with _worker_cpu_lock:
        _worker_cpu_s += cpu_s


def _timed(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> tuple[T, float]:
    """``fn(*args, **kwargs)`` and the worker's CPU seconds for it."""
    started = time.process_time()
    result = fn(*args, **kwargs)
    return result, time.process_time() - started


def gather(futures: Iterable[Future[T]]) -> list[T]:
    """Every future's result in order; on the first exception the futures not started are cancelled (the step
    is ending ERROR: nothing should keep computing for it) and the exception is raised."""
    pending = list(futures)
    try:
        return [f.result() for f in pending]
    except BaseException:
        for f in pending:
            f.cancel()
        raise
