"""Worker processes of :mod:`rig.workers`: they end with the bench process, however it ends, and start with
their pool's modules imported.

Ground truth for the first is the kernel's process table (``/proc``): the worker of a bench process that ended
with ``os._exit`` (no pool shutdown, as after SIGKILL) must be gone, or a zombie, within a few of its parent
checks; for the second, the worker's own ``sys.modules``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from rig.workers import PARENT_CHECK_S, drop_pool, shared_pool

CHILD = """
import os
from rig.workers import shared_pool
pool = shared_pool("orphan-test", 1)
print(pool.submit(os.getpid).result(timeout=60), flush=True)
os._exit(0)  # no shutdown: the workers are left as after a SIGKILL
"""


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "zombie" not in state and "(dead)" not in state


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the Linux process table")
@pytest.mark.timeout(120)
def test_a_worker_ends_when_its_bench_process_is_gone() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=90, check=True)
    worker = int(done.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 20 * PARENT_CHECK_S  # a bound for a loaded machine, not a speed figure
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), f"worker {worker} outlived its bench process"


LOADED = "'json.tool' in __import__('sys').modules"  # a module a fresh interpreter and rig.workers do not load


@pytest.mark.timeout(120)
def test_a_pools_workers_import_its_modules_before_their_first_task() -> None:
    """Whichever worker takes a task, the pool's modules are loaded before it (nothing here imports them in the
    task); the pool without imports is the control: the same task there finds the module not loaded."""
    for name, imports, expected in (("imports-test", ("json.tool",), True), ("no-imports-test", (), False)):
        pool = shared_pool(name, 2, imports=imports)
        try:
            first_tasks = [pool.submit(eval, LOADED) for _ in range(2)]
            assert [task.result(timeout=90) for task in first_tasks] == [expected, expected], name
        finally:
            drop_pool(pool)
