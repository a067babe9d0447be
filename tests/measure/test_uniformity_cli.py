"""``rig measure uniformity``: a flat-field DNG written here from a known law gives its centre and falloff as JSON;
a non-raw image is refused in one line with exit status 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from rig.cli import main
from rig.spec.dng import write_dng
from tests.measure.test_uniformity import BLACK, WHITE, _expose, _law


def _dng(path: Path, raw: np.ndarray) -> Path:
    path.write_bytes(
        write_dng(
            raw,
            black_level=BLACK,
            white_level=WHITE,
            make="Xiaomi",
            model="12S Ultra Concept",
            unique_camera_model="Xiaomi 12S Ultra Concept",
            serial="XM12SU-000001",
            timestamp_ms=None,
            exposure_time_s=0.01,
            iso=100,
            f_number=1.4,
            focal_length_mm=35.0,
            lens_model=None,
        )
    )
    return path


def test_uniformity_json_reports_centre_falloff_and_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    relative, truth = _law(1040.0, 770.0, 35.0, -0.06)
    path = _dng(tmp_path / "flat.dng", _expose(600.0 * relative, np.random.default_rng(2)))
    assert main(["measure", "uniformity", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["optical_center_px"] == pytest.approx([1040.0, 770.0], abs=2.0)
    assert out["corner_falloff_stops"]["0.9"] == pytest.approx(truth[0.9], abs=0.05)
    assert out["pixel_pitch_um"] == pytest.approx(6.4)  # 2048 wide: binned 4× from 8192 at 1.6 µm
    grid = np.array(out["relative_illumination"]["Gr"])
    assert grid.shape == (11, 11) and grid[5, 5] == 1.0 and math.isfinite(grid.min())


def _flat(relative: np.ndarray, peak: float, dtype: type) -> np.ndarray:
    return np.round(peak * relative).astype(dtype)


def test_gray_and_colour_flats_match_the_bayer_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    relative, truth = _law(1040.0, 770.0, 35.0, -0.06)
    bayer = _dng(tmp_path / "flat.dng", _expose(600.0 * relative, np.random.default_rng(2)))
    assert main(["measure", "uniformity", str(bayer), "--json"]) == 0
    reference = json.loads(capsys.readouterr().out)
    gray16 = tmp_path / "gray16.tif"
    tifffile.imwrite(gray16, _flat(relative, 50000.0, np.uint16))
    colour16 = tmp_path / "colour16.png"
    rgb = np.stack([_flat(relative, 30000.0 * g, np.uint16) for g in (0.8, 1.0, 0.6)], axis=2)
    cv2.imwrite(str(colour16), rgb[..., ::-1])
    srgb8 = tmp_path / "flat8.png"  # 8-bit sRGB-encoded light: decoded before the fit
    light = 0.9 * relative
    cv2.imwrite(
        str(srgb8),
        np.round(255 * np.where(light <= 0.0031308, 12.92 * light, 1.055 * light ** (1 / 2.4) - 0.055)).astype(
            np.uint8
        ),
    )
    for path in (gray16, colour16, srgb8):
        assert main(["measure", "uniformity", str(path), "--json"]) == 0, path
        out = json.loads(capsys.readouterr().out)
        assert out["channels"] == ["Y"] and out["colour_shading_pct"] is None
        assert out["optical_center_px"] == pytest.approx(reference["optical_center_px"], abs=2.0), path
        for field in ("0.7", "0.9"):
            assert out["corner_falloff_stops"][field] == pytest.approx(truth[float(field)], abs=0.05), path
            assert out["corner_falloff_stops"][field] == pytest.approx(
                reference["corner_falloff_stops"][field], abs=0.03
            )


def test_a_frame_that_is_not_a_flat_field_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.measure.analytic import render_chart

    path = tmp_path / "chart.tif"
    chart = render_chart((768, 1024), background=40000.0, foreground=10000.0)
    tifffile.imwrite(path, np.round(chart).astype(np.uint16))
    assert main(["measure", "uniformity", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "chart.tif" in err and "not a flat field" in err and "2 %" in err
