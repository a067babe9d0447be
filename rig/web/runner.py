"""One station's plan runs, as the station server sees them: start, follow, confirm prompts, abort, resume.

Each run is a child process running the ``rig`` command itself (``python -m rig signoff --json …``), so the
station screen runs a plan through exactly the code path of the command line: the same option validation, the
same pytest plugin, the same record, report and results store. A process per run isolates runs from the server
(a crash or a hung device cannot take the screen down) and makes Abort reliable; the price is a channel for the
operator's prompts, two pipes (:mod:`rig.web.channel`) read by one thread per run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from rig.bench.recording import RECORD_FILE, new_run_id
from rig.errors import ArgumentError
from rig.results.record import RunRecord, utcnow
from rig.web.channel import CHANNEL_ENV, UNATTENDED_ENV, Event, Reply, ServerSide, open_pipes

PLAN_COMMANDS = {"signoff": "signoff", "calibration": "calibrate", "certification": "certify"}
KILL_AFTER_ABORT_S = 60.0
NEXT_ACTION = {
    "PASS": "Take the unit off the bench, put it in the PASS tray and scan the next serial.",
    "FAIL": "Put the unit in the rework tray with its report, then scan the next serial.",
    "ERROR": "The bench could not measure. Check the bench (lens, cables, chart), then press Resume.",
}


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"
    SKIP = "SKIP"


@dataclass(frozen=True)
class StepView:
    name: str
    state: StepState = StepState.PENDING
    seconds: float | None = None


@dataclass(frozen=True)
class Prompt:
    id: int
    action: str
    text: str


@dataclass(frozen=True)
class Failure:
    """A figure that missed its limit, as the operator sees it."""

    name: str
    zone: str | None
    value: float | None
    unit: str
    low: float | None
    high: float | None
    error: str | None


@dataclass(frozen=True)
class BenchOutputs:
    """The bench's outputs once the run let go, as its controller reported them (None: could not tell)."""

    light_off: bool | None
    knocker_off: bool | None
    report: str = ""
    errors: tuple[str, ...] = ()

    @property
    def safe(self) -> bool:
        return bool(self.light_off) and bool(self.knocker_off)


