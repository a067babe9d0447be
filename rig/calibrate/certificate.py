"""Lens compatibility certificate: the lens lab's answer on top of a certification run's limits (issue #6.5).

A certification run records every measurement against ``fixtures/limits/certification.toml`` like any plan; its
verdict (PASS / FAIL / ERROR) is the limits' answer. The certificate grades the *failures* by what they mean for
someone who mounts this lens on this phone:

``NOT CERTIFIED`` — a blocking criterion failed or could not be established:

* the phone does not detect the lens with its 6-bit code (``lens_detected``): the phone would not switch to the
  M-mount sensor or would apply another lens's profile;
* infinity focus is unreachable at full aperture (``infinity_focus_margin_um`` at the widest stop): the sensor
  sits closer to the lens than its infinity stop allows, and no focus-ring setting brings a distant subject
  into focus (depth of focus only grows when stopped down, so full aperture is where it counts);
* the centre is not sharp wide open (``mtf50_cy_px`` at ``f<N>:center`` for the widest stop): the lens does not
  deliver its headline aperture on this phone at all.

``CERTIFIED WITH LIMITATIONS`` — every blocking criterion passed, but some other graded measurement failed or was
not measured: mid/corner sharpness at any aperture, centre sharpness stopped down, vignetting, T-stop, sag under
the lens's weight, the distortion and lateral-colour models' fits, focus shift on stopping down, corner-to-corner
sharpness. Each is named in ``reasons`` (e.g. "use a lens support", "correct vignetting with the lensfun
profile").

``CERTIFIED`` — every graded measurement passed.

A measurement that could not be made (verdict ERROR) counts as failed for its class: a lab does not certify what
it could not establish. Measurements without limits (``flange_offset_um``) are information and not graded.

Zones of per-aperture measurements are qualified by the f-number (``f1.4``, ``f1.4:center``, see
:func:`aperture_zone`); :meth:`rig.config.limits.Limit.for_zone` falls back from ``f1.4:corner`` to ``corner``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rig.calibrate.lensfun import LensfunLens, PaFit, PaVignetting, PtlensDistortion, poly3_tca
from rig.config.lenses import LensSpec
from rig.errors import ConfigError
from rig.measure.lateral_colour import LateralColourFit
from rig.results.record import (
    NEUTRAL_VERDICTS,
    CertificateLevel,
    MeasurementRecord,
    RunRecord,
    Verdict,
    atomic_write_text,
    utcnow,
)
from rig.results.reportdata import Check, ChecksPlot

CERTIFICATE_FILE = "certificate.json"
LENSFUN_FILE = "lensfun.xml"
CERTIFICATE_VERSION = "1.0"
LENSFUN_INFINITY_M = 1000.0
"""lensfun's focus distance for a subject at infinity: the bench's charts sit at a collimator's focal plane."""


class Severity(StrEnum):
    """What a failure of a criterion means: the lens cannot be used as designed, or only with a limitation."""

    BLOCKING = "blocking"
    LIMITING = "limiting"


LABELS = {
    "lens_detected": "lens detection (6-bit code)",
    "infinity_focus_margin_um": "infinity focus margin",
    "mtf50_cy_px": "sharpness MTF50",
    "t_stop_error_stops": "T-stop error",
    "corner_falloff_stops": "vignetting at 0.9 field",
    "sag_tilt_arcmin": "lens tilt under its weight",
    "sag_shift_um": "image shift under the lens's weight",
    "distortion_rms_px": "ptlens distortion fit residual",
    "tca_residual_px": "lateral colour (TCA) fit residual",
    "focus_shift_um": "focus shift on stopping down",
    "corner_mtf50_ratio": "corner-to-corner sharpness",
}
ADVICE = {
    "mtf50_cy_px": "soft in this zone",
    "t_stop_error_stops": "expose by metering, not by the marked aperture",
    "corner_falloff_stops": "correct vignetting with the lensfun profile",
    "sag_tilt_arcmin": "support the lens when the phone is not level",
    "sag_shift_um": "support the lens when the phone is not level",
    "distortion_rms_px": "the lensfun ptlens distortion does not fully correct this lens",
    "tca_residual_px": "the lensfun poly3 TCA does not fully correct this lens's colour fringes",
    "focus_shift_um": "focus at the working aperture: focused wide open, the picture is out of focus",
    "corner_mtf50_ratio": "one corner softer than the opposite one (a decentred element): have the lens serviced",
}


def aperture_zone(f_number: float, zone: str | None = None) -> str:
    """The zone qualifier of a per-aperture measurement: ``f1.4`` or ``f1.4:center``."""
    tag = f"f{f_number:g}"
    return f"{tag}:{zone}" if zone else tag


