"""Wavefront optics of the twin: Seidel aberrations over the pupil, and the OTF they give, from the pupil itself.

Conventions (all pure numbers and arrays, nothing of configs):

* The pupil is normalised to radius 1 at the *working* aperture (ρ ≤ 1, φ from the meridional direction, which
  points from the optical axis to the field point). The wavefront, in waves at the blur's wavelength, is::

      W(ρ, φ) = w020·ρ² + w040·ρ⁴ + w131·ρ³cos φ + w222·ρ²cos²φ + w111·ρ cos φ

* A ray from pupil point ρ lands at ``ε = −2·N·λ·∇ρ W`` from the reference image point (µm; Wyant & Creath,
  *Basic Wavefront Aberration Theory for Optical Metrology*, Applied Optics and Optical Engineering XI, 1992,
  §1.3, eqs. (22)–(23)), so W020 = −δ/(8N²λ) for an image a distance δ behind the sensor (blur disc |δ|/N),
  and W040 > 0 is under-corrected spherical aberration (the marginal focus lies nearer the lens).
* The amplitude PSF is the Fourier transform of ``pupil·exp(i2πW)`` with the kernel that makes that ray rule hold
  (Goodman, *Introduction to Fourier Optics*, 3rd ed., §6.4.1, eq. (6-43)); the OTF is the transform of
  ``|PSF|²`` normalised to 1 at zero frequency: it is complex (coma makes the LSF asymmetric).

Sampling: the pupil is laid on an M×M grid with ``n_pupil`` samples across its diameter (area-weighted at the
rim), M ≥ 2·n_pupil so the OTF (the pupil's autocorrelation) does not alias. The PSF then spans λ·N·n_pupil µm,
so n_pupil grows with the largest wavefront slope (the geometric blur must fit with margin, and the phase must
change by < ½ wave between samples): the steepest slope itself, found on a polar grid, not the term-by-term bound
(a balanced W040 of 3.2 waves peaks at 6.4 waves per radius, the bound says 19.2: 64 samples, not 192). The render
needs the OTF only on edge normals, so it computes each line on its own (:func:`line_otf`): the pupil's
autocorrelation along one grid axis is a sum of 1-D row autocorrelations, so on a grid turned to the line it takes
1-D FFTs of the pupil's rows, about a third of the 2-D plane's work (:func:`pupil_otf`, kept as its reference and for
∫OTF d²ν), and nothing is interpolated across lines; a rotationally symmetric wavefront has one line for all. The
line is read at the edge-spread frequencies by a cubic spline (a steep wavefront's OTF falls within a few samples
of the origin, where a linear lookup on so coarse a grid would err by 0.05). A defocus so large that even
:data:`MIN_SAMPLES_PER_SLOPE` would need more than :data:`MAX_PUPIL_SAMPLES` (a wavefront slope of > 38 waves per
radius: W020 > 19 waves, δ > 160 µm at f/1.4, a blur of > 18 binned px) is handled in the geometric limit instead:
the pupil OTF of the other aberrations times the defocus disc's ``2J1(x)/x`` (the limit the wave OTF tends to).

Why scipy.fft and not poppy or hcipy: the twin needs one small monochromatic pupil per field tile, channel and
defocus, cached, and the complex OTF along arbitrary edge normals; that is a few hundred 1-D FFTs of at most 390
samples and a spline lookup, which those libraries would wrap in optical-system objects without adding physics used
here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from scipy.ndimage import map_coordinates, spline_filter, spline_filter1d
from scipy.special import j1

MIN_PUPIL_SAMPLES = 64
"""Samples across the pupil diameter of an aberration-free pupil: its OTF is the diffraction MTF to < 0.009 of
full scale (the area-weighted rim softens the pupil edge by about one sample; the error goes as ≈ 0.55/n, largest
at ν·λN ≈ 3/n), far below the 0.03 the twin's edge MTF is held to (tests/twin/test_physics_blur.py)."""

MAX_PUPIL_SAMPLES = 192
"""Most samples across the pupil (an FFT of ~390²): a steeper wavefront is sampled more coarsely, down to
:data:`MIN_SAMPLES_PER_SLOPE`, beyond which the defocus is taken in its geometric limit (see the module notes)."""

