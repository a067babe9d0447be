"""Light of the twin against the analytic laws: T/N² between apertures, cos⁴ falloff, signal scale, CRA shading."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rig.config import LensCatalog, StationConfig, TwinUnit
from rig.twin.render import render
from rig.twin.state import BenchSnapshot, BenchState
from tests.twin.conftest import ideal_unit, with_lens

RATIO_RTOL = 0.01  # the brief's acceptance for the aperture ratio and for cos⁴
LENS = "summilux-m-35-f1.4-asph-2022"
SHORT_PUPIL_LENS = "elmar-m-24-f3.8-asph"  # exit pupil 25 mm: the strongest cos⁴ of the catalog


def _flat_snapshot(station: StationConfig, *, lens_id: str | None, light: float = 0.8) -> BenchSnapshot:
    state = BenchState()
    state.update(
        rail_mm=station.rail.focus_mm,
        carousel_mm=station.carousel.slots["flat"],
        light_pwm=light * station.light.pwm_max,
        exposure_time_s=0.01,
        iso=100,
    )
    if lens_id is not None:
        state.update(lens_attached=True, lens_id=lens_id)
    return state.snapshot()


def _centre_mean(raw: np.ndarray, black: int) -> float:
    h, w = raw.shape
    return float(raw[h // 2 - 8 : h // 2 + 8, w // 2 - 8 : w // 2 + 8].mean()) - black


def test_f14_over_native_f19_is_the_inverse_square_of_the_f_numbers(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    cat = with_lens(catalog, LENS, transmission=catalog.native.transmission)  # same T: only N differs
    unit = ideal_unit(golden)
    snap = _flat_snapshot(station, lens_id=LENS)
    m_lens = render(station, unit, cat, snap, lens=cat.get(LENS), noise=False)
    native = render(station, unit, cat, snap, lens=None, noise=False)
    black = station.sensor.black_level_dn
    ratio = _centre_mean(m_lens.raw, black) / _centre_mean(native.raw, black)
    assert ratio == pytest.approx((1.9 / 1.4) ** 2, rel=RATIO_RTOL)


def test_centre_signal_follows_the_station_calibration(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    """S = R·L·t·(T/N²)·(ISO/100)·ρ on axis (flat chart, no vignetting or shading at r = 0)."""
    unit = ideal_unit(golden)
    lens = catalog.get(LENS)
    snap = _flat_snapshot(station, lens_id=LENS, light=0.5)
    raw = render(station, unit, catalog, snap, lens=lens, noise=False).raw
    light = station.light
    expected = (
        light.response_dn_per_cd_m2_s
        * 0.5
        * light.luminance_cd_m2_at_max
        * 0.01
        * lens.transmission
        * unit.lens.transmission_factor
        / lens.max_f_number**2
        * unit.sensor.responsivity_factor
    )
    assert _centre_mean(raw, station.sensor.black_level_dn) == pytest.approx(expected, rel=0.005)


def test_cos4_falloff_with_the_exit_pupil(station: StationConfig, catalog: LensCatalog, golden: TwinUnit) -> None:
    cat = with_lens(catalog, SHORT_PUPIL_LENS, vignetting={"k1": 0.0, "k2": 0.0, "k3": 0.0})
    lens = cat.get(SHORT_PUPIL_LENS)
    unit = ideal_unit(golden)
    unit = unit.model_copy(
        update={
            "sensor": unit.sensor.model_copy(update={"cra_shading": {"R": 0.0, "G": 0.0, "B": 0.0}}),
            "lens": unit.lens.model_copy(update={"id": SHORT_PUPIL_LENS}),
        }
    )
    snap = _flat_snapshot(station, lens_id=SHORT_PUPIL_LENS, light=1.0)
    signal = render(station, unit, cat, snap, lens=lens, noise=False).signal_dn
    pitch = station.sensor.readout_pitch_um
    h, w = signal.shape
    centre = float(signal[h // 2 - 1 : h // 2 + 1, w // 2 - 1 : w // 2 + 1].mean())
    for row, col in [(h // 2, 3 * w // 4), (h // 4, w // 2), (10, 10), (h - 11, w - 300), (700, 1900)]:
        x_mm = ((col + 0.5) - 0.5 * w) * pitch / 1000.0
        y_mm = ((row + 0.5) - 0.5 * h) * pitch / 1000.0
        tan_theta = math.hypot(x_mm, y_mm) / lens.exit_pupil_mm
        expected = math.cos(math.atan(tan_theta)) ** 4
        assert float(signal[row, col]) / centre == pytest.approx(expected, rel=RATIO_RTOL), f"pixel ({row}, {col})"


def test_cra_colour_shading_per_bayer_channel(station: StationConfig, catalog: LensCatalog, golden: TwinUnit) -> None:
    """At the corner each colour drops by its own k·r² on top of the lens falloff (reference lens: scale 1)."""
    unit = ideal_unit(golden)
    lens = catalog.get(LENS)
    signal = render(station, unit, catalog, _flat_snapshot(station, lens_id=LENS), lens=lens, noise=False).signal_dn
    h, w = signal.shape
    pitch = station.sensor.readout_pitch_um
    half_diag_mm = station.sensor.half_diagonal_mm
    row, col = 8, 8  # an R site of the RGGB quad near the top-left corner
    x_mm = ((col + 0.5) - 0.5 * w) * pitch / 1000.0
    y_mm = ((row + 0.5) - 0.5 * h) * pitch / 1000.0
    r2 = (x_mm**2 + y_mm**2) / half_diag_mm**2
    # red and blue sites next to each other see the same lens falloff: their ratio is the CRA shading alone
    k = unit.sensor.cra_shading
    measured = float(signal[row, col]) / float(signal[row + 1, col + 1])
    expected = (1 + k["R"] * r2) / (1 + k["B"] * r2)
    assert measured == pytest.approx(expected, rel=2e-3)
    assert measured < 1.0  # R shades more than B for the golden sensor


def test_dark_between_carousel_slots(station: StationConfig, catalog: LensCatalog, golden: TwinUnit) -> None:
    state = BenchState()
    state.update(carousel_mm=station.carousel.slots["flat"] + 3.0, light_pwm=1000, lens_attached=True, lens_id=LENS)
    rendering = render(station, golden, catalog, state.snapshot(), lens=catalog.get(LENS), noise=False)
    assert rendering.chart is None
    assert int(rendering.raw.max()) == station.sensor.black_level_dn
