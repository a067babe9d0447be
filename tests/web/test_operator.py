"""The web operator believes the phone, not the click; prompts travel over the real pipes to the plan process."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from rig.config.lenses import load_lens_catalog
from rig.errors import DeviceStateError, DeviceTimeout
from rig.spec.types import ActiveSensor, LensState
from rig.web.channel import OperatorAborted, PlanSide, Reply, open_pipes
from rig.web.operator import WebOperator

LENSES = load_lens_catalog()
SUMMILUX = LENSES.get("summilux-m-35-f1.4-asph-2022")


@dataclass
class BayonetPhone:
    """Only what the operator reads of a phone: the lens state, as a phone's events would set it."""

    state: LensState = field(default_factory=lambda: LensState(False, None, ActiveSensor.MAIN))

    def lens_state(self) -> LensState:
        return self.state


@dataclass
class Clicks:
    """A prompter whose operator confirms everything at once (and does, or does not, touch the bench)."""

    on_click: object = None
    asked: list[str] = field(default_factory=list)

    def ask(self, action: str, text: str, *, timeout_s: float) -> bool:
        self.asked.append(text)
        if callable(self.on_click):
            self.on_click()
        return True


def test_confirmed_but_no_lens_on_the_phone_times_out() -> None:
    operator = WebOperator(BayonetPhone(), LENSES, Clicks(), phone_timeout_s=0.2)
    with pytest.raises(DeviceTimeout, match="attached=False"):
        operator.mount_lens(SUMMILUX.id)


def test_confirmed_with_the_wrong_lens_is_caught() -> None:
    phone = BayonetPhone()
    wrong_code = (SUMMILUX.lens_code or 0) + 1

    def mount_wrong() -> None:
        phone.state = LensState(True, wrong_code, ActiveSensor.M_MOUNT, attached_at_ms=10.0, sensor_switched_at_ms=20.0)

    operator = WebOperator(phone, LENSES, Clicks(on_click=mount_wrong), phone_timeout_s=1.0)
    with pytest.raises(DeviceStateError, match=f"code {wrong_code}"):
        operator.mount_lens(SUMMILUX.id)


def test_the_right_lens_seen_by_the_phone_is_believed() -> None:
    phone = BayonetPhone()

    def mount_right() -> None:
        phone.state = LensState(
            True, SUMMILUX.lens_code, ActiveSensor.M_MOUNT, attached_at_ms=10.0, sensor_switched_at_ms=20.0
        )

    clicks = Clicks(on_click=mount_right)
    WebOperator(phone, LENSES, clicks, phone_timeout_s=1.0).mount_lens(SUMMILUX.id)
    assert clicks.asked == [f"Mount {SUMMILUX.name} on the bayonet"]


def _plan_side(spec: str) -> PlanSide:
    import os

    read_fd, write_fd = (int(p) for p in spec.split(","))
    side = PlanSide(events=os.fdopen(write_fd, "w", buffering=1), replies=os.fdopen(read_fd, "r"))
    threading.Thread(target=side._read_replies, daemon=True).start()
    return side


def test_prompt_confirm_and_abort_over_the_pipes() -> None:
    server, spec, _fds = open_pipes()
    plan = _plan_side(spec)
    events: list[dict] = []

    def answer(event: dict) -> None:
        events.append(event)
        if event["event"] == "prompt" and event["prompt"] == 1:
            server.send(Reply.CONFIRM, prompt=1)
        elif event["event"] == "prompt" and event["prompt"] == 2:
            server.send(Reply.ABORT)

    pump = threading.Thread(target=server.pump, args=(answer,), daemon=True)
    pump.start()
    assert plan.ask("mount_lens", "Mount it", timeout_s=10) is True
    with pytest.raises(OperatorAborted, match="aborted by the operator"):
        plan.ask("remount_lens", "Again", timeout_s=10)
    plan.events.close()
    pump.join(timeout=10)
    assert [(e["event"], e.get("prompt")) for e in events] == [
        ("prompt", 1),
        ("prompt_done", 1),
        ("prompt", 2),
        ("prompt_done", 2),
    ]
    assert plan.aborted


def test_a_shim_recipe_is_one_instruction_per_screw_and_needs_the_lens_off() -> None:
    from rig.spec.shims import ScrewShims, ShimPlan

    plan = ShimPlan((ScrewShims("A", (50.0, 20.0), -30.0), ScrewShims("B", (), -100.0)))
    applied: list[ShimPlan] = []

    class Hands:
        def apply_shims(self, p: ShimPlan) -> None:
            applied.append(p)

    phone, clicks = BayonetPhone(), Clicks()
    operator = WebOperator(phone, LENSES, clicks, hands=Hands())  # type: ignore[arg-type]
    operator.apply_shims(plan)
    assert clicks.asked and "screw A: 50 + 20 µm = 70 µm (-30 µm)" in clicks.asked[-1]
    assert "screw B: no shim = 0 µm (-100 µm)" in clicks.asked[-1]
    assert applied == [plan]  # on a twin, the twin's hands then act
    phone.state = LensState(True, SUMMILUX.lens_code, ActiveSensor.M_MOUNT)
    with pytest.raises(DeviceStateError, match="remove it first"):
        operator.apply_shims(plan)
