"""The calibration profile: what the bench writes to a phone and reads back (DESIGN.md §6).

A versioned JSON document. :meth:`CalibrationProfile.to_json` gives deterministic bytes (sorted keys, compact
separators, shortest round-trip float repr), so the phone can store them opaquely and the bench can check the
read-back byte for byte; :func:`compare_profiles` names every field that differs when it is not identical.

Shading is held as four DNG-style gain maps, one per Bayer channel (R, Gr, Gb, B), each a MapPointsV ×
MapPointsH grid of gains ≥ 1 whose points sit at normalised sensor coordinates ``origin + index · spacing``
(0 = top/left edge of the sensor, 1 = bottom/right edge). Every read-out of the sensor (full size, 2×2 or 4×4
binned) covers the whole sensor, so these are also the read-out's relative image coordinates, exactly where the
DNG GainMap opcode places its points (DNG 1.4 spec, OpcodeList GainMap; :mod:`rig.spec.gainmap`): one profile
gives the GainMaps of every read-out.

Schema versions. 1.1 adds ``shading.sensor_width_px`` / ``sensor_height_px`` (the full-resolution sensor the
coordinates span, from which the per-read-out GainMap files are named). A 1.0 profile is read and migrated: it
recorded only the read-out it was fitted on, which the migration takes as the sensor (the maps themselves are
unchanged, they apply at any read-out). A reader refuses later minors (whose fields it does not know) and other
majors.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rig.errors import MISSING, ConfigError
from rig.spec.model import validate

SCHEMA_VERSION = "1.1"
"""``major.minor``: this reader accepts 1.0 (migrated on reading) and 1.1, and refuses anything else."""
READABLE_SCHEMA_VERSIONS = ("1.0", SCHEMA_VERSION)

BayerChannel = Literal["R", "Gr", "Gb", "B"]
BAYER_CHANNELS: tuple[BayerChannel, ...] = ("R", "Gr", "Gb", "B")


def cfa_offsets(cfa_pattern: str = "RGGB") -> dict[BayerChannel, tuple[int, int]]:
    """(row, col) of each Bayer channel inside the 2×2 quad, e.g. RGGB → R (0, 0), Gr (0, 1), Gb (1, 0), B (1, 1).

    The green sharing a row with red is Gr, the other Gb.
    """
    if sorted(cfa_pattern) != sorted("RGGB") or len(cfa_pattern) != 4:
        raise ConfigError("cfa_pattern", "", cfa_pattern, "a Bayer pattern: RGGB, BGGR, GRBG or GBRG")
    red_row = cfa_pattern.index("R") // 2
    out: dict[BayerChannel, tuple[int, int]] = {}
    for index, letter in enumerate(cfa_pattern):
        row, col = divmod(index, 2)
        if letter == "G":
            out["Gr" if row == red_row else "Gb"] = (row, col)
        else:
            out[letter] = (row, col)  # type: ignore[index]
    return {name: out[name] for name in BAYER_CHANNELS}


class ProfileModel(BaseModel):
    """Strict, immutable, finite: a NaN or a typo in a profile is an error, never a stored value."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ReferenceLens(ProfileModel):
    id: str = Field(min_length=1, description="lens catalog id (fixtures/lenses.toml)")
    f_number: float = Field(gt=0, le=64)


class ChannelGainMap(ProfileModel):
    """One Bayer channel's gains, ``gains[v][h]`` (rows top to bottom, columns left to right)."""

    channel: BayerChannel
    row_offset: int = Field(ge=0, le=1, description="row of this channel in the 2×2 CFA quad")
    col_offset: int = Field(ge=0, le=1)
    gains: list[list[float]] = Field(min_length=1)

    @field_validator("gains")
    @classmethod
    def _positive(cls, gains: list[list[float]]) -> list[list[float]]:
        for row in gains:
            for g in row:
                if not 0 < g < 100:
                    raise ValueError(f"gains in (0, 100), got {g}")
        return gains


