"""Read-only access to run folders: a request names a run id and a file inside its folder, nothing else.

A run id is one path segment of the characters :func:`rig.bench.recording.new_run_id` uses; the file path is
resolved (symlinks too) and must stay inside that run's folder. Anything else is "not found", so a request
cannot learn what exists outside the run folders.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]{0,199}$")
THUMBNAIL_WIDTH_PX = 320


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


def latest_preview(folder: Path) -> Path | None:
    """The newest viewable capture of a run (the plans save PNG previews beside the DNGs), or None."""
    captures = folder / "captures"
    if not captures.is_dir():
        return None
    previews = sorted(captures.glob("*.png"))
    return previews[-1] if previews else None


def thumbnail_jpeg(path: Path, width_px: int = THUMBNAIL_WIDTH_PX) -> bytes:
    """A small JPEG of an image file (8 or 16 bit PNG), scaled to ``width_px`` wide with area averaging."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise NotInRunFolder(str(path))
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(float(image.max()), 1.0))
    height = max(1, round(image.shape[0] * width_px / image.shape[1]))
    small = cv2.resize(image, (width_px, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise NotInRunFolder(str(path))
    return data.tobytes()
