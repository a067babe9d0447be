"""A station file (``fixtures/stations/*.toml``): what is plugged in where, and the bench's optics.

Resource ≠ driver (DESIGN.md §8.4): the station says which port each device is on; the driver never knows
whether the port leads to hardware or to the twin. ``port = "twin"`` asks the plugin to start the twin peers
(GRBL on a pty, PTP/IP on 127.0.0.1) and hand their real addresses to the same drivers.
"""

from __future__ import annotations

import re
from pathlib import Path

import regex
from pydantic import Field, field_validator, model_validator

from rig.config.faults import FaultPlan
from rig.config.loader import FIXTURES_DIR, StrictModel, load_toml
from rig.errors import ArgumentError

TWIN_PORT = "twin"

MAX_SENSOR_SIDE_PX = 32768
"""Longest sensor side a station may declare (the 1-inch sensor is 8192 px wide)."""
MIN_READOUT_PX = (256, 192)
"""Smallest read-out (after binning) the charts' measurements and the twin's renderer work on."""
DEFAULT_MAX_FRAME_MEGAPIXELS = 120.0
"""Default pixel budget of one frame (the sensor has 50.3 MP): bounds every frame allocation."""
SERIAL_MATCH_TIMEOUT_S = 0.25
"""Longest a station's serial pattern may take to match one serial (a backtracking pattern must not hang)."""
MAX_SERIAL_LENGTH = 64


class SensorConfig(StrictModel):
    """The M-mount sensor as read out by the phone. Full size: 8192×6144 at 1.6 µm (REFERENCE.md §2)."""

    full_width_px: int = Field(8192, gt=0, le=MAX_SENSOR_SIDE_PX)
    full_height_px: int = Field(6144, gt=0, le=MAX_SENSOR_SIDE_PX)
    pixel_pitch_um: float = Field(1.6, gt=0)
    binning: int = Field(1, description="readout binning: 1 (full), 2 or 4 (tests)")
    black_level_dn: int = Field(64, ge=0)
    white_level_dn: int = Field(1023, gt=0)
    bit_depth: int = Field(10, ge=8, le=16)
    cfa_pattern: str = Field("RGGB", pattern=r"^(RGGB|BGGR|GRBG|GBRG)$")
    cover_thickness_mm: float = Field(0.5, ge=0, le=3, description="nominal sapphire cover the adapter allows for")
    cover_index: float = Field(1.768, gt=1, le=3)
    max_frame_megapixels: float = Field(
        DEFAULT_MAX_FRAME_MEGAPIXELS,
        gt=0,
        le=1000,
        description="pixel budget of one frame: a DNG declaring more is refused before any pixel is allocated",
    )

    @model_validator(mode="after")
    def _geometry(self) -> SensorConfig:
        if self.width_px < MIN_READOUT_PX[0] or self.height_px < MIN_READOUT_PX[1]:
            raise ValueError(
                f"a read-out of at least {MIN_READOUT_PX[0]}×{MIN_READOUT_PX[1]} px (the charts' edges and dots need "
                f"it), got {self.width_px}×{self.height_px} (full {self.full_width_px}×{self.full_height_px} "
                f"binned {self.binning})"
            )
        if self.full_width_px % (2 * self.binning) or self.full_height_px % (2 * self.binning):
            raise ValueError(f"full sides divisible by 2 × binning ({2 * self.binning}) for a 2×2 CFA")
        pixels = self.full_width_px * self.full_height_px
        if pixels > self.max_frame_megapixels * 1e6:
            raise ValueError(
                f"at most max_frame_megapixels {self.max_frame_megapixels:g} MP, got "
                f"{self.full_width_px}×{self.full_height_px} = {pixels / 1e6:.1f} MP"
            )
        if not self.black_level_dn < self.white_level_dn <= (1 << self.bit_depth) - 1:
            raise ValueError(
                f"black_level_dn < white_level_dn ≤ 2^bit_depth − 1 = {(1 << self.bit_depth) - 1}, got "
                f"{self.black_level_dn} and {self.white_level_dn}"
            )
        return self

    @field_validator("binning")
    @classmethod
    def _binning(cls, v: int) -> int:
        if v not in (1, 2, 4):
            raise ValueError(f"binning 1, 2 or 4, got {v}")
        return v

    @property
    def width_px(self) -> int:
        return self.full_width_px // self.binning

    @property
    def height_px(self) -> int:
        return self.full_height_px // self.binning

    @property
    def readout_pitch_um(self) -> float:
        """Pitch of one read-out pixel (binned pixels are larger)."""
        return self.pixel_pitch_um * self.binning

    @property
    def half_diagonal_mm(self) -> float:
        w = self.full_width_px * self.pixel_pitch_um / 1000
        h = self.full_height_px * self.pixel_pitch_um / 1000
        return 0.5 * (w * w + h * h) ** 0.5


