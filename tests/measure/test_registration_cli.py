"""``rig measure shift A B --json``: two frames written here with a known shift give it back; different sizes are
a bench error (exit status 3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from rig.cli import main
from tests.measure.test_registration import blob_field


def test_shift_json_gives_the_known_translation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = 20000 + 1500 * blob_field(384, 512, 3, n=900)
    b = 20000 + 1500 * blob_field(384, 512, 3, shift=(1.25, -2.5), n=900)  # pedestal: no uint16 wrap of dips
    tifffile.imwrite(tmp_path / "a.tif", np.round(a).astype(np.uint16))
    tifffile.imwrite(tmp_path / "b.tif", np.round(b).astype(np.uint16))
    assert main(["measure", "shift", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # 16-bit rounding of a 1500-DN texture: quantisation noise far below the 0.02 px registration tolerance
    assert out["dx_px"] == pytest.approx(1.25, abs=0.02) and out["dy_px"] == pytest.approx(-2.5, abs=0.02)
    assert abs(out["rotation_deg"]) < 0.01


def test_shift_of_frames_of_different_sizes_is_a_bench_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((64, 64), np.uint16))
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((64, 80), np.uint16))
    assert main(["measure", "shift", str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]) == 3
    assert "same size" in capsys.readouterr().err
