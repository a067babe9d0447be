"""Fault plans for the twin as data: the ``[faults]`` table of twin unit and station files.

What breaks and when (counted in frames the twin phone has rendered). The twin's
:class:`~rig.twin.faults.FaultInjector` consumes a :class:`FaultPlan`; the schema lives here so that the config
layer never imports the twin (the twin reads config, not the other way round).
"""

from __future__ import annotations

import enum

from pydantic import Field, model_validator

from rig.spec.grbl import GrblError
from rig.spec.model import StrictModel


class FaultKind(enum.StrEnum):
    """What goes wrong on the bench."""

    SERIAL_VANISH = "serial_vanish"  # the GRBL port disappears halfway through the next move (cable pulled)
    GRBL_ALARM = "grbl_alarm"  # ALARM:1 hard limit halfway through the next move
    GRBL_ERROR = "grbl_error"  # the next G-code line is answered error:N (``code``)
    GRBL_STUCK = "grbl_stuck"  # moves never report Idle for ``duration_s`` (real seconds)
    DOWNLOAD_DROP = "download_drop"  # PTP/IP connections reset halfway through the next frame download
    DOWNLOAD_STALL = "download_stall"  # the phone goes quiet for ``stall_s`` halfway through the next download
    CORRUPT_DNG = "corrupt_dng"  # the next frame download serves flipped bits
    TRUNCATED_DNG = "truncated_dng"  # the next frame is stored cut short by the phone
    STUCK_CAPTURE = "stuck_capture"  # the next capture is accepted but never completes
    PHONE_REBOOT = "phone_reboot"  # the phone restarts (session lost, refused for ``downtime_s``)
    LENS_REMOVED = "lens_removed"  # the lens is knocked off the bayonet as the next frame is exposed
    LIGHT_FLICKER = "light_flicker"  # luminance alternates ±``amplitude_pct`` frame to frame
    LIGHT_DRIFT = "light_drift"  # luminance changes by ``drift_pct_per_capture`` every frame


ONE_SHOT_PEER_FAULTS = frozenset(
    {
        FaultKind.SERIAL_VANISH,
        FaultKind.GRBL_ALARM,
        FaultKind.GRBL_ERROR,
        FaultKind.DOWNLOAD_DROP,
        FaultKind.DOWNLOAD_STALL,
        FaultKind.CORRUPT_DNG,
        FaultKind.TRUNCATED_DNG,
        FaultKind.STUCK_CAPTURE,
    }
)


class FaultSpec(StrictModel):
    """One injected fault: its kind, when it strikes and its size."""

    kind: FaultKind
    after_captures: int = Field(0, ge=0, description="armed once the twin phone has rendered this many frames")
    code: int = Field(
        int(GrblError.GCODE_UNDEFINED_FEED_RATE), ge=1, le=255, description="GRBL error code (grbl_error)"
    )
    duration_s: float = Field(2.0, gt=0, le=600, description="how long moves stay in Run (grbl_stuck), real s")
    stall_s: float = Field(
        5.0, gt=0, le=600, description="how long the phone is silent mid-download (download_stall), wall s"
    )
    downtime_s: float = Field(1.0, gt=0, le=600, description="how long the rebooting phone refuses (phone_reboot), s")
    amplitude_pct: float = Field(4.0, gt=0, le=50, description="flicker amplitude: ± % of luminance (light_flicker)")
    drift_pct_per_capture: float = Field(
        -1.0, ge=-20, le=20, description="luminance change per frame, % (light_drift; < 0 dims)"
    )

    @model_validator(mode="after")
    def _drift_moves(self) -> FaultSpec:
        if self.kind is FaultKind.LIGHT_DRIFT and self.drift_pct_per_capture == 0:
            raise ValueError("a non-zero drift_pct_per_capture for light_drift")
        return self


class FaultPlan(StrictModel):
    """The ``[faults]`` table: the faults a twin bench injects during a run."""

    inject: list[FaultSpec] = Field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.inject)

    def merged(self, other: FaultPlan | None) -> FaultPlan:
        """This plan and ``other`` together (a unit's faults plus its station's)."""
        return self if not other else FaultPlan(inject=[*self.inject, *other.inject])
