"""ISO 12233 slanted-edge spatial frequency response (e-SFR).

The steps follow ISO 12233:2023 §6 / sfrmat5 (REFERENCE.md §3): per-row derivative centroids under a window,
a polynomial fit of the edge with re-centroiding on the fit, a 4× oversampled edge spread function (ESF) binned
by distance to the fitted edge, the line spread function (LSF) by a central difference, a window, the DFT and
normalisation at DC. Three known bias sources are removed exactly instead of being left in the figure:

* the distance is measured along the edge *normal* (``(x − x_edge(y))·cos θ``), which is the same as sfrmat's
  frequency × cos(angle) correction, but holds per row for a curved (polynomial) edge too;
* averaging samples in bins of width h = 1/4 px is a box filter on the ESF: its transfer ``sinc(f·h)`` is
  divided out;
* the [−½, 0, +½] central difference has transfer ``sinc(2·f·h)`` (the 2017 form of the ISO derivative
  correction, Imatest's "2πk/N"), also divided out (capped at 10 like ISO).

The DFT is zero-padded, which interpolates the spectrum exactly (no linear-interpolation bias in MTF50). The LSF
window adapts to the edge (:func:`_window_extent`): it starts as wide as the edge's rise and grows while the
tails, smoothed over a scale that grows with their distance (:func:`_smooth_tails`), still stand above the noise
measured on the ROI's flat sides, up to the whole ROI for a clean edge; beyond it, the tail a diffraction LSF
still has is added back as a 1/x² model fitted to the far ESF (:func:`_far_tail_amplitude`), so a noisy
diffraction-limited edge is not read sharp for the tails its window lost; the model runs on past the ROI's ends
(a ±60 px ROI alone cuts +0.4 % from MTF50 at f/16, +0.8 % at f/32). This departs from the ISO 12233 e-SFR
LSF step (REFERENCE.md §3, step 7), which windows the whole ROI (Hamming; sfrmat5: Tukey α = 1): every tail in
the ROI is kept there, but so is all the noise, and the shoulders of a wide LSF are lowered; ``SfrMethod.SFRMAT5``
keeps that procedure. Edges near a rational slope p/q (critical angles: tan θ = ½ leaves half the ¼-px bins
empty; atan ¼, tan 35° ≈ 7/10 put the samples in clusters) are binned on the samples' own phase lattice
(:func:`_bin_esf`). Measured on edges synthesised from a known OTF (``tests/measure/otf_edges.py``, ROIs of 100
rows): noise-free Gaussian, Airy f/4–f/32 and Airy × OLPF edges at 2–44° including atan ¼ and atan ½ within
0.11 % (median 0.01 %); with noise σ 0.5–2 % of the step or at 1.5:1 contrast the mean error over noise draws
stays within ±0.2 % (median 0.03 %), and what is left is the variance a 100-row ROI lets through at that noise,
as the first-order noise floor of the window predicts (``benchmarks/measure_accuracy.py --bias``).

Raw Bayer data is measured per CFA channel on its half-resolution lattice, or on the two green sites together
(``channel="G"``), with every sample placed at its true sensor position: frequencies are always reported in
cycles per *sensor* pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

import numpy as np

from rig.errors import MeasurementError
from rig.measure.imageio import CFA_PATTERNS, channel_site

OVERSAMPLING = 4
"""ESF bins per pixel (ISO 12233: four bins)."""

_FFT_LEN = 4096
_MAX_CORRECTION = 10.0
_CRITICAL_ANGLES_DEG = (0.0, 45.0, math.degrees(math.atan(0.5)), math.degrees(math.atan(1 / 3)))
_CRITICAL_TOLERANCE_DEG = 0.5
_MIN_ROWS = 20
_MIN_CONTRAST = 0.2
_MIN_STEP_SIGMAS = 6.0
_MAX_FIT_RMS_PX = 0.75


class EdgeOrientation(StrEnum):
    VERTICAL = "vertical"
    HORIZONTAL = "horizontal"


class SfrMethod(StrEnum):
    """How the ESF becomes an MTF.

    ``ADAPTIVE`` (the default) is the most accurate against known truth (module notes). ``SFRMAT5`` reproduces
    P. D. Burns' sfrmat5 (28 Feb 2023, the ISO 12233:2023 reference code) defaults for users who must match ISO
    reference numbers: a 5th-order edge fit, ¼-px bins along the row (empty bins interpolated), the
    [½, 0, −½] derivative, a Tukey window of α = 1 (a Hann window) over the whole ESF centred on the LSF's
    peak, an unpadded DFT with sfrmat's ``fir2fix`` derivative correction (no bin-box correction) and MTF50
    interpolated linearly between DFT samples.
    """

    ADAPTIVE = "adaptive"
    SFRMAT5 = "sfrmat5"


class SfrFlag(StrEnum):
    """Quality flags: the number is still reported, but these say why it may be worse than usual."""

    CLIPPED = "clipped"  # pixels at the white level (or at 0/black) in the ROI
    LOW_CONTRAST = "low_contrast"  # Michelson contrast of the edge < 0.2 (sfrmat warns at 20 %)
    LOW_SNR = "low_snr"  # step height / noise σ < 20
    TOO_FEW_ROWS = "too_few_rows"  # fewer than 20 rows (or less than one full phase cycle) along the edge
    EDGE_NEAR_BORDER = "edge_near_border"  # the fitted edge comes within 4 px of the ROI's side
    CRITICAL_ANGLE = "critical_angle"  # within 0.5° of 0°, 45°, atan(1/2), atan(1/3): poor phase sampling
    POOR_FIT = "poor_fit"  # rms of centroids about the fitted edge > 0.75 px (bent or broken edge)
    NO_MTF50 = "no_mtf50"  # the MTF does not fall to 0.5 below 1 cy/px


@dataclass(frozen=True)
class SfrResult:
    """Slanted-edge SFR of one edge.

    Attributes
    ----------
    frequencies_cy_px, mtf
        The MTF from 0 to 1 cycle per (sensor) pixel, normalised to 1 at DC, along the edge normal.
    mtf50_cy_px
        Frequency where the MTF first falls to 0.5 (NaN with flag ``NO_MTF50``).
    mtf50_lp_mm
        The same in line pairs per mm when the pixel pitch was given, else None.
    mtf_at_nyquist_4, mtf_at_nyquist_2
        MTF at 0.125 and 0.25 cy/px (Nyquist/4 and Nyquist/2).
    angle_deg
        Edge angle off vertical, degrees, + when the edge runs towards +x as y grows (down the image); for a
        horizontal edge, off horizontal, + when it runs towards +y as x grows.
    orientation
        Whether the edge runs near-vertical or near-horizontal in the ROI.
    dark_to_light
        True when the signal rises across the edge in the +x (vertical edge) or +y (horizontal edge) direction.
    edge_contrast
        Michelson contrast ``(hi − lo)/(hi + lo)`` of the two sides (DN above the given black level).
    snr
        Step height over the noise σ (estimated from pixel-to-pixel differences along the edge direction).
    fit_rms_px
        RMS of the per-row centroids about the fitted edge, pixels.
    rows_used
        Rows (along the edge) that entered the ESF after trimming to whole phase cycles.
    flags
        :class:`SfrFlag` quality flags.
    lsf_window_px
        Half-width of the LSF window's flat top (px along the normal): how far the tails were kept above the noise.
    """

    frequencies_cy_px: np.ndarray
    mtf: np.ndarray
    mtf50_cy_px: float
    mtf50_lp_mm: float | None
    mtf_at_nyquist_4: float
    mtf_at_nyquist_2: float
    angle_deg: float
    orientation: EdgeOrientation
    dark_to_light: bool
    edge_contrast: float
    snr: float
    fit_rms_px: float
    rows_used: int
    flags: frozenset[SfrFlag] = field(default_factory=frozenset)
    lsf_window_px: float = float("nan")

    def mtf_at(self, frequency_cy_px: float) -> float:
        """MTF at a frequency in cycles per pixel (linear interpolation on the dense, zero-padded grid)."""
        return float(np.interp(frequency_cy_px, self.frequencies_cy_px, self.mtf))


@dataclass(frozen=True)
class _Samples:
    """ROI samples along rows: values, their sensor x per sample and sensor y per row (pixel units)."""

    values: np.ndarray  # (rows, cols) float64
    x: np.ndarray  # (rows, cols)
    y: np.ndarray  # (rows,)
    pitch_px: float  # spacing of samples along a row, in sensor pixels (1 gray, 2 Bayer plane)


def slanted_edge_sfr(
    roi: np.ndarray,
    *,
    pixel_pitch_um: float | None = None,
    npol: int | None = None,
    cfa_pattern: str | None = None,
    channel: str = "G",
    black_level: float = 0.0,
    white_level: float | None = None,
    orientation: EdgeOrientation | None = None,
    clipped: np.ndarray | None = None,
    method: SfrMethod = SfrMethod.ADAPTIVE,
) -> SfrResult:
    """Measure the e-SFR of one slanted edge (ISO 12233:2023 §6, sfrmat5).

    Parameters
    ----------
    roi
        2-D image region containing one straight (or gently curved) edge that crosses both of the ROI's
        opposite sides, 1°–44° off vertical or horizontal. Grayscale of any integer or float dtype, or a raw
        Bayer mosaic whose top-left pixel has the colour ``cfa_pattern[0]``.
    pixel_pitch_um
        Sensor pixel pitch in µm, to report MTF50 in lp/mm.
    npol
        Order of the polynomial fitted to the edge centroids (1 = straight line, ISO 12233:2014; up to 5,
        sfrmat5's default for bent edges). None: 1, or 5 with ``method=SFRMAT5``.
    cfa_pattern
        ``"RGGB"``, ``"BGGR"``, ``"GRBG"`` or ``"GBRG"`` for raw data; None for grayscale.
    channel
        For raw data: ``"R"``, ``"Gr"`` (green on red rows), ``"Gb"``, ``"B"`` (one channel on its half-resolution
        lattice) or ``"G"`` (both green sites on their quincunx lattice, the densest colour-pure sampling).
    black_level, white_level
        DN of black (for the contrast figure) and of saturation (for the ``CLIPPED`` flag).
    orientation
        Force the edge orientation; None = decide from the gradients.
    clipped
        Per pixel of the ROI, True where the file's own samples were clipped (a colour file's channels before
        the luma mix, see :class:`rig.measure.imageio.MeasureImage`); any True sets ``CLIPPED``.
    method
        :class:`SfrMethod`: the adaptive default, or sfrmat5's defaults.

    Returns
    -------
    SfrResult
        Frequencies in cycles per sensor pixel (0 … 1), the MTF, MTF50 and quality figures.

    Raises
    ------
    MeasurementError
        The ROI holds no measurable edge (no step above the noise, too small, the edge leaves the ROI).
    ValueError
        A bad option (``npol`` outside 1–5, an unknown CFA pattern or channel).

    References
    ----------
    ISO 12233:2023, Photography — Electronic still picture imaging — Resolution and spatial frequency
    responses, §6 (e-SFR). P. D. Burns, "sfrmat5" (2022). Imatest, "LSF correction factor for slanted-edge
    MTF measurements" (2015).
    """
    method = SfrMethod(method)
    if npol is None:
        npol = 5 if method is SfrMethod.SFRMAT5 else 1
    if not 1 <= npol <= 5:
        raise ValueError(f"npol must be 1..5, got {npol}")
    image = np.asarray(roi)
    if image.ndim != 2:
        raise MeasurementError(f"SFR needs a 2-D ROI, got shape {image.shape}")
    if min(image.shape) < 8:
        raise MeasurementError(f"ROI {image.shape[1]}×{image.shape[0]} px is too small for an edge")
    data = image.astype(np.float64, copy=False)

    if orientation is None:
        orientation = _orientation(data)
    pattern = _check_pattern(cfa_pattern, channel)
    if orientation is EdgeOrientation.HORIZONTAL:
        data = data.T
        if pattern is not None:
            pattern = pattern[0] + pattern[2] + pattern[1] + pattern[3]
    samples = _samples(data, pattern, channel)

    flags: set[SfrFlag] = set()
    if white_level is not None and np.max(data) >= white_level:
        flags.add(SfrFlag.CLIPPED)
    if np.min(data) <= 0 and np.issubdtype(image.dtype, np.integer):
        flags.add(SfrFlag.CLIPPED)
    if clipped is not None and np.any(clipped):
        flags.add(SfrFlag.CLIPPED)

    lo, hi, sigma, rising = _levels(samples)
    step = hi - lo
    if step < _MIN_STEP_SIGMAS * sigma or step <= 0:
        raise MeasurementError(
            f"no edge in the ROI: step {step:.3g} DN against noise σ {sigma:.3g} DN "
            f"(need ≥ {_MIN_STEP_SIGMAS:g}σ across the ROI)"
        )
    sign = 1.0 if rising else -1.0
    coeffs, fit_rms, centroids_ok, rise_px = _fit_edge(samples, sign=sign, npol=npol)
    if centroids_ok < max(5, npol + 3):
        raise MeasurementError(f"no edge in the ROI: only {centroids_ok} rows show a localisable edge")

    if npol > 1:
        slope = np.polyval(np.polyder(coeffs), samples.y)
        mean_slope = float(np.polyval(np.polyder(coeffs), np.mean(samples.y)))
    else:  # a line's derivative is its slope (what np.polyval of the one-term derivative returns)
        slope = np.full(samples.y.shape, coeffs[0])
        mean_slope = float(coeffs[0])
    angle_deg = math.degrees(math.atan(mean_slope))
    edge_x = _polyval(coeffs, samples.y)
    x_min, x_max = float(samples.x.min()), float(samples.x.max())
    margin = 4.0 * samples.pitch_px
    if np.any(edge_x < x_min + margin) or np.any(edge_x > x_max - margin):
        if np.any(edge_x < x_min) or np.any(edge_x > x_max):
            raise MeasurementError(
                f"the edge leaves the ROI (fitted x from {edge_x.min():.1f} to {edge_x.max():.1f} px, "
                f"ROI spans {x_min:.0f}–{x_max:.0f}): centre the ROI on the edge"
            )
        flags.add(SfrFlag.EDGE_NEAR_BORDER)
    if any(abs(abs(angle_deg) - a) < _CRITICAL_TOLERANCE_DEG for a in _CRITICAL_ANGLES_DEG):
        flags.add(SfrFlag.CRITICAL_ANGLE)
    if fit_rms > _MAX_FIT_RMS_PX:
        flags.add(SfrFlag.POOR_FIT)

    rows = _whole_phase_rows(samples, mean_slope)
    if rows < _MIN_ROWS or rows * abs(mean_slope) < samples.pitch_px:
        flags.add(SfrFlag.TOO_FEW_ROWS)
    cos_t = 1.0 / np.sqrt(1.0 + slope[:rows] ** 2)
    distance = (samples.x[:rows] - edge_x[:rows, None]) * cos_t[:, None]
    if method is SfrMethod.SFRMAT5:
        freqs, mtf, window_px = _sfrmat5_mtf(samples, edge_x, rows, sign, math.cos(math.atan(mean_slope)))
    else:
        along = samples.x[:rows] - edge_x[:rows, None]
        esf = _bin_esf(
            distance.ravel(),
            samples.values[:rows].ravel() * sign,
            along.ravel() / samples.pitch_px,
            samples.pitch_px * math.cos(math.atan(mean_slope)),
        )
        freqs, mtf, window_px = _mtf_from_esf(esf, rise_px=rise_px, noise_dn=sigma)

    keep = freqs <= 1.0 + 1e-12
    freqs, mtf = freqs[keep], mtf[keep]
    mtf50 = _crossing(freqs, mtf, 0.5)
    if not math.isfinite(mtf50):
        flags.add(SfrFlag.NO_MTF50)
    lo_dn, hi_dn = lo - black_level, hi - black_level
    contrast = float((hi_dn - lo_dn) / (hi_dn + lo_dn)) if hi_dn + lo_dn > 0 else float("nan")
    if not contrast >= _MIN_CONTRAST:
        flags.add(SfrFlag.LOW_CONTRAST)
    snr = float(step / sigma) if sigma > 0 else float("inf")
    if snr < 20:
        flags.add(SfrFlag.LOW_SNR)
    return SfrResult(
        frequencies_cy_px=freqs,
        mtf=mtf,
        mtf50_cy_px=mtf50,
        mtf50_lp_mm=(mtf50 * 1000.0 / pixel_pitch_um) if pixel_pitch_um and math.isfinite(mtf50) else None,
        mtf_at_nyquist_4=float(np.interp(0.125, freqs, mtf)),
        mtf_at_nyquist_2=float(np.interp(0.25, freqs, mtf)),
        angle_deg=angle_deg,
        orientation=orientation,
        dark_to_light=rising,
        edge_contrast=contrast,
        snr=snr,
        fit_rms_px=fit_rms,
        rows_used=rows,
        flags=frozenset(flags),
        lsf_window_px=window_px,
    )


# --------------------------------------------------------------------------------------------- steps
def _orientation(data: np.ndarray) -> EdgeOrientation:
    # A Bayer mosaic has strong pixel-to-pixel steps in both directions; 2-pixel differences compare like
    # colours, so they see the edge and not the mosaic.
    # every third line is plenty to tell the two apart
    gx = np.abs(data[::3, 2:] - data[::3, :-2]).sum()
    gy = np.abs(data[2:, ::3] - data[:-2, ::3]).sum()
    return EdgeOrientation.VERTICAL if gx >= gy else EdgeOrientation.HORIZONTAL


def _check_pattern(cfa_pattern: str | None, channel: str) -> str | None:
    if cfa_pattern is None:
        return None
    pattern = cfa_pattern.upper()
    if pattern not in CFA_PATTERNS:
        raise ValueError(f"cfa_pattern must be one of {', '.join(CFA_PATTERNS)}, got {cfa_pattern!r}")
    if channel not in ("R", "Gr", "Gb", "B", "G"):
        raise ValueError(f"channel must be R, Gr, Gb, B or G, got {channel!r}")
    return pattern


def _samples(data: np.ndarray, pattern: str | None, channel: str) -> _Samples:
    rows, cols = data.shape
    if pattern is None:
        x = np.broadcast_to(np.arange(cols, dtype=np.float64), data.shape)
        return _Samples(values=data, x=x, y=np.arange(rows, dtype=np.float64), pitch_px=1.0)
    rows2, cols2 = rows - rows % 2, cols - cols % 2
    data = data[:rows2, :cols2]
    if channel != "G":
        r0, c0 = channel_site(pattern, channel)
        plane = data[r0::2, c0::2]
        x = np.broadcast_to(c0 + 2.0 * np.arange(plane.shape[1]), plane.shape)
        return _Samples(values=plane, x=x, y=r0 + 2.0 * np.arange(plane.shape[0]), pitch_px=2.0)
    # both greens: every row holds greens at alternate columns, starting at 0 or 1 by the row's parity
    first_col = np.array([pattern[0:2].index("G"), pattern[2:4].index("G")])
    starts = first_col[np.arange(rows2) % 2]
    j = np.arange(cols2 // 2)
    x = starts[:, None] + 2.0 * j[None, :]
    values = data[np.arange(rows2)[:, None], x.astype(np.intp)]
    return _Samples(values=values, x=x, y=np.arange(rows2, dtype=np.float64), pitch_px=2.0)


def _levels(samples: _Samples) -> tuple[float, float, float, bool]:
    """Dark and light levels (DN), noise σ (DN), and whether the signal rises with x."""
    v = samples.values
    q = max(2, v.shape[1] // 5)
    left, right = v[:, :q], v[:, -q:]
    # Noise from differences down the columns of the two flat fifths: the edge does not cross them, so these
    # differences are noise (×√2), and the MAD ignores the odd defect.
    dv = np.concatenate((np.diff(left, axis=0).ravel(), np.diff(right, axis=0).ravel()))
    sigma = float(1.4826 * _median(np.abs(dv)) / math.sqrt(2.0)) if dv.size else 0.0
    if sigma == 0.0 and dv.size:
        sigma = float(np.std(dv) / math.sqrt(2.0))
    lm, rm = float(left.mean()), float(right.mean())
    return min(lm, rm), max(lm, rm), sigma, rm > lm


def _tukey(x: np.ndarray, centre: float | np.ndarray, half_width: float, flat: float) -> np.ndarray:
    """Tukey window in absolute coordinates: 1 within ±flat·half_width of centre, cosine taper to 0 at ±half_width."""
    t = np.clip((np.abs(x - centre) * (1.0 / half_width) - flat) * (1.0 / (1.0 - flat)), 0.0, 1.0)
    return 0.5 + 0.5 * np.cos(np.pi * t)


def _row_centroids(
    samples: _Samples, sign: float, centre: np.ndarray, half_width: float
) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (sensor x) of each row's derivative under a Tukey window of ``half_width`` px about ``centre``."""
    # Only the band of columns the windows can reach is touched (the edge moves little across the ROI).
    x_row = samples.x[0]
    lo = max(0, int(np.searchsorted(x_row, centre.min() - half_width)) - 1)
    hi = min(len(x_row), int(np.searchsorted(x_row, centre.max() + half_width)) + 1)
    x = samples.x[:, lo:hi]
    d = np.diff(samples.values[:, lo:hi], axis=1) * sign
    xm = 0.5 * (x[:, 1:] + x[:, :-1])
    d = d * _tukey(xm, centre[:, None], half_width, 0.5)
    total = d.sum(axis=1)
    ok = total > 0
    cx = np.where(ok, (d * xm).sum(axis=1) / np.where(ok, total, 1.0), np.nan)
    return cx, ok