def blocking_keys(wide_open: float) -> tuple[tuple[str, str | None], ...]:
    """(name, zone) of the blocking criteria for a lens whose widest stop is ``wide_open``."""
    return (
        ("lens_detected", None),
        ("infinity_focus_margin_um", aperture_zone(wide_open)),
        ("mtf50_cy_px", aperture_zone(wide_open, "center")),
    )


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Finding(_Model):
    """One graded measurement of the run (value in ``unit``; ``None`` when it could not be made)."""

    measurement: str
    zone: str | None = None
    value: float | None
    unit: str
    low: float | None = None
    high: float | None = None
    verdict: Verdict
    severity: Severity
    reason: str = ""  # why it counts against the lens (empty when it passed)


class LensCertificate(_Model):
    """The certificate of one lens model on one phone unit, as written to ``certificate.json``."""

    schema_version: str = CERTIFICATE_VERSION
    level: CertificateLevel
    reasons: list[str] = Field(default_factory=list, description="blocking reasons first, then limitations")
    notes: list[str] = Field(default_factory=list, description="what could not apply to this lens, and why")
    lens_id: str
    lens_name: str
    maker: str
    mount: str
    lens_code: int | None
    focal_length_mm: float
    apertures: list[float] = Field(description="f-numbers certified (the widest first)")
    unit_serial: str
    station: str
    run_id: str
    run_verdict: Verdict = Field(description="the limits' verdict of the run's measurements when issued")
    issued: datetime
    software_version: str
    git_sha: str | None = None
    findings: list[Finding]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def save(self, run_dir: str | Path) -> Path:
        """Write ``certificate.json`` in ``run_dir`` atomically."""
        return atomic_write_text(Path(run_dir) / CERTIFICATE_FILE, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> LensCertificate:
        """Read a certificate; a malformed file raises :class:`ConfigError` naming the first bad field."""
        path = Path(path)
        try:
            cert = cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(path, ".".join(str(p) for p in err["loc"]), err.get("input"), err["msg"]) from None
        if cert.schema_version.split(".")[0] != CERTIFICATE_VERSION.split(".")[0]:
            raise ConfigError(path, "schema_version", cert.schema_version, f"major version {CERTIFICATE_VERSION}")
        return cert


# --------------------------------------------------------------------------------------------- grading
def _where(zone: str | None) -> str:
    if not zone:
        return ""
    aperture, _, field = zone.partition(":")
    if aperture.startswith("f"):
        return f" at f/{aperture[1:]}" + (f", {field}" if field else "")
    return f" ({zone})"


def _bounds(low: float | None, high: float | None, unit: str) -> str:
    if low is not None and high is not None:
        return f"within [{low:g}, {high:g}] {unit}"
    if low is not None:
        return f"≥ {low:g} {unit}"
    if high is not None:
        return f"≤ {high:g} {unit}"
    return "any value"


def _reason(m: MeasurementRecord) -> str:
    label = LABELS.get(m.name, m.name) + _where(m.zone)
    if m.value is None:
        return f"{label}: not measured ({m.error or 'no value'})"
    if m.name == "lens_detected":
        return "the phone does not report the lens with its 6-bit code"
    if m.name == "infinity_focus_margin_um":
        return (
            f"infinity unreachable{_where(m.zone)}: the lens's infinity focus lands {-m.value:.1f} µm behind the "
            "sensor's depth of focus (sensor too close to the lens; no focus setting compensates)"
        )
    advice = ADVICE.get(m.name)
    text = f"{label}: {m.value:.3g} {m.unit}, expected {_bounds(m.low, m.high, m.unit)}"
    return f"{text} — {advice}" if advice else text


def grade(
    measurements: Iterable[MeasurementRecord], *, wide_open: float, failed_steps: Mapping[str, str] | None = None
) -> tuple[CertificateLevel, list[Finding], list[str]]:
    """Apply the certificate rules (module docstring) to a run's measurements.

    Parameters
    ----------
    measurements
        The run record's measurements (one per name and zone).
    wide_open
        The lens's widest f-number (the blocking criteria are judged there).
    failed_steps
        Steps that ended in ERROR and their reasons: what they did not get to measure is not established, so each
        is a limitation (a blocking criterion they missed is caught as missing).

    Returns
    -------
    level, findings, reasons
        The level; every graded measurement as a :class:`Finding` (measurements without limits are left out);
        the reasons against the lens, blocking ones first.
    """
    blocking = set(blocking_keys(wide_open))
    findings: list[Finding] = []
    seen: set[tuple[str, str | None]] = set()
    for m in measurements:
        key = (m.name, m.zone)
        if ((m.low is None and m.high is None) or m.verdict in NEUTRAL_VERDICTS) and key not in blocking:
            continue  # information (e.g. flange_offset_um), or not applicable to this lens (e.g. sag tilt at 28 mm)
        seen.add(key)
        findings.append(
            Finding(
                measurement=m.name,
                zone=m.zone,
                value=m.value,
                unit=m.unit,
                low=m.low,
                high=m.high,
                verdict=m.verdict,
                severity=Severity.BLOCKING if key in blocking else Severity.LIMITING,
                reason="" if m.verdict is Verdict.PASS else _reason(m),
            )
        )
    for name, zone in blocking_keys(wide_open):
        if (name, zone) not in seen:  # its step never got as far as measuring it
            label = LABELS.get(name, name) + _where(zone)
            findings.append(
                Finding(
                    measurement=name,
                    zone=zone,
                    value=None,
                    unit="",
                    verdict=Verdict.ERROR,
                    severity=Severity.BLOCKING,
                    reason=f"{label}: not measured (its step did not complete)",
                )
            )
    for step, error in (failed_steps or {}).items():
        findings.append(
            Finding(
                measurement=f"step:{step}",
                value=None,
                unit="",
                verdict=Verdict.ERROR,
                severity=Severity.LIMITING,
                reason=f"step {step} could not complete, what it measures is not established: {error}",
            )
        )
    failed = [f for f in findings if f.verdict is not Verdict.PASS]
    blockers = [f.reason for f in failed if f.severity is Severity.BLOCKING]
    limits = [f.reason for f in failed if f.severity is Severity.LIMITING]
    if blockers:
        level = CertificateLevel.NOT_CERTIFIED
    elif limits:
        level = CertificateLevel.CERTIFIED_WITH_LIMITATIONS
    else:
        level = CertificateLevel.CERTIFIED
    return level, findings, blockers + limits


def issue_certificate(
    record: RunRecord, lens: LensSpec, *, apertures: Sequence[float], notes: Sequence[str] = ()
) -> LensCertificate:
    """The certificate of ``lens`` from a certification run's record (all other steps done)."""
    if not apertures:
        raise ValueError("a certificate needs at least one aperture")
    failed_steps = {s.name: s.error or "no reason recorded" for s in record.steps if s.verdict is Verdict.ERROR}
    level, findings, reasons = grade(record.measurements, wide_open=apertures[0], failed_steps=failed_steps)
    return LensCertificate(
        level=level,
        reasons=reasons,
        notes=list(notes),
        lens_id=lens.id,
        lens_name=lens.name,
        maker=lens.maker,
        mount=lens.mount,
        lens_code=lens.lens_code,
        focal_length_mm=lens.focal_length_mm,
        apertures=list(apertures),
        unit_serial=record.unit_serial,
        station=record.station,
        run_id=record.run_id,
        run_verdict=record.final_verdict(),
        issued=utcnow(),
        software_version=record.software_version,
        git_sha=record.git_sha,
        findings=findings,
    )


def certificate_checks(cert: LensCertificate) -> ChecksPlot:
    """The certificate as a checks table for the report: the level first, then every graded measurement."""
    rows = [
        Check(
            name="certificate",
            expected=CertificateLevel.CERTIFIED.value,
            observed=cert.level.value,
            ok=cert.level is CertificateLevel.CERTIFIED,
            detail="; ".join(cert.reasons),
        )
    ]
    for f in cert.findings:
        observed = "not measured" if f.value is None else f"{f.value:.4g} {f.unit}"
        rows.append(
            Check(
                name=f"{LABELS.get(f.measurement, f.measurement)}{_where(f.zone)} [{f.severity.value}]",
                expected=_bounds(f.low, f.high, f.unit),
                observed=observed,
                ok=f.verdict is Verdict.PASS,
                detail=f.reason,
            )
        )
    return ChecksPlot(
        name="certificate",
        title=f"Lens certificate: {cert.lens_name} — {cert.level.value}",
        caption=" ".join(cert.notes),
        checks=rows,
    )


# --------------------------------------------------------------------------------------------- lensfun
def lensfun_entry(
    lens: LensSpec,
    *,
    distortion_abc: tuple[float, float, float],
    vignetting: Mapping[float, PaFit],
    tca: LateralColourFit | None = None,
) -> LensfunLens:
    """The lensfun ``<lens>`` of ``lens`` as measured on the phone.

    ``distortion_abc``: ptlens a, b, c from the dot grid (r = 1 at half the sensor's short edge);
    ``vignetting``: pa fits per f-number (r = 1 at the half diagonal), all at infinity focus; ``tca``: the dot
    grid's lateral colour (poly3, r = 1 at half the short edge), None to leave TCA out. Radii conventions match
    lensfun's with crop factor 2.64 and aspect ratio 4:3 (:mod:`rig.calibrate.lensfun`).
    """
    for name, value in zip("abc", distortion_abc, strict=True):
        if not math.isfinite(value):
            raise ValueError(f"ptlens {name} must be finite, got {value}")
    focal = lens.focal_length_mm
    return LensfunLens(
        maker=lens.maker,
        model=lens.name,
        mount=lens.mount,
        focal_mm=focal,
        min_aperture=lens.f_numbers[0],
        max_aperture=lens.f_numbers[-1],
        distortion=(PtlensDistortion(focal, *distortion_abc),),
        tca=() if tca is None else (poly3_tca(tca, focal_mm=focal),),
        vignetting=tuple(
            PaVignetting(focal, n, LENSFUN_INFINITY_M, fit.k1, fit.k2, fit.k3) for n, fit in sorted(vignetting.items())
        ),
    )
