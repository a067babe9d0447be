"""What a capture file says about how it was taken: the bench's ``rig:`` XMP state and the phone's Exif lens.

A bench capture carries the bench state as XMP (:mod:`rig.spec.capture_state`: rail from the focus position,
chart, pitch, light, exposure, collimator) and the phone's Exif (``FocalLength`` of the lens it recognised). Both
are read from IFD0 and its Exif IFD with tifffile, without decoding the pixels (a full-size frame is ~100 MB).
Files that are not TIFF/DNG (PNG, JPEG) carry neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rig.errors import ImageInputError
from rig.spec.capture_state import CaptureBenchState
from rig.spec.xmp import XMP_TAG

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_EXIF_IFD = 34665


@dataclass(frozen=True)
class CaptureMeta:
    """The bench state (None: not a bench capture) and the Exif focal length in mm (None: not recorded)."""

    bench: CaptureBenchState | None
    focal_length_mm: float | None


def read_capture_meta(path: str | Path) -> CaptureMeta:
    """Bench state and Exif focal length of an image file (both None for a file that carries neither).

    Raises
    ------
    ImageInputError
        The file cannot be read, or its ``rig:`` XMP is incomplete or malformed (one line naming file and field).
    """
    import tifffile

    p = Path(path)
    try:
        with p.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ImageInputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if magic not in _TIFF_MAGIC:
        return CaptureMeta(None, None)
    try:
        with tifffile.TiffFile(p) as tif:
            tags = tif.pages.first.tags
            xmp = tags.get(XMP_TAG)
            packet = bytes(xmp.value) if xmp is not None else None
            exif_tag = tags.get(_EXIF_IFD)
            exif = exif_tag.value if exif_tag is not None and isinstance(exif_tag.value, dict) else {}
    except (OSError, ValueError, KeyError, IndexError, tifffile.TiffFileError) as exc:
        raise ImageInputError(f"{p}: not a readable TIFF/DNG ({type(exc).__name__}: {exc})") from None
    bench = None if packet is None else CaptureBenchState.from_xmp(packet, source=str(p))
    return CaptureMeta(bench, _rational(exif.get("FocalLength")))


def _rational(value: object) -> float | None:
    """An Exif RATIONAL as tifffile gives it ((num, den) or a number) in float; None when absent or 0/0."""
    if isinstance(value, tuple | list) and len(value) == 2:
        num, den = value
        return float(num) / float(den) if den else None
    if isinstance(value, int | float):
        return float(value)
    return None
