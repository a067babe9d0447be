"""Lens-side defects a certification lab meets (issue #16): each caught by exactly its own measurement.

* ``cert-decentred-element`` (Summilux-M 50): the centre of the field aberrations half a field off the axis
  (nodal aberration theory, Thompson, JOSA A 22 (2005) 1389), coma 2 waves at |H − σ| = 1: one soft corner, coma on
  axis. Only ``corner_mtf50_ratio`` fails; the value is predicted from the twin's transfer function at the chart's
  corner squares (pupil OTF of the Seidel coma, residual Gaussian, read-out pixel box), each edge at its best focus.
* ``cert-focus-shift`` (Noctilux-M 50, W040 = 3.1 waves): only ``focus_shift_um`` at f/2.8 fails; both stops' values
  lie between the formula's least-variance and least-rms-spot focus (``8·N_max²·λ·κ·W040·(1 − s²)``, κ = 1 … 4/3,
  derived in tests/twin/test_focus_shift.py).
* ``cert-noctilux-wavefront`` (Noctilux-M 50 with its design's W040 = 1.25 waves): its focus shift stays inside the
  depth of focus, so it is CERTIFIED — the new measurements do not reject a normal fast lens.

The golden lens's certification (tests/plans/test_certification_twin.py, ``summilux35``) predicts the new
measurements too (no shift, alike corners) and stays CERTIFIED. The pure helpers are tested here without a bench.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rig.calibrate.certificate import CERTIFICATE_FILE, CertificateLevel, LensCertificate, aperture_zone
from rig.config.limits import load_limits
from rig.config.resolve import load_station_lenses, load_twin_unit
from rig.config.station import DEFAULT_STATION, load_station
from rig.errors import MeasurementError
from rig.measure.edges import EdgeRoi, Polarity
from rig.measure.field_symmetry import Corner, corner_of, corner_symmetry
from rig.measure.focus import BestFocus, EdgeFocus, FlangeResult
from rig.measure.sfr import EdgeOrientation
from rig.plans.certification import apertures_for, focus_shift_um
from rig.results.record import Verdict
from rig.twin.optics import BlurSpec, otf_along
from rig.twin.render import sample_for
from rig.twin.truth import lens_wavefront, unit_truth
from rig.twin.wavefront import CHANNEL_WAVELENGTH_UM, seidel_at
from rig.twin.wavefront import focus_shift_um as least_variance_shift_um
from tests.plans.test_certification_twin import certify_on_twin

WIDTH, HEIGHT = 2048, 1536  # the twin station's binned readout
CORNER_RATIO_TOL = 0.06  # medians of 8 edges per corner at their best focus, against the transfer function
FOCUS_TOL_UM = 1.5  # two sweeps' flanges (±1 µm each, DESIGN.md §1) on one unit: their common errors cancel


# --------------------------------------------------------------------------------------------- pure helpers
def _edge(azimuth_deg: float, mtf50: float | None, *, field_r: float = 0.8) -> EdgeFocus:
    x = 0.5 * math.hypot(WIDTH, HEIGHT) * field_r * math.cos(math.radians(azimuth_deg)) + (WIDTH - 1) / 2
    y = 0.5 * math.hypot(WIDTH, HEIGHT) * field_r * math.sin(math.radians(azimuth_deg)) + (HEIGHT - 1) / 2
    roi = EdgeRoi(
        x=int(x) - 20, y=int(y) - 20, w=40, h=40, orientation=EdgeOrientation.VERTICAL,
        polarity=Polarity.DARK_TO_LIGHT, centre_x_px=x, centre_y_px=y, field_r=field_r, azimuth_deg=azimuth_deg,
        square=0, side_px=80.0,
    )  # fmt: skip
    best = None if mtf50 is None else BestFocus(0.0, 0.01, mtf50, 0.01, 11)
    rail = np.zeros(11)
    return EdgeFocus(roi, 0.0, 0.0, rail, rail + 0.3, best, 0.0 if best else math.nan, 0.1)


def test_the_four_frame_diagonals_name_their_corners_and_the_axes_none() -> None:
    diagonal = math.degrees(math.atan2(HEIGHT, WIDTH))  # 36.9°: +y is down
    assert corner_of(diagonal, width_px=WIDTH, height_px=HEIGHT) is Corner.BOTTOM_RIGHT
    assert corner_of(180 - diagonal, width_px=WIDTH, height_px=HEIGHT) is Corner.BOTTOM_LEFT
    assert corner_of(-180 + diagonal + 5, width_px=WIDTH, height_px=HEIGHT) is Corner.TOP_LEFT
    assert corner_of(-diagonal - 5, width_px=WIDTH, height_px=HEIGHT) is Corner.TOP_RIGHT
    for on_axis in (0.0, 90.0, 180.0, -90.0):  # the chart's 0.7-field squares on the axes belong to no corner
        assert corner_of(on_axis, width_px=WIDTH, height_px=HEIGHT) is None


def test_corner_symmetry_is_the_softest_corners_median_over_the_sharpest() -> None:
    d = math.degrees(math.atan2(HEIGHT, WIDTH))
    edges = [_edge(d, v) for v in (0.30, 0.40, 0.32)]  # bottom right: median 0.32
    edges += [_edge(180 - d, v) for v in (0.50, 0.52)]  # bottom left: 0.51
    edges += [_edge(d - 180, 0.48), _edge(-d, 0.49), _edge(-d, None)]  # no best focus: left out
    edges += [_edge(d, 0.01, field_r=0.5)]  # a mid-zone edge does not speak for a corner
    result = corner_symmetry(edges, width_px=WIDTH, height_px=HEIGHT)
    assert result.softest is Corner.BOTTOM_RIGHT and result.sharpest is Corner.BOTTOM_LEFT
    assert result.mtf50_cy_px[Corner.BOTTOM_RIGHT] == pytest.approx(0.32)
    assert result.ratio == pytest.approx(0.32 / 0.51)
    assert result.edges == {Corner.BOTTOM_RIGHT: 3, Corner.BOTTOM_LEFT: 2, Corner.TOP_LEFT: 1, Corner.TOP_RIGHT: 1}


def test_a_corner_without_a_focused_edge_is_a_measurement_error_naming_it() -> None:
    d = math.degrees(math.atan2(HEIGHT, WIDTH))
    edges = [_edge(d, 0.5), _edge(180 - d, 0.5), _edge(d - 180, 0.5), _edge(-d, None)]
    with pytest.raises(MeasurementError, match="top_right"):
        corner_symmetry(edges, width_px=WIDTH, height_px=HEIGHT)


def _flange(offset_um: float) -> FlangeResult:
    return FlangeResult(offset_um, 0.1, 0.0, 0.01, 0.0, 0.01, 0.0, 0.2, 20, 20, ())


def test_focus_shift_is_positive_when_the_image_moves_away_from_the_lens() -> None:
    # stopped down the sensor sits 5 µm nearer the lens than the image: the image moved 5 µm away from the lens
    assert focus_shift_um(_flange(1.5), _flange(-3.5)) == pytest.approx(5.0)


# --------------------------------------------------------------------------------------------- on the twin
CORNER_SQUARES = (0.7, 0.9)
"""Image heights of the SFR chart's squares on each frame diagonal (fixtures/charts/sfr.toml)."""
EDGE_NORMALS_DEG = (5.0, 95.0)
"""The chart's squares are turned 5°: their edges' normals (the SFR's frequency direction) lie at 5° and 95°."""


