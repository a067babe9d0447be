"""Slanted edges synthesised from a signed optical transfer function along the edge normal (test ground truth).

A straight edge blurred by any PSF and integrated over the pixel aperture is a function of the normal distance d
alone: its profile is the edge spread function whose derivative (the line spread function) has the Fourier
transform OTF(f·n) — the 2-D OTF on the line through the edge normal n. Products of separable factors along n
give the OTF of a system:

* the square pixel aperture: ``sinc(f cos θ)·sinc(f sin θ)`` (see :mod:`tests.measure.analytic`);
* a diffraction-limited circular pupil (the Airy PSF): ``(2/π)(acos ν − ν√(1 − ν²))``, ν = f/f_c,
  f_c = pitch/(λ·N) cycles per pixel (Goodman, *Introduction to Fourier Optics*, 3rd ed., eq. 6-32);
* a 4-dot birefringent optical low-pass filter of dot spacing s: the PSF is four impulses at (±s/2, ±s/2), its
  OTF ``cos(π f_x s)·cos(π f_y s)`` with (f_x, f_y) = f·(cos θ, −sin θ);
* a Gaussian of σ: ``exp(−2π²σ²f²)``.

The LSF is the inverse FFT of the OTF sampled on a grid of 1/2048 cy/px (period 2048 px, far beyond any ROI) at
1/32 px, the ESF its running integral, and each pixel takes the ESF at its centre's normal distance (the pixel
box is already inside the OTF). The MTF the measurement must return is |OTF|.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Otf = Callable[[np.ndarray], np.ndarray]

_DF = 1.0 / 2048.0
_DX = 1.0 / 32.0
WAVELENGTH_UM = 0.55


def pixel_otf(angle_deg: float) -> Otf:
    t = math.radians(angle_deg)
    return lambda f: np.sinc(f * math.cos(t)) * np.sinc(f * math.sin(t))


def airy_otf(f_number: float, pitch_um: float, wavelength_um: float = WAVELENGTH_UM) -> Otf:
    cutoff = pitch_um / (wavelength_um * f_number)

    def otf(f: np.ndarray) -> np.ndarray:
        nu = np.clip(np.abs(f) / cutoff, 0.0, 1.0)
        return (2.0 / math.pi) * (np.arccos(nu) - nu * np.sqrt(1.0 - nu * nu))

    return otf


def olpf_otf(spacing_px: float, angle_deg: float) -> Otf:
    t = math.radians(angle_deg)
    return lambda f: np.cos(math.pi * f * spacing_px * math.cos(t)) * np.cos(math.pi * f * spacing_px * math.sin(t))


def gaussian_otf(sigma_px: float) -> Otf:
    return lambda f: np.exp(-2.0 * math.pi**2 * sigma_px**2 * f * f)


def product(*factors: Otf) -> Otf:
    def otf(f: np.ndarray) -> np.ndarray:
        out = np.ones_like(np.asarray(f, dtype=np.float64))
        for factor in factors:
            out = out * factor(f)
        return out

    return otf


def unit_esf(otf: Otf) -> tuple[np.ndarray, np.ndarray]:
    """(d px, ESF 0 → 1) on the fine grid, from the OTF by inverse FFT and running integration."""
    n = round(1.0 / (_DF * _DX))
    f = np.fft.fftfreq(n, d=_DX)
    lsf = np.fft.fftshift(np.fft.ifft(otf(f)).real) / _DX
    d = (np.arange(n) - n // 2) * _DX
    esf = np.cumsum(lsf) * _DX
    # the midpoint rule of the running integral puts each value half a step late
    return d + 0.5 * _DX, esf


def edge_distance(shape: tuple[int, int], *, angle_deg: float, centre: tuple[float, float] | None = None) -> np.ndarray:
    """Signed distance (px) of each pixel centre to the edge along its normal, + on the light side."""
    rows, cols = shape
    cx, cy = centre if centre is not None else ((cols - 1) / 2.0, (rows - 1) / 2.0)
    t = math.radians(angle_deg)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    return (x - cx) * math.cos(t) - (y - cy) * math.sin(t)


def otf_edge(
    shape: tuple[int, int],
    *,
    angle_deg: float,
    otf: Otf,
    lo: float = 200.0,
    hi: float = 800.0,
    dark_to_light: bool = True,
    centre: tuple[float, float] | None = None,
) -> np.ndarray:
    """A near-vertical edge whose MTF along the normal is |otf| (otf includes the pixel aperture)."""
    d = edge_distance(shape, angle_deg=angle_deg, centre=centre)
    grid, esf = unit_esf(otf)
    unit = np.interp(d, grid, esf)
    if not dark_to_light:
        unit = 1.0 - unit
    return lo + (hi - lo) * unit


def mtf50_of(otf: Otf) -> float:
    """First frequency (cy/px) where |otf| falls to 0.5, by bisection on the closed form."""
    f = np.linspace(0.0, 2.0, 200001)
    m = np.abs(otf(f))
    k = int(np.nonzero(m <= 0.5)[0][0])
    return float(f[k - 1] + (m[k - 1] - 0.5) * (f[k] - f[k - 1]) / (m[k - 1] - m[k]))


def mtf50_slope(otf: Otf) -> tuple[float, float]:
    """(MTF50 cy/px, dMTF/df there in 1/(cy/px)) of |otf|, the slope by a central difference on the closed form."""
    f50 = mtf50_of(otf)
    df = 1e-5
    return f50, float((np.abs(otf(np.array([f50 + df]))) - np.abs(otf(np.array([f50 - df]))))[0] / (2.0 * df))


def truncated_mtf50(otf: Otf, half_width_px: float) -> float:
    """MTF50 (cy/px) of the true LSF cut to ±half_width_px about the edge (a hard window on the fine grid)."""
    grid, esf = unit_esf(otf)
    lsf = np.diff(esf)
    lsf[np.abs(grid[1:] - 0.5 * _DX) > half_width_px] = 0.0
    spectrum = np.abs(np.fft.rfft(lsf)) / lsf.sum()
    f = np.fft.rfftfreq(len(lsf), d=_DX)
    k = int(np.nonzero(spectrum <= 0.5)[0][0])
    return float(f[k - 1] + (spectrum[k - 1] - 0.5) * (f[k] - f[k - 1]) / (spectrum[k - 1] - spectrum[k]))


def lsf_support_px(otf: Otf, *, tolerance: float, limit_px: float) -> float:
    """Narrowest half-width (px, to ½ px, at most ``limit_px``) whose truncated LSF keeps MTF50 within
    ``tolerance`` (relative) of the untruncated one: how much of the LSF a window must keep to be unbiased.
    Found by bisection (the truncation error falls with the width, up to the ripple of the LSF's side lobes)."""
    truth = mtf50_of(otf)

    def unbiased(width: float) -> bool:
        return abs(truncated_mtf50(otf, width) / truth - 1.0) <= tolerance

    lo, hi = 0.5, limit_px
    if not unbiased(hi):
        return limit_px
    while hi - lo > 0.5:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if unbiased(mid) else (mid, hi)
    return hi


def mtf50_noise_floor(otf: Otf, *, noise_over_step: float, rows: int, angle_deg: float, window_half_px: float) -> float:
    """Relative standard deviation of MTF50 that white pixel noise alone leaves after an LSF window of
    ``window_half_px`` (flat), propagated through the ESF bins, the derivative and the DFT (first order).

    Each row puts 1/cos θ samples per px of normal distance into the ESF, so a bin of width h averages
    ``rows·h/cos θ`` samples of variance σ²; the central difference and its correction turn that into noise of
    ``2πf·h·σ_bin`` per bin in the spectrum at f, of which the component in phase with the signal (half the
    power) moves |MTF|: ``σ_M(f) = 2πf·(σ/step)·√(cos θ·W/rows)`` for a flat window of half-width W, independent
    of h. A small error δM at MTF50 moves the crossing by ``δM/|M′(f50)|``. This is the Cramér–Rao-like spread of
    the standard slanted-edge estimator (ISO 12233:2023 e-SFR with a window of that width); the edge-position
    fit adds a little on top.
    """
    f50, slope = mtf50_slope(otf)
    cos_t = math.cos(math.radians(angle_deg))
    sigma_mtf = 2.0 * math.pi * f50 * noise_over_step * math.sqrt(cos_t * window_half_px / rows)
    return sigma_mtf / abs(slope) / f50
