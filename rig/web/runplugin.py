"""The pytest plugin a station server adds to the plan process (``PYTEST_PLUGINS=rig.web.runplugin``).

The plan runs exactly as ``rig signoff`` runs it; this plugin only (1) tells the station server which steps run
and when each starts and ends, (2) puts a :class:`~rig.web.operator.WebOperator` in front of the bench's operator
so its instructions appear on the station screen, and (3) stops the run when the operator presses Abort: the
step being prompted (or the next one to start) ends as ERROR "aborted by the operator", no later step runs, and
the run can be resumed like any ERROR run. Without ``RIG_WEB_CHANNEL`` in the environment it does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

from rig.web.channel import UNATTENDED_ENV, Event, OperatorAborted, PlanSide

_SIDE: PlanSide | None = None
_SESSION: pytest.Session | None = None
ABORT_REASON = "aborted by the operator"


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
    if _SIDE.aborted and _SESSION is not None:
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
