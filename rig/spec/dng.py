"""Minimal Bayer DNG writer and a strict reader (REFERENCE.md §6).

The phone (and the twin) deliver raw frames as uncompressed DNG 1.4: IFD0 holds the CFA image in 16-bit
containers (``PhotometricInterpretation`` 32803, ``WhiteLevel`` 1023 for 10-bit data), the DNG colour tags a
raw converter needs (``ColorMatrix1`` of an sRGB-primaries camera under D65, ``AsShotNeutral``), ``Orientation``,
``DefaultCropOrigin``/``DefaultCropSize`` and the phone's calibration as ``OpcodeList2`` (GainMaps, applied to the
linear raw data) and, when given, ``OpcodeList3`` (after demosaicing).

The capture tags live where readers look for them: in an Exif IFD that IFD0's ``ExifIFD`` (34665) points to
(Exif 2.32 §4.6.3; TIFF 6.0 §2 for the IFD layout): ``ExposureTime``, ``FNumber``, ``PhotographicSensitivity``
with ``SensitivityType`` 2 and ``RecommendedExposureIndex`` (CIPA DC-004), ``DateTimeOriginal``,
``OffsetTimeOriginal``, ``SubSecTimeOriginal``, ``FocalLength``, ``FocalLengthIn35mmFilm``, ``LensMake``,
``LensModel``. Written in IFD0 instead (as TIFF/EP allows) ``exiftool -validate`` warns "Wrong IFD", LibRaw
reports ISO 0 and no capture time, and RawTherapee loses exposure, aperture, focal length and lens.
tifffile writes no Exif IFD of its own, so :func:`write_dng` appends one (:func:`_encode_ifd`) after the image
and points IFD0's ``ExifIFD`` entry at it.

The capture time is written as ``DateTimeOriginal`` (UTC, whole seconds) + ``SubSecTimeOriginal`` (six
digits, i.e. microseconds) + ``OffsetTimeOriginal`` ``+00:00``, so the frame times of a burst survive the file
to 1 µs. ``timestamp_ms`` is milliseconds since the Unix epoch of the phone's real-time clock.

LibRaw (rawpy) opens files with required tags missing, so :func:`read_dng` validates on its own: anything that
is not a readable DNG raises :class:`rig.errors.ImageInputError` with one line naming the file and the problem.
"""

from __future__ import annotations

import io
import logging
import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from rig.errors import ImageInputError

# TIFF / TIFF-EP / EXIF / DNG tag codes used here.
TAG_MAKE = 271
TAG_MODEL = 272
TAG_ORIENTATION = 274
TAG_CFA_REPEAT_PATTERN_DIM = 33421
TAG_CFA_PATTERN = 33422
TAG_EXPOSURE_TIME = 33434
TAG_F_NUMBER = 33437
TAG_EXIF_IFD = 34665
TAG_ISO = 34855  # PhotographicSensitivity (Exif 2.3; ISOSpeedRatings before)
TAG_SENSITIVITY_TYPE = 34864
TAG_RECOMMENDED_EXPOSURE_INDEX = 34866
TAG_EXIF_VERSION = 36864
TAG_DATETIME_ORIGINAL = 36867
TAG_OFFSET_TIME_ORIGINAL = 36881
TAG_FOCAL_LENGTH = 37386
TAG_SUBSEC_TIME_ORIGINAL = 37521
TAG_FOCAL_LENGTH_35MM = 41989
TAG_BODY_SERIAL = 42033
TAG_LENS_MAKE = 42035
TAG_LENS_MODEL = 42036
TAG_DNG_VERSION = 50706
TAG_DNG_BACKWARD_VERSION = 50707
TAG_UNIQUE_CAMERA_MODEL = 50708
TAG_CFA_PLANE_COLOR = 50710
TAG_BLACK_LEVEL_REPEAT_DIM = 50713
TAG_BLACK_LEVEL = 50714
TAG_WHITE_LEVEL = 50717
TAG_DEFAULT_CROP_ORIGIN = 50719
TAG_DEFAULT_CROP_SIZE = 50720
TAG_COLOR_MATRIX1 = 50721
TAG_AS_SHOT_NEUTRAL = 50728
TAG_CAMERA_SERIAL = 50735
TAG_CALIBRATION_ILLUMINANT1 = 50778
TAG_OPCODE_LIST2 = 51009
TAG_OPCODE_LIST3 = 51022

ORIENTATION_NORMAL = 1  # row 0 at the top, column 0 at the left (TIFF 6.0 Orientation)
SENSITIVITY_TYPE_REI = 2  # Exif 2.32 SensitivityType: Recommended Exposure Index (CIPA DC-004)
EXIF_VERSION = b"0232"

