"""Focus shift of a lens with spherical aberration, through the twin's render and the real through-focus measurement.

The formula (not the twin's output) is the reference. A lens with W040 (waves at full aperture, ρ = 1 at the
full-aperture pupil) seen through a stop ``s = N_max/N`` has ``W040·s⁴`` in its working pupil, and its best focus
balances that with defocus ``W020 = −κ·W040·s⁴``: κ = 1 for the least wavefront variance (the best Strehl of a
small aberration), κ = 4/3 for the least mean square ray error ``⟨|∇W|²⟩`` (the smallest rms spot; minimise
``∫(2aρ + 4bρ³)² ρ dρ`` over a: a = −4b/3) (V. N. Mahajan, *Optical Imaging and Aberrations*, Part I, SPIE 1998,
balanced primary aberrations). A defocus W020 in the working pupil is an image ``δ = −8N²λ·W020`` behind the
sensor (Wyant & Creath 1992, §1.3), and ``N²s⁴ = N_max²s²``, so the best image lies at
``8·N_max²·λ·κ·W040·s²`` from the paraxial focus, towards the lens; from full aperture to N it moves

    dz = 8·N_max²·λ·κ·W040·(1 − (N_max/N)²)   away from the lens.

For the Noctilux sample (W040 = 1.25 waves at 0.55 µm, f/0.95) to f/2.8 that is 4.39 µm (κ = 1) to 5.86 µm
(κ = 4/3); for the focus-shift defect (W040 = 3.1 waves) 10.9 to 14.5 µm. The bench's best focus is the peak of
MTF50 on the 6.4 µm binned readout, a frequency far below the f/0.95 cut-off (0.04 of it), where the MTF follows
the rms spot: the measured shift lies in that bracket, to the through-focus measurement's ±1 µm (DESIGN.md §1).
An aberration-free lens on the same unit shifts by < 1 µm.

The sweeps are rendered through :func:`rig.twin.render.render` with sensor noise, and measured by
:func:`rig.measure.focus.measure_flange` on the raw mosaics, as the bench does; the flange each sweep finds is
that of its aperture (the shift is the difference).
"""

from __future__ import annotations

import numpy as np
import pytest

from rig.config import LensCatalog, StationConfig, load_unit
from rig.config.lenses import LensSpec
from rig.config.loader import FIXTURES_DIR
from rig.config.unit import TwinUnit
from rig.measure.focus import FlangeResult, measure_flange, rail_defocus_um_per_mm
from rig.twin.render import render, sample_for, signal_scale_dn
from rig.twin.truth import lens_wavefront, unit_truth
from rig.twin.wavefront import focus_shift_um
from tests.twin.conftest import sfr_chart_snapshot

LENS_ID = "noctilux-m-50-f0.95-asph"
UNIT = "cert-noctilux-wavefront"
UNITS = (UNIT, "cert-focus-shift")  # the design's W040 (1.25 waves), and the strong focus-shift defect (3.1 waves)
STOPPED = 2.8
HALF_RANGE_UM = 90.0  # the bench's sweep (rig.bench.procedures.SWEEP_HALF_RANGE_UM, 11 steps)
STEPS = 11
TOLERANCE_UM = 1.0  # the through-focus flange's accuracy (DESIGN.md §1)
RIGHT_EXPOSURE = 0.6  # of white − black on the chart's light parts


