"""The bench state a capture was taken at, as XMP in the capture's DNG (namespace ``rig:``, documented here).

The phone does not know the bench: it writes exposure, ISO, lens and time (Exif) but not where the chart rail
was. The bench adds what it set when it saves the frame (:mod:`rig.bench.capture_state`), so that a capture can
be measured again on its own — ``rig measure focus`` reads the rail positions of a sweep from its files.

Namespace ``http://ns.rig-bench.org/capture/1.0/``, preferred prefix ``rig``; one ``rdf:Description`` of simple
properties, each a decimal number (``repr`` of a double: exact round trip) or text:

=========================== ======= ==========================================================================
property                    unit    meaning
=========================== ======= ==========================================================================
``rig:SchemaVersion``               ``1``: this table
``rig:Station``                     station name (station file ``name``)
``rig:CaptureTag``                  the bench's tag for the frame (``focus-03``: the 4th frame of a sweep)
``rig:Chart``                       the carousel slot facing the lens (``sfr``, ``flat``, ``dotgrid``)
``rig:CarouselMm``          mm      that slot's carousel position (GRBL X)
``rig:RailFromFocusMm``     mm      **chart rail relative to the station's focus position** (+ = chart farther
                                    along +Z, image farther from the lens); the one rail convention of rig:
                                    ``rig twin capture --rail-mm``, ``rig measure focus --rail-mm``, the run's
                                    frames and sweeps all use it
``rig:RailFocusMm``         mm      the station's focus position on GRBL Z (absolute rail = this + the above)
``rig:CollimatorFocalLengthMm`` mm  the collimator's focal length f_c (rail → image focus: (f/f_c)² per mm)
``rig:FixturePitchDeg``     °       fixture pitch (GRBL Y; + = lens down)
``rig:LightLevel``                  light panel level, fraction of full brightness 0..1
``rig:LightLuminanceCdM2``  cd/m²   the panel's luminance at that level (station light calibration)
``rig:ExposureTimeS``       s       exposure time the bench set
``rig:ISO``                         ISO the bench set
``rig:PixelPitchUm``        µm      read-out pixel pitch of the frame (binning included; a window's: native)
=========================== ======= ==========================================================================

A window of a windowed read-out (the phone's ``ReadoutWindows``, :mod:`rig.spec.ptp`) says where it sits on the
sensor. The phone writes these into the window's DNG itself (with ``rig:PixelPitchUm``), and the bench keeps them
when it adds its own state; a frame of the normal read-out has none of them:

=========================== ======= ==========================================================================
``rig:WindowXPx``           px      left column of the window, native sensor pixels from the left edge
``rig:WindowYPx``           px      top row of the window, native sensor pixels from the top edge
``rig:WindowWidthPx``       px      window width, native pixels (= the DNG's width)
``rig:WindowHeightPx``      px      window height, native pixels (= the DNG's height)
``rig:SensorWidthPx``       px      the whole sensor's width, native pixels (the window's place against the
                                    optical centre: x_µm = (WindowXPx + col + ½ − SensorWidthPx/2)·PixelPitchUm)
``rig:SensorHeightPx``      px      the whole sensor's height, native pixels
=========================== ======= ==========================================================================

References
----------
Adobe, *XMP Specification Part 1* (2012) §7.9 (simple properties) and *Part 2* §1 (defining a namespace: a URI
ending in ``/`` and a preferred prefix); exiftool reads any such namespace as ``XMP-rig:<Property>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from rig.errors import ImageInputError
from rig.spec.ptp import ReadoutWindow
from rig.spec.xmp import XmpError, decode_packet, embed_xmp, encode_packet, tiff_xmp

RIG_NAMESPACE = "http://ns.rig-bench.org/capture/1.0/"
RIG_PREFIX = "rig"
SCHEMA_VERSION = "1"

_XMP_NAMES = {
    "station": "Station",
    "tag": "CaptureTag",
    "chart": "Chart",
    "carousel_mm": "CarouselMm",
    "rail_from_focus_mm": "RailFromFocusMm",
    "rail_focus_mm": "RailFocusMm",
    "collimator_focal_length_mm": "CollimatorFocalLengthMm",
    "pitch_deg": "FixturePitchDeg",
    "light_level": "LightLevel",
    "light_luminance_cd_m2": "LightLuminanceCdM2",
    "exposure_time_s": "ExposureTimeS",
    "iso": "ISO",
    "pixel_pitch_um": "PixelPitchUm",
}


_WINDOW_XMP_NAMES = {
    "x_px": "WindowXPx",
    "y_px": "WindowYPx",
    "width_px": "WindowWidthPx",
    "height_px": "WindowHeightPx",
    "sensor_width_px": "SensorWidthPx",
    "sensor_height_px": "SensorHeightPx",
    "pixel_pitch_um": "PixelPitchUm",
}


@dataclass(frozen=True)
class ReadoutWindowState:
    """Where a window of a windowed read-out sits on the sensor (native px) and its pitch (µm): the module's
    second table."""

    x_px: int
    y_px: int
    width_px: int
    height_px: int
    sensor_width_px: int
    sensor_height_px: int
    pixel_pitch_um: float

    @classmethod
    def of(
        cls, window: ReadoutWindow, *, sensor_width_px: int, sensor_height_px: int, pixel_pitch_um: float
    ) -> ReadoutWindowState:
        return cls(
            window.x_px, window.y_px, window.width_px, window.height_px, sensor_width_px, sensor_height_px,
            float(pixel_pitch_um),
        )  # fmt: skip

    @property
    def window(self) -> ReadoutWindow:
        return ReadoutWindow(self.x_px, self.y_px, self.width_px, self.height_px)

    def properties(self) -> dict[str, str]:
        """The ``rig:`` properties (name → text) of the window."""
        return {
            _WINDOW_XMP_NAMES[f.name]: repr(float(v)) if isinstance(v := getattr(self, f.name), float) else str(v)
            for f in fields(self)
        }

    def to_xmp(self) -> bytes:
        """The XMP packet the phone writes into a window's DNG."""
        return encode_packet(RIG_NAMESPACE, RIG_PREFIX, {"SchemaVersion": SCHEMA_VERSION, **self.properties()})

    @classmethod
    def from_properties(cls, props: dict[str, str], *, source: str) -> ReadoutWindowState | None:
        """The window in decoded ``rig:`` properties; None when they name no window (a normal read-out).

        Raises
        ------
        ImageInputError
            Some window properties are there but not all, or one is not a number of its kind.
        """
        present = [name for name in _WINDOW_XMP_NAMES.values() if name in props and name != "PixelPitchUm"]
        if not present:
            return None
        values: dict[str, object] = {}
        for f in fields(cls):
            name = _WINDOW_XMP_NAMES[f.name]
            if name not in props:
                raise ImageInputError(f"{source}: XMP rig:{name} missing: a window needs every rig:Window property")
            values[f.name] = _number(props[name], name=name, integer=f.type in ("int", int), source=source)
        return cls(**values)  # type: ignore[arg-type]


