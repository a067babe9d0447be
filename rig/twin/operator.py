"""The twin's pair of hands: lens changes and mount shims that no motor does, performed on the simulated bench."""

from __future__ import annotations

from rig.config.lenses import LensCatalog
from rig.config.mount import MountDesign
from rig.errors import ArgumentError, DeviceStateError
from rig.spec.shims import ShimPlan
from rig.twin.hardware_time import HardwareAction, HardwareLedger
from rig.twin.state import BenchState


class TwinOperator:
    """Satisfies :class:`rig.devices.protocols.Operator` by acting on the twin's bench state.

    Mounting sets the lens-attached time on the twin clock; the phone peer reports it and switches sensors
    after the unit's firmware latency, exactly as it would for a lens screwed on by hand. ``sensor_switch_s`` is
    that latency: each mount charges it to the hardware ledger as the phone's time, unpaced (the phone's clock
    already makes the bench wait it out).
    """

    def __init__(
        self,
        state: BenchState,
        lenses: LensCatalog,
        *,
        mount: MountDesign | None = None,
        hardware: HardwareLedger | None = None,
        sensor_switch_s: float = 0.0,
    ) -> None:
        self._state = state
        self._lenses = lenses
        self._mount = mount or MountDesign()
        self._hardware = hardware
        self._sensor_switch_s = sensor_switch_s
        self.actions: list[str] = []

    def _takes(self, seconds: float) -> None:
        """The hands' real duration of the action about to happen: charged, and waited (scaled) before it."""
        hands = self._hardware
        if hands is not None:
            hands.charge_and_pace(HardwareAction.OPERATOR, seconds, began_monotonic_s=hands.monotonic())

    def mount_lens(self, lens_id: str) -> None:
        if lens_id not in self._lenses.ids():
            raise ArgumentError(f"lens {lens_id!r}: expected one of {', '.join(self._lenses.ids())}")
        if self._state.lens_attached:
            raise DeviceStateError(f"cannot mount {lens_id}: {self._state.lens_id} is still on the bayonet")
        self._takes(self._hardware.costs.lens_mount_s if self._hardware else 0.0)
        self._state.mount_lens(lens_id)
        if self._hardware is not None:
            self._hardware.charge(HardwareAction.SENSOR_SWITCH, self._sensor_switch_s)
        self.actions.append(f"mount {lens_id}")

    def unmount_lens(self) -> None:
        if not self._state.lens_attached:
            raise DeviceStateError("cannot unmount: no lens on the bayonet")
        self._takes(self._hardware.costs.lens_unmount_s if self._hardware else 0.0)
        self._state.unmount_lens()
        self.actions.append("unmount")

    def set_aperture(self, f_number: float) -> None:
        lens_id = self._state.lens_id
        if not self._state.lens_attached or lens_id is None:
            raise DeviceStateError("cannot set the aperture: no lens on the bayonet")
        marked = self._lenses.get(lens_id).f_numbers
        if not any(abs(f_number - n) < 1e-6 for n in marked):
            raise ArgumentError(f"aperture f/{f_number:g}: expected one of the lens's marked stops {marked}")
        self._takes(self._hardware.costs.aperture_s if self._hardware else 0.0)
        self._state.update(f_number=f_number)
        self.actions.append(f"aperture f/{f_number:g}")

    def remount_lens(self) -> None:
        lens_id = self._state.lens_id
        if not self._state.lens_attached or lens_id is None:
            raise DeviceStateError("cannot remount: no lens on the bayonet")
        self.unmount_lens()
        self.mount_lens(lens_id)

    def apply_shims(self, plan: ShimPlan) -> None:
        """Put the plan's stacks under the mount screws. The bayonet must be bare: nobody shims under a lens."""
        if self._state.lens_attached:
            raise DeviceStateError(f"cannot shim the mount: {self._state.lens_id} is still on the bayonet")
        names = [s.name for s in self._mount.screws]
        unknown = [s.screw for s in plan.screws if s.screw not in names]
        if unknown:
            raise ArgumentError(f"shim plan names screws {unknown}: expected screws of the mount {names}")
        self._takes(self._hardware.costs.shim_plan_s if self._hardware else 0.0)
        self._state.set_shims(plan.stacks_um())
        self.actions.append(f"shims {plan.describe()}")
