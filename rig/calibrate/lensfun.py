"""A lensfun database (``<camera>`` for the phone, ``<lens>`` per M lens as measured on it) and the pa fit.

Format (lensfun ``data/db/lensfun-database.dtd``, REFERENCE.md §7): ``<lensdatabase version="1">`` — every
released lensfun (0.3.2–0.3.4: Debian's, darktable's, RawTherapee's, lensfunpy's) refuses version 2 with
"Database version is 2, but newest supported is only 1!", and nothing here needs version 2. ``<camera>``
children: maker, model, mount, cropfactor (no ``<aspect-ratio>``: 0.3.4 rejects it there, "Wrong context for
element"). ``<lens>`` children in the order maker+, model+, mount+, focal?, aperture?, type?, cropfactor,
aspect-ratio?, calibration?; ``<calibration>`` holds ``<distortion>``, ``<tca>`` and ``<vignetting>`` (in that
order). lensfun offers a lens only for a camera it has matched by the raw file's Exif Make and Model, with the
same mount and a crop factor no smaller than the lens's calibration crop factor: so the file carries the phone's
``<camera>`` (Make ``Xiaomi``, its Model, mount ``Leica M``, crop factor from the sensor diagonal, ≈ 2.64) and
every lens with that mount and crop factor.

Normalisation. lensfun scales radii by the calibration frame it is told about: ``cropfactor`` 2.64 (the phone
sensor's 16.38 mm diagonal against 43.27 mm) and ``aspect-ratio`` 4:3 make that frame exactly the phone's
13.1 × 9.8 mm sensor, so ptlens's r = 1 at half the short edge and pa's r = 1 at the corner (half diagonal) are
the phone sensor's, the conventions :mod:`rig.measure.dotgrid` and the lens catalog already use. Without the
aspect ratio lensfun would assume 3:2 and misplace r = 1 by 8 %.

TCA (``<tca model="poly3">``): red and blue against green, ``Rd = Ru·(b·Ru² + c·Ru + v)`` in the same normalised
radius as the distortion (r = 1 at half the short edge), as :mod:`rig.measure.lateral_colour` fits it from the dot
grid's colour planes (:func:`poly3_tca`); lensfun's Modifier reads each corrected pixel's red and blue at those
radii (``mod-subpix.cpp``), which puts them back onto green.

Which correction where (:data:`CORRECTION_GUIDE`, also the file's comment and calibration/README.md). The pa
model is the whole radial falloff of the phone's *raw* data, fitted on raw flat fields; it is radial luminance
only, ``Cd = Cs·(1 + k1·r² + k2·r⁴ + k3·r⁶)``. The phone's DNGs also carry the per-channel shading correction as a
GainMap (OpcodeList2, :mod:`rig.spec.gainmap`), which DNG-SDK readers and darktable apply. The two correct the
same falloff, so every documented path uses exactly one of them: DNG-SDK/darktable users take distortion and TCA
from lensfun and leave its vignetting off; lensfun-only users (LibRaw/rawpy, dcraw, Hugin, RawTherapee), whose tools
ignore the GainMap, take all three (RawTherapee applies the GainMap only with its flat-field "from metadata"
option on, rawimagesource.cc ``ff_FromMetaData``; then it is a GainMap reader).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rig.errors import MISSING, ConfigError, MeasurementError
from rig.measure.lateral_colour import LateralColourFit

FULL_FRAME_DIAGONAL_MM = 43.2666  # √(36² + 24²): the crop factor's reference
PHONE_SENSOR_DIAGONAL_MM = 16.384  # 8192 × 6144 at 1.6 µm (REFERENCE.md §2)
LENSFUN_DATABASE_VERSION = "1"


def crop_factor(sensor_diagonal_mm: float) -> float:
    """lensfun crop factor of a sensor: the 35 mm frame's diagonal over the sensor's, to 2 decimals as lensfun's
    database writes them (the phone's and its lenses' entries must carry the same value)."""
    if not sensor_diagonal_mm > 0:
        raise ValueError(f"sensor diagonal must be > 0 mm, got {sensor_diagonal_mm}")
    return round(FULL_FRAME_DIAGONAL_MM / sensor_diagonal_mm, 2)


PHONE_CROP_FACTOR = crop_factor(PHONE_SENSOR_DIAGONAL_MM)  # 2.64
PHONE_ASPECT_RATIO = "4:3"
CORRECTION_GUIDE = (
    "Which correction where. Distortion (ptlens) and TCA: every raw pipeline. Vignetting (pa): the whole radial "
    "falloff of the phone's raw data, only for pipelines that ignore the DNG GainMap (LibRaw/rawpy, dcraw, Hugin, "
    "RawTherapee with flat-field 'from metadata' off). The phone's DNGs carry a GainMap (OpcodeList2) that already "
    "corrects this falloff; DNG-SDK readers (Adobe Camera Raw, Lightroom) and darktable apply it, so there use "
    "lensfun for distortion and TCA only and leave its vignetting off (darktable: lens correction module, "
    "corrections = distortion & TCA), or the corners come out too bright."
)
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
class Poly3Tca:
    """``<tca model="poly3">`` at one focal length (mm): Rd = Ru·(b·Ru² + c·Ru + v), red and blue against green."""

    focal_mm: float
    vr: float
    vb: float
    cr: float = 0.0
    cb: float = 0.0
    br: float = 0.0
    bb: float = 0.0


def poly3_tca(fit: LateralColourFit, *, focal_mm: float) -> Poly3Tca:
    """The ``<tca model="poly3">`` of a lateral-colour fit at ``focal_mm`` (same coefficients, same normalisation).

    Raises
    ------
    ValueError
        A non-finite coefficient, or a v outside (0.5, 2): no lens scales a colour by a factor of two.
    """
    red, blue = fit.red, fit.blue
    for name, value in (("vr", red.v), ("vb", blue.v), ("cr", red.c), ("cb", blue.c), ("br", red.b), ("bb", blue.b)):
        if not math.isfinite(value):
            raise ValueError(f"TCA {name} must be finite, got {value}")
    for name, value in (("vr", red.v), ("vb", blue.v)):
        if not 0.5 < value < 2.0:
            raise ValueError(f"TCA {name} within (0.5, 2), got {value}")
    return Poly3Tca(focal_mm, vr=red.v, vb=blue.v, cr=red.c, cb=blue.c, br=red.b, bb=blue.b)


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
    tca: tuple[Poly3Tca, ...] = field(default_factory=tuple)
    vignetting: tuple[PaVignetting, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class LensfunCamera:
    """One lensfun ``<camera>``: ``maker``/``model`` exactly as the raw files' Exif Make and Model."""

    maker: str
    model: str
    mount: str = "Leica M"
    cropfactor: float = PHONE_CROP_FACTOR


