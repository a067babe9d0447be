"""Certificate rules, the certification plan's pure helpers and the certificate / lensfun files (no bench).

The grading tests judge values against the real ``fixtures/limits/certification.toml``, so they also pin the
aperture-qualified zone fallback ("f1.4:corner" → "corner") the plan relies on.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rig.bench.ops import Frame
from rig.calibrate.certificate import (
    CERTIFICATE_FILE,
    LENSFUN_INFINITY_M,
    CertificateLevel,
    LensCertificate,
    Severity,
    aperture_zone,
    certificate_checks,
    grade,
    issue_certificate,
    lensfun_entry,
)
from rig.calibrate.lensfun import PaFit, lensfun_xml, parse_lensfun_xml
from rig.config import load_lens_catalog
from rig.config.limits import load_limits
from rig.errors import ConfigError
from rig.plans.certification import apertures_for, radial_relative_illumination
from rig.results.record import MeasurementRecord, RunRecord, StepRecord, Verdict, utcnow
from rig.spec.dng import read_dng, write_dng

LIMITS = load_limits("certification")
STOPS = (1.4, 2.8, 5.6)
CATALOG = load_lens_catalog()
NOT, LIMITED = CertificateLevel.NOT_CERTIFIED, CertificateLevel.CERTIFIED_WITH_LIMITATIONS
BLOCK, LIMIT = Severity.BLOCKING, Severity.LIMITING


SOFT_CY_PX = 0.05
"""A wide-open MTF50 below every native-pitch limit (cycles per native pixel: certification grades sharpness in
read-out windows at 1.6 µm, whose limits are the plain zones, whatever the station's binning)."""


def rec(name: str, value: float | None, zone: str | None = None) -> MeasurementRecord:
    limit = LIMITS.get(name)
    bounds = limit.for_zone(zone)
    return MeasurementRecord(
        name=name,
        step="step",
        zone=zone,
        value=value,
        unit=limit.unit,
        low=bounds.low,
        high=bounds.high,
        verdict=MeasurementRecord.judge(value, bounds.low, bounds.high),
        error=None if value is not None else "no edge",
    )


def passing_run(stops: tuple[float, ...] = STOPS) -> list[MeasurementRecord]:
    """A run of a good lens: every graded value comfortably inside its limit, plus the flange as information."""
    out = [rec("lens_detected", 1.0), rec("t_stop_error_stops", 0.02), rec("distortion_rms_px", 0.05)]
    out += [rec("flange_offset_um", 0.8), rec("sag_shift_um", 0.1), rec("sag_tilt_arcmin", 0.05)]
    for n in stops:
        out.append(rec("infinity_focus_margin_um", 0.8 + 3.2 * n, aperture_zone(n)))
        out.append(rec("corner_falloff_stops", 0.3, aperture_zone(n)))
        out += [rec("mtf50_cy_px", 0.5, aperture_zone(n, z)) for z in ("center", "mid", "corner")]
    return out


def replaced(run: list[MeasurementRecord], name: str, zone: str | None, value: float | None) -> list[MeasurementRecord]:
    hits = [i for i, m in enumerate(run) if (m.name, m.zone) == (name, zone)]
    assert len(hits) == 1, f"{name}[{zone}] in the run exactly once"
    out = list(run)
    out[hits[0]] = rec(name, value, zone)
    return out


def test_aperture_qualified_zones_fall_back_to_the_field_zone_limits() -> None:
    mtf = LIMITS.get("mtf50_cy_px")
    assert mtf.for_zone("f1.4:corner").low == mtf.zones["corner"].low == 0.068
    assert mtf.for_zone("f0.95:center").low == mtf.for_zone("f5.6:center").low == 0.085
    # sharpness is graded on native pixels only: no readout-qualified zone is left to fall back to
    assert not [z for z in mtf.zones if z.startswith("bin")]
    assert mtf.for_zone("bin4:f1.4:corner").low == 0.068
    falloff = LIMITS.get("corner_falloff_stops")
    assert falloff.for_zone("f2.8").high == falloff.high == 0.6


def test_a_lens_passing_everything_is_certified_and_information_is_not_graded() -> None:
    level, findings, reasons = grade(passing_run(), wide_open=1.4)
    assert level is CertificateLevel.CERTIFIED and reasons == []
    assert all(f.verdict is Verdict.PASS for f in findings)
    assert "flange_offset_um" not in {f.measurement for f in findings}  # no limits: information only
    assert len(findings) == len(passing_run()) - 1


@pytest.mark.parametrize(
    ("name", "zone", "value", "level", "severity", "words"),
    [
        # blocking: the three criteria judged wide open
        ("lens_detected", None, 0.0, NOT, BLOCK, "6-bit code"),
        ("infinity_focus_margin_um", "f1.4", -1.2, NOT, BLOCK, "unreachable at f/1.4"),
        ("mtf50_cy_px", "f1.4:center", SOFT_CY_PX, NOT, BLOCK, "f/1.4, center"),
        # limiting: anything else, including the same criteria stopped down
        ("infinity_focus_margin_um", "f2.8", -0.5, LIMITED, LIMIT, "f/2.8"),
        ("mtf50_cy_px", "f5.6:center", SOFT_CY_PX, LIMITED, LIMIT, "f/5.6, center"),
        ("mtf50_cy_px", "f1.4:corner", SOFT_CY_PX, LIMITED, LIMIT, "f/1.4, corner"),
        ("corner_falloff_stops", "f1.4", 0.9, LIMITED, LIMIT, "lensfun"),
        ("sag_tilt_arcmin", None, 2.7, LIMITED, LIMIT, "support"),
        ("t_stop_error_stops", None, 0.35, LIMITED, LIMIT, "T-stop"),
        # not measured counts as failed for its class
        ("corner_falloff_stops", "f2.8", None, LIMITED, LIMIT, "not measured"),
        ("mtf50_cy_px", "f1.4:center", None, NOT, BLOCK, "not measured"),
    ],
)  # fmt: skip
def test_one_failure_grades_by_its_class(
    name: str, zone: str | None, value: float | None, level: CertificateLevel, severity: Severity, words: str
) -> None:
    got, findings, reasons = grade(replaced(passing_run(), name, zone, value), wide_open=1.4)
    assert got is level
    failed = [f for f in findings if f.verdict is not Verdict.PASS]
    assert [(f.measurement, f.zone, f.severity) for f in failed] == [(name, zone, severity)]
    assert len(reasons) == 1 and words in reasons[0], reasons


def test_blocking_reasons_come_before_limitations() -> None:
    run = replaced(passing_run(), "sag_shift_um", None, 17.7)
    run = replaced(run, "infinity_focus_margin_um", "f1.4", -5.5)
    level, _, reasons = grade(run, wide_open=1.4)
    assert level is CertificateLevel.NOT_CERTIFIED
    assert "infinity unreachable" in reasons[0] and "5.5 µm" in reasons[0]
    assert "image shift" in reasons[1]


def test_a_blocking_criterion_never_measured_is_not_certified() -> None:
    run = [m for m in passing_run() if m.name != "lens_detected"]
    level, findings, reasons = grade(run, wide_open=1.4)
    assert level is CertificateLevel.NOT_CERTIFIED
    missing = [f for f in findings if f.measurement == "lens_detected"]
    assert len(missing) == 1 and missing[0].verdict is Verdict.ERROR and "not measured" in reasons[0]


def test_a_step_that_could_not_complete_is_a_limitation() -> None:
    run = [m for m in passing_run() if not m.name.startswith("sag_")]
    level, _, reasons = grade(run, wide_open=1.4, failed_steps={"sag": "DeviceTimeout: stage did not answer"})
    assert level is CertificateLevel.CERTIFIED_WITH_LIMITATIONS
    assert reasons == [
        "step sag could not complete, what it measures is not established: DeviceTimeout: stage did not answer"
    ]


def test_blocking_criteria_follow_the_lens_widest_stop() -> None:
    stops = (0.95, 2.8, 5.6)
    run = replaced(passing_run(stops), "mtf50_cy_px", "f0.95:center", SOFT_CY_PX)
    assert grade(run, wide_open=0.95)[0] is CertificateLevel.NOT_CERTIFIED


def _record(measurements: list[MeasurementRecord], steps: tuple[StepRecord, ...] = ()) -> RunRecord:
    return RunRecord(
        run_id="run-1",
        plan="certification",
        station="twin-01",
        station_file=None,
        software_version="0.1.0",
        git_sha=None,
        operator="test",
        unit_serial="XM12SU-000001",
        lens="summilux-m-35-f1.4-asph-2022",
        started=utcnow(),
        measurements=measurements,
        steps=list(steps),
    )


def test_certificate_file_round_trips_and_its_report_table_leads_with_the_level(tmp_path: Path) -> None:
    lens = CATALOG.get("summilux-m-35-f1.4-asph-2022")
    run = replaced(passing_run(), "sag_tilt_arcmin", None, 2.7)
    now = utcnow()
    step = StepRecord(name="distortion", verdict=Verdict.ERROR, started=now, ended=now, error="FrameError: bad")
    cert = issue_certificate(_record(run, (step,)), lens, apertures=STOPS, notes=["a note"])
    assert cert.level is CertificateLevel.CERTIFIED_WITH_LIMITATIONS
    assert cert.run_verdict is Verdict.ERROR  # the failed step makes the limits' verdict ERROR
    assert len(cert.reasons) == 2 and cert.lens_code == 11 and cert.apertures == list(STOPS)
    path = cert.save(tmp_path)
    assert path.name == CERTIFICATE_FILE
    assert LensCertificate.load(path) == cert
    plot = certificate_checks(cert)
    assert plot.checks[0].observed == "CERTIFIED WITH LIMITATIONS" and not plot.checks[0].ok
    assert len(plot.checks) == 1 + len(cert.findings)
    assert [c.ok for c in plot.checks[1:]] == [f.verdict is Verdict.PASS for f in cert.findings]
    assert plot.caption == "a note"


def test_a_malformed_certificate_names_the_field(tmp_path: Path) -> None:
    lens = CATALOG.get("summilux-m-35-f1.4-asph-2022")
    cert = issue_certificate(_record(passing_run()), lens, apertures=STOPS)
    path = tmp_path / CERTIFICATE_FILE
    path.write_text(cert.to_json().replace('"CERTIFIED"', '"APPROVED"'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"certificate\.json: level = 'APPROVED'"):
        LensCertificate.load(path)


@pytest.mark.parametrize(
    ("lens_id", "stops"),
    [
        ("summilux-m-35-f1.4-asph-2022", (1.4, 2.8, 5.6)),
        ("noctilux-m-50-f0.95-asph", (0.95, 2.8, 5.6)),
        ("elmarit-m-24-f2.8-asph", (2.8, 5.6)),  # wide open is f/2.8: not certified twice
        ("elmar-m-24-f3.8-asph", (3.8, 5.6)),  # no f/2.8 on the ring
    ],
)
def test_certified_apertures_are_wide_open_then_the_marked_working_stops(lens_id: str, stops: tuple) -> None:
    assert apertures_for(CATALOG.get(lens_id)) == stops


def _flat(k1: float, k2: float, *, width: int = 512, height: int = 384, signal: float = 800.0) -> Frame:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r2 = ((x - (width - 1) / 2) ** 2 + (y - (height - 1) / 2) ** 2) / (0.25 * (width**2 + height**2))
    raw = np.round(64 + signal * (1 + k1 * r2 + k2 * r2 * r2)).astype(np.uint16)
    dng = write_dng(
        raw, black_level=64, white_level=1023, make="test", model="test", unique_camera_model="test", serial=None,
        timestamp_ms=None, exposure_time_s=0.01, iso=100, f_number=1.4, focal_length_mm=35.0, lens_model=None,
    )  # fmt: skip
    image = read_dng(dng)
    return Frame("flat.dng", image, "flat", 0.0, 0.0, 0.8, 0.01, 100, None)


def test_radial_falloff_of_a_known_law_gives_back_its_pa_coefficients() -> None:
    from rig.calibrate.lensfun import fit_pa_vignetting

    k1, k2 = -0.26, 0.03
    r, ri, count = radial_relative_illumination(_flat(k1, k2))
    assert r[0] < 0.02 and ri[0] == 1.0 and r[-1] > 0.97  # centre to corner
    fit = fit_pa_vignetting(r, ri, weights=count)
    # RI reproduced to 0.2 % across the field (0.5 DN quantisation of 800 DN, and the centre bin's own width)
    for rr in (0.3, 0.6, 0.9, 1.0):
        want = 1 + k1 * rr**2 + k2 * rr**4
        assert abs(1 + fit.k1 * rr**2 + fit.k2 * rr**4 + fit.k3 * rr**6 - want) < 0.002, rr


def test_lensfun_entry_carries_the_lens_and_one_pa_per_aperture() -> None:
    lens = CATALOG.get("noctilux-m-50-f0.95-asph")
    fits = {
        n: PaFit(k1=-0.2 * (0.95 / n) ** 2, k2=0.01, k3=0.0, rms_residual=0.001, max_radius=1.0) for n in (5.6, 0.95)
    }
    entry = lensfun_entry(lens, distortion_abc=(0.0, -0.003, 0.0), vignetting=fits)
    (parsed,) = parse_lensfun_xml(lensfun_xml([entry]))
    assert (parsed.maker, parsed.model, parsed.mount) == ("Leica", lens.name, "Leica M")
    assert parsed.cropfactor == 2.64 and parsed.focal_mm == 50.0
    assert (parsed.min_aperture, parsed.max_aperture) == (0.95, 16.0)
    assert [v.aperture for v in parsed.vignetting] == [0.95, 5.6]  # widest first
    assert all(v.distance_m == LENSFUN_INFINITY_M for v in parsed.vignetting)
    assert math.isclose(parsed.vignetting[1].k1, -0.2 * (0.95 / 5.6) ** 2)
    assert parsed.distortion[0].b == -0.003
    with pytest.raises(ValueError, match="ptlens b"):
        lensfun_entry(lens, distortion_abc=(0.0, math.nan, 0.0), vignetting=fits)
