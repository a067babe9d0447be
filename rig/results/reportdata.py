"""Report data: the curves, maps and checks a plan attaches to a run so the report can draw them.

The run record (:mod:`rig.results.record`) holds scalar measurements only. Everything a plot needs beyond them
travels in one small typed document saved beside it as ``reports/<run-id>/plots.json``
(:data:`REPORT_DATA_FILE`). A plan builds it while it measures and hands it to
:func:`rig.report.write_run_outputs`; ``rig report RUN`` reads it back. The report draws exactly what is in it,
in order, and nothing else (DESIGN.md §8.12: reports read only the record and its attachments).

Four plot kinds, discriminated by ``kind``:

``curves`` (:class:`CurvesPlot`)
    Named x/y series on shared axes, with optional horizontal/vertical reference lines. Use for MTF curves per
    zone (x: frequency in cy/px, y: MTF; one series per zone, an ``hline`` at 0.5), through-focus curves (x:
    defocus in µm, y: MTF50; ``vlines`` at best focus) and stability traces (x: time in ms or pitch in degrees,
    y: image shift in µm).
``heatmap`` (:class:`HeatmapPlot`)
    A 2-D grid of values (row 0 at the top of the image), e.g. a lens-shading gain map or relative illumination
    per block.
``field`` (:class:`FieldPlot`)
    Values at points of the image field in normalised coordinates (x, y in [-1, 1], centre 0), e.g. best-focus
    position per zone for the tilt/field map; an optional fitted plane (``plane_*``) is drawn as a background.
``checks`` (:class:`ChecksPlot`)
    A table of feature checks (expected vs observed, pass/fail), e.g. histogram, zebra, peaking, RAW bit depth.

:class:`Thumbnail` names a PNG preview of a key capture (a path relative to the run folder) and its caption;
the HTML report embeds it (base64) so the page stays self-contained.

Example::

    data = ReportData(plots=[
        CurvesPlot(name="mtf_center", title="MTF, centre", x_label="frequency", x_unit="cy/px",
                   y_label="MTF", y_unit="", series=[Series(label="center", x=f.tolist(), y=mtf.tolist())],
                   hlines=[RefLine(value=0.5, label="MTF50")]),
    ])
    data.save(run_dir / REPORT_DATA_FILE)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rig.errors import ConfigError
from rig.results.record import atomic_write_text

REPORT_DATA_FILE = "plots.json"
REPORT_DATA_VERSION = "1.0"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Series(_Model):
    """One curve: ``y[i]`` at ``x[i]`` (same length). ``None`` in ``y`` is a gap."""

    label: str
    x: list[float]
    y: list[float | None]
    zone: str | None = None

    @model_validator(mode="after")
    def _same_length(self) -> Series:
        if len(self.x) != len(self.y):
            raise ValueError(f"series {self.label!r}: x has {len(self.x)} points and y {len(self.y)}")
        return self


class RefLine(_Model):
    """A reference line (a limit, a threshold, a best-focus position)."""

    value: float
    label: str = ""


class _Plot(_Model):
    name: str = Field(min_length=1)  # unique within the report data; used as the figure id
    title: str
    caption: str = ""


class CurvesPlot(_Plot):
    kind: Literal["curves"] = "curves"
    x_label: str
    x_unit: str = ""
    y_label: str
    y_unit: str = ""
    series: list[Series] = Field(min_length=1)
    hlines: list[RefLine] = Field(default_factory=list)
    vlines: list[RefLine] = Field(default_factory=list)
    log_y: bool = False


class HeatmapPlot(_Plot):
    kind: Literal["heatmap"] = "heatmap"
    values: list[list[float | None]] = Field(min_length=1)  # rows top to bottom
    unit: str = ""
    colormap: str = "viridis"
    annotate: bool = True  # print each cell's value (for small grids such as 11×11 blocks)

    @field_validator("values")
    @classmethod
    def _rectangular(cls, rows: list[list[float | None]]) -> list[list[float | None]]:
        widths = {len(r) for r in rows}
        if len(widths) != 1 or 0 in widths:
            raise ValueError(f"a non-empty rectangular grid, got row lengths {sorted(widths)}")
        return rows


class FieldPoint(_Model):
    x: float = Field(ge=-1.0, le=1.0)
    y: float = Field(ge=-1.0, le=1.0)
    value: float | None
    label: str = ""


class FieldPlot(_Plot):
    kind: Literal["field"] = "field"
    points: list[FieldPoint] = Field(min_length=1)
    unit: str = ""
    # value = plane_offset + plane_slope_x · x + plane_slope_y · y over the normalised field, when fitted
    plane_offset: float | None = None
    plane_slope_x: float | None = None
    plane_slope_y: float | None = None
    colormap: str = "coolwarm"


class Check(_Model):
    name: str
    expected: str
    observed: str
    ok: bool
    detail: str = ""


class ChecksPlot(_Plot):
    kind: Literal["checks"] = "checks"
    checks: list[Check] = Field(min_length=1)


Plot = Annotated[CurvesPlot | HeatmapPlot | FieldPlot | ChecksPlot, Field(discriminator="kind")]


class Thumbnail(_Model):
    path: str  # PNG relative to the run folder
    caption: str = ""


class ReportData(_Model):
    """Everything the report draws beyond the record's scalar measurements."""

    schema_version: str = REPORT_DATA_VERSION
    plots: list[Plot] = Field(default_factory=list)
    thumbnails: list[Thumbnail] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> ReportData:
        names = [p.name for p in self.plots]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"plot names must be unique, repeated: {', '.join(dupes)}")
        return self

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(Path(path), self.model_dump_json(indent=1))

    @classmethod
    def load(cls, path: str | Path) -> ReportData:
        """Read ``plots.json``; a malformed file raises :class:`ConfigError` naming the first bad field."""
        path = Path(path)
        try:
            data = cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise ConfigError(path, field, err.get("input"), err["msg"]) from None
        if data.schema_version.split(".")[0] != REPORT_DATA_VERSION.split(".")[0]:
            raise ConfigError(path, "schema_version", data.schema_version, f"major version {REPORT_DATA_VERSION}")
        return data


def as_floats(values: list[float | None]) -> list[float]:
    """Values with ``None`` as NaN: JSON has no NaN, so a gap travels as null and is drawn as a gap."""
    return [math.nan if v is None else float(v) for v in values]
