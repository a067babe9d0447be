"""`rig measure sfr | chart | focus` end to end: files in, one JSON object out, one-line errors with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from rig.cli import main
from tests.measure.analytic import F, gaussian_edge, gaussian_mtf, mtf50, pixel_mtf


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def edge_png(tmp_path: Path) -> Path:
    image = gaussian_edge((160, 120), angle_deg=5.0, sigma_px=0.8, lo=8000.0, hi=40000.0)
    path = tmp_path / "edge.png"
    assert cv2.imwrite(str(path), np.round(image).astype(np.uint16))
    return path


def test_sfr_json_of_a_16_bit_png(edge_png: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["measure", "sfr", str(edge_png), "--pixel-um", "1.6", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    truth = mtf50(F, gaussian_mtf(F, 0.8) * pixel_mtf(F, 5.0))
    assert abs(result["mtf50_cy_px"] / truth - 1.0) < 0.01
    assert result["mtf50_lp_mm"] == pytest.approx(result["mtf50_cy_px"] * 1000 / 1.6)
    pairs = np.array(result["mtf"])
    assert pairs[0].tolist() == [0.0, 1.0] and pairs[-1, 0] >= 1.0
    assert abs(result["angle_deg"]) == pytest.approx(5.0, abs=0.05)
    assert result["flags"] == []
    # the same edge through an explicit ROI
    code, out, _ = _run(["measure", "sfr", str(edge_png), "--roi", "10", "20", "100", "120", "--json"], capsys)
    assert code == 0 and abs(json.loads(out)["mtf50_cy_px"] / truth - 1.0) < 0.01


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--roi", "100", "100", "80", "80"], "--roi 100 100 80 80: expected a region"),
        (["--roi", "0", "0", "30", "100"], "--roi 0 0 30 100: no edge"),
        (["--pixel-um", "-1"], "--pixel-um -1: expected"),
    ],
)
def test_sfr_bad_input_is_one_line_and_exit_2(
    edge_png: Path, args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["measure", "sfr", str(edge_png), *args], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and expected in err


def test_unreadable_image_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "not-an-image.png"
    bogus.write_text("hello")
    for path in (bogus, tmp_path / "missing.tif"):
        code, _, err = _run(["measure", "sfr", str(path)], capsys)
        assert code == 2 and err.count("\n") == 1 and str(path) in err


@pytest.mark.slow
def test_chart_and_focus_on_twin_dngs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a 9-frame sweep of the golden unit written by `rig twin capture`, measured by `rig measure focus`
    offsets = np.linspace(-2.4, 2.4, 9)
    rows = ["file,rail_mm"]
    for i, dz in enumerate(offsets):
        name = f"frame{i}.dng"
        argv = ["twin", "capture", "--unit", "golden", "--rail-mm", f"{dz:.3f}", "--seed", str(i)]
        code, _, err = _run([*argv, "--exposure-ms", "20", "--out", str(tmp_path / name)], capsys)
        assert code == 0, err
        rows.append(f"{name},{dz:.3f}")  # mm from the focus position, as `rig twin capture --rail-mm` took it
    manifest = tmp_path / "sweep.csv"
    manifest.write_text("\n".join(rows) + "\n")

    code, out, err = _run(["measure", "chart", str(tmp_path / "frame4.dng"), "--pixel-um", "6.4", "--json"], capsys)
    assert code == 0, err
    chart = json.loads(out)
    assert len(chart["edges"]) >= 72 and all(e["mtf50_cy_px"] for e in chart["edges"])
    assert set(chart["zones"]) == {"center", "mid", "corner"}

    code, out, err = _run(["measure", "focus", "--manifest", str(manifest), "--json"], capsys)
    assert code == 0, err
    focus = json.loads(out)
    # golden unit: flange 0.8 µm, tilt x 0.3′, tilt y −0.2′ (fixtures/units/golden.toml, nominal cover)
    assert focus["flange_offset_um"] == pytest.approx(0.8, abs=1.0)
    assert focus["tilt_x_arcmin"] == pytest.approx(0.3, abs=0.5)
    assert focus["tilt_y_arcmin"] == pytest.approx(-0.2, abs=0.5)

    files = [str(tmp_path / f"frame{i}.dng") for i in range(3)]
    code, _, err = _run(["measure", "focus", *files, "--rail-mm", "1", "2"], capsys)
    assert code == 2 and "--rail-mm: expected one rail position per file (3), got 2" in err


def test_sfr_method_option_is_echoed(edge_png: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["measure", "sfr", str(edge_png), "--method", "sfrmat5", "--json"], capsys)
    assert code == 0 and json.loads(out)["method"] == "sfrmat5"
    with pytest.raises(SystemExit) as info:
        main(["measure", "sfr", str(edge_png), "--method", "imatest"])
    assert info.value.code == 2 and "--method" in capsys.readouterr().err


def test_sfr_without_roi_refuses_a_frame_with_no_clean_edge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(4)
    texture = np.clip(20000 + 8000 * rng.standard_normal((200, 240)), 0, 65535).astype(np.uint16)
    path = tmp_path / "texture.png"
    cv2.imwrite(str(path), texture)
    code, out, err = _run(["measure", "sfr", str(path)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "no slanted edge found; pass --roi X Y W H" in err
