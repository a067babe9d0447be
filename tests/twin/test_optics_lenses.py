"""Lens wavefronts in the twin's render path: the catalogue's coefficients, and what a zero wavefront leaves alone.

* An aberration-free lens (every Seidel coefficient and the axial colour zero, as every catalogue lens had before
  wavefronts) keeps the analytic Airy ⊗ disc kernel at 0.55 µm for every colour: the frame it rendered before.
* The pupil path with zero aberrations is the same optics (the analytic kernel is its limit): a lens whose
  coefficients round to zero renders within 0.02 of full scale of the analytic frame (the channels' own
  wavelengths, 0.465–0.600 µm instead of 0.55 µm, change the diffraction by that much at f/1.4).
* Axial colour is a focus per channel: red's best focus lies ``axial_colour.red_um`` behind green's.
* Bad coefficients are refused with the catalogue field named.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rig.config import LensCatalog, StationConfig, TwinUnit, load_lens_catalog
from rig.config.lenses import AxialColour, Wavefront
from rig.config.loader import FIXTURES_DIR
from rig.errors import ConfigError
from rig.twin.optics import BlurSpec, mtf_along
from rig.twin.render import blur_model, render
from rig.twin.state import BenchSnapshot
from rig.twin.truth import unit_truth
from rig.twin.wavefront import CHANNEL_WAVELENGTH_UM

LENS_ID = "summilux-m-50-f1.4-asph-2023"


def _snapshot(station: StationConfig, lens_id: str, *, rail_mm: float | None = None) -> BenchSnapshot:
    return BenchSnapshot(
        time_ns=0,
        rail_mm=station.rail.focus_mm if rail_mm is None else rail_mm,
        carousel_mm=station.carousel.slots["sfr"],
        pitch_deg=0.0,
        light_pwm=800.0,
        exposure_time_s=0.01,
        iso=100,
        lens_attached=True,
        lens_id=lens_id,
        lens_attached_at_ns=0,
        remount_index=0,
        f_number=None,
        knock_times_ns=(),
        profile=None,
    )


def test_an_aberration_free_lens_keeps_the_analytic_kernel_for_every_colour(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    lens = catalog.get(LENS_ID)
    assert lens.wavefront.is_aberration_free
    truth = unit_truth(golden, lens, station, catalog=catalog)
    blur_for = blur_model(truth, lens.wavefront, max_f_number=1.4, pixel_pitch_um=6.4, rail_mm=station.rail.focus_mm)
    for colour in "RGB":
        blur = blur_for(colour)(1000.0, -500.0)
        assert blur.aberrations is None and blur.wavelength_um == 0.55, colour


def test_a_wavefront_that_rounds_to_zero_renders_as_the_analytic_kernel(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    lens = catalog.get(LENS_ID)
    tiny = lens.model_copy(update={"wavefront": Wavefront(spherical_w040=1e-6)})
    assert not tiny.wavefront.is_aberration_free  # the pupil path, with a wavefront below WAVE_ROUNDING
    snapshot = _snapshot(station, LENS_ID)
    analytic = render(station, golden, catalog, snapshot, lens=lens, noise=False).signal_dn
    pupil = render(station, golden, catalog, snapshot, lens=tiny, noise=False).signal_dn
    worst = float(np.max(np.abs(analytic - pupil))) / float(np.max(analytic))
    assert worst < 0.02, f"pupil vs analytic kernel differ by {worst:.4f} of full scale"


def test_axial_colour_puts_each_channel_focus_where_the_catalogue_says(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit
) -> None:
    red_um, blue_um = 6.0, -4.0
    lens = catalog.get(LENS_ID)
    wavefront = Wavefront(axial_colour=AxialColour(red_um=red_um, blue_um=blue_um))
    truth = unit_truth(golden, lens, station, catalog=catalog)
    freq = 0.05  # cycles/µm: the MTF peak at this frequency sits at the channel's focus

    def best_rail_mm(colour: str) -> float:
        rails = truth.rail_focus_mm + np.linspace(-0.2, 0.2, 161)  # ±12.5 µm of defocus
        values = []
        for rail in rails:
            blur_at = blur_model(truth, wavefront, max_f_number=1.4, pixel_pitch_um=0.0, rail_mm=float(rail))(colour)
            values.append(float(mtf_along(np.array([freq]), blur_at(0.0, 0.0), angle_rad=0.0)[0]))
        i = int(np.clip(np.argmax(values), 1, len(rails) - 2))
        a, b, _ = np.polyfit(rails[i - 1 : i + 2], values[i - 1 : i + 2], 2)
        return float(-b / (2 * a))

    green = best_rail_mm("G")
    # δ = k_rail·(rail − focus) + … + axial: the channel's image comes onto the sensor axial/k_rail mm earlier
    for colour, axial_um in (("R", red_um), ("B", blue_um)):
        shift_um = (green - best_rail_mm(colour)) * truth.rail_defocus_um_per_mm
        assert shift_um == pytest.approx(axial_um, abs=0.05 * abs(axial_um)), colour


def test_the_wavelengths_of_the_channels_order_red_green_blue() -> None:
    assert CHANNEL_WAVELENGTH_UM["R"] > CHANNEL_WAVELENGTH_UM["G"] > CHANNEL_WAVELENGTH_UM["B"]
    # each within the visible band the coefficients' reference wavelength (0.55 µm) sits in
    assert all(0.40 < w < 0.70 for w in CHANNEL_WAVELENGTH_UM.values())


def test_field_curvature_is_the_catalogues_w220(catalog: LensCatalog) -> None:
    lens = catalog.get(LENS_ID)
    # W020 of the corner's focus shift δ: −δ/(8N²λ) (Wyant & Creath 1992, §1.3), here at full aperture
    expected = -lens.field_curvature_um / (8 * lens.max_f_number**2 * 0.55)
    assert lens.field_curvature_w220 == pytest.approx(expected, rel=1e-12)
    assert math.copysign(1.0, lens.field_curvature_w220) == -math.copysign(1.0, lens.field_curvature_um)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("wavefront = { spherical_w040 = 45.0 }", "spherical_w040"),
        ("wavefront = { coma_w131 = nan }", "coma_w131"),
        ("wavefront = { axial_colour = { red_um = 400.0 } }", "red_um"),
        ("wavefront = { astigmatism = 0.5 }", "astigmatism"),
    ],
)
def test_a_bad_wavefront_is_refused_naming_its_field(tmp_path: Path, line: str, field: str) -> None:
    text = (FIXTURES_DIR / "lenses.toml").read_text()
    anchor = f'id = "{LENS_ID}"\n'
    lenses = tmp_path / "lenses.toml"
    lenses.write_text(text.replace(anchor, anchor + line + "\n"))
    with pytest.raises(ConfigError) as error:
        load_lens_catalog(lenses)
    message = str(error.value)
    assert field in message and str(lenses) in message and "\n" not in message.strip(), message


def test_blur_spec_default_is_aberration_free() -> None:
    assert BlurSpec(f_number=2.0).aberrations is None
