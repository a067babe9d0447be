"""Base of every schema the layers share (config files, the calibration profile): strict pydantic models whose
validation errors become one :class:`~rig.errors.ConfigError` line naming the source and the field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from rig.errors import MISSING, ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every file schema: unknown fields are errors (a typo must not pass silently), and no number may be
    NaN or ±inf: TOML spells both (``nan``, ``inf``), and a NaN limit compares false with everything, so a check
    against it would pass whatever was measured (issue #13). pydantic's ``allow_inf_nan=False`` applies the rule to
    every float field of every schema built on this base, nested models and dict/list items included."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def config_error_from_validation(source: str | Path, exc: ValidationError, prefix: str = "") -> ConfigError:
    """The first problem of a pydantic ValidationError as a one-line ConfigError."""
    err = exc.errors(include_url=False)[0]
    field = _field_path(tuple(err["loc"]))
    if prefix:
        field = f"{prefix}.{field}" if field else prefix
    kind = err["type"]
    if kind == "missing":
        return ConfigError(source, field, MISSING, "a value (the field is required)")
    if kind == "extra_forbidden":
        return ConfigError(source, field, err.get("input"), "no such field (check the spelling)")
    if kind == "finite_number":
        return ConfigError(source, field, err.get("input"), "a finite number (NaN and ±inf are not allowed)")
    expected = err["msg"]
    for lead in ("Value error, ", "Assertion failed, "):
        expected = expected.removeprefix(lead)
    expected = expected[0].lower() + expected[1:] if expected else expected
    return ConfigError(source, field, err.get("input"), expected)


def validate(model: type[ModelT], data: Any, source: str | Path, prefix: str = "") -> ModelT:
    """Validate ``data`` against ``model``; errors name ``source`` and the field path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise config_error_from_validation(source, exc, prefix) from None
