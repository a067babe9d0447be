"""A station file (``fixtures/stations/*.toml``): what is plugged in where, and the bench's optics.

Resource ≠ driver (DESIGN.md §8.4): the station says which port each device is on; the driver never knows
whether the port leads to hardware or to the twin. ``port = "twin"`` asks the plugin to start the twin peers
(GRBL on a pty, PTP/IP on 127.0.0.1) and hand their real addresses to the same drivers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import regex
from pydantic import Field, field_validator, model_validator

from rig.config.faults import FaultPlan
from rig.config.loader import FIXTURES_DIR, StrictModel, load_toml
from rig.config.mount import MountDesign, ReworkSettings, ShimStock, check_as_built
from rig.errors import ArgumentError, ConfigError
from rig.spec.types import Axis, CaptureRetention

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


class HomingDirection(StrEnum):
    """Which way an axis seeks its homing switch, in GRBL's (and the station's) positive sense."""

    POSITIVE = "positive"  # GRBL's default; $23 bit clear
    NEGATIVE = "negative"  # $23 bit set


_FINITE = {"allow_inf_nan": False}


class AxisMapping(StrictModel):
    """How one station axis sits in GRBL's machine space (settings.md ``$23``, ``$27``, ``$10x``, ``$13x``).

    After homing, GRBL's machine space is ``[-travel, 0]`` on every axis: with positive homing the switch is at
    MPos 0 and the pull-off leaves the axis at ``-pull_off``; with negative homing the switch is at ``-travel``
    (limits.c limits_go_home). The driver writes ``work_offset`` into G54 (``G10 L2 P1``), so that GRBL's work
    coordinates are the station's: station = MPos - work_offset.
    """

    homing_direction: HomingDirection
    travel: float = Field(gt=0, le=10_000, description="GRBL max travel $13x, station units (mm or degrees)", **_FINITE)
    steps_per_unit: float = Field(gt=0, le=100_000, description="GRBL $10x, steps per station unit", **_FINITE)
    work_offset: float = Field(
        ge=-10_000, le=10_000, description="machine coordinate of station zero (G54), station units", **_FINITE
    )


class StageAxes(StrictModel):
    """The mapping of every bench axis; all three are required (an incomplete mapping is refused)."""

    carousel: AxisMapping  # GRBL X
    pitch: AxisMapping  # GRBL Y
    rail: AxisMapping  # GRBL Z

    def of(self, axis: Axis) -> AxisMapping:
        return {Axis.CAROUSEL: self.carousel, Axis.PITCH: self.pitch, Axis.RAIL: self.rail}[axis]


class StageConfig(StrictModel):
    """The GRBL 1.1 motion controller: port, wait budgets (seconds), and what its EEPROM must hold.

    Every wait of the driver is bounded by one of these budgets; the twin station may shorten them since its
    motion runs faster than real time.
    """

    port: str = Field(min_length=1, description='serial device, pyserial URL, or "twin"')
    baudrate: int = Field(115200, gt=0)
    timeout_s: float = Field(5.0, gt=0, le=600, **_FINITE)
    move_timeout_s: float = Field(60.0, gt=0, le=3600, **_FINITE)
    homing_timeout_s: float = Field(120.0, gt=0, le=3600, **_FINITE)
    poll_interval_s: float = Field(
        0.2,
        ge=0.1,
        le=5,
        description="status polling period while waiting for Idle; gnea/grbl interface.md: ~5 Hz, at most 10 Hz",
        **_FINITE,
    )
    alarm_message_timeout_s: float = Field(
        2.0,
        gt=0.5,
        le=60,
        description="wait for [MSG:Reset to continue] after a critical alarm (GRBL prints it 0.5 s after ALARM:N)",
        **_FINITE,
    )
    homing: bool = Field(True, description="$22: homing cycle enabled")
    soft_limits: bool = Field(True, description="$20: soft limits (requires homing)")
    hard_limits: bool = Field(True, description="$21: hard limits")
    pull_off_mm: float = Field(1.0, gt=0, le=100, description="$27: homing pull-off, station units", **_FINITE)
    status_mask: int = Field(1, ge=0, le=3, description="$10: bit 0 MPos (else WPos), bit 1 buffer state")
    axes: StageAxes

    @model_validator(mode="after")
    def _soft_limits_need_homing(self) -> StageConfig:
        if self.soft_limits and not self.homing:
            raise ValueError("homing = true when soft_limits = true (GRBL refuses $20=1 without $22=1: error:10)")
        return self


class PhoneConfig(StrictModel):
    port: str = Field(min_length=1, description='gphoto2 port ("usb:BUS,DEV", "ptpip:HOST:PORT:EVT") or "twin"')
    timeout_s: float = Field(10.0, gt=0, le=3600, description="one PTP operation, s")
    min_transfer_bytes_per_s: float = Field(
        20e6,
        gt=0,
        description="slowest sustained download the phone is allowed, bytes/s: an object of n bytes gets "
        "timeout_s + n / this (rig.devices.gphoto2_phone)",
    )
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
    render_processes: int = Field(
        0,
        ge=0,
        le=8,
        description="worker processes the twin phone renders and writes its frames in, as a phone has its own "
        "silicon (0: on the twin's own thread, sharing the bench's interpreter)",
    )


class StationConfig(StrictModel):
    name: str = Field(min_length=1)
    keep_captures: CaptureRetention = Field(
        CaptureRetention.FAILED, description="raw captures a finished run keeps: all, failed (FAIL/ERROR) or none"
    )
    serial_pattern: str = Field(r"^[A-Z0-9\-]{4,32}$", description="regex every unit serial must match")
    golden_interval_h: float = Field(
        24.0, gt=0, le=24 * 366, description="hours between golden-unit checks (rig msa golden) before it is overdue"
    )
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
    mount: MountDesign = MountDesign()
    shims: ShimStock = ShimStock()
    rework: ReworkSettings = ReworkSettings()

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
        check_as_built(self.mount, self.shims)
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

    def axis_ranges(self) -> dict[Axis, AxisRange]:
        """Each bench axis: its station range, units, limits and GRBL mapping (GRBL reports X, Y, Z)."""
        axes = self.stage.axes
        return {
            Axis.CAROUSEL: AxisRange(
                Axis.CAROUSEL, "carousel", "carousel_mm", 0.0, self.carousel.max_mm, "mm",
                self.carousel.max_rate_mm_min, self.carousel.accel_mm_s2, axes.carousel,
            ),
            Axis.PITCH: AxisRange(
                Axis.PITCH, "pitch", "pitch_deg", self.fixture.min_deg, self.fixture.max_deg, "deg",
                self.fixture.max_rate_deg_min, self.fixture.accel_deg_s2, axes.pitch,
            ),
            Axis.RAIL: AxisRange(
                Axis.RAIL, "rail", "rail_mm", self.rail.min_mm, self.rail.max_mm, "mm",
                self.rail.max_rate_mm_min, self.rail.accel_mm_s2, axes.rail,
            ),
        }  # fmt: skip


@dataclass(frozen=True)
class AxisRange:
    """One bench axis in station terms and where it lands in GRBL's machine space."""

    axis: Axis
    name: str  # the [stage.axes] table name
    argument: str  # the Stage.move_to keyword
    low: float
    high: float
    unit: str
    max_rate_per_min: float
    accel_per_s2: float
    mapping: AxisMapping

    @property
    def machine_low(self) -> float:
        return self.low + self.mapping.work_offset

    @property
    def machine_high(self) -> float:
        return self.high + self.mapping.work_offset

    def reachable_machine_range(self, pull_off: float) -> tuple[float, float]:
        """GRBL's travel ``[-travel, 0]`` less the pull-off at the switch end (the switch itself is a hard limit)."""
        travel = self.mapping.travel
        if self.mapping.homing_direction is HomingDirection.POSITIVE:
            return -travel, -pull_off
        return -travel + pull_off, 0.0


