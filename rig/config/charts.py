"""Chart definitions (``fixtures/charts/*.toml``).

Chart geometry is given in *normalised image coordinates*: the position where the reference optics image a
feature, with ``(0, 0)`` at the optical axis, ``+x`` right, ``+y`` down, and 1 = the sensor's half diagonal.
The bench holds each chart at the scale its collimator needs (a chart per focal-length family); the twin maps
these coordinates through the lens's distortion, the unit's decentre and the chart's pose on the carousel.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, model_validator

from rig.config.loader import FIXTURES_DIR, StrictModel, load_toml
from rig.errors import ConfigError


class ChartKind(StrEnum):
    SLANTED_EDGE = "slanted_edge"
    FLAT = "flat"
    DOT_GRID = "dot_grid"


class SquareTarget(StrictModel):
    """A square of ``foreground`` transmittance, rotated by ``angle_deg`` so each edge is slanted."""

    x: float = Field(ge=-1, le=1)
    y: float = Field(ge=-1, le=1)
    size: float = Field(gt=0, le=1, description="side, in half-diagonal units")
    angle_deg: float = Field(ge=-45, le=45)


class DotGrid(StrictModel):
    pitch: float = Field(gt=0, le=1, description="grid spacing, half-diagonal units")
    radius: float = Field(gt=0, le=0.5)


class ChartSpec(StrictModel):
    name: str
    kind: ChartKind
    background: float = Field(1.0, ge=0, le=1, description="transmittance of the chart's background")
    foreground: float = Field(0.25, ge=0, le=1, description="transmittance of targets (4:1 per ISO 12233)")
    squares: list[SquareTarget] = Field(default_factory=list)
    dots: DotGrid | None = None

    @model_validator(mode="after")
    def _kind(self) -> ChartSpec:
        if self.kind is ChartKind.SLANTED_EDGE and not self.squares:
            raise ValueError("at least one square for a slanted_edge chart")
        if self.kind is ChartKind.DOT_GRID and self.dots is None:
            raise ValueError("a [dots] table for a dot_grid chart")
        return self

    @property
    def edge_count(self) -> int:
        return 4 * len(self.squares)


CHARTS_DIR = FIXTURES_DIR / "charts"


def chart_names() -> list[str]:
    return sorted(p.stem for p in CHARTS_DIR.glob("*.toml"))


def load_chart(name_or_path: str | Path) -> ChartSpec:
    """Load a chart by name (``sfr``, ``flat``, ``dotgrid``) or by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = CHARTS_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise ConfigError("chart", "name", str(name_or_path), f"one of {', '.join(chart_names())}")
    return load_toml(path, ChartSpec)