def _number(text: str, *, name: str, integer: bool, source: str) -> int | float:
    try:
        number = float(text)
    except ValueError:
        raise ImageInputError(f"{source}: XMP rig:{name} = {text!r}: expected a number") from None
    if not math.isfinite(number) or (integer and not number.is_integer()):
        kind = "an integer" if integer else "a finite number"
        raise ImageInputError(f"{source}: XMP rig:{name} = {text!r}: expected {kind}")
    return int(number) if integer else number


@dataclass(frozen=True)
class CaptureBenchState:
    """What the bench had set when a frame was taken (units in the names; see the module table)."""

    station: str
    tag: str
    chart: str
    carousel_mm: float
    rail_from_focus_mm: float
    rail_focus_mm: float
    collimator_focal_length_mm: float
    pitch_deg: float
    light_level: float
    light_luminance_cd_m2: float
    exposure_time_s: float
    iso: int
    pixel_pitch_um: float
    window: ReadoutWindowState | None = None
    """Where the frame sits on the sensor when it is a window of a windowed read-out (None: the whole sensor)."""

    @property
    def rail_absolute_mm(self) -> float:
        """The rail on GRBL Z (mm): only for display; measurements use :attr:`rail_from_focus_mm`."""
        return self.rail_focus_mm + self.rail_from_focus_mm

    def to_xmp(self) -> bytes:
        props = {"SchemaVersion": SCHEMA_VERSION}
        for f in fields(self):
            if f.name == "window":
                continue
            value = getattr(self, f.name)
            props[_XMP_NAMES[f.name]] = repr(float(value)) if isinstance(value, float) else str(value)
        if self.window is not None:
            if self.window.pixel_pitch_um != self.pixel_pitch_um:
                raise ValueError(f"a window at {self.window.pixel_pitch_um} µm in a frame at {self.pixel_pitch_um} µm")
            props.update(self.window.properties())
        return encode_packet(RIG_NAMESPACE, RIG_PREFIX, props)

    @classmethod
    def from_xmp(cls, packet: bytes, *, source: str) -> CaptureBenchState | None:
        """The state in an XMP packet; None when the packet has no ``rig:`` properties.

        Raises
        ------
        ImageInputError
            A ``rig:`` property is missing or not a number where one is expected (names file and property).
        """
        try:
            props = decode_packet(packet, RIG_NAMESPACE)
        except XmpError as exc:
            raise ImageInputError(f"{source}: {exc}") from None
        if not props:
            return None
        version = props.get("SchemaVersion")
        if version != SCHEMA_VERSION:
            raise ImageInputError(f"{source}: rig:SchemaVersion {version!r}: expected {SCHEMA_VERSION!r}")
        if not any(name in props for name in _XMP_NAMES.values() if name != "PixelPitchUm"):
            return None  # the phone's own packet of a window: no bench state (yet)
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "window":
                continue
            name = _XMP_NAMES[f.name]
            if name not in props:
                raise ImageInputError(f"{source}: XMP rig:{name} missing: expected every rig: bench-state property")
            text = props[name]
            if f.type in ("str", str):
                values[f.name] = text
                continue
            values[f.name] = _number(text, name=name, integer=f.type in ("int", int), source=source)
        values["window"] = ReadoutWindowState.from_properties(props, source=source)
        return cls(**values)  # type: ignore[arg-type]


