"""Light intake and uniformity from RAW flat fields: relative illumination, falloff, optical centre, colour
shading, effective T-stop and the gain over the phone's native lens.

Method (ISO 17957:2015 in spirit, on linear RAW as REFERENCE.md §3 recommends): the Bayer mosaic is split into
its four colour planes, black is subtracted, and block means on a coarse grid give the relative illumination per
channel, normalised to the centre block. The green plane, reduced to ≈64 blocks across, is fitted with a radial
model I₀·(1 + bρ²)⁻²·(1 + a₂ρ⁴ + a₃ρ⁶ + a₄ρ⁸) with a free centre (ρ = distance from it over the sensor's half
diagonal): the centre is where the falloff is symmetric (the optical axis), and the model gives the falloff at
any field height and the on-axis signal I₀. The first factor is the cos⁴ law exactly (cos⁴θ = (1 + tan²θ)⁻²,
tan θ = r / exit-pupil distance, so b = (half diagonal / exit pupil)²), which a polynomial cannot follow for the
native lens's steep chief rays; the second, with b, takes the lensfun "pa" vignetting polynomial (its ρ² term
folds into b).

Limitation: a shading term centred elsewhere (the sensor's chief-ray-angle mismatch, centred on the sensor where
the microlens shift pattern is) pulls the fitted centre towards it in proportion to its strength.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from rig.errors import MeasurementError

CHANNELS = ("R", "Gr", "Gb", "B")
_CFA_OFFSETS = {  # (row, col) of R, Gr, Gb, B in the 2×2 quad
    "RGGB": ((0, 0), (0, 1), (1, 0), (1, 1)),
    "BGGR": ((1, 1), (1, 0), (0, 1), (0, 0)),
    "GRBG": ((0, 1), (0, 0), (1, 1), (1, 0)),
    "GBRG": ((1, 0), (1, 1), (0, 0), (0, 1)),
}
_FIT_BLOCKS = 64
MAX_SATURATED_FRACTION = 1e-3
"""A flat field with more clipped samples than this is unusable: clipping flattens the falloff."""
MIN_SIGNAL_FRACTION = 0.02
"""A flat field whose centre is darker than this fraction of white − black is too noisy to measure."""
MAX_FLAT_FIT_RMS_PCT = 2.0
"""A frame whose block means leave the radial shading model by more than this rms (% of the centre signal) is
not a flat field: a lit flat chart fits within a few tenths of a % (photon noise over 64×48 blocks, the
chief-ray shading term), a chart or a scene leaves 10 % and more (14 % measured on an SFR chart frame)."""


class NotAFlatFieldError(MeasurementError):
    """The frame's light does not follow a smooth radial falloff (a chart, a scene, a lit patch)."""


def check_flat_field(result: Uniformity, *, max_fit_rms_pct: float = MAX_FLAT_FIT_RMS_PCT) -> Uniformity:
    """Return ``result`` if its radial fit is tight enough for a flat field, else raise :class:`NotAFlatFieldError`."""
    if not result.fit_rms_pct <= max_fit_rms_pct:
        raise NotAFlatFieldError(
            f"not a flat field: the radial shading model leaves {result.fit_rms_pct:.1f} % rms "
            f"(a flat field fits within {max_fit_rms_pct:g} %)"
        )
    return result


@dataclass(frozen=True)
class Uniformity:
    """Shading of one flat field.

    Attributes
    ----------
    relative_illumination
        Per Bayer channel (R, Gr, Gb, B), block means over a ``grid`` of the frame relative to the centre block
        (dimensionless, rows × cols, row 0 at the top).
    corner_falloff_stops
        Light lost at field heights (fraction of the half diagonal, measured from the optical centre) relative to
        the centre, from the radial fit of green (stops, positive = darker): keys 0.7 and 0.9.
    optical_center_px
        (x, y) of the falloff's symmetry centre in raw pixels (x right, y down, pixel centres at integers).
    decentre_x_um, decentre_y_um
        Optical centre minus sensor centre ((w − 1)/2, (h − 1)/2), in µm on the sensor.
    colour_shading_pct
        Max over blocks of |(R/G) / (R/G)centre − 1| and the same for B/G, in % (G = mean of Gr and Gb).
    centre_signal_dn
        Green signal above black at the optical centre (DN), from the radial fit.
    saturated_fraction
        Fraction of samples at or above the white level.
    fit_rms_pct
        RMS of the radial fit's residual relative to the centre signal (%): large values mean a non-radial field.
    """

    relative_illumination: dict[str, np.ndarray]
    corner_falloff_stops: dict[float, float]
    optical_center_px: tuple[float, float]
    decentre_x_um: float
    decentre_y_um: float
    colour_shading_pct: float
    centre_signal_dn: float
    saturated_fraction: float
    fit_rms_pct: float