def _sweep(
    station: StationConfig, catalog: LensCatalog, unit: TwinUnit, lens: LensSpec, f_number: float
) -> FlangeResult:
    """Render the slanted-edge chart through focus at ``f_number`` and measure the flange as the bench does."""
    sensor = station.sensor
    k = rail_defocus_um_per_mm(
        focal_length_mm=lens.focal_length_mm, collimator_focal_length_mm=station.optics.collimator_focal_length_mm
    )
    rails = np.linspace(-HALF_RANGE_UM, HALF_RANGE_UM, STEPS) / k  # mm from the station's focus position
    truth = unit_truth(sample_for(unit, lens.id, f_number), lens, station, catalog=catalog)
    one_second = sfr_chart_snapshot(station, LENS_ID, f_number=f_number, exposure_time_s=1.0)
    per_second = signal_scale_dn(truth, unit, station, one_second)
    exposure = RIGHT_EXPOSURE * (sensor.white_level_dn - sensor.black_level_dn) / (0.8 * per_second)
    rng = np.random.default_rng(16)
    frames = [
        render(
            station, unit, catalog, sfr_chart_snapshot(
                station, LENS_ID, rail_mm=station.rail.focus_mm + float(r), f_number=f_number, exposure_time_s=exposure
            ),
            lens=lens, rng=rng,
        ).raw
        for r in rails
    ]  # fmt: skip
    return measure_flange(
        frames,
        rails,
        focal_length_mm=lens.focal_length_mm,
        collimator_focal_length_mm=station.optics.collimator_focal_length_mm,
        pixel_pitch_um=sensor.readout_pitch_um,
        cfa_pattern=sensor.cfa_pattern,
        black_level=sensor.black_level_dn,
        white_level=sensor.white_level_dn,
    )


def _measured_shift_um(station: StationConfig, catalog: LensCatalog, unit: TwinUnit) -> float:
    """Best focus at f/2.8 against f/0.95 on axis, + = the image moved away from the lens (µm)."""
    lens = catalog.get(LENS_ID)
    wide = _sweep(station, catalog, unit, lens, lens.max_f_number)
    stopped = _sweep(station, catalog, unit, lens, STOPPED)
    print(f"flange at f/{lens.max_f_number:g}: {wide.flange_offset_um:+.2f} µm, f/{STOPPED:g}: "
          f"{stopped.flange_offset_um:+.2f} µm")  # fmt: skip
    return wide.flange_offset_um - stopped.flange_offset_um


@pytest.mark.slow
@pytest.mark.parametrize("unit_name", UNITS)
def test_a_noctilux_with_spherical_aberration_focuses_away_from_the_lens_as_its_w040_implies(
    station: StationConfig, catalog: LensCatalog, unit_name: str
) -> None:
    unit = load_unit(FIXTURES_DIR / "units" / f"{unit_name}.toml")
    lens = catalog.get(LENS_ID)
    wavefront = lens_wavefront(unit, lens)
    assert wavefront.spherical_w040 > 0 and lens.wavefront.is_aberration_free  # the sample's own, not the catalogue's
    # the formula at κ = 1 (rig.twin.wavefront.focus_shift_um: the sensor-side δ, − = the image moves away)
    least_variance_um = -focus_shift_um(
        spherical_w040=wavefront.spherical_w040,
        reference_wavelength_um=wavefront.reference_wavelength_um,
        max_f_number=lens.max_f_number,
        f_number=STOPPED,
    )
    by_hand = 8 * 0.95**2 * 0.55 * wavefront.spherical_w040 * (1 - (0.95 / 2.8) ** 2)
    assert least_variance_um == pytest.approx(by_hand, rel=1e-12)
    least_rms_spot_um = 4.0 / 3.0 * least_variance_um
    measured = _measured_shift_um(station, catalog, unit)
    print(f"focus shift f/0.95 → f/2.8: measured {measured:.2f} µm, formula {least_variance_um:.2f} (κ = 1) … "
          f"{least_rms_spot_um:.2f} µm (κ = 4/3)")  # fmt: skip
    assert least_variance_um - TOLERANCE_UM <= measured <= least_rms_spot_um + TOLERANCE_UM


@pytest.mark.slow
def test_an_aberration_free_lens_on_the_same_unit_does_not_shift_focus(
    station: StationConfig, catalog: LensCatalog
) -> None:
    unit = load_unit(FIXTURES_DIR / "units" / f"{UNIT}.toml")
    perfect = unit.model_copy(update={"lens": unit.lens.model_copy(update={"wavefront": None})})
    measured = _measured_shift_um(station, catalog, perfect)
    assert abs(measured) < TOLERANCE_UM, measured