PHOTOMETRIC_CFA = 32803
ILLUMINANT_D65 = 21

_CFA_CODES = {"R": 0, "G": 1, "B": 2}
_CFA_LETTERS = {0: "R", 1: "G", 2: "B", 3: "C", 4: "M", 5: "Y", 6: "W"}

# XYZ(D65) → linear sRGB (IEC 61966-2-1): the ColorMatrix1 of a camera whose raw primaries are sRGB's. It maps
# the D65 white (0.9505, 1, 1.089) to camera (1, 1, 1), the normalisation the DNG spec asks for.
SRGB_COLOR_MATRIX1 = (
    (3.2406, -1.5372, -0.4986),
    (-0.9689, 1.8758, 0.0415),
    (0.0557, -0.2040, 1.0570),
)

ExtraTag = tuple[int, int | str, int, Any, bool]
"""A tifffile extratag: ``(code, dtype, count, value, writeonce)``."""


@dataclass(frozen=True, eq=False)
class DngImage:
    """One raw frame read from a DNG.

    ``raw`` is the CFA mosaic (uint16, height × width) as stored, black level *not* subtracted.
    ``cfa_pattern`` names the colours of the top-left 2×2 quad row by row (``"RGGB"``).
    ``timestamp_ms`` is ms since the Unix epoch of the phone's clock (None if the file has no capture time).
    ``tags`` maps tifffile tag names of IFD0 and the raw IFD to their decoded values.
    """

    raw: np.ndarray
    black_level: int
    white_level: int
    cfa_pattern: str
    width: int
    height: int
    make: str | None
    model: str | None
    unique_camera_model: str
    serial: str | None
    exposure_time_s: float | None
    iso: int | None
    f_number: float | None
    focal_length_mm: float | None
    lens_model: str | None
    timestamp_ms: float | None
    opcode_list2: bytes | None
    opcode_list3: bytes | None = None
    lens_make: str | None = None
    focal_length_35mm_mm: float | None = None
    source: str = "<bytes>"
    tags: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- writing
def _rational(value: float, *, max_denominator: int = 1_000_000) -> tuple[int, int]:
    frac = Fraction(value).limit_denominator(max_denominator)
    return frac.numerator, frac.denominator


def _flat_rationals(values: Iterable[float]) -> list[int]:
    out: list[int] = []
    for v in values:
        out.extend(_rational(v))
    return out


def _ascii(code: int, text: str) -> ExtraTag:
    return (code, "s", 0, text, True)


