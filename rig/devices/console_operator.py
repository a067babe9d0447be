"""The operator at a real station: asks for a lens change and waits until the phone itself reports it.

No "press Enter when done": the condition is the phone's own lens state (attached, 6-bit code), polled with a
timeout, so an operator who mounts the wrong lens or none is caught, not believed. Only what the phone cannot see
(the aperture ring, the shims under the mount screws) is confirmed on the terminal; a shim recipe is checked by the
bench's re-measurement of flange and tilt afterwards (:mod:`rig.bench.rework`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from rig.config.lenses import LensCatalog
from rig.devices.protocols import Phone
from rig.errors import ArgumentError, DeviceStateError, DeviceTimeout
from rig.spec.shims import ShimPlan
from rig.spec.types import LensState


class ConsoleOperator:
    """Satisfies :class:`rig.devices.protocols.Operator` with prompts on the terminal."""

    def __init__(
        self,
        phone: Phone,
        lenses: LensCatalog,
        *,
        timeout_s: float = 180.0,
        poll_s: float = 0.25,
        out: TextIO | None = None,
        confirm: Callable[[], str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._phone = phone
        self._lenses = lenses
        self._timeout_s = timeout_s
        self._poll_s = poll_s
        self._out = out or sys.__stderr__ or sys.stderr
        self._clock = clock
        self._lens_id: str | None = None
        self._confirm = confirm or self._read_terminal

    def _read_terminal(self) -> str | None:
        """One line from the controlling terminal (pytest captures stdin), or None after the timeout."""
        import select

        try:
            with open("/dev/tty") as tty:
                ready, _, _ = select.select([tty], [], [], self._timeout_s)
                return tty.readline() if ready else None
        except OSError as exc:
            raise DeviceStateError(f"operator: no terminal to confirm on ({exc})") from None

    def _say(self, text: str) -> None:
        self._out.write(f"\n>>> OPERATOR: {text}\n")
        self._out.flush()

    def _wait(self, what: str, condition: Callable[[LensState], bool]) -> LensState:
        deadline = self._clock() + self._timeout_s
        while True:
            state = self._phone.lens_state()
            if condition(state):
                return state
            if self._clock() >= deadline:
                raise DeviceTimeout(f"operator: {what} not seen by the phone within {self._timeout_s:.0f} s")
            time.sleep(self._poll_s)

    def mount_lens(self, lens_id: str) -> None:
        spec = self._lenses.get(lens_id, source="operator", field="lens")
        self._say(f"mount {spec.name} on the bayonet (lens code {spec.lens_code})")
        state = self._wait(f"{spec.name} attached", lambda s: s.attached)
        if spec.lens_code is not None and state.lens_code != spec.lens_code:
            raise DeviceStateError(
                f"operator mounted a lens with code {state.lens_code}, expected {spec.name} (code {spec.lens_code})"
            )
        self._lens_id = lens_id

    def unmount_lens(self) -> None:
        self._say("remove the lens from the bayonet")
        self._wait("lens removed", lambda s: not s.attached)

    def set_aperture(self, f_number: float) -> None:
        """The ring has no contacts, so the phone cannot see it: the operator confirms on the terminal."""
        if self._lens_id is None:
            raise ArgumentError("set_aperture: no lens was mounted through the operator in this run")
        marked = self._lenses.get(self._lens_id, source="operator", field="lens").f_numbers
        if not any(abs(f_number - n) < 1e-6 for n in marked):
            raise ArgumentError(f"aperture f/{f_number:g}: expected one of the lens's marked stops {marked}")
        self._say(f"set the aperture ring to f/{f_number:g}, then press Enter")
        answer = self._confirm()
        if answer is None:
            raise DeviceTimeout(f"operator: no confirmation of f/{f_number:g} within {self._timeout_s:.0f} s")

    def apply_shims(self, plan: ShimPlan) -> None:
        """Show the shim stack for every screw and wait for Enter; the lens must already be off (the phone says)."""
        if self._phone.lens_state().attached:
            raise DeviceStateError("apply_shims: the phone still reports a lens on the bayonet; remove it first")
        lines = "\n".join(f"    {screw.instruction()}" for screw in plan.screws)
        self._say(
            f"re-shim the bayonet: loosen each screw, set its shims, tighten to torque\n{lines}\npress Enter when done"
        )
        if self._confirm() is None:
            raise DeviceTimeout(f"operator: shims not confirmed within {self._timeout_s:.0f} s")

    def remount_lens(self) -> None:
        if self._lens_id is None:
            raise ArgumentError("remount: no lens was mounted through the operator in this run")
        self.unmount_lens()
        self.mount_lens(self._lens_id)
