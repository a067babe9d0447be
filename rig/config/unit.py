"""A twin unit: the *true* parameters of one simulated phone + lens sample, defects included.

Only the twin and the tests read these (through :mod:`rig.twin`); the measurement code never does, and the
phone's PTP interface never exposes them. ``expected_failures`` lists the sign-off measurements the unit's
defect must trip, so a test can check "FAIL on exactly the right measurement(s)".
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from rig.config.faults import FaultPlan
from rig.config.lenses import Wavefront
from rig.config.loader import FIXTURES_DIR, StrictModel, load_toml


class MountTruth(StrictModel):
    """Sensor position relative to the lens mount, and how the mount moves under load.

    Sign conventions (image plane, looking from the lens at the sensor, +x right, +y down):
    ``flange_offset_um`` > 0: the sensor sits farther from the lens than the nominal 27.80 mm.
    ``tilt_x_arcmin`` > 0: the sensor's +y half lies farther from the lens (rotation about the x axis).
    ``tilt_y_arcmin`` > 0: the sensor's +x half lies farther from the lens (rotation about the y axis).
    ``decentre_*_um``: where the optical axis meets the sensor, relative to the sensor centre.
    """

    flange_offset_um: float = Field(0.0, ge=-500, le=500)
    tilt_x_arcmin: float = Field(0.0, ge=-60, le=60)
    tilt_y_arcmin: float = Field(0.0, ge=-60, le=60)
    decentre_x_um: float = Field(0.0, ge=-1000, le=1000)
    decentre_y_um: float = Field(0.0, ge=-1000, le=1000)
    cover_thickness_mm: float = Field(0.5, ge=0, le=3, description="true sapphire cover thickness")
    rotational_stiffness_nm_per_mrad: float = Field(
        20.0, gt=0, description="bending stiffness of mount + adapter (N·m per mrad of lens tilt)"
    )
    natural_frequency_hz: float = Field(60.0, gt=0, description="lens-on-mount rocking mode")
    damping_ratio: float = Field(0.08, gt=0, lt=1)
    remount_sigma_um: float = Field(1.0, ge=0, description="σ of lateral image shift between remounts")
    remount_sigma_arcmin: float = Field(0.3, ge=0, description="σ of tilt change between remounts")


class SensorTruth(StrictModel):
    """Noise and response of this unit's M-mount sensor (full-resolution pixel, ISO 100)."""

    conversion_gain_dn_per_e: float = Field(0.16, gt=0, description="DN per electron at ISO 100")
    read_noise_e: float = Field(2.0, ge=0)
    full_well_e: float = Field(6000.0, gt=0)
    responsivity_factor: float = Field(1.0, gt=0.5, lt=1.5, description="this sensor vs the station's calibration")
    cra_shading: dict[str, float] = Field(
        default_factory=lambda: {"R": -0.18, "G": -0.10, "B": -0.14},
        description=(
            "chief-ray-angle mismatch shading per colour: relative response 1 + k·r² at the M lens's chief "
            "ray angle (r = 1 at the half diagonal); the calibration's gain maps undo it"
        ),
    )


class LensSample(StrictModel):
    """The individual lens mounted on this unit: a catalog lens plus this sample's deviations."""

    id: str
    f_number: float | None = Field(None, gt=0, description="aperture set on the ring; None = wide open")
    extra_blur_um: float = Field(0.0, ge=0, le=50, description="Gaussian σ added to the residual blur (soft)")
    extra_vignetting_k1: float = Field(0.0, ge=-1, le=1, description="added to the catalog k1")
    transmission_factor: float = Field(1.0, gt=0.3, le=1.1)
    wavefront: Wavefront | None = Field(
        None,
        description=(
            "this sample's wavefront in place of the catalogue lens's (a decentred element, a spacing error); "
            "None = the catalogue's"
        ),
    )


class FirmwareTruth(StrictModel):
    """The phone firmware's behaviour, with injectable defects."""

    raw_bits: int = Field(10, ge=6, le=10, description="effective RAW bits (9 = the dropped-LSB bug)")
    histogram_bin_offset: int = Field(0, ge=-16, le=16, description="bins the phone's histogram is shifted by")
    zebra_threshold_offset_pct: float = Field(0.0, ge=-50, le=50)
    peaking_threshold_factor: float = Field(1.0, gt=0, le=10)
    sensor_switch_latency_ms: float = Field(150.0, ge=0, le=60000)


class TwinUnit(StrictModel):
    serial: str
    description: str = ""
    expected_failures: list[str] = Field(
        default_factory=list, description="sign-off measurement names this unit's defect must fail"
    )
    mount: MountTruth = MountTruth()
    sensor: SensorTruth = SensorTruth()
    lens: LensSample
    firmware: FirmwareTruth = FirmwareTruth()
    faults: FaultPlan | None = Field(None, description="bench faults the twin injects (issue #8, rig.twin.faults)")


UNITS_DIR = FIXTURES_DIR / "units"


def load_unit(path: str | Path) -> TwinUnit:
    """Load and validate a twin unit file."""
    return load_toml(path, TwinUnit)
