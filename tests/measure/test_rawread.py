"""Raw files as users bring them: packed, lossless-JPEG, tiled, SubIFD and linear DNGs, tolerant of missing tags.

Files are written by tifffile/imagecodecs (``tests.measure.dng_files``) and the reference is the same pixels in
a 16-bit TIFF: each layout must decode to exactly those samples and measure the same SFR (the brief: within
0.5 %; identical samples give identical figures).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tifffile

from rig.cli import main
from rig.errors import ImageInputError
from rig.measure.imageio import load_image
from rig.measure.rawread import MAX_PIXELS, read_raw
from rig.measure.sfr import slanted_edge_sfr
from tests.measure.analytic import gaussian_edge, mosaic
from tests.measure.dng_files import write_dng


def _mosaic(bits: int) -> np.ndarray:
    scale = (2**bits - 1) / 1023.0
    gray = gaussian_edge((96, 120), angle_deg=5.0, sigma_px=0.9, lo=120.0 * scale, hi=800.0 * scale)
    return np.round(mosaic(gray)).astype(np.uint16)


LAYOUTS = [
    pytest.param({"bits": 12}, id="packed-12"),
    pytest.param({"bits": 14}, id="packed-14"),
    pytest.param({"bits": 10}, id="packed-10"),
    pytest.param({"bits": 12, "compression": "ljpeg"}, id="lossless-jpeg-12"),
    pytest.param({"bits": 16, "compression": "ljpeg", "tile": (32, 32)}, id="lossless-jpeg-tiled"),
    pytest.param({"bits": 16, "tile": (32, 48)}, id="tiled-16"),
    pytest.param({"bits": 12, "with_preview": True}, id="subifd-behind-preview"),
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_decodes_to_the_same_samples_and_sfr(tmp_path: Path, layout: dict) -> None:
    bits = layout["bits"]
    raw = _mosaic(bits)
    dng = write_dng(tmp_path / "a.dng", raw, black_level=64, white_level=2**bits - 1, **layout)
    stored = read_raw(dng)
    assert stored.bits_per_sample == bits  # packed on disk, not 16-bit containers
    assert stored.compression == (7 if layout.get("compression") == "ljpeg" else 1)
    image = load_image(dng)
    assert image.cfa_pattern == "RGGB" and image.black_level == 64 and image.white_level == 2**bits - 1
    assert np.array_equal(image.data, raw)
    reference = tmp_path / "a.tif"
    tifffile.imwrite(reference, raw)
    expected = slanted_edge_sfr(load_image(reference).data, cfa_pattern="RGGB", black_level=64)
    measured = slanted_edge_sfr(image.data, cfa_pattern="RGGB", black_level=64)
    assert measured.mtf50_cy_px == pytest.approx(expected.mtf50_cy_px, rel=0.005)


def test_missing_optional_and_camera_tags_warn_instead_of_refusing(tmp_path: Path) -> None:
    raw = _mosaic(12)
    dng = write_dng(tmp_path / "b.dng", raw, bits=12, unique_camera_model=None, white_level=None)
    image = read_raw(dng)
    assert image.white_level == 4095  # DNG default: 2^BitsPerSample − 1
    assert len(image.warnings) == 1 and "UniqueCameraModel" in image.warnings[0]


def test_cli_prints_the_warning_and_measures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dng = write_dng(tmp_path / "c.dng", _mosaic(12), bits=12, unique_camera_model=None)
    code = main(["measure", "sfr", str(dng), "--json"])
    captured = capsys.readouterr()
    assert code == 0 and "UniqueCameraModel" in captured.err
    assert json.loads(captured.out)["mtf50_cy_px"] > 0


def test_linear_dng_is_measured_as_linear_rgb(tmp_path: Path) -> None:
    gray = gaussian_edge((80, 100), angle_deg=5.0, sigma_px=0.9, lo=2000.0, hi=30000.0)
    rgb = np.round(np.stack([gray, gray, gray], axis=2)).astype(np.uint16)
    image = load_image(write_dng(tmp_path / "d.dng", rgb, cfa_pattern=None))
    assert not image.is_raw and str(image.encoding) == "linear"
    assert np.allclose(image.data, rgb[..., 0], atol=1e-6)


def test_bad_and_oversized_raws_are_refused_in_one_line(tmp_path: Path) -> None:
    tiff = tmp_path / "plain.dng"
    tifffile.imwrite(tiff, np.zeros((8, 8), np.uint16))
    with pytest.raises(ImageInputError, match="no DNGVersion"):
        load_image(tiff)
    good = write_dng(tmp_path / "t.dng", _mosaic(16))
    truncated = tmp_path / "truncated.dng"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageInputError, match="header claims image data up to byte"):
        load_image(truncated)
    side = math.isqrt(MAX_PIXELS) + 2
    big = tmp_path / "big.dng"
    # a header for a side × side 8-bit mosaic with almost no data behind it: refused before any allocation
    with tifffile.TiffWriter(big) as tif:
        tif.write(
            shape=(side, side),
            dtype=np.uint8,
            photometric=tifffile.PHOTOMETRIC.CFA,
            extratags=[(50706, "B", 4, (1, 4, 0, 0), True), (33421, "H", 2, (2, 2), True)],
            compression="zlib",
            tile=(4096, 4096),
            data=iter([b"x"] * ((side + 4095) // 4096) ** 2),
        )
    with pytest.raises(ImageInputError, match="MP: expected at most 200 MP") as info:
        load_image(big)
    assert "\n" not in str(info.value)
