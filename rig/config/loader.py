"""Read a TOML file into a pydantic model, turning every failure into one ConfigError line."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from rig.errors import MISSING, ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures"
"""The repository's ``fixtures/`` folder (the bench as data)."""


class StrictModel(BaseModel):
    """Base for every file schema: unknown fields are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file raises :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "", MISSING, "an existing TOML file")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", "(unparsable)", f"valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "", "(binary data)", "a UTF-8 TOML text file") from None


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


def load_toml(path: str | Path, model: type[ModelT]) -> ModelT:
    """Read ``path`` and validate it as ``model``."""
    return validate(model, read_toml(path), path)


def resolve_path(path: str | Path, relative_to: Path | None = None) -> Path:
    """Resolve a path written in a fixtures file: absolute, relative to the file, or to the repo root."""
    p = Path(path)
    if p.is_absolute():
        return p
    if relative_to is not None and (relative_to / p).exists():
        return relative_to / p
    repo_relative = FIXTURES_DIR.parent / p
    if repo_relative.exists():
        return repo_relative
    return p
