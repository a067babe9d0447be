"""A tolerant reader for the raw files users bring: any DNG that tifffile/imagecodecs can decode.

The bench's own captures go through the strict :func:`rig.spec.dng.read_dng`, which refuses anything the phone should
never send. Here the goal is the opposite: measure what a lens lab has. The decoding is tifffile's (with
imagecodecs' codecs), so every layout it knows is read the same way:

* 8- to 16-bit samples, packed (10/12/14-bit as PiDNG and many cameras write) or in 16-bit containers;
* uncompressed, lossless JPEG (DNG compression 7, ITU-T T.81 process 14), deflate, strips or tiles;
* the raw image in IFD0 or in a SubIFD (NewSubfileType 0) behind a preview (DNG 1.4 §"SubIFD trees");
* a CFA mosaic (PhotometricInterpretation 32803) or demosaiced linear data (LinearRaw, 34892).

Optional tags take their DNG 1.4 defaults (BlackLevel 0, WhiteLevel 2^bits − 1, CFAPlaneColor 0,1,2); a
missing tag the specification calls required but the measurement does not need (UniqueCameraModel) becomes a
warning. A file is refused (one line, :class:`rig.errors.ImageInputError`) only when it cannot be measured: not
a DNG, no raw image, a CFA that is not 2×2 R/G/B, a size beyond :data:`MAX_PIXELS` or a header that claims more
data than the file holds, both checked before any pixel is allocated.

References
----------
Adobe, *Digital Negative (DNG) Specification* 1.4.0.0 (2012), chapter 4 (tags, defaults); ISO 12234-2
(TIFF/EP) for the CFA tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rig.errors import ImageInputError

if TYPE_CHECKING:  # tifffile costs 14 ms to import: only the DNG path loads it
    import tifffile

MAX_PIXELS = 200_000_000
"""Largest image (pixels) read: a header beyond this is refused before allocating (a 1-inch 50 MP raw is 50 M)."""

PHOTOMETRIC_CFA = 32803
PHOTOMETRIC_LINEAR_RAW = 34892
_TAG_NEW_SUBFILE_TYPE = 254
_TAG_CFA_REPEAT_PATTERN_DIM = 33421
_TAG_CFA_PATTERN = 33422
_TAG_DNG_VERSION = 50706
_TAG_UNIQUE_CAMERA_MODEL = 50708
_TAG_CFA_PLANE_COLOR = 50710
_TAG_BLACK_LEVEL = 50714
_TAG_WHITE_LEVEL = 50717
_TAG_ACTIVE_AREA = 50829
_COLOUR_NAMES = {0: "R", 1: "G", 2: "B"}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders


@dataclass(frozen=True)
class RawImage:
    """The raw image of a DNG, as stored.

    Attributes
    ----------
    data
        2-D mosaic (CFA) or H × W × 3 linear RGB (LinearRaw), DN, black not subtracted, cropped to ActiveArea.
    cfa_pattern
        ``"RGGB"`` etc. (colour of the top-left 2×2 cell, row by row) for a mosaic, None for LinearRaw.
    black_level, white_level
        DN of black (mean of the BlackLevel values) and of saturation.
    bits_per_sample
        Bits per stored sample (10, 12, 14 for packed data, 16 for containers).
    compression
        TIFF compression code (1 none, 7 JPEG, 8 deflate …).
    warnings
        Tags the DNG specification requires that were missing (measured anyway), one line each.
    """

    data: np.ndarray
    cfa_pattern: str | None
    black_level: float
    white_level: float
    bits_per_sample: int
    compression: int
    warnings: tuple[str, ...] = ()


def check_pixel_budget(label: str, width: int, height: int) -> None:
    """Refuse an image whose header claims more than :data:`MAX_PIXELS` before anything is allocated."""
    if width <= 0 or height <= 0:
        raise ImageInputError(f"{label}: header claims a {width}×{height} image: expected a positive size")
    if width * height > MAX_PIXELS:
        raise ImageInputError(
            f"{label}: header claims {width}×{height} = {width * height / 1e6:.0f} MP: "
            f"expected at most {MAX_PIXELS / 1e6:.0f} MP"
        )


def is_dng(path: Path) -> bool:
    """Whether ``path`` is a TIFF whose IFD0 has the DNGVersion tag (DNG 1.4 §"DNGVersion": required in IFD 0 of
    every DNG), whatever its name says. Only a file that starts as a TIFF is parsed (tifffile loads for it alone)."""
    with path.open("rb") as f:
        if f.read(4) not in _TIFF_MAGIC:
            return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return _TAG_DNG_VERSION in tif.pages.first.tags
    except (OSError, ValueError, KeyError, IndexError, RuntimeError, tifffile.TiffFileError):
        return False  # not a readable TIFF: the reader its name picks says why, in its own words


def read_raw(path: str | Path) -> RawImage:
    """Read the raw image of a DNG (see the module notes for what is accepted and refused)."""
    import tifffile

    p = Path(path)
    label = str(p)
    try:
        with p.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ImageInputError(f"{label}: cannot read ({exc.strerror or exc})") from None
    if magic not in _TIFF_MAGIC:
        raise ImageInputError(f"{label}: not a TIFF/DNG file (starts with {magic!r}, expected II*\\0 or MM\\0*)")
    try:
        size = p.stat().st_size
        with tifffile.TiffFile(p) as tif:
            ifd0 = tif.pages.first
            if _TAG_DNG_VERSION not in ifd0.tags:
                raise ImageInputError(f"{label}: not a DNG: no DNGVersion tag in IFD0")
            page = _raw_page(tif)
            if page is None:
                raise ImageInputError(
                    f"{label}: no raw image: expected an IFD with PhotometricInterpretation CFA (32803) "
                    "or LinearRaw (34892)"
                )
            height, width = page.imagelength, page.imagewidth
            check_pixel_budget(label, width, height)
            _check_extent(label, page, size)
            warnings = []
            if _TAG_UNIQUE_CAMERA_MODEL not in ifd0.tags:
                warnings.append(f"{label}: DNG tag UniqueCameraModel (50708) missing; measured anyway")
            data = page.asarray()
            bits = int(page.bitspersample)
            tags = {**{t.code: t for t in ifd0.tags.values()}, **{t.code: t for t in page.tags.values()}}
            values = {code: tag.value for code, tag in tags.items()}
            black = _mean_level(tags.get(_TAG_BLACK_LEVEL), 0.0)
            white = _mean_level(tags.get(_TAG_WHITE_LEVEL), float(2**bits - 1))
            compression = int(page.compression)
            photometric = int(page.photometric)
    except ImageInputError:
        raise
    except (OSError, ValueError, KeyError, IndexError, tifffile.TiffFileError, RuntimeError) as exc:
        raise ImageInputError(f"{label}: not a readable DNG ({type(exc).__name__}: {exc})") from None

    cfa = None
    if photometric == PHOTOMETRIC_CFA:
        if data.ndim != 2:
            raise ImageInputError(f"{label}: CFA image of shape {data.shape}: expected one sample per pixel")
        cfa = _cfa_pattern(label, values)
    elif data.ndim != 3 or data.shape[2] != 3:
        raise ImageInputError(f"{label}: LinearRaw image of shape {data.shape}: expected 3 samples per pixel")
    data, cfa = _active_area(label, data, cfa, values.get(_TAG_ACTIVE_AREA))
    if not white > black:
        raise ImageInputError(f"{label}: WhiteLevel {white:g} ≤ BlackLevel {black:g}: expected white above black")
    return RawImage(data, cfa, black, white, bits, compression, tuple(warnings))


def _raw_page(tif: tifffile.TiffFile) -> tifffile.TiffPage | None:
    """The full-resolution raw IFD: NewSubfileType 0 with a CFA or LinearRaw photometric, in IFD0 or a SubIFD."""
    import tifffile

    candidates: list[tifffile.TiffPage] = []
    for page in tif.pages:
        if not isinstance(page, tifffile.TiffPage):
            continue
        candidates.append(page)
        if page.pages is not None:
            candidates.extend(sub for sub in page.pages if isinstance(sub, tifffile.TiffPage))
    raw = [
        page
        for page in candidates
        if int(page.photometric) in (PHOTOMETRIC_CFA, PHOTOMETRIC_LINEAR_RAW)
        and int(page.tags.valueof(_TAG_NEW_SUBFILE_TYPE, 0)) & 1 == 0
    ]
    return max(raw, key=lambda page: page.imagelength * page.imagewidth) if raw else None


def _check_extent(label: str, page: tifffile.TiffPage, file_size: int) -> None:
    """Every strip or tile the header names must lie inside the file (a truncated or forged header), and compressed
    data may not claim to inflate beyond :data:`rig.spec.dng.MAX_COMPRESSION_RATIO` (the bench reader's bound: a
    decompression bomb is refused before it is decoded)."""
    from rig.spec.dng import MAX_COMPRESSION_RATIO

    ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts, strict=False) if count]
    if not ends:
        raise ImageInputError(f"{label}: raw IFD names no image data (StripByteCounts / TileByteCounts all 0)")
    if max(ends) > file_size:
        raise ImageInputError(
            f"{label}: header claims image data up to byte {max(ends)}, but the file has {file_size} bytes"
        )
    stored = sum(page.databytecounts)
    decoded = page.imagelength * page.imagewidth * page.samplesperpixel * ((page.bitspersample + 7) // 8)
    if page.compression != 1 and stored * MAX_COMPRESSION_RATIO < decoded:
        raise ImageInputError(
            f"{label}: {stored} compressed bytes declare {decoded} bytes of pixels: expected a ratio of at most "
            f"{MAX_COMPRESSION_RATIO}:1 (a decompression bomb is not decoded)"
        )


def _cfa_pattern(label: str, tags: dict[int, object]) -> str:
    dims = tags.get(_TAG_CFA_REPEAT_PATTERN_DIM)
    pattern = tags.get(_TAG_CFA_PATTERN)
    if pattern is None:
        raise ImageInputError(f"{label}: CFA image without a CFAPattern tag (33422): cannot tell the colours apart")
    if dims is not None and tuple(int(d) for d in dims) != (2, 2):
        raise ImageInputError(f"{label}: CFARepeatPatternDim {tuple(dims)}: expected a 2×2 Bayer pattern")
    codes = _as_bytes(pattern)
    plane = _as_bytes(tags.get(_TAG_CFA_PLANE_COLOR, b"\x00\x01\x02"))
    try:
        names = "".join(_COLOUR_NAMES[plane[c]] for c in codes)
    except (KeyError, IndexError):
        raise ImageInputError(f"{label}: CFAPattern {list(codes)}: expected red, green and blue sites") from None
    if len(names) != 4 or sorted(names) != ["B", "G", "G", "R"]:
        raise ImageInputError(f"{label}: CFAPattern {names}: expected a Bayer pattern (RGGB, BGGR, GRBG, GBRG)")
    return names


def _as_bytes(value: object) -> bytes:
    """A BYTE tag's value, which tifffile gives as bytes or as a tuple of ints."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return bytes(int(v) for v in value)  # type: ignore[union-attr]


def _active_area(label: str, data: np.ndarray, cfa: str | None, area: object) -> tuple[np.ndarray, str | None]:
    """Crop to ActiveArea (top, left, bottom, right); the CFA pattern is given relative to its corner."""
    if area is None:
        return data, cfa
    top, left, bottom, right = (int(v) for v in area)  # type: ignore[union-attr]
    if not (0 <= top < bottom <= data.shape[0] and 0 <= left < right <= data.shape[1]):
        raise ImageInputError(
            f"{label}: ActiveArea {top, left, bottom, right} outside the {data.shape[1]}×{data.shape[0]} image"
        )
    return data[top:bottom, left:right], cfa


def _mean_level(tag: tifffile.TiffTag | None, default: float) -> float:
    """Mean of a SHORT, LONG or RATIONAL level tag (RATIONALs are read as numerator, denominator pairs)."""
    if tag is None:
        return default
    values = np.atleast_1d(np.asarray(tag.value, dtype=np.float64)).ravel()
    if int(tag.dtype) in (5, 10):  # RATIONAL, SRATIONAL
        pairs = values.reshape(-1, 2)
        values = pairs[:, 0] / pairs[:, 1]
    return float(values.mean())
