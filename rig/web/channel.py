"""The pipes between a station server and the plan process it started: JSON lines, one message per line.

The plan process writes events (plan, step start/end, prompt, prompt answered) to one pipe and reads replies
(a prompt confirmed, abort) from the other. Pipes, not a socket: nothing listens, so nothing else can answer a
prompt, and they close by themselves when either side dies. Their descriptors travel in ``RIG_WEB_CHANNEL``
("READ_FD,WRITE_FD" as seen by the plan process).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TextIO

from rig.errors import DeviceError

CHANNEL_ENV = "RIG_WEB_CHANNEL"
UNATTENDED_ENV = "RIG_WEB_UNATTENDED"  # twin only: the twin's hands act without asking the screen


class Event(StrEnum):
    """What the plan process tells the station server."""

    PLAN = "plan"  # the steps this run will execute, in order
    STEP_START = "step_start"
    STEP_END = "step_end"
    PROMPT = "prompt"  # an instruction for the operator, waiting for the confirm button
    PROMPT_DONE = "prompt_done"  # the prompt was answered (or abandoned)
    BENCH_OUTPUTS = "bench_outputs"  # light and knocker as the controller reports them once the run let go


class Reply(StrEnum):
    """What the station server tells the plan process."""

    CONFIRM = "confirm"
    ABORT = "abort"


class OperatorAborted(DeviceError):
    """The operator pressed Abort. Raised in the plan process: the step ends as ERROR and the run stops there."""


@dataclass
class PlanSide:
    """The plan process's end: send events, wait for the confirmation of a prompt, learn of an abort."""

    events: TextIO
    replies: TextIO
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _confirmed: set[int] = field(default_factory=set)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    aborted: bool = False
    closed: bool = False
    _next_prompt: int = 0

    @classmethod
    def from_env(cls) -> PlanSide | None:
        spec = os.environ.get(CHANNEL_ENV)
        if not spec:
            return None
        read_fd, write_fd = (int(part) for part in spec.split(","))
        side = cls(events=os.fdopen(write_fd, "w", buffering=1), replies=os.fdopen(read_fd, "r"))
        threading.Thread(target=side._read_replies, name="rig-web-replies", daemon=True).start()
        return side

    def send(self, event: Event, **data: Any) -> None:
        with self._lock:
            try:
                self.events.write(json.dumps({"event": event.value, **data}) + "\n")
                self.events.flush()
            except (BrokenPipeError, ValueError):  # the station server went away: the run goes on, unseen
                self.closed = True

    def _read_replies(self) -> None:
        for line in self.replies:
            message = json.loads(line)
            with self._changed:
                if message["reply"] == Reply.ABORT:
                    self.aborted = True
                elif message["reply"] == Reply.CONFIRM:
                    self._confirmed.add(int(message["prompt"]))
                self._changed.notify_all()
        with self._changed:  # the server is gone: nobody can confirm any more
            self.closed = True
            self._changed.notify_all()

    def ask(self, action: str, text: str, *, timeout_s: float) -> bool:
        """Show ``text`` to the operator and wait for the confirm button: True when confirmed, False on timeout.

        Raises :class:`OperatorAborted` when the operator aborts (or the server goes away) meanwhile.
        """
        with self._changed:
            self._next_prompt += 1
            prompt = self._next_prompt
        self.send(Event.PROMPT, prompt=prompt, action=action, text=text)
        try:
            with self._changed:
                done = self._changed.wait_for(
                    lambda: prompt in self._confirmed or self.aborted or self.closed, timeout=timeout_s
                )
                if self.aborted or self.closed:
                    raise OperatorAborted("aborted by the operator" if self.aborted else "the station server went away")
                return bool(done)
        finally:
            self.send(Event.PROMPT_DONE, prompt=prompt)


@dataclass
class ServerSide:
    """The station server's end: read the plan process's events on a thread, send confirmations and abort."""

    events: TextIO
    replies: TextIO
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, reply: Reply, **data: Any) -> None:
        with self._lock:
            try:
                self.replies.write(json.dumps({"reply": reply.value, **data}) + "\n")
                self.replies.flush()
            except (BrokenPipeError, ValueError):  # the plan process has ended
                pass

    def pump(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        """Call ``on_event`` for each event until the plan process closes its end."""
        for line in self.events:
            if line.strip():
                on_event(json.loads(line))

    def close(self) -> None:
        for stream in (self.events, self.replies):
            with contextlib.suppress(OSError):
                stream.close()


def open_pipes() -> tuple[ServerSide, str, tuple[int, int]]:
    """Two pipes: the server's end, the ``RIG_WEB_CHANNEL`` value for the child, and the child's descriptors
    (pass them with ``pass_fds`` and close them in the parent after the child has started)."""
    events_r, events_w = os.pipe()
    replies_r, replies_w = os.pipe()
    server = ServerSide(events=os.fdopen(events_r, "r"), replies=os.fdopen(replies_w, "w", buffering=1))
    return server, f"{replies_r},{events_w}", (replies_r, events_w)
