"""A lensfun database entry (``<lens>``) for an M lens as measured on the phone, and the ``pa`` vignetting fit.

Format (lensfun ``data/db/lensfun-database.dtd``, REFERENCE.md §7): ``<lensdatabase version="2">`` holding
``<lens>`` elements whose children come in the order maker+, model+, mount+, focal?, aperture?, type?,
cropfactor, aspect-ratio?, calibration?; ``<calibration>`` holds ``<distortion>``, ``<tca>`` and ``<vignetting>``
elements (in that order).

Normalisation. lensfun scales radii by the calibration frame it is told about: ``cropfactor`` 2.64 (the phone
sensor's 16.38 mm diagonal against 43.27 mm) and ``aspect-ratio`` 4:3 make that frame exactly the phone's
13.1 × 9.8 mm sensor, so ptlens's r = 1 at half the short edge and pa's r = 1 at the corner (half diagonal) are
the phone sensor's, the conventions :mod:`rig.measure.dotgrid` and the lens catalog already use. Without the
aspect ratio lensfun would assume 3:2 and misplace r = 1 by 8 %.

The pa model is radial luminance only, ``Cd = Cs·(1 + k1·r² + k2·r⁴ + k3·r⁶)``: the per-channel colour shading
of the sensor lives in the DNG GainMaps (:mod:`rig.spec.gainmap`), not here.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rig.errors import MISSING, ConfigError, MeasurementError

PHONE_CROP_FACTOR = 2.64
PHONE_ASPECT_RATIO = "4:3"
LENS_CHILD_ORDER = ("maker", "model", "mount", "focal", "aperture", "type", "cropfactor", "aspect-ratio", "calibration")
_REPEATABLE = {"maker", "model", "mount"}
_REQUIRED = {"maker", "model", "mount", "cropfactor"}
CALIBRATION_CHILD_ORDER = ("distortion", "tca", "vignetting")


@dataclass(frozen=True)
class PtlensDistortion:
    """``<distortion model="ptlens">`` at one focal length (mm)."""

    focal_mm: float
    a: float
    b: float
    c: float


@dataclass(frozen=True)
class PaVignetting:
    """``<vignetting model="pa">`` at one focal length (mm), f-number and focus distance (m)."""

    focal_mm: float
    aperture: float
    distance_m: float
    k1: float
    k2: float
    k3: float


@dataclass(frozen=True)
class LensfunLens:
    """One lensfun ``<lens>``. ``min_aperture``/``max_aperture``: widest and narrowest f-number."""

    maker: str
    model: str
    mount: str = "Leica M"
    focal_mm: float | None = None
    min_aperture: float | None = None
    max_aperture: float | None = None
    cropfactor: float = PHONE_CROP_FACTOR
    aspect_ratio: str | None = PHONE_ASPECT_RATIO
    distortion: tuple[PtlensDistortion, ...] = field(default_factory=tuple)
    vignetting: tuple[PaVignetting, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class PaFit:
    """pa coefficients fitted to a relative-illumination profile; residuals are in RI units (1 = centre)."""

    k1: float
    k2: float
    k3: float
    rms_residual: float
    max_radius: float


# --------------------------------------------------------------------------------------------- fitting
def fit_pa_vignetting(
    radius: np.ndarray,
    relative_illumination: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    terms: int = 3,
) -> PaFit:
    """Least-squares lensfun pa coefficients from a radial relative-illumination profile.

    Parameters
    ----------
    radius : ndarray
        Field radius, 1 = the sensor's half diagonal (the frame corner).
    relative_illumination : ndarray
        Illuminance relative to the optical centre (1 on axis), linear (not stops).
    weights : ndarray, optional
        Per-sample weights (e.g. pixel counts of radial bins).
    terms : int
        1, 2 or 3: fit k1; k1, k2; or k1, k2, k3 (the rest 0). Use fewer when the profile stops short of the corner.

    Returns
    -------
    PaFit

    Raises
    ------
    MeasurementError
        Fewer samples than terms + 2, or no sample beyond a tenth of the half diagonal.

    References
    ----------
    lensfun ``pa`` vignetting model (Kang & Weiss polynomial), ``lensfun-database.dtd``.
    """
    r = np.asarray(radius, dtype=np.float64).ravel()
    ri = np.asarray(relative_illumination, dtype=np.float64).ravel()
    if r.shape != ri.shape:
        raise ValueError(f"radius and relative_illumination differ in size: {r.size} vs {ri.size}")
    if terms not in (1, 2, 3):
        raise ValueError(f"terms 1, 2 or 3, got {terms}")
    ok = np.isfinite(r) & np.isfinite(ri)
    r, ri = r[ok], ri[ok]
    w = np.ones_like(r) if weights is None else np.asarray(weights, dtype=np.float64).ravel()[ok]
    if r.size < terms + 2 or r.max(initial=0.0) < 0.1:
        raise MeasurementError(
            f"pa vignetting fit: {r.size} samples reaching r = {r.max(initial=0.0):.2f}: expected ≥ {terms + 2} "
            "samples reaching beyond r = 0.1 of the half diagonal"
        )
    design = np.column_stack([r ** (2 * (n + 1)) for n in range(terms)])
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(design * sw[:, None], (ri - 1.0) * sw, rcond=None)
    k = [*map(float, coef), 0.0, 0.0][:3]
    resid = 1.0 + design @ coef - ri
    return PaFit(k1=k[0], k2=k[1], k3=k[2], rms_residual=float(np.sqrt(np.mean(resid**2))), max_radius=float(r.max()))


# --------------------------------------------------------------------------------------------- writing
def _num(value: float) -> str:
    """Shortest round-trip decimal that is also an XML NMTOKEN (no '+': 1e+20 is written out in full)."""
    if not math.isfinite(value):
        raise ValueError(f"lensfun numbers must be finite, got {value}")
    text = repr(float(value))
    if "e+" in text:
        text = f"{value:.1f}"
    return text


def lens_element(lens: LensfunLens) -> ET.Element:
    """The ``<lens>`` element, children in DTD order."""
    el = ET.Element("lens")
    ET.SubElement(el, "maker").text = lens.maker
    ET.SubElement(el, "model").text = lens.model
    ET.SubElement(el, "mount").text = lens.mount
    if lens.focal_mm is not None:
        ET.SubElement(el, "focal", value=_num(lens.focal_mm))
    if lens.min_aperture is not None:
        attrs = {"min": _num(lens.min_aperture)}
        if lens.max_aperture is not None:
            attrs["max"] = _num(lens.max_aperture)
        ET.SubElement(el, "aperture", attrs)
    ET.SubElement(el, "cropfactor").text = _num(lens.cropfactor)
    if lens.aspect_ratio:
        ET.SubElement(el, "aspect-ratio").text = lens.aspect_ratio
    if lens.distortion or lens.vignetting:
        cal = ET.SubElement(el, "calibration")
        for d in lens.distortion:
            ET.SubElement(
                cal, "distortion", model="ptlens", focal=_num(d.focal_mm), a=_num(d.a), b=_num(d.b), c=_num(d.c)
            )
        for v in lens.vignetting:
            ET.SubElement(
                cal,
                "vignetting",
                model="pa",
                focal=_num(v.focal_mm),
                aperture=_num(v.aperture),
                distance=_num(v.distance_m),
                k1=_num(v.k1),
                k2=_num(v.k2),
                k3=_num(v.k3),
            )
    return el


def lensfun_xml(lenses: Sequence[LensfunLens]) -> str:
    """A complete lensfun database file (``<lensdatabase version="2">``) holding ``lenses``."""
    root = ET.Element("lensdatabase", version="2")
    for lens in lenses:
        root.append(lens_element(lens))
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------------------------- reading
def check_lens_order(el: ET.Element, *, source: str = "lensfun XML") -> None:
    """Raise :class:`ConfigError` unless ``el``'s children follow the DTD's ``<lens>`` content model."""
    tags = [child.tag for child in el]
    where = f"lens[{el.findtext('model') or '?'}]"
    last = -1
    for tag in tags:
        if tag not in LENS_CHILD_ORDER:
            raise ConfigError(source, f"{where}.{tag}", "(element)", f"one of {', '.join(LENS_CHILD_ORDER)}")
        pos = LENS_CHILD_ORDER.index(tag)
        if pos < last or (pos == last and tag not in _REPEATABLE):
            raise ConfigError(source, f"{where}.{tag}", "(out of order)", f"the order {', '.join(LENS_CHILD_ORDER)}")
        last = pos
    for tag in sorted(_REQUIRED - set(tags)):
        raise ConfigError(source, f"{where}.{tag}", MISSING, "a value (the element is required)")
    cal = el.find("calibration")
    if cal is not None:
        last = -1
        for child in cal:
            if child.tag not in CALIBRATION_CHILD_ORDER or CALIBRATION_CHILD_ORDER.index(child.tag) < last:
                raise ConfigError(
                    source, f"{where}.calibration.{child.tag}", "(element)", "distortion*, tca*, vignetting* in order"
                )
            last = CALIBRATION_CHILD_ORDER.index(child.tag)


def _number(text: str | None, source: str, field: str) -> float:
    if text is None:
        raise ConfigError(source, field, MISSING, "a number (required)")
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(source, field, text, "a number") from None
    if not math.isfinite(value):
        raise ConfigError(source, field, text, "a finite number")
    return value


def _attr(el: ET.Element, name: str, source: str, where: str) -> float:
    return _number(el.get(name), source, f"{where}.{name}")


def parse_lensfun_xml(text: str, *, source: str = "lensfun XML") -> list[LensfunLens]:
    """Parse the ``<lens>`` entries of a lensfun database file (ptlens distortion and pa vignetting only).

    Raises
    ------
    ConfigError
        Malformed XML, a wrong root, children out of DTD order, or a missing/non-numeric attribute.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ConfigError(source, "", "(unparsable)", f"well-formed XML ({exc})") from None
    if root.tag != "lensdatabase":
        raise ConfigError(source, "", f"<{root.tag}>", "a <lensdatabase> root element")
    out: list[LensfunLens] = []
    for i, el in enumerate(root.findall("lens")):
        check_lens_order(el, source=source)
        where = f"lens[{i}]"
        focal = el.find("focal")
        aperture = el.find("aperture")
        cal = el.find("calibration")
        dist: list[PtlensDistortion] = []
        vig: list[PaVignetting] = []
        if cal is not None:
            for d in cal.findall("distortion"):
                if d.get("model") != "ptlens":
                    continue
                dist.append(
                    PtlensDistortion(*(_attr(d, n, source, f"{where}.distortion") for n in ("focal", "a", "b", "c")))
                )
            for v in cal.findall("vignetting"):
                names = ("focal", "aperture", "distance", "k1", "k2", "k3")
                vig.append(PaVignetting(*(_attr(v, n, source, f"{where}.vignetting") for n in names)))
        out.append(
            LensfunLens(
                maker=el.findtext("maker") or "",
                model=el.findtext("model") or "",
                mount=el.findtext("mount") or "",
                focal_mm=_attr(focal, "value", source, f"{where}.focal") if focal is not None else None,
                min_aperture=_attr(aperture, "min", source, f"{where}.aperture") if aperture is not None else None,
                max_aperture=(
                    _attr(aperture, "max", source, f"{where}.aperture")
                    if aperture is not None and aperture.get("max") is not None
                    else None
                ),
                cropfactor=_number(el.findtext("cropfactor"), source, f"{where}.cropfactor"),
                aspect_ratio=el.findtext("aspect-ratio"),
                distortion=tuple(dist),
                vignetting=tuple(vig),
            )
        )
    return out
