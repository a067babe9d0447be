"""Bounded retries with backoff for idempotent bench operations, each one recorded (issue #8).

Only operations that can be repeated safely are retried: an absolute move, a capture, a property write, a
reconnect. What happened is kept in :class:`RetryLog` so the step's record says how often the bench stumbled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from rig.errors import DeviceError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class RetryLog:
    events: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.events)

    def clear(self) -> None:
        self.events.clear()


def with_retries(
    action: Callable[[], T],
    *,
    what: str,
    log_to: RetryLog,
    attempts: int = 3,
    backoff_s: float = 0.2,
    retry_on: tuple[type[DeviceError], ...] = (DeviceError,),
    before_retry: Callable[[DeviceError], None] | None = None,
) -> T:
    """Run ``action``; on an error in ``retry_on`` call ``before_retry`` (e.g. reconnect) and try again.

    The delay doubles after each failure (``backoff_s``, 2·``backoff_s`` …). After ``attempts`` failures the last
    error propagates (the step then ends as ERROR with it).
    """
    if attempts < 1:
        raise ValueError(f"attempts ≥ 1, got {attempts}")
    delay = backoff_s
    last: DeviceError | None = None
    for attempt in range(1, attempts + 1):
        try:
            if last is not None and before_retry is not None:
                before_retry(last)
            return action()
        except retry_on as exc:
            if attempt == attempts:
                raise
            last = exc
            log_to.events.append(f"{what}: attempt {attempt} failed ({type(exc).__name__}: {exc}); retrying")
            log.warning("%s: attempt %d/%d failed: %s", what, attempt, attempts, exc)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover
