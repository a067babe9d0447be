"""Malformed DNG files for the reader's fuzz and bomb tests: seeded byte flips and structure-aware tag mutations.

A TIFF IFD entry is 12 bytes: tag (2), type (2), count (4), value or offset (4) (TIFF 6.0 §2, "Image File
Directory"). The structure-aware mutations rewrite one of those fields of one entry of IFD0; the bombs declare
images far larger than their files.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import numpy as np

from rig.spec.dng import write_dng

TIFF_TYPES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 18, 0, 99, 0xFFFF)
"""Every TIFF/BigTIFF field type code, plus invalid ones."""
COUNTS = (0, 1, 2, 3, 4, 5, 255, 65536, 0x7FFFFFFF, 0xFFFFFFFF)
VALUES = (0, 1, 2, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 8, 12)


def valid_dng(width: int = 32, height: int = 24, seed: int = 0) -> bytes:
    """A small, valid Bayer DNG (10-bit levels, every capture tag the writer knows)."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(64, 1024, size=(height, width), dtype=np.uint16)
    return write_dng(
        raw,
        black_level=64,
        white_level=1023,
        make="Leica",
        model="M-Phone",
        unique_camera_model="Leica M-Phone",
        serial="XM12SU-000001",
        timestamp_ms=1_780_000_000_123.456,
        exposure_time_s=0.01,
        iso=100,
        f_number=1.4,
        focal_length_mm=35.0,
        lens_model="Summilux-M 35",
    )