def check_axis_mapping(station: StationConfig, source: str | Path) -> None:
    """Every station range must fit GRBL's travel after homing; raises a one-line ConfigError naming the axis.

    The station range ``[low, high]`` maps to machine ``[low + work_offset, high + work_offset]``, which must lie
    inside ``[-travel, 0]`` without reaching the homing switch (pull-off ``$27``).
    """
    pull_off = station.stage.pull_off_mm
    for axis in station.axis_ranges().values():
        lo, hi = axis.reachable_machine_range(pull_off)
        m_lo, m_hi = axis.machine_low, axis.machine_high
        if not (lo - 1e-9 <= m_lo and m_hi <= hi + 1e-9) or not (math.isfinite(m_lo) and math.isfinite(m_hi)):
            raise ConfigError(
                source,
                f"stage.axes.{axis.name}.work_offset",
                axis.mapping.work_offset,
                f"an offset that puts the {axis.name} range [{axis.low:g}, {axis.high:g}] {axis.unit} (machine "
                f"[{m_lo:g}, {m_hi:g}]) inside GRBL's travel [{lo:g}, {hi:g}] (travel {axis.mapping.travel:g}, "
                f"homing {axis.mapping.homing_direction.value}, pull-off {pull_off:g})",
            )


DEFAULT_STATION = FIXTURES_DIR / "stations" / "twin.toml"


