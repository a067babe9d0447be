"""Chart detection by shape on charts we did not design: ISO 12233:2023-style e-SFR and MTF-Mapper-style,
in perspective, blurred and noisy (drawn in ``tests.measure.chart_synth`` with exact target corners)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from rig.measure.edges import EdgeRoi, find_edges, measure_chart
from tests.measure import chart_synth

SHAPE = (900, 1200)
MATCH_FRACTION = 0.1  # ROI centre within 10 % of the side from the true side midpoint
CLEARANCE_PX = 2.0  # no ROI comes closer than this to another target or mark (beyond the blur's 3σ)


MIN_SLANT_DEG = 2.0  # a side the perspective has turned to within 2° of an axis is no slanted edge (ISO: ≈ 5°)


def _slant_deg(p0: np.ndarray, p1: np.ndarray) -> float:
    angle = math.degrees(math.atan2(abs(p1[1] - p0[1]), abs(p1[0] - p0[0])))
    return min(angle, 90.0 - angle)


def _sides(targets: list[np.ndarray]) -> list[tuple[int, np.ndarray, float, bool]]:
    """(target, midpoint, length, slanted) of every side."""
    return [
        (
            k,
            0.5 * (t[i] + t[(i + 1) % 4]),
            float(np.linalg.norm(t[(i + 1) % 4] - t[i])),
            _slant_deg(t[i], t[(i + 1) % 4]) >= MIN_SLANT_DEG,
        )
        for k, t in enumerate(targets)
        for i in range(4)
    ]


def _assert_every_edge_found_and_clear(rois: list[EdgeRoi], chart: chart_synth.Chart, blur: float) -> None:
    sides = _sides(chart.targets)
    owner = {}
    for k, mid, side, slanted in sides:
        near = [r for r in rois if math.hypot(r.centre_x_px - mid[0], r.centre_y_px - mid[1]) < MATCH_FRACTION * side]
        assert near or not slanted, f"no ROI for the side of target {k} at {mid.round(1)}"
        if near:
            owner[id(near[0])] = k
    slanted_sides = sum(1 for *_, slanted in sides if slanted)
    assert slanted_sides <= len(rois) <= len(sides), f"{len(rois)} ROIs for {slanted_sides}–{len(sides)} sides"
    margin = math.ceil(3 * blur + CLEARANCE_PX)
    for roi in rois:
        k = owner.get(id(roi))
        assert k is not None, f"ROI at {roi.centre_x_px:.0f},{roi.centre_y_px:.0f} matches no target side"
        others = np.zeros(SHAPE, np.uint8)
        for j, target in enumerate(chart.targets):
            if j != k:
                cv2.fillPoly(others, [np.round(target).astype(np.int32)], 1)
        for outline in chart.others:
            cv2.fillPoly(others, [np.round(outline).astype(np.int32)], 1)
        others = cv2.dilate(others, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
        assert not others[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w].any(), f"ROI of target {k} touches another"


@pytest.mark.parametrize(("tilt", "noise", "blur"), [(0.0, 0.0, 0.8), (0.12, 8.0, 1.2), (0.2, 16.0, 1.6)])
def test_iso_12233_2023_style_chart(tilt: float, noise: float, blur: float) -> None:
    targets, others = chart_synth.iso_esfr_layout(SHAPE)
    chart = chart_synth.render(
        SHAPE,
        targets,
        others=others,
        blur_sigma_px=blur,
        noise_sigma=noise,
        warp=chart_synth.homography(SHAPE, tilt),
    )
    rois = find_edges(chart.image)
    _assert_every_edge_found_and_clear(rois, chart, blur)
    # each one measures; the only flags left are the geometry's (perspective turns some sides towards an axis),
    # never those of a contaminated ROI (a bent or broken edge, an edge off-centre, clipping)
    from rig.measure.sfr import SfrFlag

    result = measure_chart(chart.image, rois=rois)
    assert all(e.sfr is not None for e in result.edges)
    flags = {f for e in result.edges for f in e.sfr.flags}
    assert flags <= {SfrFlag.TOO_FEW_ROWS, SfrFlag.CRITICAL_ANGLE}, flags
    if tilt == 0.0:
        assert not flags


@pytest.mark.parametrize(("tilt", "noise", "blur", "seed"), [(0.0, 0.0, 0.8, 1), (0.15, 10.0, 1.4, 2)])
def test_mtf_mapper_style_chart(tilt: float, noise: float, blur: float, seed: int) -> None:
    targets = chart_synth.mtf_mapper_layout(SHAPE, seed=seed)
    chart = chart_synth.render(
        SHAPE,
        targets,
        target_level=0.04,
        ground=900.0,
        blur_sigma_px=blur,
        noise_sigma=noise,
        warp=chart_synth.homography(SHAPE, tilt),
        seed=seed,
    )
    rois = find_edges(chart.image)
    _assert_every_edge_found_and_clear(rois, chart, blur)


def test_flagged_edges_stay_out_of_the_zone_summary() -> None:
    targets, others = chart_synth.iso_esfr_layout(SHAPE)
    chart = chart_synth.render(SHAPE, targets, others=others, blur_sigma_px=1.0)
    image = chart.image.copy()
    image[image > 790] = 800.0  # clip the ground: every edge now touches the white level
    result = measure_chart(image, white_level=800.0)
    assert all("clipped" in e.sfr.flags for e in result.edges if e.sfr is not None)
    assert all(z.edges == 0 for z in result.zones.values())


def test_burns_style_single_large_square_with_gray_patches() -> None:
    targets, others = chart_synth.burns_layout(SHAPE)
    chart = chart_synth.render(SHAPE, targets, others=others, blur_sigma_px=1.2, noise_sigma=6.0)
    rois = find_edges(chart.image)
    _assert_every_edge_found_and_clear(rois, chart, 1.2)


def test_sfr_without_roi_takes_the_best_unflagged_chart_edge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from rig.cli import main

    targets, others = chart_synth.iso_esfr_layout(SHAPE)
    chart = chart_synth.render(SHAPE, targets, others=others, blur_sigma_px=1.0, noise_sigma=4.0, ground=50000.0)
    path = tmp_path / "iso.png"
    cv2.imwrite(str(path), np.round(chart.image).astype(np.uint16))
    assert main(["measure", "sfr", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    x, y, w, h = out["roi"]
    assert out["flags"] == [] and w < 0.2 * SHAPE[1]  # one chart edge, not the frame
    centre = chart.targets[0].mean(axis=0)  # the central square's edge is the one nearest the centre
    assert abs(x + w / 2 - centre[0]) < 0.15 * SHAPE[0] and abs(y + h / 2 - centre[1]) < 0.15 * SHAPE[0]