def _timestamp_strings(timestamp_ms: float) -> tuple[str, str]:
    """(DateTimeOriginal, SubSecTimeOriginal) in UTC, the sub-second part in microseconds."""
    total_us = round(timestamp_ms * 1000.0)
    seconds, micro = divmod(total_us, 1_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y:%m:%d %H:%M:%S")
    return stamp, f"{micro:06d}"


# TIFF field types (TIFF 6.0 §2, "IFD Entry"): code → (struct format of one value, bytes of one value)
_TIFF_TYPES: dict[int | str, tuple[int, str, int]] = {
    "B": (1, "B", 1),
    "s": (2, "s", 1),
    "H": (3, "H", 2),
    "I": (4, "I", 4),
    "2I": (5, "I", 8),
    7: (7, "s", 1),
    "2i": (10, "i", 8),
}


def _entry_payload(dtype: int | str, count: int, value: Any) -> tuple[int, int, bytes]:
    """(TIFF type code, count, little-endian value bytes) of one IFD entry."""
    code, fmt, size = _TIFF_TYPES[dtype]
    if fmt == "s":
        data = value.encode("ascii") + b"\x00" if isinstance(value, str) else bytes(value)
        return code, len(data), data
    values = list(value) if isinstance(value, tuple | list) else [value]
    n = len(values) // 2 if size == 8 else len(values)
    if count and n != count:
        raise ValueError(f"tag of type {dtype!r}: {n} values for count {count}")
    return code, n, struct.pack(f"<{len(values)}{fmt}", *values)


def _encode_ifd(entries: Iterable[ExtraTag], offset: int) -> bytes:
    """A little-endian TIFF IFD placed at file ``offset``: entries sorted by code, values over 4 bytes after it.

    TIFF 6.0 §2: a 2-byte count, 12-byte entries (tag, type, count, value or offset), a 4-byte next-IFD offset
    (0: none), and every value on a word (even) boundary.
    """
    items = sorted(entries, key=lambda e: e[0])
    table = struct.pack("<H", len(items))
    data_start = offset + 2 + 12 * len(items) + 4
    heap = b""
    for tag, dtype, count, value, _ in items:
        code, n, payload = _entry_payload(dtype, count, value)
        if len(payload) <= 4:
            field = payload.ljust(4, b"\x00")
        else:
            heap += b"\x00" * (len(heap) % 2)  # word boundary; no pad after the last value, so the file ends on data
            field = struct.pack("<I", data_start + len(heap))
            heap += payload
        table += struct.pack("<HHI", tag, code, n) + field
    return table + struct.pack("<I", 0) + heap


_EXIF_POINTER_PLACEHOLDER = TAG_EXIF_IFD + 1
"""tifffile refuses to write tag 34665 itself, so IFD0 gets a LONG under this neighbouring (unused) code, which
:func:`_point_to_exif_ifd` renames in place: no other tag sits between the two, so the entries stay sorted."""


def _point_to_exif_ifd(tiff: bytearray, exif_offset: int) -> None:
    """Turn IFD0's placeholder entry of a little-endian TIFF into ``ExifIFD`` = ``exif_offset``."""
    (ifd0,) = struct.unpack_from("<I", tiff, 4)
    (count,) = struct.unpack_from("<H", tiff, ifd0)
    codes = [struct.unpack_from("<H", tiff, ifd0 + 2 + 12 * i)[0] for i in range(count)]
    index = codes.index(_EXIF_POINTER_PLACEHOLDER)
    if TAG_EXIF_IFD in codes or (index and codes[index - 1] >= TAG_EXIF_IFD):
        raise ValueError(f"IFD0 codes {codes}: cannot place ExifIFD {TAG_EXIF_IFD} at the placeholder")
    struct.pack_into("<HHII", tiff, ifd0 + 2 + 12 * index, TAG_EXIF_IFD, 4, 1, exif_offset)


def write_dng(
    raw: np.ndarray,
    *,
    black_level: int,
    white_level: int,
    cfa_pattern: str = "RGGB",
    make: str,
    model: str,
    unique_camera_model: str,
    serial: str | None,
    timestamp_ms: float | None,
    exposure_time_s: float,
    iso: int,
    f_number: float | None,
    focal_length_mm: float | None,
    lens_model: str | None,
    lens_make: str | None = None,
    focal_length_35mm_mm: float | None = None,
    opcode_list2: bytes | None = None,
    opcode_list3: bytes | None = None,
    extra_tags: Iterable[ExtraTag] = (),
) -> bytes:
    """Encode a CFA mosaic as a minimal valid DNG 1.4 file in memory.

    Parameters
    ----------
    raw
        uint16 mosaic, height × width, both even, values in ``[0, white_level]`` (DN, black not subtracted).
    black_level, white_level
        Pedestal and saturation code (DN), written as ``BlackLevel`` / ``WhiteLevel``.
    cfa_pattern
        Colours of the top-left 2×2 quad, row by row: ``RGGB``, ``BGGR``, ``GRBG`` or ``GBRG``.
    make, model, unique_camera_model, serial
        Identity tags (``Make``, ``Model``, ``UniqueCameraModel``, ``CameraSerialNumber``) in IFD0.
    timestamp_ms
        Start of exposure, ms since the Unix epoch (kept to 1 µs); None writes no time.
    exposure_time_s, iso, f_number, focal_length_mm, lens_model, lens_make, focal_length_35mm_mm
        Exif capture tags (in the Exif IFD); the optional ones are omitted when None. ``focal_length_35mm_mm``
        is the focal length times the sensor's crop factor, rounded to whole mm (Exif stores a SHORT).
    opcode_list2, opcode_list3
        Serialised DNG opcode lists (big-endian, REFERENCE.md §6) stored as ``OpcodeList2`` (51009: applied to the
        linear raw data, where GainMaps belong) and ``OpcodeList3`` (51022: after demosaicing), type UNDEFINED.
    extra_tags
        Further IFD0 tifffile extratags ``(code, dtype, count, value, writeonce)``.

    Returns
    -------
    bytes
        The DNG file. Same inputs give the same bytes (no wall-clock time is written).

    Raises
    ------
    ValueError
        If ``raw`` is not a 2-D uint16 array with even sides, a value exceeds ``white_level`` or the pattern
        is unknown: a programming error of the caller, not a user input.

    References
    ----------
    Adobe, *Digital Negative (DNG) Specification* 1.4.0.0 (2012), chapters 4 (tags) and 6 (opcode lists);
    CIPA DC-008-2019 (Exif 2.32) §4.6.3 (Exif IFD pointer), §4.6.5 (capture tags); TIFF 6.0 §2 (IFD layout).
    """
    raw = np.asarray(raw)
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise ValueError(f"raw must be a 2-D uint16 array, got {raw.dtype} with shape {raw.shape}")
    height, width = raw.shape
    if height % 2 or width % 2 or height == 0:
        raise ValueError(f"raw sides must be even and non-zero for a 2×2 CFA, got {width}×{height}")
    if cfa_pattern not in ("RGGB", "BGGR", "GRBG", "GBRG"):
        raise ValueError(f"cfa_pattern must be one of RGGB, BGGR, GRBG, GBRG, got {cfa_pattern!r}")
    if not 0 <= black_level < white_level <= 65535:
        raise ValueError(f"need 0 ≤ black_level < white_level ≤ 65535, got {black_level}, {white_level}")
    peak = int(raw.max())
    if peak > white_level:
        raise ValueError(f"raw has values up to {peak}, above white_level {white_level}")
    if exposure_time_s <= 0 or iso <= 0:
        raise ValueError(f"exposure_time_s and iso must be > 0, got {exposure_time_s}, {iso}")

    tags: list[ExtraTag] = [
        _ascii(TAG_MAKE, make),
        _ascii(TAG_MODEL, model),
        (TAG_ORIENTATION, "H", 1, ORIENTATION_NORMAL, True),
        (TAG_CFA_REPEAT_PATTERN_DIM, "H", 2, (2, 2), True),
        (TAG_CFA_PATTERN, "B", 4, tuple(_CFA_CODES[c] for c in cfa_pattern), True),
        (_EXIF_POINTER_PLACEHOLDER, "I", 1, 0, True),  # becomes ExifIFD once the Exif IFD is placed
        (TAG_DNG_VERSION, "B", 4, (1, 4, 0, 0), True),
        (TAG_DNG_BACKWARD_VERSION, "B", 4, (1, 1, 0, 0), True),
        _ascii(TAG_UNIQUE_CAMERA_MODEL, unique_camera_model),
        (TAG_CFA_PLANE_COLOR, "B", 3, (0, 1, 2), True),
        (TAG_BLACK_LEVEL_REPEAT_DIM, "H", 2, (1, 1), True),
        (TAG_BLACK_LEVEL, "I", 1, int(black_level), True),
        (TAG_WHITE_LEVEL, "I", 1, int(white_level), True),
        (TAG_DEFAULT_CROP_ORIGIN, "I", 2, (0, 0), True),
        (TAG_DEFAULT_CROP_SIZE, "I", 2, (width, height), True),
        (TAG_COLOR_MATRIX1, "2i", 9, _flat_rationals(v for row in SRGB_COLOR_MATRIX1 for v in row), True),
        (TAG_AS_SHOT_NEUTRAL, "2I", 3, _flat_rationals((1.0, 1.0, 1.0)), True),
        (TAG_CALIBRATION_ILLUMINANT1, "H", 1, ILLUMINANT_D65, True),
    ]
    if serial:
        tags.append(_ascii(TAG_CAMERA_SERIAL, serial))
    if opcode_list2 is not None:
        tags.append((TAG_OPCODE_LIST2, 7, len(opcode_list2), bytes(opcode_list2), True))
    if opcode_list3 is not None:
        tags.append((TAG_OPCODE_LIST3, 7, len(opcode_list3), bytes(opcode_list3), True))
    tags.extend(extra_tags)
    tags.sort(key=lambda t: t[0])  # TIFF wants ascending codes; tifffile sorts too, this keeps it explicit

    exif: list[ExtraTag] = [
        (TAG_EXPOSURE_TIME, "2I", 1, _rational(exposure_time_s), True),
        (TAG_ISO, "H", 1, min(int(iso), 65535), True),
        (TAG_SENSITIVITY_TYPE, "H", 1, SENSITIVITY_TYPE_REI, True),
        (TAG_RECOMMENDED_EXPOSURE_INDEX, "I", 1, int(iso), True),
        (TAG_EXIF_VERSION, 7, 4, EXIF_VERSION, True),
    ]
    if f_number is not None:
        exif.append((TAG_F_NUMBER, "2I", 1, _rational(f_number), True))
    if focal_length_mm is not None:
        exif.append((TAG_FOCAL_LENGTH, "2I", 1, _rational(focal_length_mm), True))
    if focal_length_35mm_mm is not None:
        exif.append((TAG_FOCAL_LENGTH_35MM, "H", 1, round(focal_length_35mm_mm), True))
    if lens_make:
        exif.append(_ascii(TAG_LENS_MAKE, lens_make))
    if lens_model:
        exif.append(_ascii(TAG_LENS_MODEL, lens_model))
    if timestamp_ms is not None:
        stamp, subsec = _timestamp_strings(timestamp_ms)
        exif += [
            _ascii(TAG_DATETIME_ORIGINAL, stamp),
            _ascii(TAG_OFFSET_TIME_ORIGINAL, "+00:00"),
            _ascii(TAG_SUBSEC_TIME_ORIGINAL, subsec),
        ]

    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer, byteorder="<") as tif:
        tif.write(
            np.ascontiguousarray(raw),
            photometric=PHOTOMETRIC_CFA,
            subfiletype=0,
            compression=None,
            software="rig",
            metadata=None,
            extratags=tags,
        )
    tiff = bytearray(buffer.getvalue())
    tiff += b"\x00" * (len(tiff) % 2)
    exif_offset = len(tiff)
    tiff += _encode_ifd(exif, exif_offset)
    _point_to_exif_ifd(tiff, exif_offset)
    return bytes(tiff)