def _best_mtf50(blur: BlurSpec, normal_deg: float, pitch_um: float) -> float:
    """MTF50 (cy/px) of the transfer function at the edge's best focus (defocus scanned ±6 µm in 0.5 µm)."""
    f = np.linspace(0.0, 1.0, 2001)
    best = 0.0
    for defocus in np.arange(-6.0, 6.01, 0.5):
        trial = BlurSpec(**{**blur.__dict__, "defocus_um": float(defocus)})
        mtf = np.abs(otf_along(f / pitch_um, trial, angle_rad=math.radians(normal_deg)))
        best = max(best, float(f[np.argmax(mtf < 0.5)]))
    return best


def predicted_corner_ratio(unit_name: str, lens_id: str) -> float:
    """Softest over sharpest corner: per corner the median of its 8 edges' best-focus MTF50 (green)."""
    station = load_station(DEFAULT_STATION)
    catalog = load_station_lenses(station, station_file=DEFAULT_STATION)
    unit = load_twin_unit(station, unit_name, station_file=DEFAULT_STATION)
    lens = catalog.get(lens_id)
    truth = unit_truth(sample_for(unit, lens.id, None), lens, station, catalog=catalog)
    wavefront = lens_wavefront(unit, lens)
    pitch = station.sensor.pixel_pitch_um  # corner symmetry is graded on native-pitch read-out windows
    diagonal = math.atan2(station.sensor.height_px, station.sensor.width_px)
    medians = []
    for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1)):
        values = []
        for r in CORNER_SQUARES:
            hx = sx * r * math.cos(diagonal) - wavefront.aberration_centre_x
            hy = sy * r * math.sin(diagonal) - wavefront.aberration_centre_y
            aberrations = seidel_at(
                spherical_w040=wavefront.spherical_w040, coma_w131=wavefront.coma_w131,
                astigmatism_w222=wavefront.astigmatism_w222,
                reference_wavelength_um=wavefront.reference_wavelength_um, f_number=truth.f_number,
                max_f_number=lens.max_f_number, field_x=hx, field_y=hy, wavelength_um=CHANNEL_WAVELENGTH_UM["G"],
            ).rounded()  # fmt: skip
            blur = BlurSpec(
                f_number=truth.f_number, gaussian_sigma_um=truth.gaussian_blur_um, pixel_pitch_um=pitch,
                wavelength_um=CHANNEL_WAVELENGTH_UM["G"], aberrations=aberrations,
            )  # fmt: skip
            values += [_best_mtf50(blur, normal, pitch) for normal in EDGE_NORMALS_DEG] * 2  # both polarities
        medians.append(float(np.median(values)))
    return min(medians) / max(medians)


