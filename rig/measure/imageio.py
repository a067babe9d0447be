"""Images for measurement: PNG / JPEG / TIFF / DNG into arrays, and Bayer channel helpers.

A measurement never needs colour processing: raw data is measured per CFA channel (or on the green sites), and a
gray image as it is. :func:`load_image` returns the pixels with what a measurement needs to read them (CFA
pattern, black and white levels, which pixels were clipped in the file). DNG files go through the tolerant
:func:`rig.measure.rawread.read_raw` (the bench's own captures are validated strictly by :func:`rig.spec.dng.read_dng`
where they are taken).

Encodings: a measurement needs values proportional to light. Raw data and 16-bit files are taken as linear;
8-bit files are decoded as sRGB by default (IEC 61966-2-1: the 8-bit files a camera or an editor writes are
sRGB-encoded; MTF Mapper linearises 8-bit input the same way by default), or as a power law ``gamma=G``, or
taken as linear, by choice. Colour is reduced to BT.709 relative luminance on the linear values (sfrmat's
default weights).

Clipping is decided on the file's own samples: a pixel is clipped when any of its colour samples sits at 0 or
at the format's maximum, which a luma mix would otherwise hide (an RGBA PNG at 0/255 mixes to mid-gray).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np

from rig.errors import ImageInputError
from rig.measure.rawread import check_pixel_budget, is_dng, read_raw

CFA_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
# BT.709 luma, sfrmat's default for colour input
_LUMA_RGB = np.array([0.2126, 0.7152, 0.0722])
_OPENCV_SUFFIXES = (".png", ".jpg", ".jpeg")


class Transfer(StrEnum):
    """How file values relate to light."""

    LINEAR = "linear"
    SRGB = "srgb"
    GAMMA = "gamma"


@dataclass(frozen=True)
class Encoding:
    """A transfer function: linear, sRGB (IEC 61966-2-1) or a pure power law ``value = light^(1/gamma)``."""

    transfer: Transfer
    gamma: float | None = None

    def __str__(self) -> str:
        return f"gamma={self.gamma:g}" if self.transfer is Transfer.GAMMA else str(self.transfer)

    @classmethod
    def parse(cls, text: str) -> Encoding:
        """``srgb``, ``linear`` or ``gamma=G`` (G > 0), e.g. from ``--encoding``."""
        value = text.strip().lower()
        if value in (Transfer.LINEAR, Transfer.SRGB):
            return cls(Transfer(value))
        if value.startswith("gamma="):
            try:
                gamma = float(value.split("=", 1)[1])
            except ValueError:
                gamma = float("nan")
            if math.isfinite(gamma) and gamma > 0:
                return cls(Transfer.GAMMA, gamma)
        raise ValueError(f"encoding {text!r}: expected srgb, linear or gamma=G with G > 0")

    def decode(self, normalised: np.ndarray) -> np.ndarray:
        """Linear light (0 … 1) from values normalised to 0 … 1."""
        if self.transfer is Transfer.LINEAR:
            return normalised
        if self.transfer is Transfer.SRGB:
            return np.where(normalised <= 0.04045, normalised / 12.92, ((normalised + 0.055) / 1.055) ** 2.4)
        return normalised ** float(self.gamma)


LINEAR = Encoding(Transfer.LINEAR)
SRGB = Encoding(Transfer.SRGB)


@dataclass(frozen=True)
class MeasureImage:
    """Pixels to measure.

    Attributes
    ----------
    data
        2-D array: gray values, or the raw mosaic (DN, black not subtracted) when ``cfa_pattern`` is set. Decoded
        8-bit files are linear light scaled to the file's code range (0 … 255).
    cfa_pattern
        ``"RGGB"`` etc. for raw data (colour of the top-left 2×2 cell, row by row), None for gray.
    black_level, white_level
        DN of black and of saturation (white None when unknown).
    source
        File name for messages.
    encoding
        The transfer function the values were decoded with (linear for raw and 16-bit data).
    clipped
        Per pixel, True where a sample of the file sat at 0 or at its maximum (None for float data).
    warnings
        Problems that did not stop the measurement (a missing DNG tag), one line each.
    """

    data: np.ndarray
    cfa_pattern: str | None
    black_level: float
    white_level: float | None
    source: str
    encoding: Encoding = LINEAR
    clipped: np.ndarray | None = None
    warnings: tuple[str, ...] = ()

    @property
    def is_raw(self) -> bool:
        return self.cfa_pattern is not None


def load_image(path: str | Path, *, encoding: Encoding | None = None) -> MeasureImage:
    """Read a PNG, JPEG or TIFF (8/16-bit gray or colour) or a DNG (Bayer or LinearRaw).

    Parameters
    ----------
    path
        The file.
    encoding
        How the file's values relate to light; None = sRGB for 8-bit files, linear otherwise. Raw data is
        always linear.

    Raises
    ------
    rig.errors.ImageInputError
        The file is missing, unreadable, larger than the pixel budget, or not an image (one line naming the file).
    """
    p = Path(path)
    if not p.is_file():
        raise ImageInputError(f"{p}: no such image file")
    try:
        return _load(p, encoding)
    except OSError as exc:  # unreadable, or an I/O error (EIO) of the disk or the file system under it
        raise ImageInputError(f"{p}: cannot read ({exc.strerror or exc})") from None


def _load(p: Path, encoding: Encoding | None) -> MeasureImage:
    suffix = p.suffix.lower()
    if suffix == ".dng" or is_dng(p):  # the content decides: a DNG renamed .tif is still a Bayer mosaic
        raw = read_raw(p)
        if raw.cfa_pattern is not None:
            clipped = (raw.data >= raw.white_level) | (raw.data <= 0)
            return MeasureImage(
                raw.data, raw.cfa_pattern, raw.black_level, raw.white_level, str(p), LINEAR, clipped, raw.warnings
            )
        # linear (demosaiced) DNG: RGB in file order, levels from the tags
        return _reduce(raw.data, str(p), LINEAR, raw.black_level, raw.white_level, raw.warnings)
    data = _read_tiff(p) if suffix in (".tif", ".tiff") else _read_opencv(p)
    default = SRGB if data.dtype == np.uint8 else LINEAR
    return _reduce(data, str(p), encoding or default, 0.0, None)


def _read_tiff(p: Path) -> np.ndarray:
    import tifffile  # 14 ms of import that a PNG does not need

    try:
        with tifffile.TiffFile(p) as tif:
            page = tif.pages.first
            check_pixel_budget(str(p), int(page.imagewidth), int(page.imagelength))
            size = p.stat().st_size
            ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False) if c]
            if ends and max(ends) > size:
                raise ImageInputError(
                    f"{p}: header claims image data up to byte {max(ends)}, but the file has {size} bytes"
                )
            return page.asarray()
    except ImageInputError:
        raise
    except (OSError, ValueError, KeyError, IndexError, RuntimeError, tifffile.TiffFileError) as exc:
        raise ImageInputError(f"{p}: not a readable TIFF ({exc})") from None


def _read_opencv(p: Path) -> np.ndarray:
    width, height = _png_size(p) or _header_size(p)
    check_pixel_budget(str(p), width, height)
    data = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ImageInputError(f"{p}: not a readable image (expected PNG, JPEG, TIFF or DNG)")
    if data.ndim == 3 and data.shape[2] in (3, 4):
        # OpenCV decodes PNG and JPEG alike into BGR(A): into RGB(A), the order of every other reader here
        data = data[..., [2, 1, 0, *range(3, data.shape[2])]]
    return data


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type → samples per pixel (PNG §11.2.1, Table 11.1)
_DEFLATE_MAX_RATIO = 1032
"""Deflate (RFC 1951) expands at most 1032:1 (258-byte matches coded in 2 bits): the PNG data bound."""


def _png_size(p: Path) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR, which the PNG specification fixes as the first chunk at byte 8
    (W3C PNG 3rd ed. §5.2, §11.2.1): 26 bytes read, no decoder loaded (PIL costs 16 ms of start-up).

    A header that claims more image bytes than the file's compressed data could inflate to is refused here,
    before the decoder allocates the image it claims.
    """
    with p.open("rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    bits, channels = head[24], _PNG_CHANNELS.get(head[25], 4)
    raw_bytes = height * (math.ceil(width * channels * bits / 8) + 1)  # +1: each row's filter byte
    size = p.stat().st_size
    if raw_bytes > _DEFLATE_MAX_RATIO * size:
        raise ImageInputError(
            f"{p}: header claims a {width}×{height} image ({raw_bytes / 1e6:.0f} MB), more than its {size} bytes "
            f"can hold (deflate inflates at most {_DEFLATE_MAX_RATIO}:1)"
        )
    return width, height


def _header_size(p: Path) -> tuple[int, int]:
    """Width and height of any other format from its header, before a decoder allocates anything."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    # PIL opens lazily; its own bomb check refuses what is more than twice its limit before we can see the size,
    # and only warns below it: our budget rules
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as header:
                return header.size
    except Image.DecompressionBombError as exc:
        raise ImageInputError(f"{p}: header claims too large an image ({exc}): expected at most 200 MP") from None
    except (OSError, UnidentifiedImageError, ValueError):
        raise ImageInputError(f"{p}: not a readable image (expected PNG, JPEG, TIFF or DNG)") from None


def _reduce(
    data: np.ndarray,
    source: str,
    encoding: Encoding,
    black: float,
    white: float | None,
    warnings: tuple[str, ...] = (),
) -> MeasureImage:
    """Gray linear values from a gray or RGB(A) array, with the per-pixel clipping of the source samples."""
    if data.ndim == 3 and data.shape[2] in (3, 4):
        colour = data[..., :3]
    elif data.ndim == 2:
        colour = data[..., None]
    else:
        raise ImageInputError(f"{source}: expected a gray or RGB image, got shape {data.shape}")
    integer = np.issubdtype(data.dtype, np.integer)
    top = float(white) if white is not None else (float(np.iinfo(data.dtype).max) if integer else None)
    clipped = None
    if top is not None:
        clipped = np.any((colour >= top) | (colour <= 0), axis=2)
    values = colour.astype(np.float64)
    if encoding.transfer is not Transfer.LINEAR:
        if top is None:
            raise ImageInputError(f"{source}: {encoding} decoding needs integer samples, got {data.dtype}")
        values = encoding.decode(np.clip(values / top, 0.0, 1.0)) * top
    gray = values[..., 0] if values.shape[2] == 1 else values @ _LUMA_RGB
    if colour.shape[2] == 1 and encoding.transfer is Transfer.LINEAR:
        gray = colour[..., 0]  # a gray linear file is measured as it is (no copy)
    return MeasureImage(gray, None, black, top, source, encoding, clipped, warnings)


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
