"""Transverse chromatic aberration (lateral colour) from a dot-grid frame, fitted to lensfun's ``poly3`` TCA model.

Method. The Bayer mosaic is split into its colour planes; the dots of each plane are found with
:func:`rig.measure.dotgrid.detect_dots`, and each centre is refined as the darkness-weighted centroid over a disc
window about it, against a background plane fitted on a ring around the dot (:func:`precise_dot_centres`): each
colour has its own shading gradient (the sensor's chief-ray-angle term is strongest in red), which would otherwise
move the red and blue centres radially against green by ~20 ppm of the radius, as much as a well-corrected lens's
lateral colour. The centres are put back on the read-out grid where that plane's sites sit (plane pixel (i, j) is
read-out pixel (2i + dy, 2j + dx)). The two
green planes' centres of a dot are averaged into its green centre; its red and blue centres are the nearest
detections within a quarter of the dot spacing. Each colour's centres are then fitted against green as lensfun
models TCA (``lensfun-database.dtd``; ``libs/lensfun/mod-subpix.cpp`` ``ModifyCoord_TCA_Poly3``)::

    p_c = p_g · (b_c·r² + c_c·r + v_c),   r = |p_g|,   c ∈ {red, blue}

with positions from the frame centre ((W − 1)/2, (H − 1)/2) in lensfun's normalised unit, half the short side
measured between pixel centres, (min(W, H) − 1)/2 px (``modifier.cpp``: ``NormScale = 2 / min(W − 1, H − 1)`` for a
frame of the calibration's crop factor and aspect ratio). lensfun's corrector reads, for every corrected pixel,
the red and blue samples at exactly these positions: the green position is the corrected one, the coloured one
where the lens put that colour (``ApplySubpixelDistortion``). The model is linear in (v, c, b), so the fit is one
least-squares solve per colour; ``terms`` picks the coefficients (``"v"``: lensfun's ``linear`` model, kr = v).
The centre is the frame's, not the optical axis, because that is where lensfun applies the correction (the entry
carries no centre); an axis a few µm off the centre moves a colour by magnification × offset, 10⁻³ px.

References
----------
lensfun ``data/db/lensfun-database.dtd`` (``<tca model="poly3" vr vb cr cb br bb>``), ``libs/lensfun/modifier.cpp``
(coordinate systems) and ``mod-subpix.cpp``; REFERENCE.md §7. Dot centroids: J. Heikkilä, IEEE TPAMI 22(10), 2000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy.spatial import cKDTree

from rig.errors import MeasurementError
from rig.measure.dotgrid import detect_dots

MIN_DOTS = 12
_MATCH_FRACTION = 0.25  # of the median dot spacing: a colour's centre further from green is another dot
_WINDOW = 1.3  # centroid window radius, in dot radii: the whole dot and its blurred edge (≤ 1 plane px here)
_RING_INNER = 1.4  # background ring, in dot radii: clear of the dot's edge, well inside the grid's pitch
_RING_OUTER = 1.9


class TcaTerms(StrEnum):
    """Which lensfun coefficients are fitted; the others stay at lensfun's identity (v = 1, c = b = 0)."""

    LINEAR = "v"  # lensfun ``linear`` (kr, kb): a pure scale, primary lateral colour
    V_B = "vb"  # poly3 without the r² term (lensfun's fast path, c = 0): primary + third-order lateral colour
    POLY3 = "vcb"  # every poly3 coefficient


@dataclass(frozen=True, eq=False)
class ColourDotCentres:
    """Centres of the same dots in each colour, as (x, y) read-out pixels (pixel centres at integers), (N, 2)."""

    green_px: np.ndarray
    red_px: np.ndarray
    blue_px: np.ndarray
    image_width_px: int
    image_height_px: int


@dataclass(frozen=True)
class ChannelTca:
    """lensfun poly3 TCA of one colour against green: ``p_c = p_g·(b·r² + c·r + v)``, r = 1 at ``r_norm_px``.

    ``corner_shift_px``/``_um``: how far the colour lands from green at the frame corner, radially (+ outward).
    """

    v: float
    c: float
    b: float
    corner_shift_px: float
    corner_shift_um: float
    rms_residual_px: float
    max_residual_px: float

    def scale(self, r_norm: np.ndarray | float) -> np.ndarray:
        """The colour's radius over green's at normalised green radius ``r_norm``."""
        r = np.asarray(r_norm, dtype=np.float64)
        return self.b * r * r + self.c * r + self.v