class ShadingMaps(ProfileModel):
    """Lens-shading correction: four gain maps on one grid, in DNG GainMap placement (relative coordinates)."""

    image_width_px: int = Field(gt=0, description="read-out width of the flat field the maps were fitted on")
    image_height_px: int = Field(gt=0)
    sensor_width_px: int = Field(gt=0, description="full-resolution sensor width the normalised coordinates span")
    sensor_height_px: int = Field(gt=0)
    map_points_v: int = Field(ge=1, le=1024)
    map_points_h: int = Field(ge=1, le=1024)
    map_spacing_v: float = Field(gt=0, le=1)
    map_spacing_h: float = Field(gt=0, le=1)
    map_origin_v: float = Field(ge=0, le=1)
    map_origin_h: float = Field(ge=0, le=1)
    channels: list[ChannelGainMap] = Field(min_length=4, max_length=4)

    @model_validator(mode="after")
    def _shape(self) -> ShadingMaps:
        binning_h, rest_h = divmod(self.sensor_width_px, self.image_width_px)
        binning_v, rest_v = divmod(self.sensor_height_px, self.image_height_px)
        if rest_h or rest_v or binning_h != binning_v or binning_h < 1:
            raise ValueError(
                f"fitted read-out {self.image_width_px}×{self.image_height_px} to be the "
                f"{self.sensor_width_px}×{self.sensor_height_px} sensor binned by a whole factor"
            )
        names = tuple(c.channel for c in self.channels)
        if names != BAYER_CHANNELS:
            raise ValueError(f"channels in the order {list(BAYER_CHANNELS)}, got {list(names)}")
        if len({(c.row_offset, c.col_offset) for c in self.channels}) != 4:
            raise ValueError("four distinct (row_offset, col_offset) CFA positions")
        for c in self.channels:
            rows = len(c.gains)
            cols = {len(r) for r in c.gains}
            if rows != self.map_points_v or cols != {self.map_points_h}:
                raise ValueError(
                    f"{c.channel} gains of {self.map_points_v}×{self.map_points_h} points, got {rows}×{sorted(cols)}"
                )
        return self

    @property
    def fitted_binning(self) -> int:
        """Binning of the read-out the maps were fitted on (1 = full size)."""
        return self.sensor_width_px // self.image_width_px

    def readout_px(self, binning: int) -> tuple[int, int]:
        """(width, height) of this sensor's read-out at ``binning`` (1, 2, 4 …), the area its GainMaps cover."""
        if binning < 1 or self.sensor_width_px % binning or self.sensor_height_px % binning:
            sensor = f"{self.sensor_width_px}×{self.sensor_height_px}"
            raise ValueError(f"binning {binning} does not divide the {sensor} sensor")
        return self.sensor_width_px // binning, self.sensor_height_px // binning

    def gains_array(self) -> np.ndarray:
        """Gains as float64, shape (4, MapPointsV, MapPointsH), channels in R, Gr, Gb, B order."""
        return np.array([c.gains for c in self.channels], dtype=np.float64)

    @classmethod
    def from_array(
        cls,
        gains: np.ndarray,
        *,
        image_width_px: int,
        image_height_px: int,
        binning: int = 1,
        cfa_pattern: str = "RGGB",
        map_origin_v: float = 0.0,
        map_origin_h: float = 0.0,
        map_spacing_v: float | None = None,
        map_spacing_h: float | None = None,
    ) -> ShadingMaps:
        """Build from a (4, V, H) array fitted on a read-out binned ``binning``× (1: full size).

        The default grid spans the sensor edge to edge (origin 0, spacing 1/(N−1)).
        """
        gains = np.asarray(gains, dtype=np.float64)
        if gains.ndim != 3 or gains.shape[0] != 4:
            raise ValueError(f"gains of shape (4, V, H), got {gains.shape}")
        _, v, h = gains.shape
        offsets = cfa_offsets(cfa_pattern)
        return cls(
            image_width_px=image_width_px,
            image_height_px=image_height_px,
            sensor_width_px=image_width_px * binning,
            sensor_height_px=image_height_px * binning,
            map_points_v=v,
            map_points_h=h,
            map_spacing_v=map_spacing_v if map_spacing_v is not None else (1.0 / (v - 1) if v > 1 else 1.0),
            map_spacing_h=map_spacing_h if map_spacing_h is not None else (1.0 / (h - 1) if h > 1 else 1.0),
            map_origin_v=map_origin_v,
            map_origin_h=map_origin_h,
            channels=[
                ChannelGainMap(
                    channel=name,
                    row_offset=offsets[name][0],
                    col_offset=offsets[name][1],
                    gains=gains[i].tolist(),
                )
                for i, name in enumerate(BAYER_CHANNELS)
            ],
        )


class Geometry(ProfileModel):
    """Intrinsics and radial distortion from the dot-grid chart (:mod:`rig.measure.dotgrid`)."""

    image_width_px: int = Field(gt=0)
    image_height_px: int = Field(gt=0)
    focal_length_px: float = Field(gt=0, description="paraxial focal length in read-out pixels (f_lens / pitch)")
    principal_point_px: tuple[float, float] = Field(description="distortion centre (x, y), read-out pixels")
    ptlens_a: float
    ptlens_b: float
    ptlens_c: float
    opencv_distortion: list[float] = Field(
        min_length=5, max_length=8, description="k1, k2, p1, p2, k3[, k4, k5, k6] fitted to the same radial mapping"
    )
    rms_residual_px: float = Field(ge=0)
    dots_used: int = Field(ge=0)

    @field_validator("opencv_distortion")
    @classmethod
    def _opencv_length(cls, value: list[float]) -> list[float]:
        if len(value) not in (5, 8):
            raise ValueError(f"5 (k1, k2, p1, p2, k3) or 8 (rational model) coefficients, got {len(value)}")
        return value