def _fit_edge(samples: _Samples, *, sign: float, npol: int) -> tuple[np.ndarray, float, int, float]:
    """Polynomial x_edge(y) through the rows' derivative centroids, refined with windows centred on the fit.

    Returns the coefficients, the rms of the centroids about the fit (px), the number of rows with a centroid
    and the edge's 10–90 % rise distance (px along the normal), which sizes the windows.
    """
    y = samples.y
    # Start from each row's steepest 3-sample step v[k+3] − v[k] (robust to noise far from the edge), placed
    # between samples k+1 and k+2, and fit a line through those.
    v = samples.values
    step3 = v[:, 3:] - v[:, :-3]
    peak = np.argmax(step3, axis=1) if sign > 0 else np.argmin(step3, axis=1)
    r = np.arange(len(y))
    coeffs = _robust_polyfit(y, 0.5 * (samples.x[r, peak + 1] + samples.x[r, peak + 2]), 1)
    half_row = 0.5 * float(samples.x[0, -1] - samples.x[0, 0])
    rms, good = float("inf"), 0
    # A first ESF tells how wide the edge is; the centroid window then covers it with margin and no more, so
    # noise far from the edge does not pull the centroids (sfrmat's full-width window does).
    slope = coeffs[0]
    # ~64 rows suffice to see how wide the edge is
    stride = max(1, len(y) // 64)
    distance = (samples.x[::stride] - _polyval(coeffs, y[::stride])[:, None]) / math.sqrt(1.0 + slope * slope)
    esf, _ = _bin_on_grid(
        distance.ravel(), samples.values[::stride].ravel() * sign, 1.0 / OVERSAMPLING, 0.0, rough=True
    )
    rise = _rise_10_90_px(esf.values)
    half = min(half_row, max(4.0 * rise + 3.0 * samples.pitch_px, 6.0 * samples.pitch_px))
    for order in (npol, npol):
        coeffs, rms, good = _centroid_fit(samples, sign, coeffs, half, order)
    return coeffs, rms, good, rise


def _centroid_fit(
    samples: _Samples, sign: float, coeffs: np.ndarray, half_width: float, order: int
) -> tuple[np.ndarray, float, int]:
    y = samples.y
    cx, ok = _row_centroids(samples, sign, _polyval(coeffs, y), half_width)
    good = ok & np.isfinite(cx)
    if good.sum() < order + 3:
        return coeffs, float("inf"), int(good.sum())
    coeffs = _robust_polyfit(y[good], cx[good], order)
    resid = cx[good] - _polyval(coeffs, y[good])
    return coeffs, float(np.sqrt(np.mean(resid**2))), int(good.sum())


def _rise_10_90_px(esf: np.ndarray) -> float:
    """10–90 % rise distance of a binned ESF (px), walking out from its 50 % crossing nearest the middle."""
    n = len(esf)
    k = max(2, n // 10)
    lo, hi = float(np.mean(esf[:k])), float(np.mean(esf[-k:]))
    if hi <= lo:
        return n / OVERSAMPLING
    e = (esf - lo) / (hi - lo)
    above = np.nonzero(e >= 0.5)[0]
    c = int(above[np.argmin(np.abs(above - n / 2))]) if above.size else n // 2
    left = c
    while left > 0 and e[left] > 0.1:
        left -= 1
    right = c
    while right < n - 1 and e[right] < 0.9:
        right += 1
    return (right - left) / OVERSAMPLING


def _robust_polyfit(y: np.ndarray, x: np.ndarray, order: int) -> np.ndarray:
    """Least-squares polynomial with one pass of outlier rejection (rows hit by a defect or a chart mark)."""
    coeffs = _polyfit(y, x, order)
    resid = x - _polyval(coeffs, y)
    mad = 1.4826 * _median(np.abs(resid - _median(resid)))
    keep = np.abs(resid) <= max(4.0 * mad, 0.05)
    if order + 2 <= keep.sum() < len(y):
        coeffs = _polyfit(y[keep], x[keep], order)
    return coeffs


def _polyfit(y: np.ndarray, x: np.ndarray, order: int) -> np.ndarray:
    if order > 1:
        return np.polyfit(y, x, order)
    # a straight line in closed form: np.polyfit's scaling and SVD cost more than the whole fit
    ym, xm = y.mean(), x.mean()
    dy = y - ym
    slope = float(np.dot(dy, x - xm) / np.dot(dy, dy))
    return np.array([slope, xm - slope * ym])


def _polyval(coeffs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``np.polyval``; a straight line (the default fit) evaluated as ``a·x + b`` directly: the same operations
    (Horner's first step, 0·x + a, is exactly a) without polyval's per-call overhead, ten calls an edge."""
    if len(coeffs) == 2:
        return coeffs[0] * x + coeffs[1]
    return np.polyval(coeffs, x)


def _whole_phase_rows(samples: _Samples, slope: float) -> int:
    """Rows to keep so that the edge sweeps a whole number of sample-phase cycles (ISO: nlin1)."""
    n = len(samples.y)
    if slope == 0:
        return n
    row_step = float(samples.y[1] - samples.y[0]) if n > 1 else 1.0
    shift_per_row = abs(slope) * row_step / samples.pitch_px  # fraction of a sample pitch per row
    cycles = math.floor(n * shift_per_row)
    if cycles < 1:
        return n
    return max(1, min(n, round(cycles / shift_per_row)))


@dataclass(frozen=True)
class _Esf:
    """The binned ESF on a uniform grid (bin k centred at (k − n/2 + ½)·spacing + offset px), with what its
    noise and its box filter need: samples per bin and the effective width of the bin average (px)."""

    values: np.ndarray
    counts: np.ndarray
    box_px: float
    spacing_px: float = 1.0 / OVERSAMPLING


_MAX_LATTICE_Q = 12
"""Largest denominator q of a rational slope p/q whose phase lattice is binned on (pitch cos θ/q)."""
_MIN_LATTICE_PITCH = 0.2
"""Finest lattice binned on, in ¼-px bins (0.05 px): finer ones hold too few samples a node on a 100-row ROI."""
_MAX_LATTICE_PITCH_PX = 0.5
"""Coarsest lattice binned on: its Nyquist frequency must cover the reported 0 … 1 cy/px."""
_MIN_LATTICE_R = 0.6
"""Phase concentration (mean resultant length of the samples' phases on the lattice pitch) from which the
samples count as clustered on a lattice (atan ¼: one phase cluster every 0.243 px) and are binned on it."""


def _bin_esf(distance: np.ndarray, values: np.ndarray, row_phase: np.ndarray, pitch_normal_px: float) -> _Esf:
    """Average the samples in bins of 1/4 px of distance to the edge (the ISO 12233 e-SFR step: four bins per px).

    Each bin's mean belongs to the mean distance of its samples (near a rational slope such as tan 20° ≈ 4/11
    the phases cluster, so that is not the bin centre); the means are interpolated back to the grid. The bin
    average is a box filter only as wide as the samples' spread inside the bins: uniform phases give the full
    ¼ px (variance h²/12). The spread is measured (pooled within-bin variance) and its box width ``√(12·var)``
    is what the MTF is divided by.

    Near a rational slope p/q of small q the samples' distances form a lattice of pitch ``cos θ/q`` (in sample
    pitches along the row): tan θ = ½ leaves half the ¼-px bins empty, tan θ = ¼ puts one cluster every 0.243 px,
    drifting through the 0.25 px bins so that some hold two clusters and, once the fitted edge is a hair off
    (noise), some a cluster split in two. Interpolating between such nodes is a low-pass filter (−1.3 % in MTF50
    at atan ½ with a line; −0.6 … −1.7 % on average at atan ¼ and 0.5–2 % noise, where the nodes also move with
    the noisy fit). There the ESF is binned on the lattice itself, one phase cluster per bin and nothing
    interpolated; a lattice of pitch ≤ ½ px has its Nyquist frequency (≥ 1 cy/px) above the reported range. Finer
    lattices (tan 35° ≈ 7/10: 0.082 px, three or four clusters a bin; tan θ = 3/5: one or two) bias the ¼-px
    bins too, as a filter that changes from bin to bin, which no single box correction undoes (−0.46 % and
    +0.23 % in MTF50 on a noise-free Airy f/4 edge; on their lattice −0.03 %), so they are binned on theirs down
    to ``_MIN_LATTICE_PITCH`` of a bin. The lattice is found from the samples' phase along the row
    (``row_phase``, in sample pitches): q is the smallest of 2 … ``_MAX_LATTICE_Q`` whose phase harmonic
    ``|mean exp(2πi·q·phase)|`` reaches ``_MIN_LATTICE_R`` (the phases then sit in clusters narrower than about
    half the lattice pitch); a lattice that the ROI's rows smear, or a noisy slope, falls back to the ¼-px bins.
    This is the "phase-aware" binning of the slanted-edge literature; the ISO procedure warns against these
    angles but keeps the fixed four bins.
    """
    h = 1.0 / OVERSAMPLING
    phasor = np.exp(2j * math.pi * row_phase)
    power = phasor
    for q in range(2, _MAX_LATTICE_Q + 1):
        power = power * phasor
        pitch = pitch_normal_px / q
        if pitch < _MIN_LATTICE_PITCH * h:
            break
        if pitch <= _MAX_LATTICE_PITCH_PX and abs(np.mean(power)) >= _MIN_LATTICE_R:
            lattice = np.mean(np.exp((2j * math.pi / pitch) * distance))
            return _bin_on_grid(distance, values, pitch, pitch * float(np.angle(lattice)) / (2.0 * math.pi))[0]
    return _bin_on_grid(distance, values, h, 0.0)[0]


def _bin_on_grid(
    distance: np.ndarray, values: np.ndarray, h: float, offset: float, *, rough: bool = False
) -> tuple[_Esf, np.ndarray]:
    """Bins of width h whose centres are at ``offset`` + (k + ½ − n/2)·h … shifted so a lattice sits on them.

    ``rough``: linear interpolation, no box estimate (enough to see how wide the edge is, at half the cost).
    """
    # Symmetric about the edge so that the LSF sits in the middle and the window can be centred.
    shifted = distance - offset + 0.5 * h
    half_span = min(-shifted.min(), shifted.max())
    nhalf = math.floor(half_span / h)
    if nhalf < 8:
        raise MeasurementError(f"no edge in the ROI: it lies {half_span:.1f} px from the ROI's side")
    # bin k + 1 (shifted to be non-negative, so truncation is floor); samples beyond either end go to the two
    # overflow bins 0 and 2n + 1, dropped afterwards (cheaper than masking three arrays)
    idx = np.clip((shifted * (1.0 / h) + (nhalf + 1)).astype(np.intp), 0, 2 * nhalf + 1)
    n_bins = 2 * nhalf + 2
    counts = np.bincount(idx, minlength=n_bins)[1:-1].astype(np.float64)
    sums = np.bincount(idx, weights=values, minlength=n_bins)[1:-1]
    where = np.bincount(idx, weights=distance, minlength=n_bins)[1:-1]
    filled = counts > 0
    mean_d = where[filled] / counts[filled]
    centres = (np.arange(2 * nhalf) - nhalf) * h + offset
    if rough:
        esf = np.interp(centres, mean_d, sums[filled] / counts[filled])
        return _Esf(values=esf, counts=counts, box_px=h, spacing_px=h), mean_d
    where2 = np.bincount(idx, weights=distance * distance, minlength=n_bins)[1:-1]
    within = float(np.sum(where2[filled] - where[filled] * mean_d) / np.sum(counts[filled]))
    # Two bins whose samples sit a hair apart (a phase cluster split by a bin boundary) would give the cubic
    # two nodes with independent noise 0.01 px apart, and a wild slope between them: merge such neighbours.
    group = np.concatenate(([0], np.cumsum(np.diff(mean_d) >= 0.5 * h)))
    n_in = np.bincount(group, weights=counts[filled])
    node_d = np.bincount(group, weights=where[filled]) / n_in
    node_v = np.bincount(group, weights=sums[filled]) / n_in
    esf = _cubic_interp(centres, node_d, node_v)
    return _Esf(values=esf, counts=counts, box_px=math.sqrt(12.0 * max(within, 0.0)), spacing_px=h), node_d


def _cubic_interp(x_new: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """4-point Lagrange interpolation on sorted, non-uniform abscissae (linear where fewer than 4 points).

    At a critical angle (tan θ = ½ fills only every other ¼-px bin) the filled bins are a lattice of spacing
    cos θ/2 ≈ 0.45 px, and the empty ones must be interpolated. A straight line between lattice points is a
    low-pass filter (the triangle kernel's sinc² transfer: −1.3 % in MTF50 measured at atan ½); the cubic's
    transfer stays within 0.1 % of 1 up to 0.5 cy/px at that spacing.
    """
    n = len(x)
    if n < 4:
        return np.interp(x_new, x, y)
    j = np.clip(np.searchsorted(x, x_new) - 2, 0, n - 4)
    xs = x[j[:, None] + np.arange(4)]
    ys = y[j[:, None] + np.arange(4)]
    out = np.zeros(len(x_new))
    for i in range(4):
        basis = np.ones(len(x_new))
        for m in range(4):
            if m != i:
                basis *= (x_new - xs[:, m]) / (xs[:, i] - xs[:, m])
        out += basis * ys[:, i]
    return out


def _mtf_from_esf(esf: _Esf, *, rise_px: float, noise_dn: float) -> tuple[np.ndarray, np.ndarray, float]:
    """MTF from the binned ESF: tail smoothing, central-difference LSF, window, zero-padded DFT, corrections.

    Returns the frequencies (cy/px), the MTF and the half-width of the window's flat top (px).
    """
    h = esf.spacing_px
    per_px = 1.0 / h
    values = esf.values
    n = len(values)
    positions = np.arange(n, dtype=np.float64)
    # np.gradient's arithmetic (central differences, one-sided at the ends) without its per-call overhead
    raw_lsf = np.empty_like(values)
    raw_lsf[1:-1] = (values[2:] - values[:-2]) / 2.0
    raw_lsf[0] = values[1] - values[0]
    raw_lsf[-1] = values[-1] - values[-2]
    core_bins = per_px * (2.0 * rise_px + 1.5)
    near = np.abs(positions - n / 2) <= core_bins + 2 * per_px
    weights = np.clip(raw_lsf * near, 0.0, None)
    centre = float((weights * positions).sum() / weights.sum()) if weights.sum() > 0 else n / 2
    smoothed = _smooth_tails(values, centre, core_bins)
    lsf = np.zeros_like(smoothed)
    lsf[1:-1] = 0.5 * (smoothed[2:] - smoothed[:-2])
    lsf[0] = lsf[1]
    lsf[-1] = lsf[-2]
    room = min(centre, n - 1 - centre)
    start_bins = per_px * max(_WINDOW_START_RISES * rise_px, 1.0)
    flat, taper = _window_extent(smoothed, esf.counts, centre, core_bins, noise_dn, per_px, start_bins)
    half_width = min(room, flat + taper)
    window = _tukey(positions, centre, half_width, max(0.0, min(flat, half_width - 1.0)) / half_width)
    # Beyond the window the LSF is not dropped but modelled (_far_tail_amplitude), and not only to the ROI's ends:
    # a diffraction LSF's 1/d² tail runs on past them (+0.4 % MTF50 at f/16, +0.8 % at f/32 on a ±60 px ROI
    # when cut there), so the model runs out to the ends of the zero-padded DFT and what lies beyond those is
    # added to the DC term (∫ A/d² from there on; its share of the spectrum at f > 0 is smaller by 1/(2πfd)).
    nfft = max(_FFT_LEN, 1 << math.ceil(math.log2(2 * n)))  # the ESF centred in it with room on both sides
    shift = nfft // 2 - round(centre)
    inside = slice(shift, shift + n)  # the ESF's bins 0 … n − 1 in the padded array
    full_window = np.zeros(nfft)
    full_window[inside] = window
    full_lsf = np.zeros(nfft)
    full_lsf[inside] = lsf * window
    offset = (np.arange(nfft, dtype=np.float64) - shift) - centre
    # offset rises along the array: each side's "beyond the centre" is a slice
    first_after = int(np.searchsorted(offset, 0.0, side="right"))
    fit_start = min(max(flat, start_bins), _TAIL_FIT_START * room)
    beyond_dc = 0.0
    for side in (-1.0, 1.0):
        amplitude = _far_tail_amplitude(values, esf.counts, centre, fit_start, room, side)
        if amplitude <= 0.0:
            continue
        beyond = slice(first_after, None) if side > 0 else slice(0, int(np.searchsorted(offset, 0.0, side="left")))
        full_lsf[beyond] += (1.0 - full_window[beyond]) * amplitude / np.maximum(offset[beyond] * side, 1.0) ** 2
        beyond_dc += amplitude / float(offset[-1] if side > 0 else -offset[0])
    spectrum = np.abs(np.fft.rfft(full_lsf))
    spectrum[0] += beyond_dc
    freqs = np.fft.rfftfreq(nfft, d=h)
    dc = spectrum[0]
    if not dc > 0:
        raise MeasurementError("no edge in the ROI: the line spread function integrates to zero")
    return freqs, spectrum / dc * _correction(nfft, round(h, 6), round(esf.box_px, 3)), flat * h


_TAIL_SMOOTHING = 0.25
"""Half-width of the ESF's tail smoothing, as a fraction of the distance beyond the core."""
_TAPER_FRACTION = 0.2
"""Length of the window's cosine taper at the ROI's ends, as a fraction of the half-width."""


_WINDOW_START_RISES = 1.25
"""The LSF window's flat top starts at ± this many 10–90 % rise distances (at least 1 px) and grows from there
while the tails stand above the noise. Why not wider: every px of flat top adds pixel noise to the spectrum
(σ_M ∝ √W, ``tests.measure.otf_edges.mtf50_noise_floor``), and a compact LSF needs less: a Gaussian's ±1 rise
(±2.6σ) under the window's ≥ 2 px taper keeps MTF50 within 0.05 %, and the 1/d² tail of a diffraction LSF past
it is modelled (:func:`_far_tail_amplitude`); ±1 rise read a Gaussian σ 2 px edge +0.15 % high. Measured with
``benchmarks/measure_accuracy.py --bias`` (100 rows, σ 2 % of the step, median over angles): per-edge MTF50 std
1.39 → 0.95 % (Gaussian σ 0.5 px), 2.13 → 1.50 % (Airy f/4), 1.64 → 1.17 % (Airy f/4 × OLPF), the mean error
within ±0.2 % as with the old start of ±(2·rise + 1.5 px); on the dim twin chart the per-edge repeat scatter
falls from 1.50 to 0.99 % in focus (1.00 to 0.71 % at +0.4 mm), its mean MTF50 unchanged (0.5291 vs 0.5293)."""
_TAIL_FIT_START = 0.5
"""The far tail is fitted from the window's edge, or from half the ROI's half-width if the window reaches further
(a clean edge's window spans the ROI, and its tail beyond the ROI is fitted on the outer half)."""
_MIN_TAIL_BINS = 8
"""Fewest filled ESF bins beyond the window to fit a far tail on (fewer: no tail is added on that side)."""


def _far_tail_amplitude(
    esf: np.ndarray, counts: np.ndarray, centre: float, start: float, stop: float, side: float
) -> float:
    """Amplitude A ≥ 0 of the far ESF ``v(d) = plateau − side·A/d`` (d bins from the centre on ``side`` ±1, from
    ``start`` to ``stop``), fitted by counts-weighted least squares: the LSF there is A/d².

    Why: where the adaptive window stops on a noisy edge, a diffraction-limited LSF still has a tail; a circular
    pupil's LSF falls as 1/x² (its MTF drops linearly from f = 0), and cutting it takes its energy from the DC
    term and reads the edge sharp (+2…4 % MTF50 on Airy edges at 2 % noise). The ESF beyond the window is noisy
    point by point but holds that tail's 1/d approach to the plateau over many samples: two parameters fitted to
    it carry the energy without the noise. A compact PSF leaves A ≈ 0 (clipped at 0: a tail adds light, and
    ringing or sharpening is not extrapolated). Measured on ``benchmarks/measure_accuracy.py`` (four noise
    seeds): Airy f/8–f/32 rms MTF50 error at 2 % noise 2.4–4.7 % → 1.4–1.6 %, Gaussian edges unchanged.
    """
    k = np.arange(len(esf))
    d = (k - centre) * side
    used = (d >= start) & (d <= stop) & (counts > 0)
    if used.sum() < _MIN_TAIL_BINS:
        return 0.0
    # the weighted straight line v = plateau + A·u in u = −side/d, in closed form about the weighted means (the
    # lstsq solution to rounding, 1e-13 relative, at a third of its cost)
    u = -side / d[used]
    weight = counts[used]
    v = esf[used]
    total = weight.sum()
    du = u - (weight @ u) / total
    weighted_du = weight * du
    spread = weighted_du @ du
    if not spread > 0:
        return 0.0
    return max(0.0, float(weighted_du @ (v - (weight @ v) / total) / spread))


_TAIL_SIGMAS = 1.0
"""The window grows while the smoothed ESF still rises by more than this many noise σ over the next segment.
Chosen on the edge set of ``benchmarks/measure_accuracy.py``: 1σ keeps the MTF50 scatter of noisy compact edges
where 2σ had it (0.78 % rms at SNR 50) and keeps more of a noisy Airy tail; 0.5σ starts to let noise in."""


def _window_extent(
    smoothed: np.ndarray,
    counts: np.ndarray,
    centre: float,
    core_bins: float,
    noise_dn: float,
    per_px: float,
    start_bins: float,
) -> tuple[float, float]:
    """Flat half-width and taper length (bins) of the LSF window: grown until the tails sink into the noise.

    From ``start_bins`` (``_WINDOW_START_RISES``) the window grows outwards in segments of a quarter of its radius
    (at least ½ px) while the
    tail-smoothed ESF (:func:`_smooth_tails`) still rises across the segment, on both sides, by more than
    ``_TAIL_SIGMAS`` × the noise of that difference: σ of the ROI's flat sides over √(samples per bin), reduced
    by the √(bins averaged) of the smoothing there, ×√2 for the difference. A noise-free edge keeps its whole
    ROI (as the ISO 12233 e-SFR procedure and sfrmat5, whose window spans the ROI); on a noisy edge the window
    stops where a tail no longer stands above the noise, so the far ROI adds no noise to the spectrum; what tail
    it still holds is added back as a fitted 1/d² model (:func:`_far_tail_amplitude`).
    The cosine taper is a fifth of the flat width, at least 2 px.
    """
    n = len(smoothed)
    room = min(centre, n - 1 - centre)
    filled = counts[counts > 0]
    per_bin = float(_median(filled)) if filled.size else 1.0
    min_taper = 2.0 * per_px
    radius = min(start_bins, max(1.0, room - min_taper))
    while noise_dn > 0:
        segment = max(0.5 * per_px, 0.25 * radius)
        reach = radius + segment
        if reach + max(min_taper, _TAPER_FRACTION * reach) > room:
            radius = max(radius, room - max(min_taper, _TAPER_FRACTION * room))
            break
        averaged = 1.0 + 2.0 * _TAIL_SMOOTHING * max(0.0, radius - core_bins)
        threshold = _TAIL_SIGMAS * noise_dn * math.sqrt(2.0 / (per_bin * averaged))
        lo_in, hi_in = round(centre - radius), round(centre + radius)
        lo_out, hi_out = round(centre - reach), round(centre + reach)
        if min(smoothed[lo_in] - smoothed[lo_out], smoothed[hi_out] - smoothed[hi_in]) <= threshold:
            break
        radius = reach
    else:
        radius = max(radius, room - max(min_taper, _TAPER_FRACTION * room))
    return radius, max(min_taper, _TAPER_FRACTION * radius)


def _smooth_tails(esf: np.ndarray, centre: float, core_bins: float) -> np.ndarray:
    """The ESF with its tails smoothed by a box whose half-width grows with the distance beyond the core.

    Why: the LSF window must reach the ROI's ends to keep the long, weak tails of diffraction and flare (ISO
    12233's Hamming window over the whole ROI, and sfrmat5's Tukey α = 1, keep them; a window only as wide as the
    edge's rise cuts them and lifts MTF50 by 2–3 % on an Airy edge, the DC term losing their energy). But far
    out the LSF is almost all noise, and a full-width window lets it all into the spectrum (per-edge scatter
    doubles on noisy edges). Far tails vary slowly (an Airy LSF as 1/x²), so they can be averaged over a scale
    proportional to their distance with a bias of only (α²/3) of the tail (α = ``_TAIL_SMOOTHING``) while their
    noise falls as 1/distance. Within the core (±(2·rise + 1.5) px, which holds the LSF of any compact PSF)
    nothing is smoothed. Applied twice (a triangle kernel), so the noise passed at MTF50 frequencies falls as
    sinc² rather than sinc. This is the idea of MTF Mapper's adaptive ESF smoothing (F. van den Bergh,
    "Robust edge-spread function construction methods to counter poor sample spacing uniformity in the
    slanted-edge method", JOSA A 36 (2019)), here in the simplest form that keeps a noise-free ESF exact in the core.
    """
    n = len(esf)
    k = np.arange(n)
    beyond = np.maximum(np.abs(k - centre) - core_bins, 0.0)
    half = np.minimum(np.floor(_TAIL_SMOOTHING * beyond), np.minimum(k, n - 1 - k)).astype(np.intp)
    out = esf
    for _ in range(2):
        cumulative = np.concatenate(([0.0], np.cumsum(out)))
        out = (cumulative[k + half + 1] - cumulative[k - half]) / (2 * half + 1)
    return out


@lru_cache(maxsize=64)
def _correction(nfft: int, h: float, box_px: float) -> np.ndarray:
    """1 / (bin box · central difference) transfer, capped at 10 (ISO's cap on the derivative correction)."""
    freqs = np.fft.rfftfreq(nfft, d=h)
    correction = np.minimum(np.abs(1.0 / (np.sinc(freqs * box_px) * np.sinc(2.0 * freqs * h))), _MAX_CORRECTION)
    correction.setflags(write=False)
    return correction


def _sfrmat5_mtf(
    samples: _Samples, edge_x: np.ndarray, rows: int, sign: float, cos_t: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """sfrmat5's steps 6–10 (``project2``, ``deriv1``, ``cent``, ``tukey2`` α = 1, ``fft``, ``fir2fix``).

    Distances are along the row (x − x_edge(y)) in bins of ¼ of the sample pitch; the frequency axis is then
    scaled by 1/cos θ (sfrmat's ``delfac``), as sfrmat does instead of measuring along the normal.
    """
    h = samples.pitch_px / OVERSAMPLING
    along = (samples.x[:rows] - edge_x[:rows, None]).ravel()
    values = samples.values[:rows].ravel() * sign
    half_span = min(-along.min(), along.max())
    nhalf = math.floor(half_span / h)
    if nhalf < 8:
        raise MeasurementError(f"no edge in the ROI: it lies {half_span:.1f} px from the ROI's side")
    idx = np.clip((along / h + nhalf + 1).astype(np.intp), 0, 2 * nhalf + 1)
    counts = np.bincount(idx, minlength=2 * nhalf + 2)[1:-1]
    sums = np.bincount(idx, weights=values, minlength=2 * nhalf + 2)[1:-1]
    filled = counts > 0
    k = np.arange(2 * nhalf)
    esf = np.interp(k, k[filled], sums[filled] / counts[filled])  # project2 fills empty bins from neighbours
    n = len(esf)
    lsf = np.zeros(n)
    lsf[1:-1] = 0.5 * (esf[2:] - esf[:-2])
    lsf[0], lsf[-1] = lsf[1], lsf[-2]
    peak = float(np.mean(np.nonzero(lsf == lsf.max())[0]))
    lsf = np.roll(lsf, round(n / 2 - peak))  # cent(): the peak to the middle
    window = 0.5 * (1.0 + np.cos(np.pi * np.clip((np.arange(n) - n / 2) / (n / 2), -1.0, 1.0)))
    spectrum = np.abs(np.fft.fft(lsf * window))
    half = n // 2 + 1
    mtf = spectrum[:half] / spectrum[0]
    # fir2fix(nn2, 3): x / sin x with x = π·i·(m − 1)/(2(n + 1)), i = 2 … n (1-based), capped at 10
    i = np.arange(1, half + 1, dtype=np.float64)
    x = np.pi * i * 2.0 / (2.0 * (half + 1))
    correction = np.minimum(np.abs(x / np.sin(x)), _MAX_CORRECTION)
    correction[0] = 1.0
    del2 = h * cos_t
    freqs = np.arange(half) / (del2 * n)
    return freqs, mtf * correction, float(n / 2 * h)


def _median(values: np.ndarray) -> float:
    """Median by partition: ``np.median`` imports ``numpy.ma`` on first use (7 ms of a 0.1 s command)."""
    a = np.asarray(values, dtype=np.float64).ravel()
    n = a.size
    if n == 0:
        return float("nan")
    k = n // 2
    part = np.partition(a, [k - 1, k] if n % 2 == 0 else [k])
    return float(part[k] if n % 2 else 0.5 * (part[k - 1] + part[k]))


def _crossing(freqs: np.ndarray, mtf: np.ndarray, level: float) -> float:
    """First frequency where the curve falls to ``level`` (linear between the dense zero-padded samples)."""
    below = np.nonzero(mtf <= level)[0]
    if below.size == 0:
        return float("nan")
    k = int(below[0])
    if k == 0:
        return 0.0
    f0, f1, m0, m1 = freqs[k - 1], freqs[k], mtf[k - 1], mtf[k]
    return float(f0 + (m0 - level) * (f1 - f0) / (m0 - m1))
