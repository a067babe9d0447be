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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, TypeVar

from threadpoolctl import threadpool_limits

T = TypeVar("T")

DEFAULT_WORKERS = 2
"""Two analysis threads: the bench's own thread mostly waits on the stage and the phone, so two workers and the
twin's renderer share a two-core station without oversubscribing it much."""

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
    """

    def __init__(self, *, mode: PipelineMode = PipelineMode.ON, workers: int = DEFAULT_WORKERS) -> None:
        if workers < 1:
            raise ValueError(f"workers must be ≥ 1, got {workers}")
        self.mode = mode
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

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
