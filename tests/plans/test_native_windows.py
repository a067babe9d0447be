"""Where certification puts its native-pitch read-out windows, and how it groups edges by focus.

Truth: the chart's own geometry (fixtures/charts/sfr.toml: square centres and sides in half diagonals) on the
binned overview the bench finds its edges in, rendered by the twin; hand-made edge foci for the grouping rule; and
the diffraction × Gaussian × pixel-box transfer function for the native limits' derivation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from rig.bench import procedures as proc
from rig.calibrate.certificate import aperture_zone
from rig.config import load_lens_catalog, load_station, load_unit
from rig.config.charts import load_chart
from rig.config.limits import load_limits
from rig.config.loader import FIXTURES_DIR
from rig.measure.edges import find_edges
from rig.measure.focus import BestFocus, EdgeFocus, FlangeResult
from rig.spec.ptp import MAX_WINDOW_SIDE_PX, parse_readout_windows, readout_windows_text
from rig.twin.optics import BlurSpec, otf_along
from rig.twin.render import render
from rig.twin.state import BenchState

LENS = "summilux-m-35-f1.4-asph-2022"


@pytest.fixture(scope="module")
def overview() -> tuple[np.ndarray, list]:
    """A binned frame of the SFR chart at focus and the edges found on it (as the sweep's reference frame)."""
    station = load_station()
    catalog = load_lens_catalog()
    unit = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    state = BenchState()
    state.update(
        rail_mm=station.rail.focus_mm, carousel_mm=station.carousel.slots["sfr"], light_pwm=800, f_number=1.4,
        lens_attached=True, lens_id=LENS, exposure_time_s=0.01,
    )  # fmt: skip
    frame = render(station, unit, catalog, state.snapshot(), lens=catalog.get(LENS), noise=False)
    return frame.raw, find_edges(frame.raw, cfa_pattern="RGGB", black_level=station.sensor.black_level_dn)


def test_one_window_per_square_holds_its_edges_and_the_square(overview: tuple[np.ndarray, list]) -> None:
    _, rois = overview
    sensor = load_station().sensor
    windows = proc.square_windows(
        rois, binning=sensor.binning, sensor_width_px=sensor.full_width_px, sensor_height_px=sensor.full_height_px
    )
    chart = load_chart("sfr")
    assert len(windows) == len(chart.squares) == 19
    # the phone takes them (even, inside, not overlapping, within its size limits), twelve at a time
    ordered = [windows[k] for k in sorted(windows)]
    for start in range(0, len(ordered), 12):
        text = readout_windows_text(ordered[start : start + 12])
        parse_readout_windows(text, sensor_width_px=sensor.full_width_px, sensor_height_px=sensor.full_height_px)
    half_diag = 0.5 * math.hypot(sensor.full_width_px, sensor.full_height_px)
    centres = [
        (sensor.full_width_px / 2 + sq.x * half_diag, sensor.full_height_px / 2 + sq.y * half_diag)
        for sq in chart.squares
    ]
    side = chart.squares[0].size * half_diag  # 410 native px
    for roi in rois:
        window = windows[roi.square]
        native = proc.native_roi(roi, window, binning=sensor.binning)
        assert native.x >= 0 and native.y >= 0
        assert native.x + native.w <= window.width_px and native.y + native.h <= window.height_px
        assert native.x % 2 == 0 and native.y % 2 == 0  # the ROI keeps the frame's CFA phase
        # the same piece of the sensor: the ROI's centre maps to the binned one's (pixel centres)
        assert (native.centre_x_px + window.x_px + 0.5) / sensor.binning - 0.5 == pytest.approx(roi.centre_x_px)
    for window in windows.values():
        cx, cy = window.x_px + window.width_px / 2, window.y_px + window.height_px / 2
        nearest = min(centres, key=lambda c: math.hypot(c[0] - cx, c[1] - cy))
        # the square (rotated 5°: half extent ≤ side·(cos 5° + sin 5°)/2) lies inside its window
        reach = 0.5 * side * (math.cos(math.radians(5)) + math.sin(math.radians(5)))
        assert window.x_px <= nearest[0] - reach and nearest[0] + reach <= window.x_px + window.width_px
        assert window.y_px <= nearest[1] - reach and nearest[1] + reach <= window.y_px + window.height_px
        assert max(window.width_px, window.height_px) <= MAX_WINDOW_SIDE_PX


def _edge(roi, best_mm: float | None) -> EdgeFocus:
    best = None if best_mm is None else BestFocus(best_mm, 0.001, 0.5, 0.01, 11)
    rails = np.linspace(-0.1, 0.1, 11)
    return EdgeFocus(roi, 0.0, 0.0, rails, rails * 0 + 0.4, best, 0.0, 0.1)


def test_edges_share_a_capture_while_their_best_foci_agree_to_a_quarter_of_the_depth_of_focus(
    overview: tuple[np.ndarray, list],
) -> None:
    _, rois = overview
    k_um_per_mm = 1000.0  # image µm per rail mm
    dof_um = 4.0  # groups span at most 1 µm: 0.001 mm of rail
    bests = [0.0, 0.0004, 0.0010, 0.0011, 0.0030, None]
    edges = [_edge(roi, b) for roi, b in zip(rois, bests, strict=False)]
    flange = FlangeResult(0, 0, 0, 0, 0, 0, 0, 0, len(edges), len(edges), tuple(edges))
    sweep = proc.Sweep((), np.zeros(11), flange, np.array([]), (), k_um_per_mm)
    groups = proc.focus_groups(sweep, depth_of_focus_um=dof_um)
    assert [len(g) for _, g in groups] == [3, 1, 1]  # 0, 0.4, 1.0 µm | 1.1 µm | 3.0 µm; the unfocused edge is out
    assert [rail for rail, _ in groups] == pytest.approx([0.0005, 0.0011, 0.0030], abs=1e-9)
    for rail, members in groups:
        assert all(abs(e.best.position - rail) * k_um_per_mm <= dof_um / 8 + 1e-9 for e in members)


BINNED_LIMITS_CY_PX = {"center": 0.30, "mid": 0.28, "corner": 0.25}
"""The 6.4 µm sharpness limits of revision 2026-12-A (fixtures/limits/certification.toml's reason)."""


def _mtf50_cy_px(f_number: float, sigma_um: float, pitch_um: float) -> float:
    freqs = np.linspace(0.0, 1.0, 20001)
    blur = BlurSpec(f_number=f_number, gaussian_sigma_um=sigma_um, pixel_pitch_um=pitch_um)
    mtf = otf_along(freqs / pitch_um, blur, angle_rad=math.radians(5.0))
    return float(freqs[np.argmax(mtf < 0.5)])


@pytest.mark.parametrize("f_number", [1.4, 2.8, 5.6])
def test_the_native_limits_ask_the_lens_quality_the_binned_ones_did(f_number: float) -> None:
    """The lens (Airy × residual Gaussian, the twin's model) that just meets a binned limit meets the native one."""
    limits = load_limits("certification").get("mtf50_cy_px")
    for zone, binned in BINNED_LIMITS_CY_PX.items():
        sigma = brentq(lambda s, b=binned: _mtf50_cy_px(f_number, s, 6.4) - b, 0.0, 10.0, xtol=1e-5)
        native = _mtf50_cy_px(f_number, sigma, 1.6)
        assert limits.for_zone(aperture_zone(f_number, zone)).low == pytest.approx(native, abs=0.0015), (zone, sigma)
