"""Exclusive locks of a run and of a unit on a station, so two processes never write one run folder.

A lock is an advisory ``flock`` on a small file under ``REPORTS/.locks/`` that also holds the owner's pid, host and
start time (for the refusal message). The kernel drops a ``flock`` when its process dies, so a ``kill -9`` never
leaves a stale lock behind; the file's text is only a description of the last owner.

Locks are re-entrant within one process: the ``rig`` command takes them in its up-front check, and the pytest
plugin, running in the same process, takes the same ones again without blocking itself.

References
----------
Linux ``flock(2)``: locks belong to the open file description and are released when every descriptor of it is
closed, which includes the process exiting for any reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from rig.errors import RunBusyError
from rig.results.record import utcnow

LOCKS_DIR = ".locks"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class RunLock:
    """One held lock (an open descriptor with ``LOCK_EX``)."""

    path: Path
    fd: int
    what: str

    def release(self) -> None:
        with _GUARD:
            if _HELD.get(self.path) is self:
                del _HELD[self.path]
        with contextlib.suppress(OSError):
            os.close(self.fd)


_HELD: dict[Path, RunLock] = {}
_GUARD = threading.Lock()


def lock_path(reports_dir: Path, kind: str, *names: str) -> Path:
    """``REPORTS/.locks/<kind>--<name>--….lock`` (names reduced to file-name characters)."""
    safe = "--".join(_UNSAFE.sub("_", n) for n in names)
    return reports_dir / LOCKS_DIR / f"{kind}--{safe}.lock"


def unit_lock_path(reports_dir: Path, station: str, serial: str) -> Path:
    """The lock of ``serial`` on ``station``: one sign-off (or resume) of a unit at a time."""
    return lock_path(reports_dir, "unit", station, serial)


def run_lock_path(reports_dir: Path, run_id: str) -> Path:
    """The lock of one run folder: one process writes it at a time."""
    return lock_path(reports_dir, "run", run_id)


def acquire(path: Path, what: str) -> RunLock:
    """Take the lock at ``path`` or raise :class:`RunBusyError` naming ``what`` and its current owner.

    Already held by this process: the same lock is returned.
    """
    path = path.absolute()
    with _GUARD:
        held = _HELD.get(path)
        if held is not None:
            return held
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner(fd)
            os.close(fd)
            raise RunBusyError(f"{what} is in progress ({owner}): refused, wait for it to end") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {utcnow().isoformat()}\n".encode())
        lock = RunLock(path, fd, what)
        _HELD[path] = lock
        return lock


def probe(path: Path, what: str) -> None:
    """Raise :class:`RunBusyError` if another process holds the lock at ``path`` (takes nothing)."""
    path = path.absolute()
    with _GUARD:
        if path in _HELD or not path.is_file():
            return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunBusyError(f"{what} is in progress ({_owner(fd)}): refused, wait for it to end") from None
    finally:
        os.close(fd)


def release_all() -> None:
    """Release every lock this process holds (the end of a plan session)."""
    with _GUARD:
        locks = list(_HELD.values())
    for lock in locks:
        lock.release()


def _owner(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "owner unknown"