class OpticsConfig(StrictModel):
    """The bench's collimator: a chart displaced Δz from its focal plane defocuses the image by (f/f_c)²·Δz."""

    collimator_focal_length_mm: float = Field(gt=0, le=5000)


class RailConfig(StrictModel):
    """Chart rail (GRBL axis Z, mm). ``focus_mm``: the rail position that puts the chart at f_c."""

    min_mm: float
    max_mm: float
    focus_mm: float
    max_rate_mm_min: float = Field(gt=0)
    accel_mm_s2: float = Field(gt=0)

    @model_validator(mode="after")
    def _order(self) -> RailConfig:
        if not self.min_mm < self.max_mm:
            raise ValueError(f"min_mm < max_mm, got {self.min_mm} and {self.max_mm}")
        if not self.min_mm <= self.focus_mm <= self.max_mm:
            raise ValueError(f"focus_mm within [{self.min_mm}, {self.max_mm}], got {self.focus_mm}")
        return self


class CarouselConfig(StrictModel):
    """Chart carousel (GRBL axis X): chart name → X position in mm."""

    slots: dict[str, float] = Field(min_length=1)
    max_rate_mm_min: float = Field(gt=0)
    accel_mm_s2: float = Field(gt=0)
    max_mm: float = Field(gt=0)


class FixtureConfig(StrictModel):
    """Fixture pitch (GRBL axis Y, one GRBL unit = one degree). −90 lens up … +90 lens down."""

    min_deg: float = Field(-90.0, ge=-90)
    max_deg: float = Field(90.0, le=90)
    max_rate_deg_min: float = Field(gt=0)
    accel_deg_s2: float = Field(gt=0)


class LightConfig(StrictModel):
    """Light panel on the spindle PWM (``M3 S0..pwm_max``). Luminance is linear in S (calibrated)."""

    pwm_max: int = Field(1000, gt=0)
    luminance_cd_m2_at_max: float = Field(gt=0)
    response_dn_per_cd_m2_s: float = Field(
        gt=0,
        description=(
            "station light calibration: centre raw signal above black (DN) per cd/m²·s of panel luminance × "
            "exposure time, at ISO 100, for a T/1 lens, on the flat chart"
        ),
    )


class KnockerConfig(StrictModel):
    """A solenoid that taps the fixture, switched by GRBL's coolant output (``M8`` on, ``M9`` off)."""

    pulse_ms: float = Field(20.0, gt=0, le=1000)


class StageConfig(StrictModel):
    port: str = Field(min_length=1, description='serial device, pyserial URL, or "twin"')
    baudrate: int = Field(115200, gt=0)
    timeout_s: float = Field(5.0, gt=0)
    move_timeout_s: float = Field(60.0, gt=0)
    poll_interval_s: float = Field(0.1, gt=0, le=5, description="status polling period while waiting for Idle")