@dataclass(frozen=True)
class TStop:
    """Effective T-stop from the on-axis signal against the station's light calibration."""

    t_stop: float
    centre_signal_dn: float
    expected_t1_signal_dn: float  # what a T/1 lens would give at the same luminance, exposure and ISO


@dataclass(frozen=True)
class LightGain:
    """Light intake of the M lens over the phone's native lens, per unit exposure."""

    gain_x: float
    gain_stops: float
    m_lens_signal_dn: float
    native_signal_dn: float


def bayer_planes(raw: np.ndarray, *, black_level: int, cfa_pattern: str = "RGGB") -> dict[str, np.ndarray]:
    """The four colour planes of a Bayer mosaic, black subtracted (float32, half size), keyed R, Gr, Gb, B."""
    if raw.ndim != 2 or raw.shape[0] < 4 or raw.shape[1] < 4:
        raise MeasurementError(f"a 2-D Bayer mosaic of at least 4×4 samples, got shape {raw.shape}")
    offsets = _CFA_OFFSETS.get(cfa_pattern)
    if offsets is None:
        raise MeasurementError(f"CFA pattern one of {', '.join(_CFA_OFFSETS)}, got {cfa_pattern!r}")
    h, w = raw.shape[0] // 2 * 2, raw.shape[1] // 2 * 2
    return {
        name: raw[r:h:2, c:w:2].astype(np.float32) - np.float32(black_level)
        for name, (r, c) in zip(CHANNELS, offsets, strict=True)
    }


