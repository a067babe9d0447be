"""Images for measurement: PNG / TIFF / DNG into arrays, and Bayer channel helpers.

A measurement never needs colour processing: raw data is measured per CFA channel (or on the green sites), and a
gray image as it is. :func:`load_image` returns the pixels with what a measurement needs to read them (CFA
pattern, black and white levels); DNG files go through :func:`rig.spec.dng.read_dng`, which validates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from rig.errors import ImageInputError
from rig.spec.dng import read_dng

CFA_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
# BT.709 luma, sfrmat's default for colour input
_LUMA_BGR = np.array([0.0722, 0.7152, 0.2126])


@dataclass(frozen=True)
class MeasureImage:
    """Pixels to measure.

    Attributes
    ----------
    data
        2-D array: gray values, or the raw mosaic (DN, black not subtracted) when ``cfa_pattern`` is set.
    cfa_pattern
        ``"RGGB"`` etc. for raw data (colour of the top-left 2×2 cell, row by row), None for gray.
    black_level, white_level
        DN of black and of saturation (white None when unknown).
    source
        File name for messages.
    """

    data: np.ndarray
    cfa_pattern: str | None
    black_level: float
    white_level: float | None
    source: str

    @property
    def is_raw(self) -> bool:
        return self.cfa_pattern is not None


def load_image(path: str | Path) -> MeasureImage:
    """Read a PNG or TIFF (8- or 16-bit gray; colour is reduced to BT.709 luma) or a Bayer DNG.

    Raises
    ------
    rig.errors.ImageInputError
        The file is missing, unreadable, or not a 2-D image (one line naming the file).
    """
    p = Path(path)
    if not p.is_file():
        raise ImageInputError(f"{p}: no such image file")
    suffix = p.suffix.lower()
    if suffix == ".dng":
        dng = read_dng(p)
        return MeasureImage(dng.raw, dng.cfa_pattern, float(dng.black_level), float(dng.white_level), str(p))
    if suffix in (".tif", ".tiff"):
        try:
            data = tifffile.imread(p)
        except (OSError, ValueError, tifffile.TiffFileError) as exc:
            raise ImageInputError(f"{p}: not a readable TIFF ({exc})") from None
    else:
        data = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if data is None:
            raise ImageInputError(f"{p}: not a readable image (expected PNG, TIFF or DNG)")
    return _gray(data, str(p))


def _gray(data: np.ndarray, source: str) -> MeasureImage:
    if data.ndim == 3 and data.shape[2] in (3, 4):
        # OpenCV gives BGR(A); tifffile RGB(A): treat both as 3 colour planes, weights in the right order
        weights = _LUMA_BGR if source.lower().endswith(".png") else _LUMA_BGR[::-1]
        data = data[..., :3].astype(np.float64) @ weights
    if data.ndim != 2:
        raise ImageInputError(f"{source}: expected a 2-D gray image, got shape {data.shape}")
    white = float(np.iinfo(data.dtype).max) if np.issubdtype(data.dtype, np.integer) else None
    return MeasureImage(data, None, 0.0, white, source)


def channel_site(cfa_pattern: str, channel: str) -> tuple[int, int]:
    """(row, col) of ``channel`` (R, Gr, Gb, B) in the 2×2 CFA cell; Gr is the green on the red rows."""
    if cfa_pattern not in CFA_PATTERNS:
        raise ValueError(f"cfa_pattern must be one of {', '.join(CFA_PATTERNS)}, got {cfa_pattern!r}")
    sites = {(i // 2, i % 2): c for i, c in enumerate(cfa_pattern)}
    if channel in ("R", "B"):
        return next(rc for rc, c in sites.items() if c == channel)
    if channel not in ("Gr", "Gb"):
        raise ValueError(f"channel must be R, Gr, Gb or B, got {channel!r}")
    red_row = next(rc for rc, c in sites.items() if c == "R")[0]
    want_row = red_row if channel == "Gr" else 1 - red_row
    return next(rc for rc, c in sites.items() if c == "G" and rc[0] == want_row)


def bayer_plane(raw: np.ndarray, cfa_pattern: str, channel: str) -> np.ndarray:
    """One CFA channel's half-resolution plane (a view, no copy)."""
    r, c = channel_site(cfa_pattern, channel)
    return raw[r::2, c::2]


def bayer_mean(raw: np.ndarray) -> np.ndarray:
    """Mean of each 2×2 CFA cell (float32, half resolution): a colour-neutral picture for finding things."""
    h, w = raw.shape[0] // 2 * 2, raw.shape[1] // 2 * 2
    out = raw[0:h:2, 0:w:2].astype(np.float32)
    out += raw[0:h:2, 1:w:2]
    out += raw[1:h:2, 0:w:2]
    out += raw[1:h:2, 1:w:2]
    out *= 0.25
    return out
