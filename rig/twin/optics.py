"""Optics of the twin as pure functions: transfer functions, edge spread, distortion and light falloff.

Everything here takes numbers and arrays (µm, mm, cycles/µm) and knows nothing of configs or the bench, so the
tests can check each law on its own. Conventions:

* Image-plane lengths in µm, spatial frequencies in cycles/µm, λ = 0.55 µm unless given.
* The blur kernel of one read-out pixel of an aberration-free lens is
  ``PSF = Airy(N) ⊗ disc(|δ|/N) ⊗ Gauss(σ) ⊗ smear(L, φ) ⊗ box(p)``; its optical transfer function is the product
  of the analytic transfer functions of the factors, all real and even (no phase), so line and edge spread
  functions are computed exactly by a 1-D inverse FFT along the edge normal (the projection-slice theorem),
  including the read-out pixel's box aperture.
* A lens with a wavefront (:class:`BlurSpec` ``aberrations``) replaces ``Airy ⊗ disc`` by the pupil's own PSF
  ``|FT{pupil·exp(i2πW)}|²`` with the defocus δ in W as W020 (:mod:`rig.twin.wavefront`): its OTF is complex
  (coma has phase), and the LSF is the same 1-D inverse FFT of the (Hermitian) transfer function along the normal.
  With no aberrations that pupil OTF is the diffraction MTF, and for a large δ it tends to the disc of |δ|/N
  (tests/twin/test_wavefront.py), so the analytic product is the aberration-free limit the twin has always used.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rig.twin.wavefront import PupilAberrations, aberrated_otf_along, defocus_waves, disc_otf

WAVELENGTH_UM = 0.55


@dataclass(frozen=True)
class BlurSpec:
    """The blur at one image point.

    Attributes
    ----------
    f_number
        Working f-number N (diffraction cut-off 1/(λN) cycles/µm).
    defocus_um
        Image-plane defocus δ (µm); the geometric blur is a uniform disc of diameter |δ|/N.
    gaussian_sigma_um
        σ (µm) of the residual-aberration Gaussian.
    motion_length_um, motion_angle_deg
        Length (µm) and direction (degrees from +x towards +y) of a uniform linear smear during the exposure.
    pixel_pitch_um
        Side (µm) of the read-out pixel's square aperture (100 % fill factor).
    wavelength_um
        Wavelength for diffraction (µm).
    aberrations
        The lens's wavefront at this field point, aperture and wavelength (:func:`rig.twin.wavefront.seidel_at`);
        None for an aberration-free lens, whose kernel is the analytic ``Airy ⊗ disc``.
    """

    f_number: float
    defocus_um: float = 0.0
    gaussian_sigma_um: float = 0.0
    motion_length_um: float = 0.0
    motion_angle_deg: float = 0.0
    pixel_pitch_um: float = 1.6
    wavelength_um: float = WAVELENGTH_UM
    aberrations: PupilAberrations | None = None

    @property
    def disc_diameter_um(self) -> float:
        """Geometric blur-circle diameter |δ|/N (µm)."""
        return abs(self.defocus_um) / self.f_number

    @property
    def cutoff_cy_um(self) -> float:
        """Incoherent diffraction cut-off 1/(λN) (cycles/µm)."""
        return 1.0 / (self.wavelength_um * self.f_number)

    def ray_extent_um(self) -> float:
        """Largest transverse ray error ``2Nλ·max|∇W|`` (µm), defocus included: the geometric PSF's radius.

        The steepest slope itself (:meth:`rig.twin.wavefront.PupilAberrations.max_slope_waves`), not the
        term-by-term bound: a balanced W040 of 3.2 waves sends no ray beyond 2Nλ·6.4, the bound said 2Nλ·19.2, and
        patches and edge-spread transforms sized by the bound were 2–3× larger than the PSF.
        """
        w020 = defocus_waves(self.defocus_um, f_number=self.f_number, wavelength_um=self.wavelength_um)
        aberrations = self.aberrations if self.aberrations is not None else PupilAberrations()
        return 2.0 * self.f_number * self.wavelength_um * aberrations.max_slope_waves(w020)

    def support_um(self) -> float:
        """A half-width (µm) beyond which the kernel's energy is negligible (used to size patches)."""
        geometric = 0.5 * self.disc_diameter_um if self.aberrations is None else self.ray_extent_um()
        return (
            geometric
            + 0.5 * self.motion_length_um
            + 4.0 * self.gaussian_sigma_um
            + self.pixel_pitch_um
            + 12.0 * self.wavelength_um * self.f_number
        )