def predicted_focus_shift_um(unit_name: str, lens_id: str, f_number: float) -> tuple[float, float]:
    """The formula's bracket (κ = 1 … 4/3) of the shift from wide open to ``f_number`` (µm, + = away from the lens)."""
    station = load_station(DEFAULT_STATION)
    catalog = load_station_lenses(station, station_file=DEFAULT_STATION)
    unit = load_twin_unit(station, unit_name, station_file=DEFAULT_STATION)
    lens = catalog.get(lens_id)
    wavefront = lens_wavefront(unit, lens)
    least_variance = -least_variance_shift_um(
        spherical_w040=wavefront.spherical_w040,
        reference_wavelength_um=wavefront.reference_wavelength_um,
        max_f_number=lens.max_f_number,
        f_number=f_number,
    )
    return least_variance, 4.0 / 3.0 * least_variance


CASES = [
    pytest.param(
        "summilux-m-50-f1.4-asph-2023", "cert-decentred-element", CertificateLevel.CERTIFIED_WITH_LIMITATIONS,
        {("corner_mtf50_ratio", "f1.4")}, 4, id="decentred-element",
    ),
    pytest.param(
        "noctilux-m-50-f0.95-asph", "cert-focus-shift", CertificateLevel.CERTIFIED_WITH_LIMITATIONS,
        {("focus_shift_um", "f2.8")}, 4, id="focus-shift",
    ),
    pytest.param(
        "noctilux-m-50-f0.95-asph", "cert-noctilux-wavefront", CertificateLevel.CERTIFIED, set(), 0,
        id="noctilux-design-w040",
    ),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("lens_id", "unit_name", "level", "failing", "exit_code"), CASES)
def test_a_lens_side_defect_is_caught_by_exactly_its_measurement(
    tmp_path: Path, lens_id: str, unit_name: str, level: CertificateLevel, failing: set, exit_code: int
) -> None:
    station = load_station(DEFAULT_STATION)
    lens = load_station_lenses(station, station_file=DEFAULT_STATION).get(lens_id)
    limits = load_limits("certification")
    wide, stopped = apertures_for(lens)[0], apertures_for(lens)[1:]

    # 1. the expectation, from formulas and the transfer function, clear of the limits
    ratio = predicted_corner_ratio(unit_name, lens_id)
    ratio_limit = limits.get("corner_mtf50_ratio").for_zone(aperture_zone(wide)).low
    assert ratio_limit is not None and abs(ratio - ratio_limit) > CORNER_RATIO_TOL, ratio
    shifts = {n: predicted_focus_shift_um(unit_name, lens_id, n) for n in stopped}
    predicted_failing = {("corner_mtf50_ratio", aperture_zone(wide))} if ratio < ratio_limit else set()
    for n, (low, high) in shifts.items():
        bounds = limits.get("focus_shift_um").for_zone(aperture_zone(n))
        assert bounds.high is not None and bounds.low is not None
        inside = bounds.low < low - FOCUS_TOL_UM and high + FOCUS_TOL_UM < bounds.high
        outside = low - FOCUS_TOL_UM > bounds.high
        assert inside or outside, f"f/{n:g}: the bracket {low:.1f}…{high:.1f} µm straddles the limit {bounds.high}"
        if outside:
            predicted_failing.add(("focus_shift_um", aperture_zone(n)))
    assert predicted_failing == failing, "the case's physics is not what its name says"

    # 2. the run: `rig certify` in its own process, over the twin's real transports
    summary = certify_on_twin(lens_id, unit_name, tmp_path, exit_code=exit_code, timeout_s=400)
    assert summary["headline"] == level.value

    # 3. exactly the defect's measurement failed, with a reason naming it; its value as predicted
    cert = LensCertificate.load(Path(summary["run_dir"]) / CERTIFICATE_FILE)
    assert cert.level is level
    found = {(f.measurement, f.zone): f for f in cert.findings}
    assert {k for k, f in found.items() if f.verdict is not Verdict.PASS} == failing
    assert len(cert.reasons) == len(failing)
    assert all(("corner-to-corner" in r) or ("focus shift" in r) for r in cert.reasons), cert.reasons
    got_ratio = found[("corner_mtf50_ratio", aperture_zone(wide))].value
    print(f"{unit_name}: corner MTF50 ratio {got_ratio:.3f} (transfer function {ratio:.3f})")
    assert got_ratio is not None and abs(got_ratio - ratio) <= CORNER_RATIO_TOL
    for n, (low, high) in shifts.items():
        got = found[("focus_shift_um", aperture_zone(n))].value
        print(f"{unit_name}: focus shift to f/{n:g} {got:.2f} µm (formula {low:.2f} … {high:.2f})")
        assert got is not None and low - FOCUS_TOL_UM <= got <= high + FOCUS_TOL_UM
