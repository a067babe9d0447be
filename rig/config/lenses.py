"""The Leica M lens catalog (``fixtures/lenses.toml``) and the phone's native lens."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, model_validator

from rig.config.loader import FIXTURES_DIR, StrictModel, read_toml, validate
from rig.errors import ConfigError


class Vignetting(StrictModel):
    """Mechanical + natural vignetting beyond cos⁴, lensfun "pa" form at full aperture.

    Relative illumination factor ``1 + k1·r² + k2·r⁴ + k3·r⁶`` with ``r = 1`` at the *sensor's* half diagonal
    (crop 2.64: the M lens image circle is far larger, so values are close to 1). The effect shrinks when
    stopped down: it is scaled by ``(N_max / N)²`` (mechanical vignetting fades as the aperture closes).
    """

    k1: float = Field(0.0, ge=-1.0, le=1.0)
    k2: float = Field(0.0, ge=-1.0, le=1.0)
    k3: float = Field(0.0, ge=-1.0, le=1.0)


class Distortion(StrictModel):
    """PanoTools/lensfun ``ptlens`` radial distortion, ``r = 1`` at half the sensor's short edge.

    ``Rd = Ru·(a·Ru³ + b·Ru² + c·Ru + 1 − a − b − c)`` (REFERENCE.md §7).
    """

    a: float = 0.0
    b: float = 0.0
    c: float = 0.0


class LateralColour(StrictModel):
    """Transverse chromatic aberration (lateral colour): the red and blue images' scale against the green one.

    ``red_ppm``/``blue_ppm`` = (magnification of the channel / magnification of green − 1) · 10⁶, about the optical
    axis, the same at every field height (primary lateral colour). At the phone sensor's corner (8.19 mm) 100 ppm
    is a 0.82 µm colour fringe. lensfun's ``poly3`` TCA of such a lens is ``vr = 1 + red_ppm·10⁻⁶``,
    ``vb = 1 + blue_ppm·10⁻⁶``, ``cr = cb = br = bb = 0`` (:mod:`rig.measure.lateral_colour`).
    """

    red_ppm: float = Field(0.0, ge=-5000.0, le=5000.0)
    blue_ppm: float = Field(0.0, ge=-5000.0, le=5000.0)


class AxialColour(StrictModel):
    """Longitudinal chromatic aberration: the red and blue channels' best focus against green's (µm on the image).

    + = the channel's image lies farther from the lens than green's. Enters each Bayer plane's PSF as a defocus
    (W020 at that channel's effective wavelength, :data:`rig.twin.wavefront.CHANNEL_WAVELENGTH_UM`).
    """

    red_um: float = Field(0.0, ge=-100.0, le=100.0, allow_inf_nan=False)
    blue_um: float = Field(0.0, ge=-100.0, le=100.0, allow_inf_nan=False)

    def of(self, colour: str) -> float:
        """Focus of Bayer colour ``colour`` ("R", "G", "B") against green (µm)."""
        return {"R": self.red_um, "B": self.blue_um}.get(colour, 0.0)


class Wavefront(StrictModel):
    """Seidel wavefront aberrations of a lens at full aperture, in waves at ``reference_wavelength_um``.

    ρ = 1 at the full-aperture pupil, field H = 1 at the phone sensor's half diagonal (8.19 mm, the part of the M
    lens's image the phone sees), φ from the meridional direction. With ``s = N_max/N`` the working pupil sees
    (Welford, *Aberrations of Optical Systems*, 1986, §7.3; :func:`rig.twin.wavefront.seidel_at`)::

        W = W040·s⁴ρ⁴ + W131·H·s³ρ³cos φ + W222·H²·s²ρ²cos²φ + W220·H²·s²ρ²

    * W220 (field curvature) is the lens's ``field_curvature_um`` (the medial image surface's focus shift at H = 1,
      one number for the defocus the focus and tilt measurements see): ``W220 = −field_curvature_um/(8N²λ)``
      (:meth:`LensSpec.field_curvature_w220`); W222 splits the sagittal and tangential foci about it.
    * W311 (distortion) is the lens's ``distortion`` (ptlens, the form the calibration fits) and lateral colour its
      ``lateral_colour``: both move the image point, so they live in the render geometry, not in the PSF.
    * ``axial_colour``: the channels' focus against green.
    * ``aberration_centre_x``/``_y`` (H units, from the optical axis; 0 for a centred lens): where the field
      dependence of coma, astigmatism and field curvature is centred. A decentred element moves that centre off the
      axis (nodal aberration theory: K. P. Thompson, "Description of the third-order optical aberrations of
      near-circular pupil optical systems without symmetry", JOSA A 22 (2005) 1389, §3: each surface's field
      vector becomes H − σ; one decentred element gives one displaced centre σ to first order). The lens then
      shows coma ``W131·|σ|`` on axis, its medial field surface is tilted (one corner lies out of the focus that
      suits the others) and the corner away from σ carries the most coma: one soft corner.

    All zero (the default) is an aberration-free lens: the twin renders it with the analytic Airy ⊗ disc kernel.
    """

    reference_wavelength_um: float = Field(0.55, ge=0.35, le=1.0, description="wavelength the coefficients hold at")
    spherical_w040: float = Field(0.0, ge=-20.0, le=20.0, allow_inf_nan=False, description="+ = under-corrected")
    coma_w131: float = Field(0.0, ge=-20.0, le=20.0, allow_inf_nan=False, description="at H = 1 (waves)")
    astigmatism_w222: float = Field(0.0, ge=-20.0, le=20.0, allow_inf_nan=False, description="at H = 1 (waves)")
    axial_colour: AxialColour = AxialColour()
    aberration_centre_x: float = Field(
        0.0, ge=-1.0, le=1.0, allow_inf_nan=False, description="centre of the field aberrations, H units (+ right)"
    )
    aberration_centre_y: float = Field(
        0.0, ge=-1.0, le=1.0, allow_inf_nan=False, description="centre of the field aberrations, H units (+ down)"
    )
    matched_to: str = Field("", description="the published data the coefficients were chosen to follow")

    @property
    def is_aberration_free(self) -> bool:
        """True when no Seidel term and no axial colour is set (the twin's analytic kernel applies)."""
        return not (
            self.spherical_w040
            or self.coma_w131
            or self.astigmatism_w222
            or self.axial_colour.red_um
            or self.axial_colour.blue_um
        )


class LensSpec(StrictModel):
    """One lens model as the bench needs it. Lengths in mm, weights in g."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    maker: str = "Leica"
    mount: str = "Leica M"
    focal_length_mm: float = Field(gt=0, le=1000)
    max_f_number: float = Field(gt=0.5, le=32)
    f_numbers: list[float] = Field(min_length=1, description="the marked apertures, widest first")
    transmission: float = Field(gt=0.3, le=1.0, description="axial transmittance; T-stop = N/√T")
    weight_g: float = Field(gt=0, le=5000)
    length_mm: float = Field(gt=0, le=500)
    center_of_mass_mm: float = Field(gt=0, le=500, description="centre of mass ahead of the mount flange")
    min_focus_m: float = Field(gt=0, le=10)
    lens_code: int | None = Field(None, ge=0, le=63, description="6-bit code; None = uncoded")
    exit_pupil_mm: float = Field(gt=0, le=1000, description="exit pupil distance from the image plane")
    field_curvature_um: float = Field(
        0.0, ge=-200, le=200, description="focus shift at the sensor corner (r = 1), + = away from the lens"
    )
    residual_blur_um: float = Field(
        0.0, ge=0, le=50, description="Gaussian σ of residual aberrations at full aperture, on the image"
    )
    vignetting: Vignetting = Vignetting()
    distortion: Distortion = Distortion()
    lateral_colour: LateralColour = LateralColour()
    wavefront: Wavefront = Wavefront()
    certified_f_numbers: list[float] | None = None

    @model_validator(mode="after")
    def _apertures(self) -> LensSpec:
        if abs(self.f_numbers[0] - self.max_f_number) > 1e-9:
            raise ValueError(f"f_numbers to start at max_f_number {self.max_f_number}, got {self.f_numbers[0]}")
        if sorted(self.f_numbers) != self.f_numbers:
            raise ValueError(f"f_numbers in increasing order, got {self.f_numbers}")
        return self

    @property
    def t_stop(self) -> float:
        """T-stop at full aperture: N / √T."""
        return self.max_f_number / self.transmission**0.5

    @property
    def field_curvature_w220(self) -> float:
        """W220 (waves at the reference wavelength, full aperture) of ``field_curvature_um``: ``−δ/(8N²λ)``."""
        return -self.field_curvature_um / (8.0 * self.max_f_number**2 * self.wavefront.reference_wavelength_um)


class NativeLens(StrictModel):
    """The phone's own main camera lens (not interchangeable): the reference for light intake."""

    name: str
    focal_length_mm: float = Field(gt=0)
    f_number: float = Field(gt=0)
    transmission: float = Field(gt=0.3, le=1.0)
    exit_pupil_mm: float = Field(gt=0)
    equivalent_focal_length_mm: float = Field(gt=0)
    wavefront: Wavefront = Wavefront()


class LensCatalog(StrictModel):
    """All lenses the bench knows, keyed by id and by 6-bit code."""

    native: NativeLens
    lens: list[LensSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> LensCatalog:
        seen: set[str] = set()
        codes: dict[int, str] = {}
        for i, spec in enumerate(self.lens):
            if spec.id in seen:
                raise ValueError(f"unique lens ids; lens[{i}].id {spec.id!r} repeats")
            seen.add(spec.id)
            if spec.lens_code is not None:
                if spec.lens_code in codes:
                    raise ValueError(
                        f"unique 6-bit codes; lens[{i}] {spec.id!r} shares {spec.lens_code} "
                        f"with {codes[spec.lens_code]!r}"
                    )
                codes[spec.lens_code] = spec.id
        return self

    @cached_property
    def _by_id(self) -> dict[str, LensSpec]:
        return {spec.id: spec for spec in self.lens}

    def ids(self) -> list[str]:
        return [spec.id for spec in self.lens]

    def get(self, lens_id: str, *, source: str | Path = "lens", field: str = "lens") -> LensSpec:
        """The lens with this id; an unknown id raises ConfigError naming ``source`` and ``field``."""
        try:
            return self._by_id[lens_id]
        except KeyError:
            raise ConfigError(source, field, lens_id, f"one of the catalog's lenses: {', '.join(self.ids())}") from None

    def by_code(self, code: int) -> LensSpec | None:
        """The lens with this 6-bit code, or None if no catalog lens has it."""
        for spec in self.lens:
            if spec.lens_code == code:
                return spec
        return None


DEFAULT_LENSES = FIXTURES_DIR / "lenses.toml"


def load_lens_catalog(path: str | Path = DEFAULT_LENSES) -> LensCatalog:
    """Load and validate the lens catalog."""
    return validate(LensCatalog, read_toml(path), path)
