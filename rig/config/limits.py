"""Limit sets (``fixtures/limits/<plan>.toml``): declare before you measure (DESIGN.md §8.1).

Each top-level table is one measurement name with its unit, a one-line doc and limits; ``zones`` override the
limits per field zone::

    [mtf50_cy_px]
    unit = "cy/px"
    doc = "ISO 12233 e-SFR MTF50, green channel"
    zones.center = { low = 0.30 }
    zones.corner = { low = 0.20 }

``step`` names the plan step that records the measurement: a run that ends without it records it as ERROR
("declared, not measured: step X did not record it"). A marginal band warns before a limit is reached: a value
that passes but lies below ``marginal_low`` or above ``marginal_high`` is PASS with the MARGINAL flag;
``marginal_pct`` sets both from the tolerance instead (that percentage of ``high − low`` inside each limit; it
needs both limits, and a zone without its own band inherits the measurement's percentage). The vocabulary is
NI TestStand's and OpenHTF's (PASS / FAIL / ERROR / SKIP, and INFO for a figure without limits).

``decision_rule`` chooses how a value is judged: ``"simple"`` (the default: against the limits as written) or
``"iso14253"`` (ISO 14253-1: conformity proven only inside the limits by the figure's expanded uncertainty U,
nonconformity only outside them by U; how the zones map onto verdicts is in :mod:`rig.results.decision`). Set it
per measurement, or for the whole file with a top-level ``decision_rule = "iso14253"`` before the first table;
a measurement's own setting wins. Without an accepted MSA of the station for a figure, the ISO rule falls back to
the plain limits and the record says so.

Every limit set names its ``revision`` at the top of the file (before the first table), ``YYYY-MM-L``: the
month the set was released and a capital letter per release within that month (``revision = "2026-11-A"``).
A run records the revision it was judged against and SPC never pools two revisions by default, because a
Cpk against last month's limits says nothing about this month's. A text revision, not a counter: it tells the
line when the limits changed (and the change note to look up), and at fixed width it sorts as text in release
order, so "the newest revision" needs no clock (:func:`revision_order`).
"""

from __future__ import annotations

import itertools
import re
from enum import StrEnum
from pathlib import Path

from pydantic import Field, model_validator

from rig.config.loader import FIXTURES_DIR, StrictModel, read_toml, validate
from rig.errors import MISSING, ConfigError


class DecisionRule(StrEnum):
    """How a measured value is judged against its limits."""

    SIMPLE = "simple"  # against the limits as written (ILAC-G8:09/2019 "simple acceptance")
    ISO14253 = "iso14253"  # ISO 14253-1:2017 §5: with the figure's expanded uncertainty U


DECISION_RULE_KEY = "decision_rule"
"""The top-level key of a limits file that sets every measurement's default rule."""


class ZoneLimit(StrictModel):
    low: float | None = None
    high: float | None = None
    marginal_low: float | None = None
    marginal_high: float | None = None
    marginal_pct: float | None = Field(None, gt=0, lt=50)

    @model_validator(mode="after")
    def _order(self) -> ZoneLimit:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low ≤ high, got low {self.low} and high {self.high}")
        top = self.high if self.high is not None else float("inf")
        bottom = self.low if self.low is not None else float("-inf")
        if self.marginal_low is not None and (self.low is None or not bottom <= self.marginal_low <= top):
            raise ValueError(f"marginal_low inside [low, high], got {self.marginal_low} with [{self.low}, {self.high}]")
        if self.marginal_high is not None and (self.high is None or not bottom <= self.marginal_high <= top):
            raise ValueError(
                f"marginal_high inside [low, high], got {self.marginal_high} with [{self.low}, {self.high}]"
            )
        if self.marginal_pct is not None and (self.low is None or self.high is None):
            raise ValueError("marginal_pct with both low and high (a percentage of the tolerance high − low)")
        return self

    def marginal_bounds(self) -> tuple[float | None, float | None]:
        """(marginal_low, marginal_high): the explicit band, else the one ``marginal_pct`` gives, else none."""
        if self.marginal_pct is not None and self.low is not None and self.high is not None:
            inset = (self.high - self.low) * self.marginal_pct / 100.0
            return self.low + inset, self.high - inset
        return self.marginal_low, self.marginal_high


class Limit(ZoneLimit):
    """Limits of one measurement: value must satisfy ``low ≤ value ≤ high`` (either side optional)."""

    unit: str = Field(min_length=1)
    doc: str = ""
    step: str | None = None  # the plan step that records it (named in the reason when it is missing)
    zones: dict[str, ZoneLimit] = Field(default_factory=dict)
    decision_rule: DecisionRule | None = None  # None: the file's default

    @property
    def base_zones(self) -> list[str]:
        """The field zones a run must record, qualifiers (read-out, aperture) stripped: ``bin4:corner`` → corner."""
        return sorted({zone.rsplit(":", 1)[-1] for zone in self.zones})

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
                        return self._inherit(self.zones[candidate])
        return ZoneLimit(
            low=self.low,
            high=self.high,
            marginal_low=self.marginal_low,
            marginal_high=self.marginal_high,
            marginal_pct=self.marginal_pct,
        )

    def _inherit(self, zone: ZoneLimit) -> ZoneLimit:
        """A zone without a band of its own takes the measurement's percentage (absolute bands do not carry)."""
        own = zone.marginal_low is not None or zone.marginal_high is not None or zone.marginal_pct is not None
        if own or self.marginal_pct is None or zone.low is None or zone.high is None:
            return zone
        return zone.model_copy(update={"marginal_pct": self.marginal_pct})


REVISION_PATTERN = re.compile(r"\d{4}-(0[1-9]|1[0-2])-[A-Z]")
"""A limits revision: release year and month, then A–Z for the releases of that month (``2026-11-A``)."""


def revision_order(revisions: list[str]) -> list[str]:
    """Revisions oldest first: text order is release order for :data:`REVISION_PATTERN`."""
    return sorted(revisions)


class LimitSet(StrictModel):
    source: str
    revision: str = Field(pattern=REVISION_PATTERN.pattern)
    limits: dict[str, Limit]
    decision_rule: DecisionRule = DecisionRule.SIMPLE  # the file's default rule

    def rule_for(self, name: str) -> DecisionRule:
        """The decision rule of measurement ``name``: its own, else the file's default."""
        return self.get(name).decision_rule or self.decision_rule

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
    default_rule = _file_decision_rule(path, raw.pop(DECISION_RULE_KEY, DecisionRule.SIMPLE.value))
    revision = raw.pop("revision", MISSING)
    limits = {name: validate(Limit, table, path, prefix=name) for name, table in raw.items()}
    for name, limit in limits.items():
        _check_unit_suffix(path, name, limit.unit)
    if not (isinstance(revision, str) and REVISION_PATTERN.fullmatch(revision)):
        expected = 'a limits revision YYYY-MM-L before the first table, e.g. revision = "2026-11-A"'
        raise ConfigError(path, "revision", revision, expected)
    return LimitSet(source=str(path), revision=revision, limits=limits, decision_rule=default_rule)


def _file_decision_rule(path: Path, value: object) -> DecisionRule:
    try:
        return DecisionRule(value)
    except ValueError:
        expected = " or ".join(f'"{r.value}"' for r in DecisionRule)
        raise ConfigError(path, DECISION_RULE_KEY, value, f"{expected} (the file's default decision rule)") from None
