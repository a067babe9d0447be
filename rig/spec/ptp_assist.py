"""The binary format of the phone's assist objects (``IMG_0001.HIS`` / ``.ZEB`` / ``.PKG``).

After every capture the phone stores, beside the last frame, its exposure and focus assists computed on that
frame. All integers are little-endian; every object has a fixed size given by the frame's shape, so the phone can
announce the objects (ObjectInfo sizes) before it has computed them.

``.HIS`` histogram::

    4s  magic  b"RHIS"
    u32 version (1)
    u32 bins
    u32 counts[bins]            pixels per bin

``.ZEB`` zebra mask and ``.PKG`` focus-peaking mask (one value per Bayer quad)::

    4s  magic  b"RZEB" / b"RPKG"
    u32 version (1)
    u32 height, u32 width       mask shape
    f32 threshold               zebra: % of the white level above black; peaking: the firmware's threshold
    u8  bits[ceil(h·w / 8)]     the mask, row-major, numpy.packbits(bitorder="little")

Malformed data raises :class:`rig.errors.FrameError`: a bad assist object is a bad frame to fetch again.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from rig.errors import FrameError

VERSION = 1
HISTOGRAM_MAGIC = b"RHIS"
ZEBRA_MAGIC = b"RZEB"
PEAKING_MAGIC = b"RPKG"
_HIS_HEADER = struct.Struct("<4sII")
_MASK_HEADER = struct.Struct("<4sIIIf")


@dataclass(frozen=True)
class MaskObject:
    """A decoded ``.ZEB`` or ``.PKG`` object."""

    mask: np.ndarray  # bool, height × width
    threshold: float


def histogram_size(bins: int) -> int:
    """Bytes of a ``.HIS`` object with ``bins`` bins."""
    return _HIS_HEADER.size + 4 * bins


def mask_size(height: int, width: int) -> int:
    """Bytes of a ``.ZEB``/``.PKG`` object for a mask of ``height × width``."""
    return _MASK_HEADER.size + (height * width + 7) // 8


def encode_histogram(counts: np.ndarray) -> bytes:
    counts = np.asarray(counts)
    if counts.ndim != 1 or (counts.size and (counts.min() < 0 or counts.max() > 0xFFFFFFFF)):
        raise ValueError(f"histogram counts must be a 1-D array of u32 values, got shape {counts.shape}")
    return _HIS_HEADER.pack(HISTOGRAM_MAGIC, VERSION, counts.size) + counts.astype("<u4").tobytes()


def decode_histogram(data: bytes, *, name: str = "histogram") -> np.ndarray:
    """Counts per bin (int64) from a ``.HIS`` object."""
    if len(data) < _HIS_HEADER.size:
        raise FrameError(f"{name}: {len(data)} bytes, shorter than the {_HIS_HEADER.size}-byte header")
    magic, version, bins = _HIS_HEADER.unpack_from(data)
    if magic != HISTOGRAM_MAGIC or version != VERSION:
        raise FrameError(f"{name}: header {magic!r} v{version}: expected {HISTOGRAM_MAGIC!r} v{VERSION}")
    if len(data) != histogram_size(bins):
        raise FrameError(f"{name}: {len(data)} bytes: expected {histogram_size(bins)} for {bins} bins")
    return np.frombuffer(data, dtype="<u4", offset=_HIS_HEADER.size).astype(np.int64)


def encode_mask(mask: np.ndarray, *, threshold: float, magic: bytes) -> bytes:
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    height, width = mask.shape
    header = _MASK_HEADER.pack(magic, VERSION, height, width, float(threshold))
    return header + np.packbits(mask.ravel(), bitorder="little").tobytes()


def decode_mask(data: bytes, *, magic: bytes, name: str = "mask") -> MaskObject:
    if len(data) < _MASK_HEADER.size:
        raise FrameError(f"{name}: {len(data)} bytes, shorter than the {_MASK_HEADER.size}-byte header")
    found, version, height, width, threshold = _MASK_HEADER.unpack_from(data)
    if found != magic or version != VERSION:
        raise FrameError(f"{name}: header {found!r} v{version}: expected {magic!r} v{VERSION}")
    if len(data) != mask_size(height, width):
        raise FrameError(f"{name}: {len(data)} bytes: expected {mask_size(height, width)} for {height}×{width}")
    bits = np.frombuffer(data, dtype=np.uint8, offset=_MASK_HEADER.size)
    mask = np.unpackbits(bits, count=height * width, bitorder="little").astype(bool).reshape(height, width)
    return MaskObject(mask=mask, threshold=float(threshold))
