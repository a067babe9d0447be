"""The pytest plugin a station server adds to the plan process (``PYTEST_PLUGINS=rig.web.runplugin``).

The plan runs exactly as ``rig signoff`` runs it; this plugin only (1) tells the station server which steps run
and when each starts and ends, (2) puts a :class:`~rig.web.operator.WebOperator` in front of the bench's operator
so its instructions appear on the station screen, and (3) stops the run when the operator presses Abort: the
step being prompted (or the next one to start) ends as ERROR "aborted by the operator", no later step runs, and
the run can be resumed like any ERROR run; (4) whatever ended the run (verdict, Abort, a fault), leaves the
bench safe before the devices close — light off, knocker output off — and reports what the controller itself
then says of its outputs (:func:`leave_bench_safe`). Without ``RIG_WEB_CHANNEL`` in the environment it does
nothing.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from rig.errors import RigError
from rig.web.channel import UNATTENDED_ENV, Event, OperatorAborted, PlanSide

if TYPE_CHECKING:
    from rig.bench.open import BenchDevices

_SIDE: PlanSide | None = None
_SESSION: pytest.Session | None = None
ABORT_REASON = "aborted by the operator"
OVERRIDE_REPORT_TRIES = 40
"""Status reports to read for one that carries ``Ov:`` (GRBL sends it every 10-20 reports, 30 at most)."""


def pytest_configure(config: pytest.Config) -> None:
    global _SIDE
    _SIDE = PlanSide.from_env()


def pytest_collection_finish(session: pytest.Session) -> None:
    if _SIDE is not None:
        _SIDE.send(Event.PLAN, steps=[item.name.removeprefix("test_") for item in session.items])


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _SIDE is not None and _SIDE.aborted:
        item.session.shouldstop = ABORT_REASON
        raise OperatorAborted(ABORT_REASON)  # recorded by the rig plugin as this step's ERROR


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    if _SIDE is not None:
        _SIDE.send(Event.STEP_START, name=location[2].removeprefix("test_"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _SIDE is None:
        return
    if _SIDE.aborted and _SESSION is not None and report.failed and ABORT_REASON in str(report.longrepr):
        # the step the abort cut short is the last; one that finished anyway lets the next step's setup
        # record the abort (pytest_runtest_setup) before the run stops
        _SESSION.shouldstop = ABORT_REASON
    if report.when == "call" or (report.when == "setup" and not report.passed):
        text = str(report.longrepr) if report.longrepr else ""
        if report.passed:
            verdict = "PASS"
        elif report.skipped:
            verdict = "SKIP"
        elif text.startswith("FAIL"):
            verdict = "FAIL"
        else:
            verdict = "ERROR"
        _SIDE.send(
            Event.STEP_END,
            name=report.nodeid.split("::")[-1].removeprefix("test_"),
            verdict=verdict,
            seconds=round(report.duration, 2),
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    global _SESSION
    _SESSION = session


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Put the screen in front of the bench's operator as soon as the bench is open (real or twin)."""
    value = yield
    if _SIDE is not None and fixturedef.argname == "bench_devices":
        side = _SIDE
        # added after the fixture's own teardown, so it runs first (LIFO): while the port is still open
        request.addfinalizer(lambda: side.send(Event.BENCH_OUTPUTS, **leave_bench_safe(value)))
    unattended = os.environ.get(UNATTENDED_ENV) == "1"
    if _SIDE is not None and fixturedef.argname == "bench_devices" and not (unattended and value.twin is not None):
        from rig.web.operator import WebOperator

        devices = value
        hands = devices.operator if devices.twin is not None else None  # at a real station the human has them
        devices.operator = WebOperator(
            devices.phone,
            request.getfixturevalue("lenses"),
            _SIDE,
            hands=hands,
            phone_timeout_s=devices.station.phone.lens_change_timeout_s,
        )
    return value


def leave_bench_safe(devices: BenchDevices) -> dict[str, Any]:
    """Switch the light (``M5``) and the knocker's coolant output (``M9``) off, then read the controller's outputs.

    The evidence is GRBL's own status report, not the commands sent: the spindle speed of ``FS:`` (the light's
    PWM) and the accessory field ``A:`` (S/C spindle, F flood = the knocker, M mist), which GRBL 1.1 prints only
    in a report that also carries the override values ``Ov:`` (gnea/grbl doc/markdown/interface.md, "Real-time
    Status Reports"; report.c), so reports are read until one does. A controller in alarm has its outputs off by
    GRBL's reset; what it reports is passed on either way.
    """
    from rig.devices.grbl import GrblStage
    from rig.spec.types import StageState

    errors: list[str] = []
    stage = devices.stage
    if not isinstance(stage, GrblStage):
        try:
            devices.light.off()
        except RigError as exc:
            errors.append(f"light: {exc}")
        return {"light_off": devices.light.level == 0, "knocker_off": None, "report": "", "errors": errors}
    controller = stage.controller
    try:
        if not controller.gcode_locked:  # locked = in alarm: GRBL's reset has switched its outputs off already
            devices.light.off()
            controller.command("M9")
        status = controller.status()
        for _ in range(OVERRIDE_REPORT_TRIES):
            if status.report.overrides_pct is not None or status.state is StageState.ALARM:
                break
            status = controller.status()
        else:
            errors.append(f"stage: no status report with Ov: in {OVERRIDE_REPORT_TRIES}, accessories unknown")
        known = status.report.overrides_pct is not None or status.state is StageState.ALARM
        accessories = set(status.report.accessories)
        return {
            "light_off": not (status.spindle or 0.0) and not accessories & {"S", "C"},
            "knocker_off": not accessories & {"F", "M"} if known else None,
            "report": status.raw,
            "errors": errors,
        }
    except RigError as exc:
        return {"light_off": None, "knocker_off": None, "report": "", "errors": [*errors, f"stage: {exc}"]}
