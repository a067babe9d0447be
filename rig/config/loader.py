"""Read a TOML file into a pydantic model, turning every failure into one ConfigError line."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from rig.errors import MISSING, ConfigError
from rig.spec.model import StrictModel, config_error_from_validation, validate

ModelT = TypeVar("ModelT", bound=BaseModel)

__all__ = ["FIXTURES_DIR", "StrictModel", "config_error_from_validation", "load_toml", "read_toml", "validate"]

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures"
"""The repository's ``fixtures/`` folder (the bench as data)."""


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