class CalibrationProfile(ProfileModel):
    """Everything the calibration plan measured on one unit, as the phone stores it."""

    schema_version: str = Field(SCHEMA_VERSION, pattern=r"^\d+\.\d+$")
    unit_serial: str = Field(min_length=1, max_length=64)
    station: str = Field(min_length=1)
    reference_lens: ReferenceLens
    created: datetime = Field(description="UTC time the profile was made")
    software_version: str = Field(min_length=1)
    flange_offset_um: float = Field(ge=-1000, le=1000)
    tilt_x_arcmin: float = Field(ge=-120, le=120)
    tilt_y_arcmin: float = Field(ge=-120, le=120)
    optical_center_px: tuple[float, float] = Field(description="(x, y) in read-out pixels of image_width/height")
    decentre_um: tuple[float, float] = Field(description="(x, y) optical centre minus sensor centre, µm")
    black_level_dn: int = Field(ge=0, le=65535)
    shading: ShadingMaps
    geometry: Geometry | None = None

    @field_validator("created")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("a timezone-aware UTC time (e.g. 2026-01-01T00:00:00Z)")
        return value.astimezone(UTC)

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """A 1.0 profile becomes 1.1: its fitted read-out is taken as the sensor the coordinates span."""
        if not isinstance(data, dict) or data.get("schema_version") != "1.0":
            return data
        migrated = {**data, "schema_version": SCHEMA_VERSION}
        shading = data.get("shading")
        if isinstance(shading, dict) and "sensor_width_px" not in shading:
            migrated["shading"] = {
                **shading,
                "sensor_width_px": shading.get("image_width_px"),
                "sensor_height_px": shading.get("image_height_px"),
            }
        return migrated

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        if value not in READABLE_SCHEMA_VERSIONS:
            raise ValueError(f"one of the schema versions {', '.join(READABLE_SCHEMA_VERSIONS)} this software reads")
        return value

    def to_json(self) -> bytes:
        """Deterministic UTF-8 JSON bytes: equal profiles give identical bytes, and from_json ∘ to_json is exact."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        ).encode("ascii")

    @classmethod
    def from_json(cls, data: bytes | str, *, source: str = "profile") -> CalibrationProfile:
        """Parse profile bytes; anything wrong raises one-line :class:`ConfigError` naming ``source`` and the field."""
        try:
            obj = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(source, "", "(unparsable)", f"a JSON calibration profile ({exc})") from None
        if not isinstance(obj, dict):
            raise ConfigError(source, "", type(obj).__name__, "a JSON object (a calibration profile)")
        if "schema_version" not in obj:
            raise ConfigError(source, "schema_version", MISSING, f"a profile schema version like {SCHEMA_VERSION}")
        return validate(cls, obj, source)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of the profile, with ``$id`` carrying the schema version."""
        schema = cls.model_json_schema()
        schema["$id"] = f"urn:rig:calibration-profile:{SCHEMA_VERSION}"
        return schema


# --------------------------------------------------------------------------------------------- read-back check
@dataclass(frozen=True)
class ProfileComparison:
    """Result of comparing a written profile with what the phone returned."""

    byte_identical: bool
    differences: tuple[str, ...]  # "field.path: written != read", empty when equal within tolerance

    @property
    def equal(self) -> bool:
        return not self.differences


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            _flatten(value[key], f"{path}.{key}" if path else key, out)
    elif isinstance(value, list):
        out[f"{path}.len"] = len(value)
        for i, item in enumerate(value):
            _flatten(item, f"{path}[{i}]", out)
    else:
        out[path] = value


def compare_profiles(
    written: CalibrationProfile,
    read_back: CalibrationProfile | bytes,
    *,
    rel_tol: float = 0.0,
    abs_tol: float = 0.0,
    source: str = "read-back profile",
) -> ProfileComparison:
    """Compare field by field; numbers within ``rel_tol``/``abs_tol`` (math.isclose) count as equal.

    ``read_back`` may be the raw bytes the phone returned (then ``byte_identical`` is checked against
    ``written.to_json()``); unparsable bytes raise :class:`ConfigError` naming ``source``.
    """
    expected_bytes = written.to_json()
    if isinstance(read_back, bytes):
        identical = read_back == expected_bytes
        other = CalibrationProfile.from_json(read_back, source=source)
    else:
        other = read_back
        identical = other.to_json() == expected_bytes
    left: dict[str, Any] = {}
    right: dict[str, Any] = {}
    _flatten(written.model_dump(mode="json"), "", left)
    _flatten(other.model_dump(mode="json"), "", right)
    diffs: list[str] = []
    for key in sorted(set(left) | set(right), key=lambda k: (k not in left, k)):
        a = left.get(key, MISSING)
        b = right.get(key, MISSING)
        if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
            if math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol):
                continue
        elif a == b:
            continue
        diffs.append(f"{key}: {a!r} != {b!r}")
    return ProfileComparison(byte_identical=identical, differences=tuple(diffs))