def phone_camera(make: str, model: str, *, sensor_diagonal_mm: float) -> LensfunCamera:
    """The ``<camera>`` of the phone's M-mount sensor, named as its DNGs name it."""
    return LensfunCamera(maker=make, model=model, cropfactor=crop_factor(sensor_diagonal_mm))


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
    if lens.distortion or lens.tca or lens.vignetting:
        cal = ET.SubElement(el, "calibration")
        for d in lens.distortion:
            ET.SubElement(
                cal, "distortion", model="ptlens", focal=_num(d.focal_mm), a=_num(d.a), b=_num(d.b), c=_num(d.c)
            )
        for t in lens.tca:
            names = ("vr", "vb", "cr", "cb", "br", "bb")
            ET.SubElement(cal, "tca", model="poly3", focal=_num(t.focal_mm), **{n: _num(getattr(t, n)) for n in names})
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


def camera_element(camera: LensfunCamera) -> ET.Element:
    """The ``<camera>`` element: maker, model, mount, cropfactor (lensfun 0.3.x takes no aspect ratio here)."""
    el = ET.Element("camera")
    ET.SubElement(el, "maker").text = camera.maker
    ET.SubElement(el, "model").text = camera.model
    ET.SubElement(el, "mount").text = camera.mount
    ET.SubElement(el, "cropfactor").text = _num(camera.cropfactor)
    return el


def lensfun_xml(lenses: Sequence[LensfunLens], cameras: Sequence[LensfunCamera] = ()) -> str:
    """A complete lensfun database file (``<lensdatabase version="1">``): the cameras, then the lenses.

    A comment at the top says which correction a user applies in which tool (:data:`CORRECTION_GUIDE`).
    """
    root = ET.Element("lensdatabase", version=LENSFUN_DATABASE_VERSION)
    root.append(ET.Comment(f" {CORRECTION_GUIDE} "))
    for camera in cameras:
        root.append(camera_element(camera))
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
    """Parse the ``<lens>`` entries of a lensfun database file (ptlens distortion, poly3 TCA, pa vignetting only).

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
        tca: list[Poly3Tca] = []
        vig: list[PaVignetting] = []
        if cal is not None:
            for d in cal.findall("distortion"):
                if d.get("model") != "ptlens":
                    continue
                dist.append(
                    PtlensDistortion(*(_attr(d, n, source, f"{where}.distortion") for n in ("focal", "a", "b", "c")))
                )
            for t in cal.findall("tca"):
                if t.get("model") != "poly3":
                    continue
                names = ("focal", "vr", "vb", "cr", "cb", "br", "bb")
                tca.append(Poly3Tca(*(_attr(t, n, source, f"{where}.tca") for n in names)))
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
                tca=tuple(tca),
                vignetting=tuple(vig),
            )
        )
    return out