class PhoneConfig(StrictModel):
    port: str = Field(min_length=1, description='gphoto2 port ("usb:BUS,DEV", "ptpip:HOST:PORT:EVT") or "twin"')
    timeout_s: float = Field(10.0, gt=0, le=3600, description="one PTP operation, s")
    lens_change_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="how long the phone may take to report a lens change and switch sensors, s"
    )

    @field_validator("port")
    @classmethod
    def _port(cls, v: str) -> str:
        if v != TWIN_PORT and not re.match(r"^(usb:|ptpip:)", v):
            raise ValueError(f'a gphoto2 port "usb:..." or "ptpip:HOST[:PORT[:EVENTPORT]]" or "{TWIN_PORT}"')
        return v


class TwinConfig(StrictModel):
    """Only for a twin station: which simulated unit sits on the bench, and how fast simulated time runs."""

    unit: str = Field(description="twin unit file, relative to the repository or the station file")
    seed: int = 1
    time_scale: float = Field(1.0, gt=0, le=1000, description="simulated motion runs this many times faster")
    faults: FaultPlan | None = Field(None, description="bench faults the twin injects (issue #8, rig.twin.faults)")


class StationConfig(StrictModel):
    name: str = Field(min_length=1)
    serial_pattern: str = Field(r"^[A-Z0-9\-]{4,32}$", description="regex every unit serial must match")
    reference_lens: str = Field(description="catalog id of the lens used for calibration and sign-off")
    reference_f_number: float = Field(gt=0)
    lenses: str = "fixtures/lenses.toml"
    sensor: SensorConfig = SensorConfig()
    optics: OpticsConfig
    rail: RailConfig
    carousel: CarouselConfig
    fixture: FixtureConfig
    light: LightConfig
    knocker: KnockerConfig = KnockerConfig()
    stage: StageConfig
    phone: PhoneConfig
    twin: TwinConfig | None = None

    @field_validator("serial_pattern")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            regex.compile(v)
        except (regex.error, ValueError, OverflowError, RecursionError) as exc:
            raise ValueError(f"a valid regular expression ({exc})") from None
        return v

    @model_validator(mode="after")
    def _twin(self) -> StationConfig:
        uses_twin = TWIN_PORT in (self.stage.port, self.phone.port)
        if uses_twin and self.twin is None:
            raise ValueError('a [twin] table (unit, seed) when a port is "twin"')
        return self

    @property
    def is_twin(self) -> bool:
        return self.twin is not None and TWIN_PORT in (self.stage.port, self.phone.port)

    def check_serial(self, serial: str | None) -> str:
        """``serial`` if it matches this station's pattern; else one :class:`ArgumentError` line (the only check)."""
        if not serial:
            raise ArgumentError(
                f"--unit-serial: required on station {self.name} (a serial matching {self.serial_pattern})"
            )
        if len(serial) > MAX_SERIAL_LENGTH:
            raise ArgumentError(f"--unit-serial {serial[:16]!r}…: expected at most {MAX_SERIAL_LENGTH} characters")
        try:  # the `regex` engine stops a catastrophically backtracking pattern instead of hanging the bench
            matched = regex.fullmatch(self.serial_pattern, serial, timeout=SERIAL_MATCH_TIMEOUT_S)
        except TimeoutError:
            raise ArgumentError(
                f"station {self.name}: serial_pattern {self.serial_pattern!r} took over {SERIAL_MATCH_TIMEOUT_S} s "
                f"to match {serial!r}: expected a pattern without nested repetition"
            ) from None
        if not matched:
            raise ArgumentError(
                f"--unit-serial {serial!r}: expected a match of station {self.name}'s pattern {self.serial_pattern}"
            )
        return serial


DEFAULT_STATION = FIXTURES_DIR / "stations" / "twin.toml"


def load_station(path: str | Path = DEFAULT_STATION) -> StationConfig:
    """Load and validate a station file."""
    return load_toml(path, StationConfig)
