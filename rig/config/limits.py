"""Limit sets (``fixtures/limits/<plan>.toml``): declare before you measure (DESIGN.md §8.1).

Each top-level table is one measurement name with its unit, a one-line doc and limits; ``zones`` override the
limits per field zone::

    [mtf50_cy_px]
    unit = "cy/px"
    doc = "ISO 12233 e-SFR MTF50, green channel"
    zones.center = { low = 0.30 }
    zones.corner = { low = 0.20 }
"""

from __future__ import annotations

import itertools
from pathlib import Path

from pydantic import Field, model_validator

from rig.config.loader import FIXTURES_DIR, StrictModel, read_toml, validate
from rig.errors import ConfigError


class ZoneLimit(StrictModel):
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _order(self) -> ZoneLimit:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low ≤ high, got low {self.low} and high {self.high}")
        return self


class Limit(ZoneLimit):
    """Limits of one measurement: value must satisfy ``low ≤ value ≤ high`` (either side optional)."""

    unit: str = Field(min_length=1)
    doc: str = ""
    zones: dict[str, ZoneLimit] = Field(default_factory=dict)

    def for_zone(self, zone: str | None) -> ZoneLimit:
        """Limits of ``zone``. A qualified zone such as ``bin4:f1.4:corner`` falls back, most specific first, to
        the zones that keep fewer qualifiers (``bin4:corner``, ``f1.4:corner``, then ``corner``), then the default.
        """
        if zone is not None:
            *qualifiers, base = zone.split(":")
            for keep in range(len(qualifiers), -1, -1):
                for chosen in itertools.combinations(qualifiers, keep):
                    candidate = ":".join((*chosen, base))
                    if candidate in self.zones:
                        return self.zones[candidate]
        return ZoneLimit(low=self.low, high=self.high)


class LimitSet(StrictModel):
    source: str
    limits: dict[str, Limit]

    def get(self, name: str) -> Limit:
        try:
            return self.limits[name]
        except KeyError:
            raise ConfigError(self.source, name, "(missing)", "a limit for this measurement") from None

    def __contains__(self, name: str) -> bool:
        return name in self.limits


LIMITS_DIR = FIXTURES_DIR / "limits"

UNIT_OF_SUFFIX = {
    "_cy_px": "cy/px",
    "_lp_mm": "lp/mm",
    "_um": "um",
    "_mm": "mm",
    "_ms": "ms",
    "_arcmin": "arcmin",
    "_stops": "stops",
    "_pct": "%",
    "_px": "px",
    "_x": "x",
}
"""A measurement's name carries its unit (DESIGN.md §7): the limit's ``unit`` must agree with the suffix.
Longest suffixes first (``_cy_px`` before ``_px``)."""


def _check_unit_suffix(path: Path, name: str, unit: str) -> None:
    for suffix in sorted(UNIT_OF_SUFFIX, key=len, reverse=True):
        if name.endswith(suffix):
            expected = UNIT_OF_SUFFIX[suffix]
            if unit != expected:
                raise ConfigError(path, f"{name}.unit", unit, f'"{expected}" (the name ends in {suffix})')
            return


def load_limits(plan_or_path: str | Path) -> LimitSet:
    """Load the limit set of a plan (``signoff``) or a file path."""
    path = Path(plan_or_path)
    if path.suffix != ".toml":
        path = LIMITS_DIR / f"{plan_or_path}.toml"
    raw = read_toml(path)
    limits = {name: validate(Limit, table, path, prefix=name) for name, table in raw.items()}
    for name, limit in limits.items():
        _check_unit_suffix(path, name, limit.unit)
    return LimitSet(source=str(path), limits=limits)
