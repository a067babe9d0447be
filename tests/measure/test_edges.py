"""Chart edge detection on charts drawn here from fixtures/charts/sfr.toml at random poses, gray and raw."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rig.errors import MeasurementError
from rig.measure.edges import EdgeRoi, Polarity, Zone, find_edges, measure_chart, zone_of
from rig.measure.sfr import EdgeOrientation
from tests.measure.analytic import F, chart_squares_px, gaussian_mtf, mosaic, mtf50, pixel_mtf, render_chart

SHAPE = (1536, 2048)  # the twin's 4× binned read-out
FOUND_MIN = 0.95  # fraction of the edges whose ROI fits in the frame
MATCH_PX = 0.1  # ROI centre within 10 % of a side of the true side midpoint
FIELD_R_TOL = 0.01


def _true_edges(shape: tuple[int, int], **pose: float) -> list[dict]:
    return _edges_of(chart_squares_px(shape, **pose), shape)


def _edges_of(quads: list[np.ndarray], shape: tuple[int, int]) -> list[dict]:
    """Midpoint, orientation, polarity and side length of every square side fully inside the frame."""
    rows, cols = shape
    edges = []
    for quad in quads:
        if quad[:, 0].min() < 0 or quad[:, 1].min() < 0 or quad[:, 0].max() > cols - 1 or quad[:, 1].max() > rows - 1:
            continue
        centre = quad.mean(axis=0)
        side = float(np.linalg.norm(quad[1] - quad[0]))
        for i in range(4):
            mid = 0.5 * (quad[i] + quad[(i + 1) % 4])
            n = mid - centre
            vertical = abs(n[0]) >= abs(n[1])
            # the edge counts when an ROI along its middle 60 % fits with ≥ 0.25 side of field on either side
            half_w, half_h = (0.25 * side, 0.3 * side) if vertical else (0.3 * side, 0.25 * side)
            if mid[0] - half_w < 0 or mid[1] - half_h < 0 or mid[0] + half_w > cols or mid[1] + half_h > rows:
                continue
            into_dark = n[0] < 0 if vertical else n[1] < 0
            edges.append({"mid": mid, "vertical": vertical, "into_dark": into_dark, "side": side})
    return edges


def _match(rois: list[EdgeRoi], truth: list[dict], shape: tuple[int, int]) -> int:
    rows, cols = shape
    half_diag = 0.5 * math.hypot(rows, cols)
    matched = 0
    for edge in truth:
        near = [
            r
            for r in rois
            if math.hypot(r.centre_x_px - edge["mid"][0], r.centre_y_px - edge["mid"][1]) < MATCH_PX * edge["side"]
        ]
        if not near:
            continue
        roi = near[0]
        assert roi.orientation is (EdgeOrientation.VERTICAL if edge["vertical"] else EdgeOrientation.HORIZONTAL)
        assert roi.polarity is (Polarity.LIGHT_TO_DARK if edge["into_dark"] else Polarity.DARK_TO_LIGHT)
        dx, dy = edge["mid"][0] - (cols - 1) / 2, edge["mid"][1] - (rows - 1) / 2
        assert roi.field_r == pytest.approx(math.hypot(dx, dy) / half_diag, abs=FIELD_R_TOL)
        matched += 1
    # every ROI is a real edge (any side of a square in view): nothing else in the frame was taken for one
    assert len(rois) <= len(truth) + 8, f"{len(rois)} ROIs for {len(truth)} edges"
    return matched


def _pose(rng: np.random.Generator) -> dict:
    return {
        "rotation_deg": float(rng.uniform(-3.0, 3.0)),
        "scale": float(rng.uniform(0.9, 1.1)),
        "shift_px": (float(rng.uniform(-60, 60)), float(rng.uniform(-45, 45))),
    }


def test_finds_the_chart_edges_at_random_poses_gray() -> None:
    rng = np.random.default_rng(404)
    for _ in range(3):
        pose = _pose(rng)
        image = render_chart(SHAPE, blur_sigma_px=float(rng.uniform(0.6, 2.0)), shading_k1=-0.35, supersample=2, **pose)
        image = image + rng.normal(0.0, 6.0, image.shape)
        rois = find_edges(image)
        truth = _true_edges(SHAPE, **pose)
        assert len(truth) >= 40  # a 10 % larger, shifted chart loses some corner squares off the frame
        found = _match(rois, truth, SHAPE)
        assert found >= FOUND_MIN * len(truth), f"found {found} of {len(truth)} edges at {pose}"


def test_finds_the_chart_edges_in_a_raw_bayer_frame_and_measures_them() -> None:
    rng = np.random.default_rng(12233)
    pose = _pose(rng)
    sigma = 0.9
    gray = render_chart(SHAPE, blur_sigma_px=sigma, background=700.0, foreground=175.0, **pose)
    raw = mosaic(gray) + 64.0 + rng.normal(0.0, 4.0, SHAPE)
    raw = np.clip(np.round(raw), 0, 1023).astype(np.uint16)
    rois = find_edges(raw, cfa_pattern="RGGB", black_level=64)
    truth = _true_edges(SHAPE, **pose)
    assert _match(rois, truth, SHAPE) >= FOUND_MIN * len(truth)
    assert all(r.x % 2 == 0 and r.y % 2 == 0 and r.w % 2 == 0 and r.h % 2 == 0 for r in rois)

    result = measure_chart(raw, cfa_pattern="RGGB", black_level=64, white_level=1023, pixel_pitch_um=6.4, rois=rois)
    assert all(e.sfr is not None for e in result.edges), [e.error for e in result.edges if e.error]
    # chart squares at 5° plus the pose's rotation: the pixel MTF of that angle; the 4× supersampled drawing
    # approximates the pixel aperture to < 0.1 % at these frequencies
    for edge in result.measured:
        angle = abs(edge.sfr.angle_deg)
        truth50 = mtf50(F, gaussian_mtf(F, sigma) * pixel_mtf(F, angle))
        assert abs(edge.sfr.mtf50_cy_px / truth50 - 1.0) < 0.05, (edge.roi, edge.sfr.mtf50_cy_px, truth50)
    for zone in Zone:
        summary = result.zones[zone]
        assert summary.edges > 0
        assert summary.mtf50_median_lp_mm == pytest.approx(summary.mtf50_median_cy_px * 1000 / 6.4)


def test_zones() -> None:
    assert zone_of(0.0) is Zone.CENTER and zone_of(0.19) is Zone.CENTER
    assert zone_of(0.2) is Zone.MID and zone_of(0.59) is Zone.MID
    assert zone_of(0.6) is Zone.CORNER and zone_of(0.95) is Zone.CORNER


def test_blank_frame_raises() -> None:
    rng = np.random.default_rng(5)
    with pytest.raises(MeasurementError, match="no chart square"):
        find_edges(800.0 + rng.normal(0.0, 5.0, (768, 1024)))


def _twin_quads(truth, station, chart_pose) -> list[np.ndarray]:
    """The chart squares' corners in frame pixels, through the twin's own chart → sensor geometry."""
    from rig.config import load_chart
    from rig.twin.render import geometry

    to_sensor = geometry(truth, station, chart_pose)
    pitch = station.sensor.readout_pitch_um
    w, h = station.sensor.width_px, station.sensor.height_px
    quads = []
    for sq in load_chart("sfr").squares:
        a = math.radians(sq.angle_deg)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        corners = 0.5 * sq.size * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float) @ rot.T
        x_um, y_um = to_sensor(corners[:, 0] + sq.x, corners[:, 1] + sq.y)
        quads.append(np.stack([x_um / pitch + (w - 1) / 2, y_um / pitch + (h - 1) / 2], axis=1))
    return quads


def test_finds_the_chart_edges_on_twin_captures_at_random_chart_poses() -> None:
    from rig.config import load_lens_catalog, load_station, load_unit
    from rig.config.loader import FIXTURES_DIR
    from rig.twin.raster import ChartPose
    from rig.twin.render import render
    from rig.twin.state import BenchState

    rng = np.random.default_rng(2026)
    station, catalog = load_station(), load_lens_catalog()
    unit = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    lens = catalog.get(unit.lens.id)
    state = BenchState()
    state.update(carousel_mm=station.carousel.slots["sfr"], light_pwm=1000, exposure_time_s=0.02)
    state.mount_lens(lens.id)
    shape = (station.sensor.height_px, station.sensor.width_px)
    for _ in range(3):
        pose = ChartPose(
            rotation_deg=float(rng.uniform(-3, 3)),
            scale=float(rng.uniform(0.9, 1.1)),
            shift_x=float(rng.uniform(-0.04, 0.04)),
            shift_y=float(rng.uniform(-0.04, 0.04)),
        )
        # somewhere within ±0.8 mm of rail (±25 µm of focus): sharp to visibly soft
        state.update(rail_mm=station.rail.focus_mm + float(rng.uniform(-0.8, 0.8)))
        frame = render(station, unit, catalog, state.snapshot(), lens=lens, chart_pose=pose, rng=rng)
        rois = find_edges(frame.raw, cfa_pattern="RGGB", black_level=station.sensor.black_level_dn)
        truth = _edges_of(_twin_quads(frame.truth, station, pose), shape)
        found = _match(rois, truth, shape)
        assert found >= FOUND_MIN * len(truth), f"found {found} of {len(truth)} edges at {pose}"
