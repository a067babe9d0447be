"""Worker processes for pure CPU work: the twin's renderer and the bench's frame analyses (issue #17).

Python threads share one interpreter lock, and both the twin's render and the slanted-edge SFR of a frame are
many small numpy calls: on threads they take turns on one core however many cores the station has. A pool of
worker processes gives each its own interpreter. A task is a pure function of its arguments, so where it runs
cannot change its result (tests compare bytes and bits).

Pools are named (each user its own, so an analysis never queues behind a render) and shared by everything in a
process that asks for the same name and size. Workers are spawned (fresh interpreters, children of the bench
process, so their CPU time is the run's), never forked: the bench process has threads (the peers, the pipeline),
which a fork would copy mid-flight. Workers ignore SIGINT (the operator's Ctrl-C is the bench's to handle), die
with the bench process however it ends (:func:`_die_with_parent`), and run numpy's and OpenCV's thread pools at
one thread: the parallelism is the pool's.

References
----------
Linux ``prctl(2)``, ``PR_SET_PDEATHSIG`` (https://man7.org/linux/man-pages/man2/prctl.2.html): "the parent"
is the thread that created the child.
Python documentation, ``concurrent.futures.ProcessPoolExecutor`` and ``multiprocessing`` contexts
(https://docs.python.org/3.11/library/multiprocessing.html#contexts-and-start-methods): "spawn" starts a fresh
interpreter; "fork" copies the parent, whose other threads' locks stay held in the child.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.spawn
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class WorkerFailure(RuntimeError):
    """An error of a worker that cannot cross the process boundary as itself (its class does not unpickle)."""


def run_in_worker(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a worker; an exception that would not unpickle in the parent becomes a
    :class:`WorkerFailure` with its type and message (else the parent would see a broken pool, not the error)."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            raise WorkerFailure(f"{type(exc).__name__}: {exc}") from None
        raise


PARENT_CHECK_S = 1.0
"""How often a worker looks whether the bench process still lives (s)."""


def _die_with_parent() -> None:
    """End this worker once the bench process is gone: a thread that looks at the parent's pid every second.

    A pool's workers all hold the write end of their shared call queue, so a bench process killed outright (or
    ended with ``os._exit``) left them waiting on it forever, orphaned, ~150 MB each. Linux's
    ``PR_SET_PDEATHSIG`` would not do: it fires when the *thread* that started the worker ends, and the bench
    starts workers from threads that come and go (a phone session's, the analysis pool's).
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker_start(niceness: int, imports: tuple[str, ...]) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if niceness:
        os.nice(niceness)
    import cv2
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(1)
    threadpool_limits(limits=1)
    for module in imports:
        importlib.import_module(module)


def warm() -> None:
    """Nothing: a first job that makes a worker start (and import its pool's modules) before the first real one."""


def can_spawn() -> bool:
    """Whether this user may execute the interpreter a spawned worker (and multiprocessing's resource tracker)
    would run: checked first, because a tracker that cannot start warns on stderr, which a command's one-line
    error must not carry (an unprivileged run whose Python lives under another user's home)."""
    executable = multiprocessing.spawn.get_executable()
    return executable is not None and os.access(executable, os.X_OK)


_pools: dict[tuple[str, int], ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


def shared_pool(name: str, processes: int, *, niceness: int = 0, imports: tuple[str, ...] = ()) -> Executor:
    """The process-wide pool ``name`` of ``processes`` spawned workers (started on first use), each ``niceness``
    below the bench process's scheduling priority (``nice(2)``: work that may wait while the bench drives its
    devices), each importing the modules ``imports`` as it starts. Started early (a :func:`warm` task each), every
    worker then has them loaded before its first real task, whichever worker takes it: a warm-up task alone
    would reach only the worker that took it. Niceness and imports are fixed when the pool is first made.

    Raises OSError (PermissionError) where no process may be started; callers then do the work themselves.
    """
    with _pools_lock:
        pool = _pools.get((name, processes))
        if pool is None:
            pool = ProcessPoolExecutor(
                max_workers=processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_start,
                initargs=(niceness, imports),
            )
            _pools[(name, processes)] = pool
        return pool


def drop_pool(pool: Executor) -> None:
    """Forget a pool whose worker died (killed, out of memory): the next :func:`shared_pool` starts a new one."""
    with _pools_lock:
        for key, value in list(_pools.items()):
            if value is pool:
                del _pools[key]
    pool.shutdown(wait=False, cancel_futures=True)
