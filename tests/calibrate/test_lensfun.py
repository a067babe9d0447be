"""lensfun XML: DTD element order, xml.etree parsing, exact number round trip, pa fit against known laws."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from rig.calibrate.lensfun import (
    LENS_CHILD_ORDER,
    LensfunLens,
    PaVignetting,
    Poly3Tca,
    PtlensDistortion,
    check_lens_order,
    fit_pa_vignetting,
    lensfun_xml,
    parse_lensfun_xml,
    poly3_tca,
)
from rig.config import load_lens_catalog
from rig.errors import ConfigError, MeasurementError
from rig.measure.lateral_colour import ChannelTca, LateralColourFit, TcaTerms

RI_TOL = 0.002  # pa fit reproduces relative illumination to 0.2 % (flat-field measurements are ±1 %)


def _measured_lens() -> LensfunLens:
    spec = load_lens_catalog().get("summilux-m-35-f1.4-asph-2022")
    return LensfunLens(
        maker=spec.maker,
        model=spec.name,
        mount=spec.mount,
        focal_mm=spec.focal_length_mm,
        min_aperture=spec.f_numbers[0],
        max_aperture=spec.f_numbers[-1],
        distortion=(PtlensDistortion(focal_mm=35.0, a=0.00123456789, b=-0.0041, c=1e-05),),
        tca=(Poly3Tca(focal_mm=35.0, vr=1.000251, vb=0.9997993, cr=-3.1e-06, cb=2e-06, br=1.7e-06, bb=-4.25e-07),),
        vignetting=tuple(
            PaVignetting(focal_mm=35.0, aperture=n, distance_m=1000.0, k1=-0.06 * (1.4 / n) ** 2, k2=0.0031, k3=-2e-4)
            for n in (1.4, 2.0, 2.8)
        ),
    )


def test_xml_follows_the_dtd_order_and_round_trips_every_number() -> None:
    lens = _measured_lens()
    text = lensfun_xml([lens])
    root = ET.fromstring(text)
    assert root.tag == "lensdatabase" and root.get("version") == "1"  # released lensfun 0.3.x refuses "2"
    (el,) = root.findall("lens")
    tags = [c.tag for c in el]
    assert tags == ["maker", "model", "mount", "focal", "aperture", "cropfactor", "aspect-ratio", "calibration"]
    assert [LENS_CHILD_ORDER.index(t) for t in tags] == sorted(LENS_CHILD_ORDER.index(t) for t in tags)
    check_lens_order(el)
    assert el.findtext("mount") == "Leica M" and el.findtext("cropfactor") == "2.64"
    assert el.findtext("aspect-ratio") == "4:3"  # so lensfun's r = 1 is the phone sensor's, not a 3:2 frame's
    cal = el.find("calibration")
    assert cal is not None
    assert [c.tag for c in cal] == ["distortion", "tca", "vignetting", "vignetting", "vignetting"]
    d = cal.find("distortion")
    assert d is not None and d.attrib == {"model": "ptlens", "focal": "35.0", "a": "0.00123456789", "b": "-0.0041",
                                          "c": "1e-05"}  # fmt: skip
    t = cal.find("tca")
    assert t is not None and t.attrib == {"model": "poly3", "focal": "35.0", "vr": "1.000251", "vb": "0.9997993",
                                          "cr": "-3.1e-06", "cb": "2e-06", "br": "1.7e-06",
                                          "bb": "-4.25e-07"}  # fmt: skip
    assert parse_lensfun_xml(text) == [lens]  # exact: numbers are written as shortest round-trip decimals


def test_numbers_are_nmtokens() -> None:
    lens = LensfunLens(maker="Leica", model="x", focal_mm=1e21)
    text = lensfun_xml([lens])
    assert "+" not in text
    assert parse_lensfun_xml(text)[0].focal_mm == 1e21


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("<cropfactor>2.64</cropfactor>", ""), r"lens\[.*\]\.cropfactor = \(missing\)"),
        (
            lambda t: t.replace("<mount>Leica M</mount>", "").replace(
                "</cropfactor>", "</cropfactor><mount>Leica M</mount>"
            ),
            r"\.mount = '\(out of order\)'",
        ),
        (lambda t: t.replace('a="0.00123456789"', 'a="lots"'), r"lens\[0\]\.distortion\.a = 'lots': expected a number"),
        (lambda t: t.replace('vb="0.9997993"', 'vb="inf"'), r"lens\[0\]\.tca\.vb = 'inf': expected a finite number"),
        (lambda t: t.replace("</lensdatabase>", ""), "well-formed XML"),
    ],
)
def test_malformed_entries_name_the_element(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message) as info:
        parse_lensfun_xml(edit(lensfun_xml([_measured_lens()])), source="out/lens.xml")
    assert "\n" not in str(info.value) and str(info.value).startswith("out/lens.xml")


def test_pa_fit_recovers_a_known_polynomial_profile() -> None:
    rng = np.random.default_rng(5)
    k = (-0.12, 0.035, -0.006)
    r = np.linspace(0, 1, 60)
    ri_true = 1 + k[0] * r**2 + k[1] * r**4 + k[2] * r**6
    fit = fit_pa_vignetting(r, ri_true + rng.normal(0, 0.001, r.size))
    model = 1 + fit.k1 * r**2 + fit.k2 * r**4 + fit.k3 * r**6
    assert np.abs(model - ri_true).max() < RI_TOL
    assert fit.k1 == pytest.approx(k[0], abs=0.01)
    assert fit.rms_residual == pytest.approx(0.001, rel=0.3)  # the noise put in, no more


def test_pa_fit_of_cos4_falloff_is_within_a_fifth_of_a_percent() -> None:
    # cos⁴ is not a polynomial: r = 1 at the corner of a 16.4 mm diagonal behind a 21 mm lens's 30 mm exit pupil
    r = np.linspace(0, 1, 80)
    ri_true = 1.0 / (1.0 + (r * 8.19 / 30.0) ** 2) ** 2
    fit = fit_pa_vignetting(r, ri_true)
    assert np.abs(1 + fit.k1 * r**2 + fit.k2 * r**4 + fit.k3 * r**6 - ri_true).max() < RI_TOL
    assert 1 - ri_true[-1] > 0.1  # a real falloff to fit


def test_pa_fit_refuses_a_profile_that_stays_near_the_axis() -> None:
    with pytest.raises(MeasurementError, match="reaching beyond"):
        fit_pa_vignetting(np.linspace(0, 0.05, 20), np.ones(20))
    one = fit_pa_vignetting(np.linspace(0, 0.6, 20), 1 - 0.1 * np.linspace(0, 0.6, 20) ** 2, terms=1)
    assert (one.k1, one.k2, one.k3) == (pytest.approx(-0.1), 0.0, 0.0)


def _channel(v: float, c: float = 0.0, b: float = 0.0) -> ChannelTca:
    return ChannelTca(v=v, c=c, b=b, corner_shift_px=0.0, corner_shift_um=0.0, rms_residual_px=0.0,
                      max_residual_px=0.0)  # fmt: skip


def _tca_fit(red: ChannelTca, blue: ChannelTca) -> LateralColourFit:
    return LateralColourFit(red=red, blue=blue, terms=TcaTerms.POLY3, centre_px=(1023.5, 767.5), r_norm_px=767.5,
                            corner_radius_px=1279.2, dots_used=285, pixel_pitch_um=6.4)  # fmt: skip


def test_poly3_tca_carries_the_fit_coefficients_as_lensfun_names_them() -> None:
    fit = _tca_fit(_channel(1.0003, -2e-6, 1e-6), _channel(0.99975, 3e-6, -5e-7))
    assert poly3_tca(fit, focal_mm=28.0) == Poly3Tca(28.0, vr=1.0003, vb=0.99975, cr=-2e-6, cb=3e-6, br=1e-6,
                                                     bb=-5e-7)  # fmt: skip


@pytest.mark.parametrize(("red_v", "message"), [(float("nan"), "vr must be finite"), (2.5, r"vr within \(0.5, 2\)")])
def test_poly3_tca_refuses_a_fit_no_lens_produces(red_v: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        poly3_tca(_tca_fit(_channel(red_v), _channel(1.0)), focal_mm=35.0)
