"""The twin's one clock: every peer and the bench state read simulated time from it.

A real bench lives on the wall clock; the twin's peers (GRBL motion, the phone's exposure and events, the mount's
ringing) and :class:`~rig.twin.state.BenchState` read time only through a :class:`Clock`, so a test can drive
them on a :class:`ManualClock` and assert exact durations whatever the machine's load is.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Monotonic time in ns and a way to let it pass."""

    def now_ns(self) -> int: ...

    def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` of this clock's time have passed (at least)."""


class SystemClock:
    """The machine's monotonic clock (real time)."""

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock that moves only when told (:meth:`advance`); :meth:`sleep` blocks until others advance it far enough.

    With ``auto_advance=True`` a sleep advances the clock itself instead (a single-threaded simulation).
    """

    def __init__(self, start_ns: int = 0, *, auto_advance: bool = False) -> None:
        self._now_ns = start_ns
        self._auto = auto_advance
        self._changed = threading.Condition()

    def now_ns(self) -> int:
        with self._changed:
            return self._now_ns

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock advances forward, not by {seconds} s")
        with self._changed:
            self._now_ns += round(seconds * 1e9)
            self._changed.notify_all()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._auto:
            self.advance(seconds)
            return
        with self._changed:
            until = self._now_ns + round(seconds * 1e9)
            while self._now_ns < until:
                self._changed.wait()


SYSTEM_CLOCK = SystemClock()