@dataclass(frozen=True)
class LateralColourFit:
    """Lateral colour of a frame: red and blue against green, lensfun's ``poly3`` conventions.

    Attributes
    ----------
    red, blue : ChannelTca
        lensfun ``vr, cr, br`` and ``vb, cb, bb``.
    terms : TcaTerms
        The coefficients fitted.
    centre_px : (float, float)
        Where the model is centred: the frame centre ((W − 1)/2, (H − 1)/2), read-out pixels.
    r_norm_px : float
        lensfun's unit radius: (min(W, H) − 1)/2 read-out pixels.
    corner_radius_px : float
        Distance from the centre to the corner pixel's centre.
    dots_used : int
        Dots found in every colour (after dropping gross outliers once).
    pixel_pitch_um : float
        Read-out pixel pitch the µm figures use.
    """

    red: ChannelTca
    blue: ChannelTca
    terms: TcaTerms
    centre_px: tuple[float, float]
    r_norm_px: float
    corner_radius_px: float
    dots_used: int
    pixel_pitch_um: float

    def radial_shift_um(self, channel: ChannelTca, field_radius: np.ndarray | float) -> np.ndarray:
        """How far ``channel`` lands from green (µm, + outward) at ``field_radius`` (1 = the frame's half diagonal)."""
        r = np.asarray(field_radius, dtype=np.float64) * (self.corner_radius_px / self.r_norm_px)
        return r * (channel.scale(r) - 1.0) * self.r_norm_px * self.pixel_pitch_um


