"""The twin renders a lens's lateral colour, and the TCA measurement finds it on the twin's dot-grid frames.

Ground truth: the lens catalogue's ``lateral_colour`` (red/blue image scale against green, ppm, about the optical
axis), which :func:`rig.twin.render.geometry` applies to each Bayer plane's own sites. The twin's frames carry what
a synthetic frame does not: per-colour chief-ray-angle shading, vignetting, distortion, decentre, photon noise and
colour planes sampled at twice the pixel pitch by 6.4 µm pixels (undersampled dot edges).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rig.config import load_lens_catalog, load_station, load_unit
from rig.config.lenses import LateralColour, LensCatalog
from rig.config.loader import FIXTURES_DIR
from rig.measure.lateral_colour import LateralColourFit, TcaTerms, measure_lateral_colour
from rig.twin.raster import PixelGrid
from rig.twin.world import TwinBench

V_TOL = 12e-6  # twin dot grid, one noisy frame: seeds 0–5 gave red within 2.5 ppm, blue within 8 ppm of truth
CORNER_TOL_UM = 0.1  # v and b together: seeds 0–5 within 0.07 µm (0.011 px) of the truth at the corner


class _Clock:
    now_ns = 1_780_000_000 * 10**9

    def __call__(self) -> int:
        return self.now_ns


def _catalog(red_ppm: float | None = None, blue_ppm: float | None = None) -> LensCatalog:
    """The shipped catalogue, or one whose golden-unit lens has the given lateral colour."""
    catalog = load_lens_catalog()
    if red_ppm is None or blue_ppm is None:
        return catalog
    lenses = [
        spec.model_copy(update={"lateral_colour": LateralColour(red_ppm=red_ppm, blue_ppm=blue_ppm)})
        if spec.id == "summilux-m-35-f1.4-asph-2022"
        else spec
        for spec in catalog.lens
    ]
    return LensCatalog(native=catalog.native, lens=lenses)


def _dot_grid_fit(catalog: LensCatalog, *, seed: int, terms: TcaTerms = TcaTerms.V_B) -> LateralColourFit:
    station = load_station()
    unit = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    bench = TwinBench(station, unit, catalog, seed=seed)
    clock = _Clock()
    bench.state.clock = clock
    bench.state.mount_lens(unit.lens.id)
    clock.now_ns += 5_000_000_000  # past the sensor switch
    bench.state.update(rail_mm=station.rail.focus_mm, light_pwm=1000, carousel_mm=station.carousel.slots["dotgrid"],
                       exposure_time_s=0.012)  # fmt: skip
    frame = bench.capture()
    return measure_lateral_colour(frame.raw, cfa_pattern=station.sensor.cfa_pattern,
                                  black_level_dn=station.sensor.black_level_dn,
                                  pixel_pitch_um=station.sensor.readout_pitch_um, terms=terms)  # fmt: skip


def test_a_bayer_plane_grid_has_the_read_out_centres_of_its_sites() -> None:
    grid = PixelGrid(2048, 1536, 6.4)
    cols, rows = np.arange(1024), np.arange(768)
    for dx in (0, 1):
        for dy in (0, 1):
            plane = grid.bayer_plane(dx, dy)
            assert (plane.width_px, plane.height_px, plane.pitch_um) == (1024, 768, 12.8)
            np.testing.assert_allclose(plane.x_um(cols), grid.x_um(2 * cols + dx), atol=1e-9)
            np.testing.assert_allclose(plane.y_um(rows), grid.y_um(2 * rows + dy), atol=1e-9)
            assert plane.col_of(float(grid.x_um(np.array(2 * 17 + dx))[()])) == pytest.approx(17.0)
    with pytest.raises(ValueError, match="2×2 CFA plane"):
        PixelGrid(2047, 1536, 6.4).bayer_plane(0, 0)


def test_the_twin_renders_the_catalogue_lateral_colour_and_it_is_measured() -> None:
    catalog = _catalog()
    spec = catalog.get("summilux-m-35-f1.4-asph-2022").lateral_colour
    assert spec.red_ppm > 0 > spec.blue_ppm  # the shipped lens has a lateral colour to find
    linear = _dot_grid_fit(catalog, seed=3, terms=TcaTerms.LINEAR)
    fit = _dot_grid_fit(catalog, seed=3)
    corner_um = math.hypot(2047, 1535) / 2 * 6.4
    print(f"twin TCA: vr − 1 {(linear.red.v - 1) * 1e6:.1f} ppm (truth {spec.red_ppm:g}), vb − 1 "
          f"{(linear.blue.v - 1) * 1e6:.1f} ppm (truth {spec.blue_ppm:g}); corner {fit.red.corner_shift_um:.3f} / "
          f"{fit.blue.corner_shift_um:.3f} µm; rms {fit.red.rms_residual_px:.3f} px")  # fmt: skip
    assert linear.red.v == pytest.approx(1 + spec.red_ppm * 1e-6, abs=V_TOL)
    assert linear.blue.v == pytest.approx(1 + spec.blue_ppm * 1e-6, abs=V_TOL)
    assert fit.red.corner_shift_um == pytest.approx(spec.red_ppm * 1e-6 * corner_um, abs=CORNER_TOL_UM)
    assert fit.blue.corner_shift_um == pytest.approx(spec.blue_ppm * 1e-6 * corner_um, abs=CORNER_TOL_UM)
    assert fit.red.rms_residual_px < 0.15 and fit.blue.rms_residual_px < 0.15  # the certification's limit: 0.3


def test_a_lens_without_lateral_colour_shows_none_despite_the_colour_shading() -> None:
    # the sensor's red shading term is nearly twice green's: a centroid that followed it would read ~20 ppm
    fit = _dot_grid_fit(_catalog(0.0, 0.0), seed=4, terms=TcaTerms.LINEAR)
    print(f"twin without TCA: vr − 1 {(fit.red.v - 1) * 1e6:.1f} ppm, vb − 1 {(fit.blue.v - 1) * 1e6:.1f} ppm")
    assert abs(fit.red.v - 1) < V_TOL and abs(fit.blue.v - 1) < V_TOL
