"""Certification of three catalog lenses on the twin, end to end through ``rig certify`` (one run each, ~35 s).

Each case's expectation is derived here from the twin's truth and the limits, never from the plan's output:

* infinity margin = true effective flange offset + N·3.2 µm (:func:`rig.twin.truth.unit_truth`);
* MTF50 from the twin's own transfer function (diffraction × residual Gaussian × native 1.6 µm pixel box) in
  focus: certification measures sharpness in native-pitch read-out windows;
* corner falloff from the twin's shading laws at 0.9 field (cos⁴ × pa vignetting × the sensor's green CRA term);
* sag from the mount's analytic figures (:func:`rig.twin.mount.mount_truth`);
* T-stop error from the true transmission against the catalog's;
* no focus shift and four alike corners (the catalogue's lenses have no wavefront yet).

The test first checks that the truth puts every graded value clearly on one side of its limit (so the expected
verdict is not a coin toss) and that the failures it predicts are the ones the case is about, then that the run
found the same failures, the certificate level and its reasons, values within stated tolerances, and a lensfun
entry whose distortion and per-aperture vignetting reproduce the truth.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rig.calibrate.certificate import CERTIFICATE_FILE, LENSFUN_FILE, CertificateLevel, LensCertificate, aperture_zone
from rig.calibrate.lensfun import parse_lensfun_xml
from rig.config.lenses import LensCatalog, LensSpec
from rig.config.limits import load_limits
from rig.config.resolve import load_station_lenses, load_twin_unit
from rig.config.station import DEFAULT_STATION, StationConfig, load_station
from rig.config.unit import TwinUnit
from rig.plans.certification import COC_FULL_PIXELS, ZONES, apertures_for
from rig.results.record import Verdict
from rig.results.reportdata import REPORT_DATA_FILE, ChecksPlot, ReportData
from rig.twin.mount import mount_truth
from rig.twin.optics import BlurSpec, cos4_falloff, otf_along, pa_vignetting, ptlens_distort
from rig.twin.render import sample_for
from rig.twin.truth import UnitTruth, unit_truth

RIG = Path(sys.executable).with_name("rig")


def certify_on_twin(lens_id: str, unit_name: str, reports: Path, *, exit_code: int, timeout_s: float) -> dict:
    """``rig certify --json`` in its own process over the twin's real transports; its summary, exit status checked."""
    proc = subprocess.run(
        [str(RIG), "certify", "--lens", lens_id, "--unit", unit_name, "--reports", str(reports), "--json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert proc.returncode == exit_code, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout[: proc.stdout.rindex("}") + 1])


# how far a measurement may sit from the truth (and so how far the truth must sit from a limit to predict a verdict)
TOLERANCE = {
    "lens_detected": 0.0,  # exact: 1 or 0
    "infinity_focus_margin_um": 1.0,  # flange from the sweep to ±1 µm (sign-off accuracy: DESIGN.md §1)
    "mtf50_cy_px": 0.03,  # e-SFR on green Bayer samples vs the analytic transfer function
    "corner_falloff_stops": 0.03,  # radial fit of a flat field with ~1 % block noise
    "t_stop_error_stops": 0.05,
    "distortion_rms_px": 0.15,  # dot centres on a noisy binned frame; the twin's distortion is exactly ptlens
    "tca_residual_px": 0.15,  # one colour plane's dot centres (≈ 0.08 px rms); the twin's lateral colour is a scale
    "sag_shift_um": 0.5,  # registration to ~0.05 read-out px (6.4 µm) plus remount-free pitch moves
    "sag_tilt_arcmin": 0.15,
    "focus_shift_um": 1.5,  # two sweeps' flanges (±1 µm each) on one unit: their common errors cancel
    "corner_mtf50_ratio": 0.06,  # medians of 8 edges per corner at their best focus (≈ 2 % each)
}
RELATIVE = {"sag_shift_um": 0.03, "sag_tilt_arcmin": 0.03}
RI_TOL = 0.012  # lensfun pa relative illumination against the true shading law
DISTORTION_TOL = 5e-4  # ptlens radius (r = 1 at half the short edge) over the frame: ≈0.4 read-out px
TCA_TOL_PX = 0.05  # poly3 TCA radius against the twin's colour scale, to the corner, read-out px

CASES = [
    # the reference lens on the golden unit: nothing near a limit
    pytest.param("summilux-m-35-f1.4-asph-2022", "golden", CertificateLevel.CERTIFIED, set(), 0, id="summilux35"),
    # the 700 g Noctilux on a mount that passes QA with the 320 g reference lens: it droops 3.5× as far
    pytest.param(
        "noctilux-m-50-f0.95-asph",
        "cert-mount-at-qa-limit",
        CertificateLevel.CERTIFIED_WITH_LIMITATIONS,
        {("sag_shift_um", None), ("sag_tilt_arcmin", None)},
        4,
        id="noctilux-heavy",
    ),
    # the sensor 10 µm too close: beyond the depth of focus at f/1.4 (±4.5 µm) and f/2.8 (±9 µm), not at f/5.6
    pytest.param(
        "summilux-m-50-f1.4-asph-2023",
        "cert-sensor-10um-close",
        CertificateLevel.NOT_CERTIFIED,
        {("infinity_focus_margin_um", "f1.4"), ("infinity_focus_margin_um", "f2.8")},
        1,
        id="summilux50-close",
    ),
]


def _truth(unit: TwinUnit, lens: LensSpec, station: StationConfig, catalog: LensCatalog, n: float) -> UnitTruth:
    return unit_truth(sample_for(unit, lens.id, n), lens, station, catalog=catalog)


def _mtf50_cy_px(truth: UnitTruth, pitch_um: float) -> float:
    """MTF50 (cy/px) of the twin's in-focus kernel across a ~5° slanted edge."""
    f = np.linspace(0.0, 1.0, 10001)
    blur = BlurSpec(f_number=truth.f_number, gaussian_sigma_um=truth.gaussian_blur_um, pixel_pitch_um=pitch_um)
    mtf = otf_along(f / pitch_um, blur, angle_rad=math.radians(5.0))
    return float(f[np.argmax(mtf < 0.5)])


def _relative_illumination(truth: UnitTruth, unit: TwinUnit, r: np.ndarray | float) -> np.ndarray:
    """Green relative illumination at field radius r (1 = half diagonal), the twin's shading laws."""
    r = np.asarray(r, dtype=float)
    hd_mm = truth.half_diagonal_um / 1000.0
    green_cra = unit.sensor.cra_shading.get("G", 0.0) * truth.cra_shading_scale
    return (
        cos4_falloff(r * hd_mm, exit_pupil_mm=truth.exit_pupil_mm)
        * pa_vignetting(r, k1=truth.vignetting_k1, k2=truth.vignetting_k2, k3=truth.vignetting_k3)
        * (1.0 + green_cra * r * r)
    )


def predicted(unit: TwinUnit, lens: LensSpec, station: StationConfig, catalog: LensCatalog) -> dict:
    """Every graded value of a certification run, from the twin's truth: {(name, zone): value}."""
    sensor = station.sensor
    stops = apertures_for(lens)
    wide = _truth(unit, lens, station, catalog, stops[0])
    mount = mount_truth(unit, lens, pixel_pitch_um=sensor.readout_pitch_um)
    out = {
        ("lens_detected", None): 1.0,  # every catalog lens carries its code and the twin phone reads it
        ("t_stop_error_stops", None): 2 * math.log2(wide.t_stop / lens.t_stop),
        # shift and droop between lens up (cos −90° = 0) and level (cos 0 = 1)
        ("sag_shift_um", None): abs(mount.sag_shift_um(0.0)),
        ("sag_tilt_arcmin", None): abs(mount.sag_tilt_arcmin(0.0)),
        ("distortion_rms_px", None): 0.0,  # the twin distorts by ptlens exactly: nothing left after the fit
        ("tca_residual_px", "red"): 0.0,  # the twin's lateral colour is a pure scale, which poly3 holds exactly
        ("tca_residual_px", "blue"): 0.0,
        # the catalogue's lenses are aberration-free: no focus shift, four alike corners
        ("corner_mtf50_ratio", aperture_zone(stops[0])): 1.0,
    }
    for n in stops[1:]:
        out[("focus_shift_um", aperture_zone(n))] = 0.0
    for n in stops:
        t = _truth(unit, lens, station, catalog, n)
        out[("infinity_focus_margin_um", aperture_zone(n))] = (
            t.flange_offset_um + n * COC_FULL_PIXELS * sensor.pixel_pitch_um
        )
        out[("corner_falloff_stops", aperture_zone(n))] = -math.log2(float(_relative_illumination(t, unit, 0.9)))
        for zone in ZONES:
            # certification grades sharpness on native pixels (read-out windows), whatever the station's binning
            out[("mtf50_cy_px", aperture_zone(n, zone))] = _mtf50_cy_px(t, sensor.pixel_pitch_um)
    return out


def _tolerance(name: str, value: float) -> float:
    return TOLERANCE[name] + RELATIVE.get(name, 0.0) * abs(value)


@pytest.mark.slow
@pytest.mark.parametrize(("lens_id", "unit_name", "level", "failing", "exit_code"), CASES)
def test_certify_catalog_lens_on_the_twin(
    tmp_path: Path, lens_id: str, unit_name: str, level: CertificateLevel, failing: set, exit_code: int
) -> None:
    station = load_station(DEFAULT_STATION)
    catalog = load_station_lenses(station, station_file=DEFAULT_STATION)
    unit = load_twin_unit(station, unit_name, station_file=DEFAULT_STATION)
    lens = catalog.get(lens_id)
    limits = load_limits("certification")

    # 1. the expectation, from truth and limits alone
    truth = predicted(unit, lens, station, catalog)
    predicted_failing = set()
    for (name, zone), value in truth.items():
        bounds = limits.get(name).for_zone(zone)
        tol = _tolerance(name, value)
        for bound in (bounds.low, bounds.high):
            assert bound is None or tol == 0 or abs(value - bound) > tol, (
                f"{name}[{zone}] truth {value:.3f} within {tol} of {bound}"
            )
        if (bounds.low is not None and value < bounds.low) or (bounds.high is not None and value > bounds.high):
            predicted_failing.add((name, zone))
    assert predicted_failing == failing, "the case's physics is not what its name says"

    # 2. the run
    summary = certify_on_twin(lens_id, unit_name, tmp_path, exit_code=exit_code, timeout_s=280)
    run_dir = Path(summary["run_dir"])
    assert summary["verdict"] == ("PASS" if level is CertificateLevel.CERTIFIED else "FAIL")
    # the level is the run's answer: its own exit status (0, 4, 1) and the headline word everywhere
    assert summary["headline"] == level.value and summary["exit_status"] == exit_code
    assert all(s["verdict"] in ("PASS", "FAIL") for s in summary["steps"]), summary["steps"]

    # 3. the certificate: level, exactly the predicted failures, reasons naming them
    cert = LensCertificate.load(run_dir / CERTIFICATE_FILE)
    assert (cert.level, cert.lens_id, cert.unit_serial) == (level, lens_id, unit.serial)
    assert cert.apertures == list(apertures_for(lens))
    found = {(f.measurement, f.zone): f for f in cert.findings}
    assert set(found) == set(truth), "every graded criterion measured once"
    assert {k for k, f in found.items() if f.verdict is not Verdict.PASS} == failing
    assert len(cert.reasons) == len(failing)
    for (name, zone), value in truth.items():
        got = found[(name, zone)].value
        assert got is not None and abs(got - value) <= _tolerance(name, value), f"{name}[{zone}]: {got} vs {value}"
    if level is CertificateLevel.NOT_CERTIFIED:
        assert cert.reasons[0].startswith(f"infinity unreachable at f/{lens.max_f_number:g}")
    if level is CertificateLevel.CERTIFIED_WITH_LIMITATIONS:
        assert all("support the lens" in r for r in cert.reasons)

    # 4. the lensfun entry: this lens, its apertures, distortion and vignetting as the twin renders them
    (entry,) = parse_lensfun_xml((run_dir / LENSFUN_FILE).read_text(encoding="utf-8"))
    assert (entry.maker, entry.model, entry.mount, entry.cropfactor) == (lens.maker, lens.name, "Leica M", 2.64)
    assert [v.aperture for v in entry.vignetting] == list(apertures_for(lens))
    radii = np.array([0.3, 0.6, 0.9, 1.0])
    for v in entry.vignetting:
        t = _truth(unit, lens, station, catalog, v.aperture)
        pa = 1 + v.k1 * radii**2 + v.k2 * radii**4 + v.k3 * radii**6
        assert np.max(np.abs(pa - _relative_illumination(t, unit, radii))) < RI_TOL, v
    (d,) = entry.distortion
    r = np.linspace(0.05, 1.6, 32)  # to the corner: half diagonal / half short edge = 1.67
    true = ptlens_distort(r, a=lens.distortion.a, b=lens.distortion.b, c=lens.distortion.c)
    assert np.max(np.abs(ptlens_distort(r, a=d.a, b=d.b, c=d.c) - true)) < DISTORTION_TOL

    (tca,) = entry.tca
    width, height = station.sensor.width_px, station.sensor.height_px
    r_norm_px = (min(width, height) - 1) / 2  # lensfun's unit radius on the read-out
    r = np.linspace(0.05, math.hypot(width - 1, height - 1) / 2 / r_norm_px, 32)  # to the corner
    for (v, c, b), ppm in (((tca.vr, tca.cr, tca.br), lens.lateral_colour.red_ppm),
                           ((tca.vb, tca.cb, tca.bb), lens.lateral_colour.blue_ppm)):  # fmt: skip
        error_px = np.abs(r * (b * r**2 + c * r + v) - r * (1 + ppm * 1e-6)) * r_norm_px
        assert error_px.max() < TCA_TOL_PX, (tca, ppm)

    # 5. the report shows it
    plots = ReportData.load(run_dir / REPORT_DATA_FILE)
    (table,) = [p for p in plots.plots if p.name == "certificate"]
    assert isinstance(table, ChecksPlot) and table.checks[0].observed == level.value
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert f'<meta name="rig-verdict" content="{level.value}">' in html
    assert f'<div class="word">{level.value}</div>' in html
    assert f'name="verdict" value="{level.value}"' in (run_dir / "junit.xml").read_text(encoding="utf-8")


def test_certify_rejects_an_unknown_lens_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(RIG), "certify", "--lens", "summilux-m-36", "--reports", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--lens" in lines[0] and "summilux-m-36" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not any(tmp_path.iterdir())
