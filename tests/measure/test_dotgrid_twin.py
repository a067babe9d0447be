"""The dot-grid fit on a twin capture recovers the twin's true principal point and lens distortion."""

from __future__ import annotations

import numpy as np
import pytest

from rig.config import load_chart, load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.measure.dotgrid import detect_dots, fit_dot_grid, ptlens_radius
from rig.spec.dng import read_dng
from rig.twin.world import TwinBench

CENTRE_TOL_PX = 0.1  # ~290 dots at ~0.05 px rms on the twin's noisy, blurred CFA frame
MAPPING_TOL_PX = 0.15  # fitted vs true radial mapping, anywhere out to the corner


class _Clock:
    now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


def test_twin_dot_grid_capture_gives_the_true_axis_and_distortion() -> None:
    station = load_station()
    unit = load_unit(FIXTURES_DIR / "units" / "decentre-60um.toml")  # the axis ≈ 9 px off the sensor centre
    bench = TwinBench(station, unit, load_lens_catalog(), seed=2)
    clock = _Clock()
    bench.state.clock = clock
    bench.state.mount_lens(unit.lens.id)
    clock.now_ns = 5_000_000_000
    bench.state.update(
        carousel_mm=station.carousel.slots["dotgrid"],
        rail_mm=station.rail.focus_mm,
        light_pwm=1000,
        exposure_time_s=0.012,
    )
    frame = bench.capture()
    image = read_dng(frame.dng, name="dotgrid.dng")
    truth = frame.truth
    assert truth is not None

    chart = load_chart("dotgrid")
    assert chart.dots is not None
    fit = fit_dot_grid(detect_dots(image.raw, cfa=True, black_level_dn=image.black_level), pitch=chart.dots.pitch)

    h, w = image.raw.shape
    true_centre = ((w - 1) / 2 + truth.decentre_x_px, (h - 1) / 2 + truth.decentre_y_px)
    assert np.hypot(true_centre[0] - (w - 1) / 2, true_centre[1] - (h - 1) / 2) > 5  # a real decentre to find
    assert fit.principal_point_px == pytest.approx(true_centre, abs=CENTRE_TOL_PX)
    a, b, c = truth.distortion_abc
    r = np.linspace(0, np.hypot(w, h) / 2, 100)
    got = ptlens_radius(r, a=fit.ptlens_a, b=fit.ptlens_b, c=fit.ptlens_c, r_norm=fit.r_norm_px)
    assert np.abs(got - ptlens_radius(r, a=a, b=b, c=c, r_norm=min(w, h) / 2)).max() < MAPPING_TOL_PX
    assert fit.dots_used > 250
