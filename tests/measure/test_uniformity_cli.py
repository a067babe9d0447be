"""``rig measure uniformity``: a flat-field DNG written here from a known law gives its centre and falloff as JSON;
a non-raw image is refused in one line with exit status 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

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


def test_uniformity_refuses_a_gray_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gray.png"
    cv2.imwrite(str(path), np.full((64, 64), 128, np.uint8))
    assert main(["measure", "uniformity", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "gray.png" in err and "RAW" in err
