"""The operator at a station screen: a full-width instruction with one confirm button, then the phone decides.

Like :class:`rig.devices.console_operator.ConsoleOperator`, a confirmation is not believed: after the click the
operator waits until the phone itself reports the lens (attached, the expected 6-bit lens code, the M-mount
sensor live) or its removal, so a wrong lens or none is caught. The aperture ring has no contacts, so there the
click is the only evidence (as on the console).

On a twin station the twin's hands are wrapped: the prompt appears, the click confirms, then the wrapped twin
operator performs the action on the simulated bench, and the phone peer reports it as it would a real lens.
"""

from __future__ import annotations

from typing import Protocol

from rig.bench.procedures import wait_for_sensor
from rig.config.lenses import LensCatalog
from rig.devices.protocols import Operator, Phone
from rig.errors import ArgumentError, DeviceStateError, DeviceTimeout
from rig.spec.shims import ShimPlan


class Prompter(Protocol):
    def ask(self, action: str, text: str, *, timeout_s: float) -> bool:
        """Show ``text``; True once confirmed, False when ``timeout_s`` passed without an answer."""


class WebOperator:
    """Satisfies :class:`rig.devices.protocols.Operator` with prompts on the station screen."""

    def __init__(
        self,
        phone: Phone,
        lenses: LensCatalog,
        prompter: Prompter,
        *,
        hands: Operator | None = None,
        confirm_timeout_s: float = 600.0,
        phone_timeout_s: float = 10.0,
    ) -> None:
        self._phone = phone
        self._lenses = lenses
        self._prompter = prompter
        self._hands = hands
        self._confirm_timeout_s = confirm_timeout_s
        self._phone_timeout_s = phone_timeout_s
        self._lens_id: str | None = None

    def _ask(self, action: str, text: str) -> None:
        if not self._prompter.ask(action, text, timeout_s=self._confirm_timeout_s):
            raise DeviceTimeout(f"operator: no confirmation of {text!r} within {self._confirm_timeout_s:.0f} s")

    def _check_code(self, lens_id: str, code: int | None) -> None:
        spec = self._lenses.get(lens_id, source="operator", field="lens")
        if spec.lens_code is not None and code != spec.lens_code:
            raise DeviceStateError(
                f"operator mounted a lens with code {code}, expected {spec.name} (code {spec.lens_code})"
            )

    def mount_lens(self, lens_id: str) -> None:
        spec = self._lenses.get(lens_id, source="operator", field="lens")
        self._ask("mount_lens", f"Mount {spec.name} on the bayonet")
        if self._hands is not None:
            self._hands.mount_lens(lens_id)
        state = wait_for_sensor(self._phone, attached=True, timeout_s=self._phone_timeout_s)
        self._check_code(lens_id, state.lens_code)
        self._lens_id = lens_id

    def unmount_lens(self) -> None:
        self._ask("unmount_lens", "Remove the lens from the bayonet")
        if self._hands is not None:
            self._hands.unmount_lens()
        wait_for_sensor(self._phone, attached=False, timeout_s=self._phone_timeout_s)

    def remount_lens(self) -> None:
        lens_id = self._lens_id or self._mounted_lens_id()
        spec = self._lenses.get(lens_id, source="operator", field="lens")
        before = self._phone.lens_state().attached_at_ms
        self._ask("remount_lens", f"Take {spec.name} off and mount it again")
        if self._hands is not None:
            self._hands.remount_lens()
        # a remount can be quicker than the phone's poll: the new attach time is what shows it happened
        state = wait_for_sensor(self._phone, attached=True, timeout_s=self._phone_timeout_s, after_ms=before)
        self._check_code(lens_id, state.lens_code)

    def set_aperture(self, f_number: float) -> None:
        lens_id = self._lens_id or self._mounted_lens_id()
        marked = self._lenses.get(lens_id, source="operator", field="lens").f_numbers
        if not any(abs(f_number - n) < 1e-6 for n in marked):
            raise ArgumentError(f"aperture f/{f_number:g}: expected one of the lens's marked stops {marked}")
        self._ask("set_aperture", f"Set the aperture ring to f/{f_number:g}")
        if self._hands is not None:
            self._hands.set_aperture(f_number)

    def apply_shims(self, plan: ShimPlan) -> None:
        """The shim recipe as one full-width instruction (a line per screw); the lens must be off, as the phone says."""
        if self._phone.lens_state().attached:
            raise DeviceStateError("apply_shims: the phone still reports a lens on the bayonet; remove it first")
        steps = "; ".join(screw.instruction() for screw in plan.screws)
        self._ask("apply_shims", f"Re-shim the bayonet (loosen, set the shims, tighten to torque): {steps}")
        if self._hands is not None:
            self._hands.apply_shims(plan)

    def _mounted_lens_id(self) -> str:
        """The catalog lens whose code the phone reports (a lens mounted before this run, e.g. on resume)."""
        state = self._phone.lens_state()
        if not state.attached:
            raise DeviceStateError("no lens on the bayonet")
        matches = [spec.id for spec in self._lenses.lens if spec.lens_code == state.lens_code]
        if len(matches) != 1:
            raise DeviceStateError(f"the phone reports lens code {state.lens_code}: not one catalog lens ({matches})")
        return matches[0]