def diffraction_mtf(freq_cy_um: np.ndarray, *, f_number: float, wavelength_um: float = WAVELENGTH_UM) -> np.ndarray:
    """Incoherent diffraction OTF of an aberration-free circular pupil.

    ``MTF(s) = (2/π)·(arccos s − s·√(1 − s²))`` for ``s = ν·λ·N < 1``, else 0.

    References
    ----------
    J. W. Goodman, *Introduction to Fourier Optics*, 3rd ed., §6.3.2, eq. (6-32).
    """
    s = np.minimum(np.abs(np.asarray(freq_cy_um, dtype=np.float64)) * wavelength_um * f_number, 1.0)
    return (2.0 / np.pi) * (np.arccos(s) - s * np.sqrt(1.0 - s * s))


def gaussian_otf(freq_cy_um: np.ndarray, *, sigma_um: float) -> np.ndarray:
    """Transfer function of a Gaussian of standard deviation σ: ``exp(−2π²σ²ν²)``."""
    f = np.asarray(freq_cy_um, dtype=np.float64)
    return np.exp(-2.0 * np.pi**2 * sigma_um**2 * f * f)


def otf_along(freq_cy_um: np.ndarray, blur: BlurSpec, *, angle_rad: float) -> np.ndarray:
    """The kernel's transfer function on the line ``ν·(cos a, sin a)``.

    Real for an aberration-free lens (every factor is even: diffraction × defocus disc); complex with
    ``blur.aberrations``, whose pupil OTF (:func:`rig.twin.wavefront.aberrated_otf_along`, defocus as W020)
    takes the place of both. The pixel box contributes ``sinc(p·ν·cos a)·sinc(p·ν·sin a)`` and the smear
    ``sinc(L·ν·cos(a − φ))`` (``np.sinc(x) = sin(πx)/(πx)``).
    """
    f = np.asarray(freq_cy_um, dtype=np.float64)
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    if blur.aberrations is None:
        out = diffraction_mtf(f, f_number=blur.f_number, wavelength_um=blur.wavelength_um)
        if blur.disc_diameter_um > 0:
            out = out * disc_otf(f, diameter_um=blur.disc_diameter_um)
    else:
        out = aberrated_otf_along(
            f,
            blur.aberrations,
            f_number=blur.f_number,
            wavelength_um=blur.wavelength_um,
            defocus_um=blur.defocus_um,
            angle_rad=angle_rad,
        )
    # the pupil passes nothing beyond the cut-off 1/(λN): the other factors are only needed inside it (an edge
    # spread's transform runs to 2.5-5× the cut-off, where they would multiply zeros)
    inside = np.abs(f) < blur.cutoff_cy_um
    fi, oi = f[inside], out[inside]
    if blur.gaussian_sigma_um > 0:
        oi = oi * gaussian_otf(fi, sigma_um=blur.gaussian_sigma_um)
    if blur.motion_length_um > 0:
        oi = oi * np.sinc(blur.motion_length_um * fi * np.cos(angle_rad - np.radians(blur.motion_angle_deg)))
    if blur.pixel_pitch_um > 0:
        oi = oi * np.sinc(blur.pixel_pitch_um * fi * c) * np.sinc(blur.pixel_pitch_um * fi * s)
    out = np.zeros_like(out)
    out[inside] = oi
    return out


def mtf_along(freq_cy_um: np.ndarray, blur: BlurSpec, *, angle_rad: float) -> np.ndarray:
    """The kernel's modulation transfer function ``|OTF|`` on the line ``ν·(cos a, sin a)``."""
    return np.abs(otf_along(freq_cy_um, blur, angle_rad=angle_rad))


