"""``rig measure shift A B --json``: two frames written here with a known shift give it back; frames of different
sizes are the user's input error (exit status 2, issue #20), one line naming both files."""

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


def test_shift_of_frames_of_different_sizes_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((64, 64), np.uint16))
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((64, 80), np.uint16))
    assert main(["measure", "shift", str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "same size" in err and "a.tif" in err and "b.tif" in err


def _write(path: Path, image: np.ndarray) -> Path:
    tifffile.imwrite(path, np.round(20000 + 1500 * image).astype(np.uint16))
    return path


@pytest.mark.parametrize("case", ["unrelated", "scaled 1.25", "scaled 1.02"])
def test_pairs_that_do_not_match_rigidly_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    import cv2

    a = blob_field(384, 512, 3, n=900)
    if case == "unrelated":
        b = blob_field(384, 512, 9, n=900)
    else:
        zoom = float(case.split()[1])
        matrix = cv2.getRotationMatrix2D((255.5, 191.5), 0.0, zoom)
        b = cv2.warpAffine(a, matrix, (512, 384), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    code = main(["measure", "shift", str(_write(tmp_path / "a.tif", a)), str(_write(tmp_path / "b.tif", b)), "--json"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and "a.tif" in captured.err
    assert "do not match" in captured.err or "differ in scale" in captured.err
    if case == "scaled 1.25":  # a clear zoom is named with the log-polar estimate, within its 1 % resolution
        estimate = float(captured.err.split("differ in scale by ")[1].split()[0])
        assert "(log-polar estimate" in captured.err and estimate == pytest.approx(1.25, rel=0.01)


def test_a_good_pair_reports_its_confidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path / "a.tif", blob_field(384, 512, 3, n=900))
    b = _write(tmp_path / "b.tif", blob_field(384, 512, 3, shift=(-3.5, 0.75), n=900))
    assert main(["measure", "shift", str(a), str(b), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scale"] == pytest.approx(1.0, abs=1e-3) and out["peak_correlation"] > 0.9
    assert out["residual_rms_px"] < 0.05 and out["patches_used"] == out["patches_matched"]
