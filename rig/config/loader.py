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
    """Parse a TOML file; a missing, unreadable or malformed file raises :class:`ConfigError`.

    Every failure a user or the file system can cause is one line naming the file: no such file, a folder,
    permission denied, an I/O error (``EIO`` on a failing disk or network mount), text that is not UTF-8 (with the
    byte offset), invalid TOML, and nesting so deep that the parser would exhaust the stack.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, "", MISSING, "an existing TOML file") from None
    except IsADirectoryError:
        raise ConfigError(path, "", "(a folder)", "a TOML file") from None
    except OSError as exc:  # PermissionError, EIO, ENXIO ...: the file is there but cannot be read
        raise ConfigError(path, "", "(unreadable)", f"a readable TOML file ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        found = f"(byte {exc.start} is 0x{data[exc.start]:02x})"
        raise ConfigError(path, "", found, "a UTF-8 TOML text file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", "(unparsable)", f"valid TOML ({exc})") from None
    except RecursionError:  # tomllib recurses once per nesting level: a 50 000-deep array exhausts the stack
        raise ConfigError(
            path, "", "(arrays or tables nested too deep)", "nesting a parser can follow (a few hundred levels)"
        ) from None


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
