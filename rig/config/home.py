"""The data home: where runs write their reports, calibration files and results store.

``--home`` (or ``$RIG_HOME``), else the current directory — never beside the installed package, so a wheel
installed read-only runs from any folder.
"""

from __future__ import annotations

import os
from pathlib import Path

RIG_HOME_ENV = "RIG_HOME"
REPORTS_DIRNAME = "reports"
CALIBRATION_DIRNAME = "calibration"


def data_home(explicit: Path | str | None = None) -> Path:
    """Where runs write: ``explicit`` (``--home``), else ``$RIG_HOME``, else the current directory.

    Read when a run starts, never at import (DESIGN.md side rules: no environment reads at import).
    """
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(RIG_HOME_ENV)
    return Path(env) if env else Path.cwd()


def default_reports_dir(home: Path | str | None = None) -> Path:
    return data_home(home) / REPORTS_DIRNAME


def default_calibration_dir(home: Path | str | None = None) -> Path:
    return data_home(home) / CALIBRATION_DIRNAME


def default_store_path(home: Path | str | None = None) -> Path:
    """The SQLite results store of the default reports folder."""
    return default_reports_dir(home) / "results.sqlite"