def ifd0_entries(data: bytes) -> tuple[str, int, int]:
    """Byte order (``<``/``>``), offset of IFD0's first entry, number of entries."""
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (n,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    return order, ifd + 2, n


def _entry_tables(data: bytes) -> list[tuple[str, int, int]]:
    """IFD0's entries and, when IFD0 points to one, the Exif IFD's (where the capture tags live)."""
    order, first, n = ifd0_entries(data)
    tables = [(order, first, n)]
    for i in range(n):
        at = first + 12 * i
        (code,) = struct.unpack(order + "H", data[at : at + 2])
        if code == 34665:  # ExifIFD pointer
            (exif,) = struct.unpack(order + "I", data[at + 8 : at + 12])
            (count,) = struct.unpack(order + "H", data[exif : exif + 2])
            tables.append((order, exif + 2, count))
    return tables


def byte_flips(data: bytes, rng: np.random.Generator, *, region: int) -> bytes:
    """1 to 4 random bytes of the first ``region`` bytes replaced by random values."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        out[int(rng.integers(0, min(region, len(out))))] = int(rng.integers(0, 256))
    return bytes(out)


def tag_mutation(data: bytes, rng: np.random.Generator) -> bytes:
    """One IFD0 entry's type, count or value rewritten (or its tag code), structure kept."""
    order, first, n = ifd0_entries(data)
    out = bytearray(data)
    at = first + 12 * int(rng.integers(0, n))
    field = int(rng.integers(0, 4))
    if field == 0:
        out[at : at + 2] = struct.pack(order + "H", int(rng.integers(0, 65536)))
    elif field == 1:
        out[at + 2 : at + 4] = struct.pack(order + "H", int(rng.choice(TIFF_TYPES)))
    elif field == 2:
        out[at + 4 : at + 8] = struct.pack(order + "I", int(rng.choice(COUNTS)))
    else:
        value = int(rng.choice(VALUES)) if rng.random() < 0.5 else int(rng.integers(0, len(data) + 64))
        out[at + 8 : at + 12] = struct.pack(order + "I", value)
    return bytes(out)


def mutants(seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    """``count`` mutants of a valid DNG: a third header/IFD byte flips, a third tag mutations, a third of both."""
    base = valid_dng()
    _, first, n = ifd0_entries(base)
    ifd_end = first + 12 * n + 4
    rng = np.random.default_rng(seed)
    for i in range(count):
        kind = i % 3
        if kind == 0:
            yield f"flip#{i}", byte_flips(base, rng, region=ifd_end)
        elif kind == 1:
            yield f"tag#{i}", tag_mutation(base, rng)
        else:
            yield f"flip+tag#{i}", byte_flips(tag_mutation(base, rng), rng, region=len(base))


def _patch_entry(
    data: bytes, tag: int, *, count: int | None = None, value: int | None = None, dtype: int | None = None
) -> bytes:
    out = bytearray(data)
    for order, first, n in _entry_tables(data):
        for i in range(n):
            at = first + 12 * i
            (code,) = struct.unpack(order + "H", out[at : at + 2])
            if code != tag:
                continue
            if dtype is not None:
                out[at + 2 : at + 4] = struct.pack(order + "H", dtype)
            if count is not None:
                out[at + 4 : at + 8] = struct.pack(order + "I", count)
            if value is not None:
                v = struct.pack(order + "I", value) if dtype in (None, 4) else struct.pack(order + "HH", value, 0)
                out[at + 8 : at + 12] = v
            return bytes(out)
    raise KeyError(tag)


def bombs() -> dict[str, bytes]:
    """Files that declare far more pixels than they hold: each must be refused without allocating them."""
    base = valid_dng()
    huge = 60000  # 60000 × 60000 px = 3.6 GP (6.7 GiB at 16 bits)
    wide = _patch_entry(_patch_entry(base, 256, dtype=4, value=huge), 257, dtype=4, value=huge)
    # a deflate-compressed image of zeros: 2.2 MB that inflate to 400 MP (763 MiB)
    side = 20000
    compressed = zlib.compress(bytes(side * 2 * 100), 9)
    deflate = _deflate_bomb(base, side, compressed)
    tag_only = _patch_entry(_patch_entry(wide, 273, count=1, value=8), 279, count=1, value=0)
    # within the pixel budget (100 MP = 191 MiB decoded) but from 0.2 MB: refused by its compression ratio
    side = 10000
    within = _deflate_bomb(base, side, zlib.compress(bytes(side * side * 2), 9))
    # uncompressed, within the budget, but the file is 2 kB: the strips cannot hold the pixels
    short = _patch_entry(_patch_entry(base, 256, dtype=4, value=8000), 257, dtype=4, value=6000)
    return {
        "declared-3.6-GP": wide,
        "deflate-400-MP": deflate,
        "tag-only-3.6-GP": tag_only,
        "deflate-100-MP-within-budget": within,
        "uncompressed-48-MP-in-2-kB": short,
    }


def _deflate_bomb(base: bytes, side: int, strip: bytes) -> bytes:
    """``base`` re-pointed at one deflate strip (Compression 8) declaring ``side`` × ``side`` pixels, rows/strip
    = ``side``: the strip is appended at the file's end."""
    offset = len(base)
    data = base + strip
    data = _patch_entry(data, 256, dtype=4, value=side)
    data = _patch_entry(data, 257, dtype=4, value=side)
    data = _patch_entry(data, 259, value=8)
    data = _patch_entry(data, 273, dtype=4, count=1, value=offset)
    data = _patch_entry(data, 278, dtype=4, value=side)
    return _patch_entry(data, 279, dtype=4, count=1, value=len(strip))


TAG_WHITE_LEVEL = 50717
TAG_CFA_REPEAT_PATTERN_DIM = 33421
TAG_ISO = 34855
TAG_EXPOSURE_TIME = 33434
TAG_BLACK_LEVEL = 50714


def named_malformations() -> dict[str, tuple[bytes, str]]:
    """The malformed tags issue #20 found escaping the reader, each with the tag name its error must carry."""
    base = valid_dng()
    zeros = base.index(bytes(8))  # 8 zero bytes somewhere in the file: a RATIONAL 0/0
    ascii_iso = base.index(b"Leica\x00")  # an ASCII string already in the file
    return {
        "white-level-0-over-0": (_patch_entry(base, TAG_WHITE_LEVEL, dtype=5, count=1, value=zeros), "WhiteLevel"),
        "white-level-count-0": (_patch_entry(base, TAG_WHITE_LEVEL, count=0), "WhiteLevel"),
        "cfa-repeat-dim-count-1": (_patch_entry(base, TAG_CFA_REPEAT_PATTERN_DIM, count=1), "CFARepeatPatternDim"),
        "iso-as-text": (_patch_entry(base, TAG_ISO, dtype=2, count=6, value=ascii_iso), "ISO"),
        "exposure-count-3": (_patch_entry(base, TAG_EXPOSURE_TIME, count=3), "ExposureTime"),
        "black-level-0-over-0": (_patch_entry(base, TAG_BLACK_LEVEL, dtype=5, count=1, value=zeros), "BlackLevel"),
    }