def load_station(path: str | Path = DEFAULT_STATION) -> StationConfig:
    """Load and validate a station file (including that its ranges fit the motion controller's travel)."""
    station = load_toml(path, StationConfig)
    check_axis_mapping(station, path)
    return station


@dataclass(frozen=True)
class RequiredSetting:
    """One GRBL ``$N`` value a station depends on: exact, or a lower bound (``at_least``)."""

    number: int
    value: float
    at_least: bool
    why: str

    def satisfied_by(self, found: float) -> bool:
        tolerance = 1e-3  # $$ prints 3 decimals
        return found >= self.value - tolerance if self.at_least else abs(found - self.value) <= tolerance


def required_grbl_settings(station: StationConfig) -> dict[int, RequiredSetting]:
    """The settings handshake: what the controller's EEPROM must hold for this station (gnea/grbl settings.md).

    Exact: report units mm (``$13=0``), limits and homing as configured, the homing direction mask and pull-off the
    axis mapping assumes, steps per unit, the spindle PWM range the light is scaled by (``$30`` = ``pwm_max``,
    ``$31=0``) and the status mask. Lower bounds: max rates, accelerations and travel at least the station's.
    """
    stage = station.stage
    required: dict[int, RequiredSetting] = {}

    def need(number: int, value: float, why: str, *, at_least: bool = False) -> None:
        required[number] = RequiredSetting(number, float(value), at_least, why)

    need(10, stage.status_mask, "status report mask (stage.status_mask)")
    need(13, 0, "positions reported in mm, not inches")
    need(20, int(stage.soft_limits), "soft limits (stage.soft_limits)")
    need(21, int(stage.hard_limits), "hard limits (stage.hard_limits)")
    need(22, int(stage.homing), "homing cycle (stage.homing)")
    mask = 0
    for index, axis in enumerate(station.axis_ranges().values()):
        if axis.mapping.homing_direction is HomingDirection.NEGATIVE:
            mask |= 1 << index
        need(100 + index, axis.mapping.steps_per_unit, f"steps per unit (stage.axes.{axis.name}.steps_per_unit)")
        need(110 + index, axis.max_rate_per_min, f"max rate of the {axis.name}", at_least=True)
        need(120 + index, axis.accel_per_s2, f"acceleration of the {axis.name}", at_least=True)
        need(130 + index, axis.mapping.travel, f"travel (stage.axes.{axis.name}.travel)", at_least=True)
    need(23, mask, "homing direction mask (stage.axes.*.homing_direction)")
    need(27, stage.pull_off_mm, "homing pull-off (stage.pull_off_mm)")
    need(30, station.light.pwm_max, "spindle max = the light's full scale (light.pwm_max)")
    need(31, 0, "spindle min 0 (the light dims to off)")
    return required
