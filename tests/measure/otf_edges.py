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
    rows, cols = shape
    cx, cy = centre if centre is not None else ((cols - 1) / 2.0, (rows - 1) / 2.0)
    t = math.radians(angle_deg)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    d = (x - cx) * math.cos(t) - (y - cy) * math.sin(t)
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