MIN_SAMPLES_PER_SLOPE = 5.0
"""Fewest pupil samples per wave-per-radius: the phase steps < 0.4 wave and the PSF spans > 1.2× its geometric
diameter (less would wrap it around)."""

SAMPLES_PER_SLOPE = 10.0
"""Pupil samples across the diameter per wave-per-radius of the steepest wavefront slope.

The PSF then spans λN·n ≥ 2.5× the geometric blur diameter (its halo does not wrap around) and the OTF along an edge
normal stays within 0.03 of a 2.4× finer pupil (tests/twin/test_wavefront.py; 0.025 at worst for 2 waves of
astigmatism 12 µm out of focus at f/1.4, 0.003 near focus); 16 would halve that error at 2.5× the FFT cost."""

WAVE_ROUNDING = 1e-4
"""Aberrations are rounded to this many waves before the OTF is computed (so equal field points share one)."""

CHANNEL_WAVELENGTH_UM = {"R": 0.600, "G": 0.530, "B": 0.465}
"""Effective wavelengths of the Bayer channels under a white source (µm).

The peaks of typical CMOS colour filter responses (J. Jiang et al., "What is the space of spectral sensitivity
functions for digital color cameras?", IEEE WACV 2013, Fig. 1: 28 cameras, R ≈ 590–610, G ≈ 520–540,
B ≈ 450–470 nm).
"""


