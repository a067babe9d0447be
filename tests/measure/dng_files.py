"""DNG files written with tifffile/imagecodecs in the layouts real cameras and converters use (test inputs).

Tags and defaults from the Adobe DNG Specification 1.4.0.0, chapter 4: IFD0 carries DNGVersion and
UniqueCameraModel; the raw image is either IFD0 itself or a SubIFD with NewSubfileType 0 behind a reduced-size
preview (NewSubfileType 1); CFA data has PhotometricInterpretation 32803 with CFARepeatPatternDim/CFAPattern,
demosaiced data LinearRaw (34892).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

_CFA_CODES = {"R": 0, "G": 1, "B": 2}


def write_dng(
    path: Path,
    raw: np.ndarray,
    *,
    bits: int = 16,
    cfa_pattern: str | None = "RGGB",
    black_level: int = 0,
    white_level: int | None = None,
    compression: str | None = None,
    tile: tuple[int, int] | None = None,
    with_preview: bool = False,
    unique_camera_model: str | None = "Test Camera",
) -> Path:
    """Write ``raw`` (2-D mosaic, or H × W × 3 for LinearRaw when ``cfa_pattern`` is None) as a DNG."""
    dng_tags: list[tuple[int, str, int, object, bool]] = [(50706, "B", 4, (1, 4, 0, 0), True)]
    if unique_camera_model is not None:
        dng_tags.append((50708, "s", 0, unique_camera_model, True))
    raw_tags: list[tuple[int, str, int, object, bool]] = [(50714, "H", 1, black_level, True)]
    if white_level is not None:
        raw_tags.append((50717, "H", 1, white_level, True))
    if cfa_pattern is not None:
        raw_tags += [
            (33421, "H", 2, (2, 2), True),
            (33422, "B", 4, tuple(_CFA_CODES[c] for c in cfa_pattern), True),
        ]
    photometric = tifffile.PHOTOMETRIC.CFA if cfa_pattern is not None else tifffile.PHOTOMETRIC.LINEAR_RAW
    options: dict[str, object] = {"photometric": photometric, "bitspersample": bits}
    if compression == "ljpeg":
        options |= {"compression": "jpeg", "compressionargs": {"lossless": True}}
    elif compression is not None:
        options["compression"] = compression
    if tile is not None:
        options["tile"] = tile
    with tifffile.TiffWriter(path) as tif:
        if with_preview:
            preview = np.zeros((raw.shape[0] // 4, raw.shape[1] // 4, 3), np.uint8)
            tif.write(preview, photometric="rgb", subfiletype=1, subifds=1, extratags=dng_tags)
            tif.write(raw, subfiletype=0, extratags=raw_tags, **options)
        else:
            tif.write(raw, subfiletype=0, extratags=dng_tags + raw_tags, **options)
    return path