def stamp(dng: bytes, state: CaptureBenchState) -> bytes:
    """The DNG with ``state`` as its IFD0 XMP packet (tag 700); image data and every other tag unchanged."""
    return embed_xmp(dng, state.to_xmp())


def read_capture_state(data: bytes, *, source: str) -> CaptureBenchState | None:
    """The bench state of a TIFF/DNG file's bytes (None: the file carries none, e.g. it is not a bench capture).

    Raises
    ------
    ImageInputError
        The file is not a TIFF, or its XMP is unreadable or carries an incomplete ``rig:`` state.
    """
    try:
        packet = tiff_xmp(data)
    except XmpError as exc:
        raise ImageInputError(f"{source}: {exc}") from None
    return None if packet is None else CaptureBenchState.from_xmp(packet, source=source)


def read_readout_window(data: bytes, *, source: str) -> ReadoutWindowState | None:
    """Where a TIFF/DNG file's pixels sit on the sensor when it is a window (the phone's XMP or the bench's).

    None: the file is a normal read-out (or carries no XMP).

    Raises
    ------
    ImageInputError
        The file is not a TIFF, or its XMP is unreadable or names an incomplete window.
    """
    try:
        packet = tiff_xmp(data)
        props = {} if packet is None else decode_packet(packet, RIG_NAMESPACE)
    except XmpError as exc:
        raise ImageInputError(f"{source}: {exc}") from None
    return ReadoutWindowState.from_properties(props, source=source)