def _polar_grid(n_radii: int, n_angles: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a polar grid over the unit half-disc y ≥ 0 (W is even in y), rim and centre included."""
    r = np.linspace(0.0, 1.0, n_radii)[:, None]
    phi = np.linspace(0.0, np.pi, n_angles)[None, :]
    x, y = (r * np.cos(phi)).ravel(), (r * np.sin(phi)).ravel()
    for arr in (x, y):
        arr.setflags(write=False)
    return x, y


_SLOPE_GRID = _polar_grid(65, 97)
"""Where :meth:`PupilAberrations.max_slope_waves` looks for the steepest slope (6305 points, ~0.1 ms a call)."""


@dataclass(frozen=True)
class PupilAberrations:
    """The wavefront over the working pupil (waves at the blur's wavelength), see the module conventions.

    ``azimuth_rad`` is the direction of the meridional plane on the sensor (from +x towards +y): the direction
    from the optical axis to the field point. ``w020`` here is the *balancing* focus term that belongs to the lens
    (its focus reference); the image defocus δ enters separately, as :class:`rig.twin.optics.BlurSpec` defocus.
    """

    w020: float = 0.0
    w040: float = 0.0
    w131: float = 0.0
    w222: float = 0.0
    w111: float = 0.0
    azimuth_rad: float = 0.0

    def rounded(self) -> PupilAberrations:
        """The same aberrations on the :data:`WAVE_ROUNDING` grid (the azimuth to 1e-4 rad)."""

        def r(w: float) -> float:
            return round(w / WAVE_ROUNDING) * WAVE_ROUNDING

        symmetric = r(self.w131) == 0 and r(self.w222) == 0 and r(self.w111) == 0
        # a rotationally symmetric wavefront has no meridional direction: azimuth 0 lets every field point share
        azimuth = 0.0 if symmetric else round(self.azimuth_rad, 4)
        return PupilAberrations(r(self.w020), r(self.w040), r(self.w131), r(self.w222), r(self.w111), azimuth)

    def slope_waves(self, w020_defocus: float = 0.0) -> float:
        """An upper bound of ``max |∇ρ W|`` over the pupil (waves per unit radius), defocus included."""
        return (
            2.0 * abs(self.w020 + w020_defocus)
            + 4.0 * abs(self.w040)
            + 3.0 * abs(self.w131)
            + 2.0 * abs(self.w222)
            + abs(self.w111)
        )

    def max_slope_waves(self, w020_defocus: float = 0.0) -> float:
        """``max |∇ρ W|`` over the pupil (waves per unit radius), defocus included, on a fine polar grid.

        The balancing terms cancel most of the slope that :meth:`slope_waves` adds term by term (W040 = 3.2 with
        its min-variance focus W020 = −3.2 peaks at 2·W040 = 6.4 at the rim, the bound says 19.2), so this is
        what the pupil sampling follows. The gradient is a cubic in (x, y); on the :data:`_SLOPE_GRID` its
        maximum is within 0.1 % of the true one (checked against a 4× finer grid in tests/twin/test_wavefront.py).
        """
        return _steepest_slope(self.w020 + w020_defocus, self.w040, self.w131, self.w222, self.w111)


@lru_cache(maxsize=4096)
def _steepest_slope(w020: float, w040: float, w131: float, w222: float, w111: float) -> float:
    """:meth:`PupilAberrations.max_slope_waves` of these coefficients (waves; W020 with the defocus), cached.

    Cached without the azimuth: the pupil sampling (:func:`pupil_sampling`) and the kernel's support
    (:meth:`rig.twin.optics.BlurSpec.ray_extent_um`) ask it of the same wavefront, each ~0.2 ms.
    """
    x, y = _SLOPE_GRID
    r2 = x * x + y * y
    # ∂W/∂x and ∂W/∂y of _wavefront, x meridional
    gx = 2.0 * w020 * x + 4.0 * w040 * r2 * x + w131 * (r2 + 2.0 * x * x) + 2.0 * w222 * x + w111
    gy = 2.0 * w020 * y + 4.0 * w040 * r2 * y + 2.0 * w131 * x * y
    return float(np.sqrt(np.max(gx * gx + gy * gy)))


def defocus_waves(defocus_um: float, *, f_number: float, wavelength_um: float) -> float:
    """W020 (waves) of an image δ µm behind the sensor: ``−δ/(8N²λ)`` (paraxial; blur disc |δ|/N)."""
    return -defocus_um / (8.0 * f_number**2 * wavelength_um)


def seidel_at(
    *,
    spherical_w040: float,
    coma_w131: float,
    astigmatism_w222: float,
    reference_wavelength_um: float,
    f_number: float,
    max_f_number: float,
    field_x: float,
    field_y: float,
    wavelength_um: float,
) -> PupilAberrations:
    """The working-pupil wavefront of a lens at one field point, aperture and wavelength.

    Parameters
    ----------
    spherical_w040, coma_w131, astigmatism_w222
        Seidel coefficients (waves at ``reference_wavelength_um``) at full aperture and field H = 1.
    reference_wavelength_um, wavelength_um
        Wavelength the coefficients are stated at, and the channel's (the OPD in µm is kept; waves scale λref/λ).
    f_number, max_f_number
        Working and full-aperture f-numbers: stopping down by ``s = N_max/N`` scales ρ, so the coefficients go as
        s⁴ (W040), s³ (W131) and s² (W222, W220) (Welford, *Aberrations of Optical Systems*, 1986, §7.3).
    field_x, field_y
        Field point relative to the centre of the field aberrations (the optical axis; for a decentred element its
        displaced centre, so the axis sees coma), in units of the field H = 1 (here the sensor's half diagonal).

    Notes
    -----
    The lens's focus reference is its full-aperture best focus on axis and its medial field surface, and its
    image position is the centroid (distortion is the lens's own ptlens geometry), so the balancing terms are::

        w020 = −W040·s² − w222/2        (min-variance focus for W040 at full aperture; medial focus)
        w111 = −w131                    (coma's centroid shift removed: mean of ∂(ρ³cos φ)/∂(ρ cos φ) is 1)

    Stopping down then moves the best focus by ``δ = −8·N_max²·λ·W040·(1 − s²)`` (the focus shift of a lens with
    under-corrected spherical aberration: the sensor must move away from the lens).
    """
    s = max_f_number / f_number
    k = reference_wavelength_um / wavelength_um
    h = math.hypot(field_x, field_y)
    w040 = k * spherical_w040 * s**4
    w131 = k * coma_w131 * h * s**3
    w222 = k * astigmatism_w222 * h * h * s**2
    return PupilAberrations(
        w020=-k * spherical_w040 * s**2 - 0.5 * w222,
        w040=w040,
        w131=w131,
        w222=w222,
        w111=-w131,
        azimuth_rad=math.atan2(field_y, field_x) if h > 0 else 0.0,
    )


def focus_shift_um(*, spherical_w040: float, reference_wavelength_um: float, max_f_number: float, f_number: float):
    """Best-focus image shift (µm, + = image behind the sensor) at ``f_number`` relative to full aperture.

    ``δ = −8·N_max²·λ·W040·(1 − (N_max/N)²)`` from the balancing in :func:`seidel_at`.
    """
    s = max_f_number / f_number
    return -8.0 * max_f_number**2 * reference_wavelength_um * spherical_w040 * (1.0 - s * s)


def astigmatic_focus_separation_um(*, w222_waves: float, f_number: float, wavelength_um: float) -> float:
    """Axial distance between sagittal and tangential foci, ``8N²λ·|w222|`` (µm; w222 in working-pupil waves)."""
    return 8.0 * f_number**2 * wavelength_um * abs(w222_waves)


def rms_wavefront_waves(aberrations: PupilAberrations, *, w020_defocus: float = 0.0, n: int = 256) -> float:
    """RMS of W over the pupil (waves), by sampling (for the Maréchal check: Strehl ≈ exp(−(2πσ)²))."""
    u = (np.arange(n) - (n - 1) / 2) / (n / 2)
    x, y = np.meshgrid(u, u)
    inside = x * x + y * y <= 1.0
    w = _wavefront(aberrations, x[inside], y[inside], w020_defocus)
    return float(np.std(w))


def _wavefront(a: PupilAberrations, x: np.ndarray, y: np.ndarray, w020_defocus: float) -> np.ndarray:
    """W (waves) at pupil points (x along the meridional direction, y across)."""
    r2 = x * x + y * y
    return (a.w020 + w020_defocus) * r2 + a.w040 * r2 * r2 + a.w131 * r2 * x + a.w222 * x * x + a.w111 * x


@dataclass(frozen=True, eq=False)
class PupilOtf:
    """A sampled 2-D OTF in the field frame (x = meridional), the half-plane ``νx ≥ 0`` of an unshifted FFT.

    ``values[i, j]`` holds ``ν = (j, i − size·[i > size/2])·step_cy_um`` (cycles/µm; ``size = values.shape[0]``);
    the other half follows from the OTF of a real PSF being Hermitian, ``OTF(−ν) = OTF(ν)*``. The OTF vanishes
    beyond ``support`` samples from the origin (the incoherent cut-off 1/(λN)). ``coefficients`` are the
    periodic cubic B-spline coefficients of the whole plane (both halves), which :meth:`along` interpolates.
    """

    values: np.ndarray  # complex128, shape (size, size // 2 + 1)
    step_cy_um: float
    support: int  # samples from the origin to the cut-off (the pupil's diameter in samples)
    geometric_defocus_um: float  # > 0: the defocus left out of the pupil and applied as a disc of this δ
    coefficients: np.ndarray  # complex128, shape (size, size): cubic-spline coefficients of the full plane

    def along(self, freq_cy_um: np.ndarray, angle_rad: float) -> np.ndarray:
        """The complex OTF on the line ``ν·(cos a, sin a)`` (field frame), cubic-spline interpolated.

        Cubic, not bilinear: a steep wavefront's PSF has a wide halo, so its OTF drops within a few samples of the
        origin, where a bilinear lookup errs by up to 0.05 on a pupil of 64 samples (W040 = 3.2 waves, 12 µm out
        of focus at f/0.95); the cubic spline stays within 0.01 of a pupil 8× finer
        (tests/twin/test_wavefront.py), which lets the pupil be sampled by its slope alone.
        """
        c, s = math.cos(angle_rad), math.sin(angle_rad)
        f = np.asarray(freq_cy_um, dtype=np.float64) / self.step_cy_um
        inside = np.abs(f) < self.support
        size = self.coefficients.shape[0]
        # rows are νy, columns νx, both wrapping (negative frequencies sit at the end of the unshifted FFT)
        coords = np.vstack((np.mod(f[inside] * s, size), np.mod(f[inside] * c, size)))
        out = np.zeros(f.shape, dtype=np.complex128)
        out[inside] = map_coordinates(self.coefficients, coords, order=3, mode="grid-wrap", prefilter=False)
        return out


def _full_plane_spline(half: np.ndarray) -> np.ndarray:
    """Periodic cubic-spline coefficients of the whole OTF plane from its rfft2 half (Hermitian fill)."""
    size = half.shape[0]
    full = np.empty((size, size), dtype=np.complex128)
    full[:, : half.shape[1]] = half
    # OTF(−ν) = OTF(ν)*: column j > size/2 is the conjugate of column size − j at row −i
    cols = np.arange(half.shape[1], size)
    full[:, cols] = np.conj(half[(-np.arange(size)) % size][:, size - cols])
    return spline_filter(full, order=3, output=np.complex128, mode="grid-wrap")


@lru_cache(maxsize=64)
def _pupil_grid(n_pupil: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, transmission) of a pupil of ``n_pupil`` samples across on a size² grid, rim area-weighted (4×4)."""
    sub = 4
    idx = np.arange(size * sub)
    u = ((idx + 0.5) / sub - size / 2) / (n_pupil / 2)
    fine = (u[None, :] ** 2 + u[:, None] ** 2 <= 1.0).astype(np.float64)
    weight = fine.reshape(size, sub, size, sub).mean(axis=(1, 3))
    centres = (np.arange(size) + 0.5 - size / 2) / (n_pupil / 2)
    x, y = np.meshgrid(centres, centres)
    for arr in (x, y, weight):
        arr.setflags(write=False)
    return x, y, weight


PUPIL_SAMPLES_STEP = 16
"""Sample counts are rounded up to a multiple of this, so a handful of pupil grids (cached) serve every wavefront."""


def pupil_samples(slope_waves: float) -> int:
    """Samples across the pupil for a wavefront whose steepest slope is ``slope_waves`` per unit radius."""
    n = min(MAX_PUPIL_SAMPLES, max(MIN_PUPIL_SAMPLES, math.ceil(SAMPLES_PER_SLOPE * slope_waves)))
    return min(MAX_PUPIL_SAMPLES, -(-n // PUPIL_SAMPLES_STEP) * PUPIL_SAMPLES_STEP)


@dataclass(frozen=True)
class PupilSampling:
    """How a defocused wavefront is sampled: the defocus left in the pupil, the rest as a disc, the sample count."""

    w020_defocus: float  # waves: the image defocus as W020 in the pupil (0 when taken in the geometric limit)
    geometric_defocus_um: float  # µm: the defocus applied as a disc of δ/N instead (0: none)
    n_pupil: int  # samples across the pupil diameter


def pupil_sampling(
    aberrations: PupilAberrations, *, f_number: float, wavelength_um: float, defocus_um: float
) -> PupilSampling:
    """The pupil sampling of ``aberrations`` with an image ``defocus_um`` behind the sensor.

    The pupil is sampled by its steepest slope (:meth:`PupilAberrations.max_slope_waves`); whether the defocus is
    taken in its geometric limit is decided on the term-by-term bound :meth:`PupilAberrations.slope_waves`.

    Parameters
    ----------
    aberrations
        The wavefront (waves); its azimuth is ignored.
    f_number, wavelength_um
        Working f-number and wavelength (µm).
    defocus_um
        Image defocus δ (µm, + behind the sensor).
    """
    w020_defocus = defocus_waves(defocus_um, f_number=f_number, wavelength_um=wavelength_um)
    geometric = 0.0
    # the geometric limit keeps its historical threshold (the bound): which defoci it covers does not move
    if MIN_SAMPLES_PER_SLOPE * aberrations.slope_waves(w020_defocus) > MAX_PUPIL_SAMPLES:
        geometric, w020_defocus = defocus_um, 0.0
    return PupilSampling(w020_defocus, geometric, pupil_samples(aberrations.max_slope_waves(w020_defocus)))


@lru_cache(maxsize=2048)
def pupil_otf(aberrations: PupilAberrations, *, f_number: float, wavelength_um: float, defocus_um: float) -> PupilOtf:
    """The 2-D OTF of the pupil with ``aberrations`` and an image ``defocus_um`` behind the sensor (cached).

    ``aberrations`` should be :meth:`PupilAberrations.rounded` (the cache key); its azimuth is ignored here.
    Sampled as :func:`pupil_sampling` says. The render reads the OTF along edge normals from :func:`line_otf`
    (the same pupil, one line at a time); this whole plane is its reference and serves ∫OTF d²ν (Strehl).
    """
    sampling = pupil_sampling(aberrations, f_number=f_number, wavelength_um=wavelength_um, defocus_um=defocus_um)
    return sampled_pupil_otf(
        aberrations,
        f_number=f_number,
        wavelength_um=wavelength_um,
        w020_defocus=sampling.w020_defocus,
        n_pupil=sampling.n_pupil,
        geometric_defocus_um=sampling.geometric_defocus_um,
    )


def _fft_size(n_pupil: int) -> int:
    """FFT length for a pupil of ``n_pupil`` samples: ≥ 2·n_pupil + 1, so its autocorrelation does not wrap."""
    return scipy.fft.next_fast_len(2 * n_pupil + 2)


@lru_cache(maxsize=64)
def _pupil_band(n_pupil: int, size: int, first: int) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pupil's samples on the grid rows ``i ≥ first`` (cached: a frame's lines share a handful of grids).

    Returns (lo, hi, index, u, v, weight): the rows ``lo ≤ i < hi`` the pupil covers, and for each sample inside
    it its flat index into that (hi − lo) × size band, its grid coordinates and its area weight.
    """
    x, y, weight = _pupil_grid(n_pupil, size)
    rows = np.flatnonzero(weight[first:].any(axis=1)) + first
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    index = np.flatnonzero(weight[lo:hi] > 0)
    u, v, w = (arr[lo:hi].ravel()[index] for arr in (x, y, weight))
    for arr in (index, u, v, w):
        arr.setflags(write=False)
    return lo, hi, index, u, v, w


def _pupil_field(
    aberrations: PupilAberrations, n_pupil: int, size: int, w020_defocus: float, angle_rad: float, first: int
) -> tuple[int, int, np.ndarray]:
    """``weight·exp(i2πW)`` on the rows ``i ≥ first`` of the pupil grid that the pupil covers.

    The grid's columns run along ``(cos a, sin a)`` of the field frame and its rows across (a = ``angle_rad``): the
    pupil disc and its area-weighted rim are the same in every orientation, only W is evaluated at the turned
    points. Returns (lo, hi, field): the grid rows ``lo ≤ i < hi`` held in ``field`` (complex, (hi − lo) × size).
    """
    lo, hi, index, u, v, weight = _pupil_band(n_pupil, size, first)
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    field = np.zeros((hi - lo, size), dtype=np.complex128)
    phase = 2.0 * np.pi * _wavefront(aberrations, u * c - v * s, u * s + v * c, w020_defocus)
    field.ravel()[index] = weight * np.exp(1j * phase)
    return lo, hi, field


def sampled_pupil_otf(
    aberrations: PupilAberrations,
    *,
    f_number: float,
    wavelength_um: float,
    w020_defocus: float,
    n_pupil: int,
    geometric_defocus_um: float = 0.0,
) -> PupilOtf:
    """The pupil OTF with ``n_pupil`` samples across the pupil (not cached; :func:`pupil_otf` picks the count).

    Parameters
    ----------
    aberrations
        The wavefront (waves); its azimuth is ignored.
    f_number, wavelength_um
        Working f-number and wavelength (µm): they scale the frequency step ``1/(λ·N·n_pupil)`` cycles/µm.
    w020_defocus
        The image defocus as W020 (waves), added to the wavefront.
    n_pupil
        Samples across the pupil diameter; the FFT is ``next_fast_len(2·n_pupil + 2)`` on a side.
    geometric_defocus_um
        Recorded in the result for the caller to apply as a disc (µm; 0: none).
    """
    size = _fft_size(n_pupil)
    # only the rows the pupil covers are non-zero: transform those along x, then every column along y (the same
    # 2-D inverse transform as ifft2, at about three quarters of its cost)
    lo, hi, field = _pupil_field(aberrations, n_pupil, size, w020_defocus, 0.0, 0)
    # the +i kernel (inverse transform) gives rays at ε = −2Nλ∇W: see the module conventions
    along_x = np.zeros((size, size), dtype=np.complex128)
    along_x[lo:hi] = scipy.fft.ifft(field, axis=1, workers=1)
    amplitude = scipy.fft.ifft(along_x, axis=0, workers=1)
    psf = amplitude.real**2 + amplitude.imag**2
    otf = scipy.fft.rfft2(psf, workers=1)  # the PSF is real: half the plane carries the OTF
    otf /= otf[0, 0].real
    coefficients = _full_plane_spline(otf)
    for arr in (otf, coefficients):
        arr.setflags(write=False)
    return PupilOtf(
        values=otf,
        step_cy_um=1.0 / (wavelength_um * f_number * n_pupil),
        support=n_pupil,
        geometric_defocus_um=geometric_defocus_um,
        coefficients=coefficients,
    )


@dataclass(frozen=True, eq=False)
class LineOtf:
    """The complex OTF on one line through the origin, ``ν·(cos a, sin a)`` of the field frame, sampled.

    ``coefficients[k]`` are the periodic cubic B-spline coefficients of the OTF at ``ν = k·step_cy_um`` for
    ``k < size/2`` and at ``(k − size)·step_cy_um`` beyond (negative frequencies wrap, as in an unshifted FFT); the
    OTF vanishes beyond ``support`` samples (the cut-off 1/(λN)).
    """

    coefficients: np.ndarray  # complex128, shape (size,)
    step_cy_um: float
    support: int  # samples from the origin to the cut-off (the pupil's diameter in samples)
    geometric_defocus_um: float  # > 0: the defocus left out of the pupil and applied as a disc of this δ

    def at(self, freq_cy_um: np.ndarray) -> np.ndarray:
        """The complex OTF at signed frequencies ``ν`` (cycles/µm) along the line, cubic-spline interpolated."""
        f = np.asarray(freq_cy_um, dtype=np.float64) / self.step_cy_um
        inside = np.abs(f) < self.support
        out = np.zeros(f.shape, dtype=np.complex128)
        coords = np.mod(f[inside], self.coefficients.shape[0])[None, :]
        out[inside] = map_coordinates(self.coefficients, coords, order=3, mode="grid-wrap", prefilter=False)
        return out


def sampled_line_otf(
    aberrations: PupilAberrations,
    *,
    f_number: float,
    wavelength_um: float,
    w020_defocus: float,
    n_pupil: int,
    angle_rad: float,
    geometric_defocus_um: float = 0.0,
) -> LineOtf:
    """The pupil's OTF on the line at ``angle_rad`` (field frame), from 1-D transforms only (not cached).

    The OTF is the pupil's autocorrelation, ``OTF(ν) ∝ Σ P(r + ν)·P*(r)`` (Goodman, *Introduction to Fourier
    Optics*, 3rd ed., §6.3.1, eq. (6-28)); for shifts ν along one grid axis that sum splits into one 1-D
    autocorrelation per grid row, and by the Wiener–Khinchin theorem ``Σ_rows |FT₁(row)|²`` (the LSF across the
    line) transforms to it. So the pupil is laid on a grid turned to the line (:func:`_pupil_field`) and the OTF
    on the line is the discrete autocorrelation that :func:`sampled_pupil_otf` computes on its whole plane, exactly,
    at about a third of its FFT work and with no interpolation across lines. A wavefront even across the line
    (every Seidel term is even across the meridional direction, so any line at a = 0) has mirror rows, and only
    half of them are transformed.

    Parameters
    ----------
    aberrations
        The wavefront (waves); its azimuth is ignored (``angle_rad`` is relative to the meridional direction).
    f_number, wavelength_um
        Working f-number and wavelength (µm): they scale the frequency step ``1/(λ·N·n_pupil)`` cycles/µm.
    w020_defocus
        The image defocus as W020 (waves), added to the wavefront.
    n_pupil
        Samples across the pupil diameter; the transforms are ``next_fast_len(2·n_pupil + 2)`` long.
    angle_rad
        Direction of the line from the meridional direction (radians).
    geometric_defocus_um
        Recorded in the result for the caller to apply as a disc (µm; 0: none).
    """
    size = _fft_size(n_pupil)
    mirrored = angle_rad == 0.0
    # the grid is symmetric about its centre row: with mirror rows only those at v ≥ 0 are transformed, twice weighed
    lo, hi, field = _pupil_field(aberrations, n_pupil, size, w020_defocus, angle_rad, size // 2 if mirrored else 0)
    amplitude = scipy.fft.ifft(field, axis=1, workers=1)  # the +i kernel, as in sampled_pupil_otf
    power = amplitude.real**2 + amplitude.imag**2
    if mirrored:
        _, y, _ = _pupil_grid(n_pupil, size)
        power *= np.where(y[lo:hi, :1] > 0, 2.0, 1.0)
    otf = scipy.fft.fft(power.sum(axis=0), workers=1)
    otf /= otf[0].real
    coefficients = spline_filter1d(otf, order=3, mode="grid-wrap", output=np.complex128)
    coefficients.setflags(write=False)
    return LineOtf(
        coefficients=coefficients,
        step_cy_um=1.0 / (wavelength_um * f_number * n_pupil),
        support=n_pupil,
        geometric_defocus_um=geometric_defocus_um,
    )


@lru_cache(maxsize=4096)
def line_otf(
    aberrations: PupilAberrations, *, f_number: float, wavelength_um: float, defocus_um: float, angle_rad: float
) -> LineOtf:
    """The OTF of the defocused pupil on the line at ``angle_rad`` (field frame, in [0, π)), cached.

    Sampled as :func:`pupil_sampling` says (the pupil of :func:`pupil_otf`, one line of its plane), computed by
    :func:`sampled_line_otf`. ``aberrations`` should be :meth:`PupilAberrations.rounded` with azimuth 0 (the key).
    """
    sampling = pupil_sampling(aberrations, f_number=f_number, wavelength_um=wavelength_um, defocus_um=defocus_um)
    return sampled_line_otf(
        aberrations,
        f_number=f_number,
        wavelength_um=wavelength_um,
        w020_defocus=sampling.w020_defocus,
        n_pupil=sampling.n_pupil,
        angle_rad=angle_rad,
        geometric_defocus_um=sampling.geometric_defocus_um,
    )


def clear_caches() -> None:
    """Empty the cached pupil and line OTFs and slopes (a test or benchmark that changes the sampling, or times a
    new focus)."""
    pupil_otf.cache_clear()
    line_otf.cache_clear()
    _steepest_slope.cache_clear()


def disc_otf(freq_cy_um: np.ndarray, *, diameter_um: float) -> np.ndarray:
    """Transfer function of a uniform disc of diameter D: ``2·J1(πDν)/(πDν)`` (1 at ν = 0).

    The geometric-optics defocus blur (W. J. Smith, *Modern Optical Engineering*, 4th ed., §11.7). Its second
    moment per axis is D²/16.
    """
    x = np.pi * diameter_um * np.abs(np.asarray(freq_cy_um, dtype=np.float64))
    out = np.ones_like(x)
    nz = x > 1e-9
    out[nz] = 2.0 * j1(x[nz]) / x[nz]
    return out


def aberrated_otf_along(
    freq_cy_um: np.ndarray,
    aberrations: PupilAberrations,
    *,
    f_number: float,
    wavelength_um: float,
    defocus_um: float,
    angle_rad: float,
) -> np.ndarray:
    """Complex OTF of the aberrated, defocused pupil on the line ``ν·(cos a, sin a)`` in the *sensor* frame."""
    key = aberrations.rounded()
    symmetric = key.w131 == 0 and key.w222 == 0 and key.w111 == 0
    # a rotationally symmetric wavefront has one OTF on every line; otherwise the line at a + π is the one at a
    # reversed, OTF(−ν) = OTF(ν)* (a real PSF), so lines over [0, π) serve every edge normal
    angle = 0.0 if symmetric else (angle_rad - key.azimuth_rad) % (2.0 * math.pi)
    reverse = angle >= math.pi
    otf = line_otf(
        PupilAberrations(key.w020, key.w040, key.w131, key.w222, key.w111),
        f_number=f_number,
        wavelength_um=wavelength_um,
        defocus_um=defocus_um,
        angle_rad=round(angle - math.pi if reverse else angle, 6) % math.pi,
    )
    out = otf.at(-np.asarray(freq_cy_um, dtype=np.float64) if reverse else freq_cy_um)
    if otf.geometric_defocus_um:
        out = out * disc_otf(freq_cy_um, diameter_um=abs(otf.geometric_defocus_um) / f_number)
    return out