@dataclass(frozen=True)
class EdgeSpread:
    """A sampled edge spread function: response to a half-plane, vs signed distance from its edge (µm).

    ``positions_um`` ascend; ``values`` go from 0 (far outside) to 1 (far inside).
    """

    positions_um: np.ndarray
    values: np.ndarray

    def __call__(self, distance_um: np.ndarray) -> np.ndarray:
        return np.interp(distance_um, self.positions_um, self.values, left=0.0, right=1.0).astype(np.float32)


def line_spread(blur: BlurSpec, *, angle_rad: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Line spread function of the kernel along the normal at ``angle_rad``.

    Returns
    -------
    positions_um, lsf
        Sample positions (µm, centred on 0) and the LSF in 1/µm (integrates to 1).
    """
    positions, lsf, _ = _spread(blur, round(angle_rad, 6))
    return positions, lsf


def edge_spread(blur: BlurSpec, *, angle_rad: float = 0.0) -> EdgeSpread:
    """Edge spread function of the kernel for an edge whose inward normal points at ``angle_rad``.

    Exact up to the sampling of the 1-D grid (≤ λN/5, ≤ p/16) and, with aberrations, of the pupil: the LSF is the
    inverse FFT of :func:`otf_along` (Hermitian, so real; asymmetric where the OTF has phase), and the ESF its
    running integral evaluated at the sample boundaries.
    """
    positions, _, esf = _spread(blur, round(angle_rad, 6))
    return EdgeSpread(positions, esf)


@lru_cache(maxsize=4096)
def _spread(blur: BlurSpec, angle_rad: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dt = min(0.2 * blur.wavelength_um * blur.f_number, blur.pixel_pitch_um / 16 if blur.pixel_pitch_um else 1.0, 0.25)
    # long enough that the LSF's tails (Airy ~ x⁻³) wrap around with negligible weight
    span = 8.0 * blur.support_um() + 64.0
    n = 1 << max(11, int(np.ceil(np.log2(span / dt))))
    freqs = np.fft.rfftfreq(n, d=dt)
    lsf = np.fft.irfft(otf_along(freqs, blur, angle_rad=angle_rad), n=n) / dt
    lsf = np.fft.fftshift(lsf)
    positions = (np.arange(n) - n // 2) * dt
    # ESF(t) = ∫_{−∞}^{t} LSF: the trapezoid running sum lands on the sample positions themselves
    esf = np.concatenate(([0.0], np.cumsum(0.5 * (lsf[1:] + lsf[:-1]) * dt)))
    esf = np.clip(esf - esf[0], 0.0, 1.0)
    for arr in (positions, lsf, esf):
        arr.setflags(write=False)
    return positions, lsf, esf


# --------------------------------------------------------------------------------------------- geometry
def ptlens_distort(r_undistorted: np.ndarray, *, a: float, b: float, c: float) -> np.ndarray:
    """PanoTools/lensfun ``ptlens``: ``Rd = Ru·(a·Ru³ + b·Ru² + c·Ru + 1 − a − b − c)``.

    Radii normalised so that r = 1 at half the sensor's short edge (REFERENCE.md §7).
    """
    r = np.asarray(r_undistorted, dtype=np.float64)
    return r * (a * r**3 + b * r**2 + c * r + 1.0 - a - b - c)


# --------------------------------------------------------------------------------------------- light
def cos4_falloff(r_mm: np.ndarray, *, exit_pupil_mm: float) -> np.ndarray:
    """Natural illumination falloff ``cos⁴θ`` with ``tan θ = r / exit_pupil`` (r from the optical axis, mm).

    References
    ----------
    W. J. Smith, *Modern Optical Engineering*, 4th ed., §9.5 (cosine-fourth law).
    """
    t = np.asarray(r_mm, dtype=np.float64) / exit_pupil_mm
    return 1.0 / (1.0 + t * t) ** 2


def pa_vignetting(r_norm: np.ndarray, *, k1: float, k2: float, k3: float, stop_down: float = 1.0) -> np.ndarray:
    """lensfun ``pa`` vignetting ``1 + s·(k1·r² + k2·r⁴ + k3·r⁶)``, r = 1 at the half diagonal.

    ``stop_down`` = s = (N_max/N)² fades mechanical vignetting as the lens is stopped down.
    """
    r2 = np.asarray(r_norm, dtype=np.float64) ** 2
    return 1.0 + stop_down * (k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2)
