"""Motion of the twin's GRBL: trapezoidal rest-to-rest profiles along straight blocks (planner.c, stepper.c).

GRBL's planner limits each block's path rate by every moving axis's ``$11x`` and its acceleration by ``$12x``
(planner.c plan_buffer_line: ``limit_value_by_axis_maximum``). The twin's blocks start and end at rest (the
driver sends one move at a time, so there is no junction to blend), which makes each block's duration the
textbook trapezoid L/v + v/a (or 2·√(L/a) when the peak speed is not reached).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

Vec = tuple[float, float, float]


@dataclass(frozen=True)
class TrapezoidProfile:
    """Path position s(τ) of a move from ``s0`` at speed ``v0`` that ends at rest at ``s_end`` (units, seconds).

    Three phases: accelerate at ``accel`` from ``v0`` to ``v_peak``, cruise, decelerate at ``decel`` to rest.
    For a move from rest the duration is L/v + v/a when L ≥ v²/a (trapezoid), else 2·√(L/a) (triangle).
    """

    s0: float
    s_end: float
    v0: float
    v_peak: float
    accel: float
    decel: float
    t_acc: float
    t_cruise: float
    t_dec: float

    @classmethod
    def plan(cls, s0: float, s_end: float, *, v0: float, v_max: float, accel: float) -> TrapezoidProfile:
        """The fastest profile within ``v_max`` and ``accel`` (units/s, units/s²) from ``s0`` to ``s_end``."""
        length = max(0.0, s_end - s0)
        if length == 0.0 and v0 == 0.0:
            return cls(s0, s0, 0.0, 0.0, accel, accel, 0.0, 0.0, 0.0)
        if v0 * v0 / (2 * accel) >= length:
            return cls.stop(s0, v0=v0, accel=accel, s_limit=s0 + length)
        v_peak = max(v0, min(v_max, math.sqrt(accel * length + 0.5 * v0 * v0)))
        d_acc = (v_peak * v_peak - v0 * v0) / (2 * accel)
        d_dec = v_peak * v_peak / (2 * accel)
        t_cruise = max(0.0, length - d_acc - d_dec) / v_peak
        return cls(s0, s0 + length, v0, v_peak, accel, accel, (v_peak - v0) / accel, t_cruise, v_peak / accel)

    @classmethod
    def stop(cls, s0: float, *, v0: float, accel: float, s_limit: float) -> TrapezoidProfile:
        """Decelerate from ``v0`` to rest at ``accel``, harder if needed to stop by ``s_limit`` (a feed hold)."""
        if v0 <= 0.0:
            return cls(s0, s0, 0.0, 0.0, accel, accel, 0.0, 0.0, 0.0)
        distance = v0 * v0 / (2 * accel)
        decel = accel
        if s0 + distance > s_limit:
            distance = max(s_limit - s0, 1e-12)
            decel = v0 * v0 / (2 * distance)
        return cls(s0, s0 + distance, v0, v0, accel, decel, 0.0, 0.0, v0 / decel)

    @property
    def duration_s(self) -> float:
        return self.t_acc + self.t_cruise + self.t_dec

    def at(self, tau: float) -> tuple[float, float]:
        """(position, speed) at simulated time ``tau`` seconds after the profile starts."""
        if tau <= 0.0:
            return self.s0, self.v0
        if tau >= self.duration_s:
            return self.s_end, 0.0
        if tau < self.t_acc:
            return self.s0 + self.v0 * tau + 0.5 * self.accel * tau * tau, self.v0 + self.accel * tau
        s = self.s0 + (self.v_peak * self.v_peak - self.v0 * self.v0) / (2 * self.accel) if self.t_acc else self.s0
        tau -= self.t_acc
        if tau < self.t_cruise:
            return s + self.v_peak * tau, self.v_peak
        s += self.v_peak * self.t_cruise
        tau -= self.t_cruise
        if tau < self.t_dec:
            return min(self.s_end, s + self.v_peak * tau - 0.5 * self.decel * tau * tau), self.v_peak - self.decel * tau
        return self.s_end, 0.0


class BlockKind(Enum):
    MOVE = "move"  # G0/G1/G28/G38 from a line
    JOG = "jog"  # $J=
    HOME = "home"  # a homing pass
    PROBE = "probe"  # G38.x


@dataclass
class Block:
    """One planned straight move in machine coordinates (X carousel, Y pitch, Z rail)."""

    origin: Vec
    target: Vec
    unit: Vec
    length: float
    rate: float  # units/s along the path
    accel: float  # units/s² along the path
    kind: BlockKind
    profile: TrapezoidProfile | None = None
    t0_s: float = 0.0  # simulated time when ``profile`` started
    stopping: bool = False  # the profile is a feed-hold / jog-cancel deceleration
    fault_checked: bool = False

    @classmethod
    def between(
        cls, start: Vec, target: Vec, feed_per_min: float, *, max_rate: Vec, max_accel: Vec, kind: BlockKind
    ) -> Block | None:
        """The block from ``start`` to ``target`` at ``feed_per_min``, limited per axis; None for a zero move."""
        delta = (target[0] - start[0], target[1] - start[1], target[2] - start[2])
        length = math.sqrt(sum(d * d for d in delta))
        if length == 0.0:
            return None
        unit = (delta[0] / length, delta[1] / length, delta[2] / length)
        rate = feed_per_min / 60.0
        accel = math.inf
        for i in range(3):
            if unit[i] != 0.0:
                rate = min(rate, max_rate[i] / 60.0 / abs(unit[i]))
                accel = min(accel, max_accel[i] / abs(unit[i]))
        return cls(origin=start, target=target, unit=unit, length=length, rate=rate, accel=accel, kind=kind)

    def point(self, s: float) -> Vec:
        if s >= self.length:
            return self.target
        o, u = self.origin, self.unit
        return (o[0] + u[0] * s, o[1] + u[1] * s, o[2] + u[2] * s)

    def start(self, now_s: float, s0: float = 0.0) -> None:
        self.profile = TrapezoidProfile.plan(s0, self.length, v0=0.0, v_max=self.rate, accel=self.accel)
        self.t0_s = now_s
        self.stopping = False

    def decelerate(self, now_s: float) -> float:
        """Turn the rest of the block into a stop at ``accel`` from the speed at ``now_s``; returns that speed."""
        assert self.profile is not None
        s, v = self.profile.at(now_s - self.t0_s)
        self.profile = TrapezoidProfile.stop(s, v0=v, accel=self.accel, s_limit=self.length)
        self.t0_s, self.stopping = now_s, True
        return v

    def duration_s(self) -> float:
        return TrapezoidProfile.plan(0.0, self.length, v0=0.0, v_max=self.rate, accel=self.accel).duration_s


def quantize(p: Vec, steps_per_unit: Vec) -> Vec:
    """A target as the steppers reach it: whole steps (planner.c: ``target_steps = lround(target * steps/mm)``)."""
    return (
        round(p[0] * steps_per_unit[0]) / steps_per_unit[0],
        round(p[1] * steps_per_unit[1]) / steps_per_unit[1],
        round(p[2] * steps_per_unit[2]) / steps_per_unit[2],
    )