# --------------------------------------------------------------------------------------------- reading
def _fail(source: str, problem: str) -> ImageInputError:
    return ImageInputError(f"{source}: {problem}")


def _number(value: Any) -> float | None:
    """A TIFF numeric tag value (int, (num, den) rational, or 1-tuple) as float."""
    if value is None:
        return None
    if isinstance(value, tuple | list):
        if len(value) == 2 and all(isinstance(v, int) for v in value):
            num, den = value
            return math.nan if den == 0 else num / den
        if len(value) == 1:
            return _number(value[0])
        raise TypeError(f"not a single number: {value!r}")
    return float(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    text = str(value).strip("\x00 ").strip()
    return text or None


def _read_source(
    source: bytes | bytearray | memoryview | str | Path, name: str | None, max_bytes: int
) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        data, label = bytes(source), name or "<bytes>"
        if len(data) > max_bytes:
            raise _fail(label, f"{len(data)} bytes: expected at most {max_bytes} for a frame within the budget")
        return data, label
    path = Path(source)
    label = name or str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise _fail(label, f"{size} bytes: expected at most {max_bytes} for a frame within the budget")
        return path.read_bytes(), label
    except FileNotFoundError:
        raise _fail(label, "no such file") from None
    except IsADirectoryError:
        raise _fail(label, "is a directory, expected a DNG file") from None
    except OSError as exc:
        raise _fail(label, f"cannot be read ({exc.strerror or exc})") from None


def _all_tags(page: tifffile.TiffPage) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag in page.tags.values():
        if tag.code == TAG_EXIF_IFD and isinstance(tag.value, dict):
            out.update(tag.value)  # EXIF sub-IFD, as other writers (and the real phone) may use
        else:
            out[tag.name] = tag.value
    return out


def _find_raw_page(tif: tifffile.TiffFile) -> tifffile.TiffPage | None:
    """The IFD holding the CFA mosaic: IFD0 or one of its SubIFDs (the DNG-spec layout with a preview)."""
    candidates: list[tifffile.TiffPage] = []
    for page in tif.pages:
        if not isinstance(page, tifffile.TiffPage):
            continue
        candidates.append(page)
        for sub_offset in page.subifds or ():
            tif.filehandle.seek(sub_offset)
            candidates.append(tifffile.TiffPage(tif, index=0))
    for page in candidates:
        if page.photometric == PHOTOMETRIC_CFA:
            return page
    return None


def _check_strips_inside(page: tifffile.TiffPage, size: int, source: str) -> None:
    offsets = page.dataoffsets
    counts = page.databytecounts
    if not offsets or len(offsets) != len(counts):
        raise _fail(source, "raw image has no strip/tile offsets")
    for offset, count in zip(offsets, counts, strict=True):
        if offset + count > size:
            raise _fail(source, f"truncated: image data ends at byte {offset + count} but the file has {size} bytes")
    expected = page.imagelength * page.imagewidth * ((page.bitspersample + 7) // 8)
    if page.compression == 1:
        if sum(counts) < expected:
            raise _fail(source, f"raw strips hold {sum(counts)} bytes, expected {expected} for an uncompressed image")
    elif sum(counts) * MAX_COMPRESSION_RATIO < expected:
        raise _fail(
            source,
            f"{sum(counts)} compressed bytes declare {expected} bytes of pixels: expected a ratio of at most "
            f"{MAX_COMPRESSION_RATIO}:1 (a decompression bomb is not decoded)",
        )


_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


def _check_ifd_inside(data: bytes, offset: int, what: str, source: str) -> None:
    """Raise unless the IFD at ``offset`` and every value it points to lie inside ``data`` (TIFF 6.0 §2).

    tifffile drops an Exif tag whose value is cut off with only a logged warning; a strict reader refuses it.
    """
    order = "<" if data[:2] == b"II" else ">"
    if offset + 2 > len(data):
        raise _fail(source, f"truncated: the {what} at byte {offset} lies beyond the file's {len(data)} bytes")
    (count,) = struct.unpack_from(f"{order}H", data, offset)
    end = offset + 2 + 12 * count + 4
    if end > len(data):
        raise _fail(source, f"truncated: the {what} ends at byte {end} but the file has {len(data)} bytes")
    for index in range(count):
        tag, dtype, n = struct.unpack_from(f"{order}HHI", data, offset + 2 + 12 * index)
        size = _TYPE_SIZES.get(dtype, 1) * n
        if size > 4:
            (value_offset,) = struct.unpack_from(f"{order}I", data, offset + 2 + 12 * index + 8)
            if value_offset + size > len(data):
                raise _fail(
                    source,
                    f"truncated: {what} tag {tag} ends at byte {value_offset + size} "
                    f"but the file has {len(data)} bytes",
                )


DEFAULT_MAX_PIXELS = 120_000_000
"""Pixel budget of one frame unless the caller (the station's ``sensor.max_frame_megapixels``) says otherwise:
the 1-inch sensor has 50.3 MP, so a DNG declaring more than this is refused before any pixel is allocated."""
MAX_COMPRESSION_RATIO = 64
"""Largest decoded/encoded size ratio of a compressed raw image. Lossless raw codecs reach 2-3:1 on sensor data
(noise does not compress); a higher ratio is refused before decoding, so inflating a few kB cannot fill memory."""
MAX_FILE_OVERHEAD_BYTES = 64 * 1024 * 1024
"""Tags, previews and padding a DNG may carry beyond its raw data (a larger file is refused unread)."""


def read_dng(
    source: bytes | bytearray | memoryview | str | Path,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> DngImage:
    """Read and validate a Bayer DNG, within a pixel budget.

    Parameters
    ----------
    source
        The file's bytes or its path.
    name
        How to call the file in error messages (default: the path, or ``<bytes>``).
    max_pixels
        Most pixels the raw image may declare. The declared size is checked against this budget and against
        the file's length (an uncompressed image must hold its bytes) before the pixels are allocated or
        decompressed, so a small file cannot make the reader allocate gigabytes.

    Returns
    -------
    DngImage
        The mosaic (uint16, DN, black not subtracted) with its levels, CFA pattern and capture tags.

    Raises
    ------
    rig.errors.ImageInputError
        One line naming the file and the problem: not a TIFF/DNG, truncated or corrupt, a required DNG tag
        missing (``DNGVersion``, ``UniqueCameraModel``, ``CFARepeatPatternDim``, ``CFAPattern``), a tag of the
        wrong type or count, an image larger than the budget, an unsupported layout (not a 2×2 R/G/B pattern,
        several samples per pixel, per-channel black levels that differ) or values above ``WhiteLevel``. No other
        exception type leaves this function (a fuzz test flips bytes and mutates tags to hold it to that).

    References
    ----------
    Adobe, *Digital Negative (DNG) Specification* 1.4.0.0, chapter 4 (required tags and their defaults);
    Adobe, *TIFF Revision 6.0*, section 2 (IFD entries: type, count, value or offset).
    """
    max_file_bytes = 2 * max_pixels + MAX_FILE_OVERHEAD_BYTES
    data, label = _read_source(source, name, max_file_bytes)
    if len(data) < 8:
        raise _fail(label, f"not a DNG: only {len(data)} bytes")
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        raise _fail(label, f"not a TIFF/DNG file (starts with {data[:4]!r})")
    notes = _TifffileNotes()
    try:
        with notes:
            return _read_validated(data, label, max_pixels)
    except ImageInputError as exc:
        raise ImageInputError(f"{exc}{notes.suffix()}") from None
    except (Exception, RecursionError) as exc:  # tifffile and malformed tags raise many types: all are corruption
        reason = (str(exc).splitlines() or [""])[0][:160]
        raise _fail(label, f"corrupt TIFF/DNG ({type(exc).__name__}: {reason}){notes.suffix()}") from None


class _TifffileNotes(logging.Filter):
    """Holds back tifffile's log warnings while one file is parsed (a corrupt file can make hundreds): the first
    one joins the reader's error line instead, the rest are counted."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if len(self.messages) < 1000:
            self.messages.append(record.getMessage())
        return False

    def __enter__(self) -> _TifffileNotes:
        logging.getLogger("tifffile").addFilter(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        logging.getLogger("tifffile").removeFilter(self)

    def suffix(self) -> str:
        if not self.messages:
            return ""
        more = f" and {len(self.messages) - 1} more" if len(self.messages) > 1 else ""
        return f" [tifffile: {self.messages[0][:160]}{more}]"


def _read_validated(data: bytes, label: str, max_pixels: int) -> DngImage:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        if not tif.pages:
            raise _fail(label, "corrupt TIFF/DNG: no readable image directory")
        ifd0 = tif.pages.first
        exif_pointer = ifd0.tags.get(TAG_EXIF_IFD)
        if exif_pointer is not None:
            if not isinstance(exif_pointer.value, dict):
                raise _fail(label, f"corrupt Exif IFD (ExifIFD = {exif_pointer.value!r} is not a readable IFD)")
            _check_ifd_inside(data, int(exif_pointer.valueoffset), "Exif IFD", label)
        tags = _all_tags(ifd0)
        page = _find_raw_page(tif)
        if page is None:
            raise _fail(label, "no CFA raw image (PhotometricInterpretation 32803) in the file")
        if page is not ifd0:
            tags.update({k: v for k, v in _all_tags(page).items() if k not in tags})
            raw_tags = _all_tags(page)
        else:
            raw_tags = tags
        black_tag = page.tags.get(TAG_BLACK_LEVEL) or ifd0.tags.get(TAG_BLACK_LEVEL)
        white_tag = page.tags.get(TAG_WHITE_LEVEL) or ifd0.tags.get(TAG_WHITE_LEVEL)
        _check_budget(page, max_pixels, label)
        _check_strips_inside(page, len(data), label)
        raw = page.asarray()

    for required in ("DNGVersion", "UniqueCameraModel"):
        if tags.get(required) is None:
            raise _fail(label, f"missing required DNG tag {required}")
    for required in ("CFARepeatPatternDim", "CFAPattern"):
        if raw_tags.get(required) is None:
            raise _fail(label, f"missing required DNG tag {required} in the raw image directory")
    dim = _int_tuple(raw_tags["CFARepeatPatternDim"])
    if dim != (2, 2):
        raise _fail(label, f"CFARepeatPatternDim {dim}: only 2×2 is supported")
    codes = _int_tuple(raw_tags["CFAPattern"])
    if codes is None or len(codes) != 4 or any(c not in (0, 1, 2) for c in codes):
        raise _fail(label, f"CFAPattern {codes}: expected four of 0 (R), 1 (G), 2 (B)")
    cfa = "".join(_CFA_LETTERS[c] for c in codes)

    if raw.ndim != 2:
        raise _fail(label, f"raw image has shape {raw.shape}: expected one sample per pixel")
    if not np.issubdtype(raw.dtype, np.unsignedinteger) or raw.dtype.itemsize > 2:
        raise _fail(label, f"raw samples are {raw.dtype}: expected unsigned integers of at most 16 bits")
    raw = raw.astype(np.uint16, copy=False)
    height, width = raw.shape

    bits = int(page.bitspersample)
    white = (1 << bits) - 1 if white_tag is None else _white_level(white_tag, label)
    black = _black_level(black_tag, label)
    if not 0 <= black < white:
        raise _fail(label, f"BlackLevel {black} and WhiteLevel {white}: expected 0 ≤ black < white")
    peak = int(raw.max())
    if peak > white:
        count = int(np.count_nonzero(raw > white))
        raise _fail(label, f"{count} raw values above WhiteLevel {white} (max {peak})")

    opcode2 = tags.get("OpcodeList2")
    opcode3 = tags.get("OpcodeList3")
    if opcode2 is not None and not isinstance(opcode2, bytes | bytearray | tuple | list):
        raise _fail(label, f"OpcodeList2 of type {type(opcode2).__name__}: expected UNDEFINED bytes")
    return DngImage(
        raw=raw,
        black_level=black,
        white_level=white,
        cfa_pattern=cfa,
        width=width,
        height=height,
        make=_text(tags.get("Make")),
        model=_text(tags.get("Model")),
        unique_camera_model=_text(tags["UniqueCameraModel"]) or "",
        serial=_text(tags.get("CameraSerialNumber")) or _text(tags.get("BodySerialNumber")),
        exposure_time_s=_positive_number(tags, "ExposureTime", label),
        iso=_iso(tags, label),
        f_number=_positive_number(tags, "FNumber", label),
        focal_length_mm=_positive_number(tags, "FocalLength", label),
        lens_model=_text(tags.get("LensModel")),
        timestamp_ms=_timestamp_ms(tags, label),
        opcode_list2=bytes(opcode2) if opcode2 is not None else None,
        opcode_list3=bytes(opcode3) if opcode3 is not None else None,
        lens_make=_text(tags.get("LensMake")),
        focal_length_35mm_mm=_number(tags.get("FocalLengthIn35mmFilm")),
        source=label,
        tags=tags,
    )


def _check_budget(page: tifffile.TiffPage, max_pixels: int, source: str) -> None:
    """The declared image must fit the pixel budget (before tifffile allocates or decompresses it)."""
    width, height = int(page.imagewidth), int(page.imagelength)
    samples, bits = int(page.samplesperpixel), int(page.bitspersample)
    if width <= 0 or height <= 0:
        raise _fail(source, f"raw image is {width}×{height} px: expected a non-empty image")
    if width * height > max_pixels:
        raise _fail(
            source,
            f"raw image declares {width}×{height} = {width * height / 1e6:.1f} MP: expected at most the frame "
            f"budget of {max_pixels / 1e6:.1f} MP",
        )
    if samples != 1:
        raise _fail(source, f"SamplesPerPixel {samples}: expected 1 (a CFA mosaic)")
    if not 1 <= bits <= 16:
        raise _fail(source, f"BitsPerSample {bits}: expected 1 … 16")


def _int_tuple(value: Any) -> tuple[int, ...] | None:
    """A tag value holding integers (bytes, a tuple of ints or one int) as a tuple; None for anything else."""
    if isinstance(value, bytes | bytearray):
        return tuple(value)
    if isinstance(value, int):
        return (value,)
    if isinstance(value, tuple | list) and all(isinstance(v, int) for v in value):
        return tuple(value)
    return None


def _tag_numbers(tag: tifffile.TiffTag) -> list[float]:
    """All values of a numeric tag as floats; RATIONAL/SRATIONAL pairs are divided out (x/0 is NaN)."""
    value = tag.value
    values = list(value) if isinstance(value, tuple | list | bytes) else [value]
    if not all(isinstance(v, int | float) for v in values):
        raise TypeError(f"tag {tag.name} holds {type(value).__name__}, not numbers")
    if int(tag.dtype) in (5, 10):  # RATIONAL, SRATIONAL: flat (num, den) pairs
        return [num / den if den else math.nan for num, den in zip(values[::2], values[1::2], strict=False)]
    return [float(v) for v in values]


def _white_level(tag: tifffile.TiffTag, source: str) -> int:
    levels = _tag_numbers(tag)
    if not levels or not all(math.isfinite(v) and v.is_integer() and 0 < v <= 65535 for v in levels):
        raise _fail(source, f"WhiteLevel {tag.value!r}: expected one or more integers in 1 … 65535")
    return int(max(levels))


def _black_level(tag: tifffile.TiffTag | None, source: str) -> int:
    if tag is None:
        return 0  # the DNG default
    levels = _tag_numbers(tag)
    first = levels[0] if levels else math.nan
    if any(v != first for v in levels) or not math.isfinite(first) or not float(first).is_integer():
        raise _fail(source, f"BlackLevel {levels}: only one integer black level for all channels is supported")
    return int(first)


def _positive_number(tags: Mapping[str, Any], name: str, source: str) -> float | None:
    """An optional single positive number tag (RATIONAL or integer); a malformed one is an ImageInputError."""
    value = tags.get(name)
    if value is None:
        return None
    try:
        number = _number(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise _fail(source, f"{name} {value!r}: expected one positive number")
    return number


def _iso(tags: Mapping[str, Any], source: str) -> int | None:
    value = tags.get("ISOSpeedRatings", tags.get("PhotographicSensitivity"))
    if value is None:
        return None
    first = value[0] if isinstance(value, tuple | list) and value else value
    if not isinstance(first, int) or isinstance(first, bool) or first <= 0:
        raise _fail(source, f"ISOSpeedRatings {value!r}: expected a positive integer")
    return first


def _timestamp_ms(tags: Mapping[str, Any], source: str) -> float | None:
    stamp = _text(tags.get("DateTimeOriginal"))
    if stamp is None:
        return None
    try:
        when = datetime.strptime(stamp, "%Y:%m:%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise _fail(source, f"DateTimeOriginal {stamp[:40]!r}: expected 'YYYY:MM:DD HH:MM:SS'") from None
    subsec = _text(tags.get("SubsecTimeOriginal")) or ""
    if subsec and not (subsec.isascii() and subsec.isdigit() and len(subsec) <= 9):
        raise _fail(source, f"SubSecTimeOriginal {subsec[:20]!r}: expected up to 9 digits")
    fraction_s = int(subsec) / 10 ** len(subsec) if subsec else 0.0
    seconds = int(when.timestamp())
    return seconds * 1000.0 + fraction_s * 1000.0
