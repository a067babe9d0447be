"""Image loading for measurements: gray PNG/TIFF, colour reduced to luma, Bayer DNG, CFA channel helpers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from rig.errors import ImageInputError
from rig.measure.imageio import LINEAR, bayer_mean, bayer_plane, channel_site, load_image
from rig.spec.dng import write_dng


def test_gray_png_and_tiff_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data16 = rng.integers(0, 65535, (30, 40), dtype=np.uint16)
    data8 = rng.integers(0, 255, (30, 40), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), data16)
    tifffile.imwrite(tmp_path / "b.tif", data8)
    png, tif = load_image(tmp_path / "a.png"), load_image(tmp_path / "b.tif", encoding=LINEAR)
    assert np.array_equal(png.data, data16) and png.white_level == 65535 and not png.is_raw
    assert np.array_equal(tif.data, data8) and tif.white_level == 255


def test_colour_is_reduced_to_bt709_luma(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50  # R, G, B
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., ::-1])  # OpenCV writes BGR
    tifffile.imwrite(tmp_path / "c.tif", rgb)
    expected = 0.2126 * 200 + 0.7152 * 100 + 0.0722 * 50
    for name in ("c.png", "c.tif"):
        assert load_image(tmp_path / name, encoding=LINEAR).data == pytest.approx(np.full((4, 4), expected))


def test_dng_keeps_the_mosaic_and_its_levels(tmp_path: Path) -> None:
    raw = (np.arange(8 * 12, dtype=np.uint16).reshape(8, 12) * 7 + 64).astype(np.uint16)
    blob = write_dng(
        raw,
        black_level=64,
        white_level=1023,
        cfa_pattern="GRBG",
        make="m",
        model="m",
        unique_camera_model="m m",
        serial=None,
        timestamp_ms=None,
        exposure_time_s=0.01,
        iso=100,
        f_number=None,
        focal_length_mm=None,
        lens_model=None,
    )
    (tmp_path / "f.dng").write_bytes(blob)
    image = load_image(tmp_path / "f.dng")
    assert image.is_raw and image.cfa_pattern == "GRBG"
    assert (image.black_level, image.white_level) == (64, 1023)
    assert np.array_equal(image.data, raw)


def test_bad_files_raise_one_line(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"not a png")
    (tmp_path / "x.tif").write_bytes(b"not a tiff")
    for name in ("x.png", "x.tif", "missing.png"):
        with pytest.raises(ImageInputError) as info:
            load_image(tmp_path / name)
        assert "\n" not in str(info.value) and name in str(info.value)


def test_cfa_channel_sites() -> None:
    assert channel_site("RGGB", "R") == (0, 0) and channel_site("RGGB", "B") == (1, 1)
    assert channel_site("RGGB", "Gr") == (0, 1) and channel_site("RGGB", "Gb") == (1, 0)
    assert channel_site("GBRG", "R") == (1, 0) and channel_site("GBRG", "Gr") == (1, 1)
    assert channel_site("BGGR", "Gr") == (1, 0)
    raw = np.arange(16, dtype=np.uint16).reshape(4, 4)
    assert np.array_equal(bayer_plane(raw, "RGGB", "B"), raw[1::2, 1::2])
    assert bayer_mean(raw)[0, 0] == pytest.approx((0 + 1 + 4 + 5) / 4)
    with pytest.raises(ValueError, match="cfa_pattern"):
        channel_site("RGBX", "R")