def _block_means(plane: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Means over a rows × cols grid of equal blocks (the remainder rows/cols at the far edges are dropped)."""
    bh, bw = plane.shape[0] // rows, plane.shape[1] // cols
    if bh < 1 or bw < 1:
        raise MeasurementError(f"a plane of at least {rows}×{cols} samples for the grid, got {plane.shape}")
    return plane[: bh * rows, : bw * cols].reshape(rows, bh, cols, bw).mean(axis=(1, 3), dtype=np.float64)


def _radial(p: np.ndarray, rho2: np.ndarray | float) -> np.ndarray | float:
    """I₀·(1 + b·ρ²)⁻²·(1 + a₂ρ⁴ + a₃ρ⁶ + a₄ρ⁸) for p = (I₀, b, a₂, a₃, a₄).

    No ρ² term in the polynomial: b already carries it, and two parameters for one shape leave the fit a flat
    valley to wander in.
    """
    i0, b, a2, a3, a4 = p
    r4 = rho2 * rho2
    return i0 / (1 + b * rho2) ** 2 * (1 + r4 * (a2 + rho2 * (a3 + rho2 * a4)))


def _radial_fit(
    green: np.ndarray, raw_shape: tuple[int, int], *, step: float = 2.0, offset: float = 0.5
) -> tuple[np.ndarray, float]:
    """Fit the radial model to a plane; returns (cx, cy, I0, a1..a4) in frame px and the RMS residual.

    Plane sample (i, j) sits at frame (step·j + offset, step·i + offset): for the green plane of a mosaic
    (step 2, offset ½) the centre of its quad, for a gray image (step 1, offset 0) the pixel itself.
    """
    gh, gw = green.shape
    block = max(1, math.ceil(max(gh, gw) / _FIT_BLOCKS))
    rows, cols = gh // block, gw // block
    means = _block_means(green, rows, cols)
    xs = step * (np.arange(cols) * block + (block - 1) / 2.0) + offset
    ys = step * (np.arange(rows) * block + (block - 1) / 2.0) + offset
    gx, gy = np.meshgrid(xs, ys)
    h, w = raw_shape
    radius = 0.5 * math.hypot(w, h)
    values = means.ravel()
    peak = float(np.percentile(values, 99))

    def model(p: np.ndarray) -> np.ndarray:
        rho2 = ((gx.ravel() - p[0]) ** 2 + (gy.ravel() - p[1]) ** 2) / radius**2
        return _radial(p[2:], rho2)

    # start b from the darkest block as if all its falloff were cos⁴ at ρ ≈ 1: (1 + b)⁻² = ratio
    ratio = max(float(values.min()) / peak, 1e-3)
    start = np.array([(w - 1) / 2.0, (h - 1) / 2.0, peak, min(ratio**-0.5 - 1.0, 10.0), 0.0, 0.0, 0.0])
    # b > −0.9 keeps 1 + bρ² positive over the frame; negative b is a vignetting that brightens outwards (k₁ > 0)
    lower = [-np.inf, -np.inf, 0.0, -0.9, -np.inf, -np.inf, -np.inf]
    fit = least_squares(
        lambda p: (model(p) - values) / peak,
        start,
        x_scale=[w / 10, h / 10, peak, 0.1, 0.1, 0.1, 0.1],
        bounds=(lower, np.inf),
    )
    if not fit.success:
        raise MeasurementError(f"the radial shading model did not converge ({fit.message})")
    rms = float(np.sqrt(np.mean(fit.fun**2)))
    return fit.x, rms


def measure_uniformity(
    raw: np.ndarray,
    *,
    black_level: int,
    white_level: int,
    pixel_pitch_um: float,
    cfa_pattern: str = "RGGB",
    grid: tuple[int, int] = (11, 11),
    fields: tuple[float, ...] = (0.7, 0.9),
) -> Uniformity:
    """Relative illumination, falloff, optical centre and colour shading of a RAW flat field.

    Parameters
    ----------
    raw
        Bayer mosaic (DN, black not subtracted) of a uniformly lit flat chart.
    black_level, white_level
        Black pedestal and clipping level (DN).
    pixel_pitch_um
        Read-out pixel pitch (µm) for the decentre.
    cfa_pattern
        Colours of the top-left quad, row by row.
    grid
        (rows, cols) of the relative-illumination grid; ISO 17957 uses 11 × 11.
    fields
        Field heights (fraction of the half diagonal) at which to report the falloff.

    Returns
    -------
    Uniformity

    Raises
    ------
    MeasurementError
        A saturated or dark flat field, or one whose shading is not radial enough to fit.

    References
    ----------
    ISO 17957:2015, Photography — Digital cameras — Shading measurements (grid of blocks relative to the
    centre). lensfun "pa" vignetting model (REFERENCE.md §7).
    """
    planes = bayer_planes(raw, black_level=black_level, cfa_pattern=cfa_pattern)
    span = float(white_level - black_level)
    saturated = float(np.count_nonzero(raw >= white_level)) / raw.size
    if saturated > MAX_SATURATED_FRACTION:
        raise MeasurementError(
            f"flat field saturated: {saturated:.2%} of samples at white {white_level} "
            f"(at most {MAX_SATURATED_FRACTION:.1%}); lower the light or the exposure"
        )
    green = 0.5 * (planes["Gr"] + planes["Gb"])
    gh, gw = green.shape
    centre = green[gh // 2 - gh // 16 : gh // 2 + gh // 16 + 1, gw // 2 - gw // 16 : gw // 2 + gw // 16 + 1]
    if float(centre.mean()) < MIN_SIGNAL_FRACTION * span:
        raise MeasurementError(
            f"flat field too dark: centre {float(centre.mean()):.1f} DN above black "
            f"(at least {MIN_SIGNAL_FRACTION * span:.1f}); raise the light or the exposure"
        )
    rows, cols = grid
    blocks = {name: _block_means(plane, rows, cols) for name, plane in planes.items()}
    ci, cj = rows // 2, cols // 2
    relative = {name: b / b[ci, cj] for name, b in blocks.items()}
    g_blocks = 0.5 * (blocks["Gr"] + blocks["Gb"])
    shading = 0.0
    for colour in ("R", "B"):
        ratio = blocks[colour] / g_blocks
        shading = max(shading, float(np.abs(ratio / ratio[ci, cj] - 1.0).max()))
    params, rms = _radial_fit(green, raw.shape)
    cx, cy, i0 = float(params[0]), float(params[1]), float(params[2])
    h, w = raw.shape
    return Uniformity(
        relative_illumination=relative,
        corner_falloff_stops={f: _falloff_stops(params, f) for f in fields},
        optical_center_px=(cx, cy),
        decentre_x_um=(cx - (w - 1) / 2.0) * pixel_pitch_um,
        decentre_y_um=(cy - (h - 1) / 2.0) * pixel_pitch_um,
        colour_shading_pct=100.0 * shading,
        centre_signal_dn=i0,
        saturated_fraction=saturated,
        fit_rms_pct=100.0 * rms,
    )


def measure_plane_uniformity(
    image: np.ndarray,
    *,
    black_level: float,
    white_level: float,
    pixel_pitch_um: float,
    grid: tuple[int, int] = (11, 11),
    fields: tuple[float, ...] = (0.7, 0.9),
) -> Uniformity:
    """The same figures for a single-plane flat field: a gray image, a colour one reduced to luminance, a linear
    DNG. Relative illumination is reported for the one channel ``"Y"``; colour shading is NaN (not measured).

    Parameters and returns as :func:`measure_uniformity`; ``black_level``/``white_level`` in the image's units.
    """
    if image.ndim != 2 or min(image.shape) < 8:
        raise MeasurementError(f"a 2-D flat field of at least 8×8 pixels, got shape {image.shape}")
    plane = image.astype(np.float32) - np.float32(black_level)
    span = float(white_level - black_level)
    saturated = float(np.count_nonzero(image >= white_level)) / image.size
    if saturated > MAX_SATURATED_FRACTION:
        raise MeasurementError(
            f"flat field saturated: {saturated:.2%} of pixels at white {white_level:g} "
            f"(at most {MAX_SATURATED_FRACTION:.1%}); lower the light or the exposure"
        )
    h, w = plane.shape
    centre = plane[h // 2 - h // 16 : h // 2 + h // 16 + 1, w // 2 - w // 16 : w // 2 + w // 16 + 1]
    if float(centre.mean()) < MIN_SIGNAL_FRACTION * span:
        raise MeasurementError(
            f"flat field too dark: centre {float(centre.mean()):.3g} above black "
            f"(at least {MIN_SIGNAL_FRACTION * span:.3g}); raise the light or the exposure"
        )
    rows, cols = grid
    blocks = _block_means(plane, rows, cols)
    params, rms = _radial_fit(plane, plane.shape, step=1.0, offset=0.0)
    cx, cy, i0 = float(params[0]), float(params[1]), float(params[2])
    return Uniformity(
        relative_illumination={"Y": blocks / blocks[rows // 2, cols // 2]},
        corner_falloff_stops={f: _falloff_stops(params, f) for f in fields},
        optical_center_px=(cx, cy),
        decentre_x_um=(cx - (w - 1) / 2.0) * pixel_pitch_um,
        decentre_y_um=(cy - (h - 1) / 2.0) * pixel_pitch_um,
        colour_shading_pct=float("nan"),
        centre_signal_dn=i0,
        saturated_fraction=saturated,
        fit_rms_pct=100.0 * rms,
    )


def _falloff_stops(params: np.ndarray, field: float) -> float:
    rel = float(_radial(params[2:], field * field)) / float(params[2])
    if rel <= 0:
        raise MeasurementError(f"the radial shading fit gives no light at field {field}: not a flat field?")
    return -math.log2(rel)


def t_stop(
    centre_signal_dn: float,
    *,
    response_dn_per_cd_m2_s: float,
    luminance_cd_m2: float,
    exposure_time_s: float,
    iso: float,
) -> TStop:
    """Effective T-stop from the on-axis signal: S = k · L · t · (ISO/100) / T² solved for T.

    Parameters
    ----------
    centre_signal_dn
        Green signal above black on the optical axis (DN), e.g. :attr:`Uniformity.centre_signal_dn`.
    response_dn_per_cd_m2_s
        The station's light calibration k: DN per cd/m²·s at ISO 100 through a T/1 lens.
    luminance_cd_m2, exposure_time_s, iso
        The flat chart's luminance, the exposure time and the ISO of the capture.

    References
    ----------
    DxOMark light-transmission protocol (T = N/√τ, signal against known luminance and exposure);
    REFERENCE.md §3.
    """
    if centre_signal_dn <= 0:
        raise MeasurementError(f"a positive centre signal for the T-stop, got {centre_signal_dn} DN")
    expected = response_dn_per_cd_m2_s * luminance_cd_m2 * exposure_time_s * (iso / 100.0)
    if expected <= 0:
        raise MeasurementError(f"a positive luminance × exposure × ISO for the T-stop, got {expected} DN at T/1")
    return TStop(
        t_stop=math.sqrt(expected / centre_signal_dn), centre_signal_dn=centre_signal_dn, expected_t1_signal_dn=expected
    )


def light_gain(
    m_lens_flat: np.ndarray,
    native_flat: np.ndarray,
    *,
    black_level: int,
    white_level: int,
    pixel_pitch_um: float,
    exposure_ratio: float = 1.0,
    cfa_pattern: str = "RGGB",
) -> LightGain:
    """Gain in light intake of the M lens over the native f/1.9 lens from two flat fields of the same chart.

    Parameters
    ----------
    m_lens_flat, native_flat
        RAW flat fields through the M lens and through the native lens.
    exposure_ratio
        (exposure time × ISO) of the M-lens frame over that of the native frame; the gain is per unit exposure.

    Returns
    -------
    LightGain
        Ratio of the on-axis signals (×) and its log₂ (stops).
    """
    if exposure_ratio <= 0:
        raise MeasurementError(f"a positive exposure ratio, got {exposure_ratio}")
    kw = dict(black_level=black_level, white_level=white_level, pixel_pitch_um=pixel_pitch_um, cfa_pattern=cfa_pattern)
    m_signal = measure_uniformity(m_lens_flat, **kw).centre_signal_dn  # type: ignore[arg-type]
    native_signal = measure_uniformity(native_flat, **kw).centre_signal_dn  # type: ignore[arg-type]
    gain = m_signal / native_signal / exposure_ratio
    return LightGain(gain_x=gain, gain_stops=math.log2(gain), m_lens_signal_dn=m_signal, native_signal_dn=native_signal)