# --------------------------------------------------------------------------------------------- detection
def _plane_offsets(cfa_pattern: str) -> dict[str, list[tuple[int, int]]]:
    """(dx, dy) of each colour's sites in the 2×2 quad: ``cfa_pattern`` lists the quad row by row."""
    if len(cfa_pattern) != 4 or sorted(cfa_pattern) != ["B", "G", "G", "R"]:
        raise MeasurementError(f"CFA pattern of R, G, G, B (e.g. RGGB), got {cfa_pattern!r}")
    offsets: dict[str, list[tuple[int, int]]] = {"R": [], "G": [], "B": []}
    for k, colour in enumerate(cfa_pattern):
        offsets[colour].append((k % 2, k // 2))
    return offsets


def _refined_centre(plane: np.ndarray, centre: np.ndarray, radius_px: float) -> np.ndarray | None:
    """The darkness-weighted centroid of one dot over a disc window centred on it, against a local plane background.

    The background is a plane fitted over a ring just outside the dot, so the colour's own shading gradient (the
    sensor's chief-ray-angle term differs per colour) neither tilts the dot's darkness nor leaves a floor of
    darkness in the window; the window is a disc about the current centre, so its edges pull the centroid no way.
    Three passes move the window onto the dot. None when the window leaves the plane.
    """
    half = int(np.ceil(_RING_OUTER * radius_px)) + 1
    c = centre.astype(np.float64)
    for _ in range(3):
        x0, y0 = round(float(c[0])) - half, round(float(c[1])) - half
        if x0 < 0 or y0 < 0 or x0 + 2 * half + 1 > plane.shape[1] or y0 + 2 * half + 1 > plane.shape[0]:
            return None
        patch = plane[y0 : y0 + 2 * half + 1, x0 : x0 + 2 * half + 1]
        ys, xs = np.mgrid[y0 : y0 + 2 * half + 1, x0 : x0 + 2 * half + 1]
        d = np.hypot(xs - c[0], ys - c[1])
        ring = (d > _RING_INNER * radius_px) & (d < _RING_OUTER * radius_px)
        design = np.column_stack([np.ones(int(ring.sum())), xs[ring] - c[0], ys[ring] - c[1]])
        coef, *_ = np.linalg.lstsq(design, patch[ring], rcond=None)
        background = coef[0] + coef[1] * (xs - c[0]) + coef[2] * (ys - c[1])
        if not np.all(background > 0):
            return None
        weight = np.where(d < _WINDOW * radius_px, 1.0 - patch / background, 0.0)
        total = float(weight.sum())
        if total <= 0:
            return None
        c = np.array([float((weight * xs).sum()) / total, float((weight * ys).sum()) / total])
    return c


def precise_dot_centres(image: np.ndarray, *, black_level_dn: float = 0.0) -> np.ndarray:
    """Dot centres (N, 2) of a grey frame (one colour), (x, y) pixels: :func:`rig.measure.dotgrid.detect_dots`,
    then each refined over a disc window against a local plane background (:func:`_refined_centre`).

    Raises
    ------
    MeasurementError
        As :func:`~rig.measure.dotgrid.detect_dots` (fewer than 12 dots, an unlit frame).
    """
    plane = np.asarray(image, dtype=np.float64) - black_level_dn
    found = detect_dots(plane)
    radius = float(np.sqrt(np.median(found.areas_px) / np.pi))
    refined = [_refined_centre(plane, c, radius) for c in found.centres_px]
    return np.array([c for c in refined if c is not None], dtype=np.float64).reshape(-1, 2)


def _plane_centres(raw: np.ndarray, dx: int, dy: int, black_level_dn: float) -> np.ndarray:
    """Dot centres of one Bayer plane in read-out pixels: plane pixel (i, j) is read-out pixel (2i + dy, 2j + dx)."""
    centres = precise_dot_centres(raw[dy::2, dx::2], black_level_dn=black_level_dn)
    return centres * 2.0 + np.array([dx, dy], dtype=np.float64)


def _match(reference: np.ndarray, other: np.ndarray, radius_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into reference, into other) of mutual nearest neighbours closer than ``radius_px``."""
    dist, nearest = cKDTree(other).query(reference)
    back = cKDTree(reference).query(other)[1]
    ok = (dist <= radius_px) & (back[nearest] == np.arange(len(reference)))
    return np.flatnonzero(ok), nearest[ok]


def colour_dot_centres(raw: np.ndarray, *, cfa_pattern: str, black_level_dn: float) -> ColourDotCentres:
    """The centres of each dot of a dot-grid CFA frame in green, red and blue (read-out pixels).

    Parameters
    ----------
    raw : ndarray, shape (H, W)
        Bayer mosaic (codes), even sides.
    cfa_pattern : str
        The 2×2 quad row by row, e.g. ``"RGGB"``.
    black_level_dn : float
        Subtracted before detection (DN).

    Returns
    -------
    ColourDotCentres
        Only dots found in every plane, in the same order in each colour.

    Raises
    ------
    MeasurementError
        Not an even 2-D mosaic, a bad pattern, or fewer than 12 dots found in every colour.
    """
    if raw.ndim != 2 or raw.shape[0] % 2 or raw.shape[1] % 2:
        raise MeasurementError(f"lateral colour: a 2-D CFA mosaic with even sides, got shape {raw.shape}")
    offsets = _plane_offsets(cfa_pattern)
    (g1, g2), (red_site,), (blue_site,) = offsets["G"], offsets["R"], offsets["B"]
    green_a = _plane_centres(raw, *g1, black_level_dn)
    green_b = _plane_centres(raw, *g2, black_level_dn)
    spacing = float(np.median(cKDTree(green_a).query(green_a, k=2)[0][:, 1]))
    radius = _MATCH_FRACTION * spacing
    ia, ib = _match(green_a, green_b, radius)
    green = 0.5 * (green_a[ia] + green_b[ib])
    red = _plane_centres(raw, *red_site, black_level_dn)
    blue = _plane_centres(raw, *blue_site, black_level_dn)
    ig_r, ir = _match(green, red, radius)
    ig_b, ib_ = _match(green, blue, radius)
    common, in_r, in_b = np.intersect1d(ig_r, ig_b, return_indices=True)
    if len(common) < MIN_DOTS:
        raise MeasurementError(f"lateral colour: {len(common)} dots found in every colour, expected ≥ {MIN_DOTS}")
    height, width = raw.shape
    return ColourDotCentres(green[common], red[ir[in_r]], blue[ib_[in_b]], width, height)


# --------------------------------------------------------------------------------------------- fitting
def _fit_channel(
    green: np.ndarray, colour: np.ndarray, terms: TcaTerms, r_norm: float, corner: float, pixel_pitch_um: float
) -> tuple[ChannelTca, np.ndarray]:
    g = green / r_norm
    r = np.hypot(g[:, 0], g[:, 1])
    powers = {"v": np.ones_like(r), "c": r, "b": r * r}
    design = np.column_stack([np.concatenate([g[:, 0] * powers[t], g[:, 1] * powers[t]]) for t in terms.value])
    target = np.concatenate([colour[:, 0], colour[:, 1]]) / r_norm
    identity = {"v": 1.0, "c": 0.0, "b": 0.0}
    fixed = np.zeros_like(target)
    for name in "vcb":
        if name not in terms.value:
            fixed += identity[name] * np.concatenate([g[:, 0] * powers[name], g[:, 1] * powers[name]])
    solution, *_ = np.linalg.lstsq(design, target - fixed, rcond=None)
    coef = dict(identity, **dict(zip(terms.value, map(float, solution), strict=True)))
    model = (design @ solution + fixed) * r_norm
    resid = np.hypot(*(model - np.concatenate([colour[:, 0], colour[:, 1]])).reshape(2, -1))
    rc = corner / r_norm
    shift_px = corner * ((coef["b"] * rc + coef["c"]) * rc + coef["v"] - 1.0)
    channel = ChannelTca(
        v=coef["v"],
        c=coef["c"],
        b=coef["b"],
        corner_shift_px=shift_px,
        corner_shift_um=shift_px * pixel_pitch_um,
        rms_residual_px=float(np.sqrt(np.mean(resid**2))),
        max_residual_px=float(resid.max()),
    )
    return channel, resid


def fit_lateral_colour(
    centres: ColourDotCentres, *, pixel_pitch_um: float, terms: TcaTerms = TcaTerms.V_B
) -> LateralColourFit:
    """Fit lensfun's poly3 TCA (red and blue against green) to the dots' colour centres.

    Parameters
    ----------
    centres : ColourDotCentres
        From :func:`colour_dot_centres`.
    pixel_pitch_um : float
        Read-out pixel pitch (µm), for the corner shifts in µm.
    terms : TcaTerms
        Coefficients to fit (default v and b; ``TcaTerms.LINEAR`` gives lensfun's ``linear`` kr, kb as v).

    Returns
    -------
    LateralColourFit

    Raises
    ------
    MeasurementError
        Fewer than 12 dots, or none beyond a third of the unit radius (the scale is then undetermined).

    Notes
    -----
    Gross outliers (a dot matched to a speck) are dropped once: residuals beyond 5× the rms and 0.5 px.
    """
    if not (math.isfinite(pixel_pitch_um) and pixel_pitch_um > 0):
        raise ValueError(f"pixel pitch must be > 0 µm, got {pixel_pitch_um}")
    width, height = centres.image_width_px, centres.image_height_px
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    r_norm = (min(width, height) - 1) / 2.0
    corner = math.hypot(width - 1, height - 1) / 2.0
    green = centres.green_px - centre
    red = centres.red_px - centre
    blue = centres.blue_px - centre
    keep = np.ones(len(green), dtype=bool)
    for attempt in range(2):
        if keep.sum() < MIN_DOTS or np.hypot(*green[keep].T).max(initial=0.0) < r_norm / 3:
            raise MeasurementError(
                f"lateral colour fit: {int(keep.sum())} dots reaching {np.hypot(*green[keep].T).max(initial=0.0):.0f}"
                f" px: expected ≥ {MIN_DOTS} dots reaching beyond {r_norm / 3:.0f} px from the centre"
            )
        fr, res_r = _fit_channel(green[keep], red[keep], terms, r_norm, corner, pixel_pitch_um)
        fb, res_b = _fit_channel(green[keep], blue[keep], terms, r_norm, corner, pixel_pitch_um)
        bad = (res_r > max(5 * fr.rms_residual_px, 0.5)) | (res_b > max(5 * fb.rms_residual_px, 0.5))
        if attempt or not bad.any():
            break
        keep[np.flatnonzero(keep)[bad]] = False
    return LateralColourFit(
        red=fr,
        blue=fb,
        terms=terms,
        centre_px=(float(centre[0]), float(centre[1])),
        r_norm_px=r_norm,
        corner_radius_px=corner,
        dots_used=int(keep.sum()),
        pixel_pitch_um=pixel_pitch_um,
    )


def measure_lateral_colour(
    raw: np.ndarray, *, cfa_pattern: str, black_level_dn: float, pixel_pitch_um: float,
    terms: TcaTerms = TcaTerms.V_B,
) -> LateralColourFit:  # fmt: skip
    """:func:`colour_dot_centres` then :func:`fit_lateral_colour` on a dot-grid CFA frame."""
    centres = colour_dot_centres(raw, cfa_pattern=cfa_pattern, black_level_dn=black_level_dn)
    return fit_lateral_colour(centres, pixel_pitch_um=pixel_pitch_um, terms=terms)
