"""A decentred element in the twin: the field aberrations centred off the axis (nodal aberration theory).

K. P. Thompson, "Description of the third-order optical aberrations of near-circular pupil optical systems without
symmetry", JOSA A 22 (2005) 1389: with the aberration field centred on σ, each field-dependent term sees H − σ.
So (against those formulas, not the twin's output):

* on the optical axis (H = 0) the lens shows coma ``W131·|σ|`` (waves, scaled by λref/λ to the channel's
  wavelength), pointing along −σ;
* the medial field surface ``c·|H − σ|²`` is centred on σ: at σ the defocus is the centre's of a centred lens,
  and the corner opposite σ lies ``c·(|H − σ|² − |H|²)`` farther out of focus than on a centred lens;
* a centre beyond the field (|σ| > 1 in either axis) is refused with the field named.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rig.config import LensCatalog, StationConfig, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.config.unit import TwinUnit
from rig.errors import ConfigError
from rig.twin.render import blur_model, sample_for
from rig.twin.truth import lens_wavefront, unit_truth
from rig.twin.wavefront import CHANNEL_WAVELENGTH_UM

UNIT = "cert-decentred-element"


@pytest.fixture(scope="module")
def decentred() -> TwinUnit:
    return load_unit(FIXTURES_DIR / "units" / f"{UNIT}.toml")


def test_the_optical_axis_sees_coma_of_w131_times_the_centres_offset(
    station: StationConfig, catalog: LensCatalog, decentred: TwinUnit
) -> None:
    lens = catalog.get(decentred.lens.id)
    wavefront = lens_wavefront(decentred, lens)
    sx, sy = wavefront.aberration_centre_x, wavefront.aberration_centre_y
    truth = unit_truth(sample_for(decentred, lens.id, None), lens, station, catalog=catalog)
    blur_at = blur_model(
        truth, wavefront, max_f_number=lens.max_f_number, pixel_pitch_um=6.4, rail_mm=station.rail.focus_mm
    )("G")
    on_axis = blur_at(truth.decentre_x_um, truth.decentre_y_um).aberrations
    assert on_axis is not None
    scale = wavefront.reference_wavelength_um / CHANNEL_WAVELENGTH_UM["G"]
    # the field tile (0.02 H) rounds |σ| = 0.5 exactly: only the 1e-4-wave rounding of the coefficient is left
    assert on_axis.w131 == pytest.approx(wavefront.coma_w131 * math.hypot(sx, sy) * scale, abs=2e-4)
    assert on_axis.w111 == pytest.approx(-on_axis.w131)  # the centroid stays on the image point
    assert on_axis.azimuth_rad == pytest.approx(math.atan2(-sy, -sx), abs=1e-3)  # the meridian points along −σ
    # where σ lands on the sensor the lens is coma-free
    at_centre = blur_at(
        truth.decentre_x_um + sx * truth.half_diagonal_um, truth.decentre_y_um + sy * truth.half_diagonal_um
    ).aberrations
    assert at_centre is not None and at_centre.w131 == 0.0


def test_the_field_curvature_is_centred_on_the_displaced_centre(
    station: StationConfig, catalog: LensCatalog, decentred: TwinUnit
) -> None:
    lens = catalog.get(decentred.lens.id)
    wavefront = lens_wavefront(decentred, lens)
    centred_unit = decentred.model_copy(update={"lens": decentred.lens.model_copy(update={"wavefront": None})})
    truth = unit_truth(decentred, lens, station, catalog=catalog)
    centred = unit_truth(centred_unit, lens, station, catalog=catalog)
    hd = truth.half_diagonal_um
    rail = station.rail.focus_mm
    sigma = (wavefront.aberration_centre_x * hd, wavefront.aberration_centre_y * hd)
    assert (truth.aberration_centre_x_um, truth.aberration_centre_y_um) == pytest.approx(sigma)
    ax, ay = truth.decentre_x_um, truth.decentre_y_um
    # at σ the decentred lens is in focus as the centred one is on its axis, but for the sensor's own tilt there
    sensor_tilt_um = sigma[0] * math.tan(math.radians(truth.tilt_y_arcmin / 60)) + sigma[1] * math.tan(
        math.radians(truth.tilt_x_arcmin / 60)
    )
    at_sigma = float(truth.defocus_um(ax + sigma[0], ay + sigma[1], rail_mm=rail))
    assert at_sigma == pytest.approx(float(centred.defocus_um(ax, ay, rail_mm=rail)) - sensor_tilt_um, abs=1e-9)
    # the corner opposite σ: c·(|H − σ|² − |H|²) farther than on the centred lens
    hx, hy = 0.8 * hd, 0.6 * hd  # bottom right, H = 1
    extra = lens.field_curvature_um * (((hx - sigma[0]) ** 2 + (hy - sigma[1]) ** 2) - (hx * hx + hy * hy)) / hd**2
    got = float(truth.defocus_um(ax + hx, ay + hy, rail_mm=rail)) - float(
        centred.defocus_um(ax + hx, ay + hy, rail_mm=rail)
    )
    assert got == pytest.approx(extra, abs=1e-9) and extra > 0


def test_a_centre_beyond_the_field_is_refused_with_the_field_named(tmp_path: Path) -> None:
    text = (FIXTURES_DIR / "units" / f"{UNIT}.toml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("aberration_centre_x = -0.4", "aberration_centre_x = -1.4"), encoding="utf-8")
    with pytest.raises(ConfigError, match="aberration_centre_x"):
        load_unit(bad)
