"""Read-only access to run folders: a request names a run id and a file inside its folder, nothing else.

A run id is one path segment of the characters :func:`rig.bench.recording.new_run_id` uses; the file path is
resolved (symlinks too) and must stay inside that run's folder. Anything else is "not found", so a request
cannot learn what exists outside the run folders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rig.bench.recording import CAPTURES_DIR
from rig.errors import ConfigError
from rig.results.reportdata import REPORT_DATA_FILE, ReportData

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]{0,199}$")


class NotInRunFolder(LookupError):
    """The path does not name a file inside a run folder."""


def run_folder(reports_dirs: list[Path], run_id: str) -> Path:
    if not RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise NotInRunFolder(run_id)
    for reports in reports_dirs:
        folder = reports / run_id
        if folder.is_dir():
            return folder
    raise NotInRunFolder(run_id)


def run_file(reports_dirs: list[Path], run_id: str, relative: str) -> Path:
    """The file ``relative`` inside run ``run_id``'s folder; :class:`NotInRunFolder` for anything else."""
    folder = run_folder(reports_dirs, run_id).resolve()
    parts = Path(relative).parts
    if not relative or Path(relative).is_absolute() or ".." in parts or "\\" in relative or "\x00" in relative:
        raise NotInRunFolder(relative)
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise NotInRunFolder(relative)
    return path


@dataclass(frozen=True)
class Preview:
    """The latest capture a run can show: a PNG inside its folder (path relative to it) and what it shows."""

    path: str
    caption: str


def latest_preview(reports_dirs: list[Path], run_id: str) -> Preview | None:
    """The newest capture preview of a run, or None: the last thumbnail the plan added to ``plots.json`` (with its
    caption), else the newest ``captures/*.png`` (frames are numbered in capture order).

    Previews are PNGs the plans write beside the DNGs; capture retention drops only DNGs (rig.bench.retention),
    so a finished run still shows its captures. Every candidate goes through :func:`run_file`: a thumbnail entry
    or a symlink pointing out of the run folder is never offered.
    """
    folder = run_folder(reports_dirs, run_id)
    candidates: list[Preview] = []
    data_file = folder / REPORT_DATA_FILE
    if data_file.is_file():
        try:
            thumbnails = ReportData.load(data_file).thumbnails
        except ConfigError:  # a broken plots.json shows no caption, not an error on the operator's screen
            thumbnails = []
        candidates += [Preview(t.path, t.caption) for t in reversed(thumbnails)]
    captures = folder / CAPTURES_DIR
    if captures.is_dir():
        candidates += [Preview(f"{CAPTURES_DIR}/{p.name}", "") for p in sorted(captures.glob("*.png"), reverse=True)]
    for preview in candidates:
        try:
            run_file(reports_dirs, run_id, preview.path)
        except NotInRunFolder:
            continue
        return preview
    return None