@dataclass
class RunView:
    """Everything the operator screen shows of the current (or last) run."""

    run_id: str
    plan: str
    unit_serial: str
    lens: str | None
    twin_unit: str | None
    steps: list[StepView] = field(default_factory=list)
    prompt: Prompt | None = None
    running: bool = True
    aborting: bool = False
    verdict: str | None = None
    failures: list[Failure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    log_tail: list[str] = field(default_factory=list)
    bench: BenchOutputs | None = None

    @property
    def current_step(self) -> int | None:
        """1-based number of the step running now."""
        for i, step in enumerate(self.steps):
            if step.state is StepState.RUNNING:
                return i + 1
        return None

    @property
    def next_action(self) -> str:
        return NEXT_ACTION.get(self.verdict or "", "")


@dataclass(frozen=True)
class StartRequest:
    plan: str
    unit_serial: str
    lens: str | None = None
    twin_unit: str | None = None
    operator: str = ""
    resume: str | None = None


class StationRunner:
    """Runs one plan at a time on this station and keeps its :class:`RunView` current.

    ``on_change`` is called (from the run's thread) after every change, e.g. to publish the station's state.
    """

    def __init__(
        self,
        station_file: Path,
        reports_dir: Path,
        *,
        store_url: str | None = None,
        python: str = sys.executable,
        on_change: Callable[[RunView | None], None] | None = None,
        unattended: bool = False,
    ) -> None:
        self.station_file = station_file
        self.reports_dir = reports_dir
        self.store_url = store_url
        self.python = python
        self.on_change = on_change
        self.unattended = unattended
        self._lock = threading.Lock()
        self._view: RunView | None = None
        self._process: subprocess.Popen[str] | None = None
        self._channel: ServerSide | None = None
        self.version = 0

    # ------------------------------------------------------------------ reading
    def view(self) -> RunView | None:
        with self._lock:
            return None if self._view is None else replace(self._view, steps=list(self._view.steps))

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._view is not None and self._view.running

    # ------------------------------------------------------------------ commands
    def start(self, request: StartRequest) -> str:
        """Start a run (or resume one); returns its run id. One run at a time: a second start is refused."""
        if request.plan not in PLAN_COMMANDS:
            raise ArgumentError(f"plan {request.plan!r}: expected one of {', '.join(PLAN_COMMANDS)}")
        with self._lock:
            if self._view is not None and self._view.running:
                raise ArgumentError(f"station busy with run {self._view.run_id}")
            run_id = request.resume or new_run_id(request.unit_serial, request.plan, utcnow())
            steps: list[StepView] = []
            if request.resume:
                steps = self._done_steps(run_id)
            self._view = RunView(
                run_id=run_id,
                plan=request.plan,
                unit_serial=request.unit_serial,
                lens=request.lens,
                twin_unit=request.twin_unit,
                steps=steps,
            )
            channel, spec, child_fds = open_pipes()
            env = dict(os.environ, PYTEST_PLUGINS="rig.web.runplugin", **{CHANNEL_ENV: spec})
            if self.unattended:
                env[UNATTENDED_ENV] = "1"
            try:
                process = subprocess.Popen(
                    self._command(request, run_id),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                    pass_fds=child_fds,
                    start_new_session=True,  # a Ctrl-C at the server's terminal is not the operator's Abort
                )
            finally:
                for fd in child_fds:
                    os.close(fd)
            self._process, self._channel = process, channel
        threading.Thread(target=self._follow, args=(process, channel), name=f"run-{run_id}", daemon=True).start()
        self._changed()
        return run_id

    def confirm(self, prompt_id: int) -> bool:
        with self._lock:
            view, channel = self._view, self._channel
            if view is None or view.prompt is None or view.prompt.id != prompt_id or channel is None:
                return False
        channel.send(Reply.CONFIRM, prompt=prompt_id)
        with self._lock:  # answered: the screen stops showing it at once, not when the plan process says so
            if self._view is not None and self._view.prompt is not None and self._view.prompt.id == prompt_id:
                self._view.prompt = None
        self._changed()
        return True

    def abort(self) -> bool:
        with self._lock:
            view, channel, process = self._view, self._channel, self._process
            if view is None or not view.running or channel is None or process is None:
                return False
            view.aborting = True
        channel.send(Reply.ABORT)
        # a step that never reaches a prompt or its end (a hung device) still lets go, the hard way
        timer = threading.Timer(KILL_AFTER_ABORT_S, lambda: process.poll() is None and process.kill())
        timer.daemon = True
        timer.start()
        self._changed()
        return True

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no run is going and its result is in the view (for tests and shutdown)."""
        done = threading.Event()
        while self.busy:
            if timeout_s <= 0:
                return False
            done.wait(0.05)
            timeout_s -= 0.05
        return True

    def shutdown(self) -> None:
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    # ------------------------------------------------------------------ internals
    def _command(self, request: StartRequest, run_id: str) -> list[str]:
        command = [self.python, "-m", "rig", PLAN_COMMANDS[request.plan], "--json"]
        command += ["--station", str(self.station_file), "--reports", str(self.reports_dir)]
        command += ["--unit-serial", request.unit_serial]
        if request.resume:
            command += ["--resume", run_id]
        else:
            command += ["--run-id", run_id]
        for flag, value in (
            ("--lens", request.lens),
            ("--unit", request.twin_unit),
            ("--operator", request.operator),
            ("--store", self.store_url),
        ):
            if value:
                command += [flag, value]
        return command

    def _done_steps(self, run_id: str) -> list[StepView]:
        path = self.reports_dir / run_id / RECORD_FILE
        if not path.is_file():
            raise ArgumentError(f"resume {run_id}: no run record at {path}")
        record = RunRecord.load(path)
        return [
            StepView(s.name, StepState(s.verdict.value), round((s.ended - s.started).total_seconds(), 2))
            for s in record.steps
            if s.verdict.value != "ERROR"
        ]

    def _changed(self) -> None:
        with self._lock:
            self.version += 1
        if self.on_change is not None:
            self.on_change(self.view())

    def _on_event(self, message: dict[str, Any]) -> None:
        kind = Event(message["event"])
        with self._lock:
            view = self._view
            if view is None:
                return
            if kind is Event.PLAN:
                done = [s for s in view.steps if s.state not in (StepState.PENDING, StepState.RUNNING)]
                view.steps = done + [StepView(name) for name in message["steps"]]
            elif kind is Event.STEP_START:
                view.steps = [
                    replace(s, state=StepState.RUNNING)
                    if s.name == message["name"] and s.state is StepState.PENDING
                    else s
                    for s in view.steps
                ]
            elif kind is Event.STEP_END:
                view.steps = [
                    replace(s, state=StepState(message["verdict"]), seconds=message["seconds"])
                    if s.name == message["name"] and s.state is StepState.RUNNING
                    else s
                    for s in view.steps
                ]
            elif kind is Event.PROMPT:
                view.prompt = Prompt(int(message["prompt"]), message["action"], message["text"])
            elif kind is Event.PROMPT_DONE and view.prompt is not None and view.prompt.id == message["prompt"]:
                view.prompt = None
            elif kind is Event.BENCH_OUTPUTS:
                view.bench = BenchOutputs(
                    message["light_off"], message["knocker_off"], message["report"], tuple(message["errors"])
                )
        self._changed()

    def _follow(self, process: subprocess.Popen[str], channel: ServerSide) -> None:
        tail: deque[str] = deque(maxlen=20)
        assert process.stderr is not None and process.stdout is not None
        drain = threading.Thread(target=lambda: tail.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
        drain.start()
        try:
            channel.pump(self._on_event)
        finally:
            channel.close()
        out = process.stdout.read()
        process.wait()
        drain.join(timeout=5)
        self._finish(out, list(tail))

    def _finish(self, stdout: str, log_tail: list[str]) -> None:
        with self._lock:
            view = self._view
            if view is None:
                return
            record_path = self.reports_dir / view.run_id / RECORD_FILE
            record = RunRecord.load(record_path) if record_path.is_file() else None
            view.running = False
            view.prompt = None
            view.log_tail = [line.rstrip() for line in log_tail]
            if record is None or record.verdict is None:
                view.verdict = "ERROR"
                view.errors = [_last_error(stdout, log_tail)]
            else:
                view.verdict = record.verdict.value
                view.failures = [
                    Failure(m.name, m.zone, m.value, m.unit, m.low, m.high, m.error)
                    for m in record.measurements
                    if m.verdict.value in ("FAIL", "ERROR")
                ]
                view.errors = [s.error or s.name for s in record.steps if s.verdict.value == "ERROR"]
                by_name = {s.name: s for s in record.steps}
                view.steps = [
                    StepView(
                        s.name,
                        StepState(by_name[s.name].verdict.value),
                        round((by_name[s.name].ended - by_name[s.name].started).total_seconds(), 2),
                    )
                    if s.name in by_name
                    else s
                    for s in view.steps
                ]
            self._process = None
            self._channel = None
        self._changed()


def _last_error(stdout: str, log_tail: list[str]) -> str:
    try:
        summary = json.loads(stdout)
        if summary.get("errors"):
            return str(summary["errors"][-1])
    except (json.JSONDecodeError, AttributeError):
        pass
    return log_tail[-1].strip() if log_tail else "the plan process ended without a run record"
