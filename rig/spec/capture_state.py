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
``rig:PixelPitchUm``        µm      read-out pixel pitch of the frame (binning included)
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

    @property
    def rail_absolute_mm(self) -> float:
        """The rail on GRBL Z (mm): only for display; measurements use :attr:`rail_from_focus_mm`."""
        return self.rail_focus_mm + self.rail_from_focus_mm

    def to_xmp(self) -> bytes:
        props = {"SchemaVersion": SCHEMA_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            props[_XMP_NAMES[f.name]] = repr(float(value)) if isinstance(value, float) else str(value)
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
        values: dict[str, object] = {}
        for f in fields(cls):
            name = _XMP_NAMES[f.name]
            if name not in props:
                raise ImageInputError(f"{source}: XMP rig:{name} missing: expected every rig: bench-state property")
            text = props[name]
            if f.type in ("str", str):
                values[f.name] = text
                continue
            try:
                number = float(text)
            except ValueError:
                raise ImageInputError(f"{source}: XMP rig:{name} = {text!r}: expected a number") from None
            if not math.isfinite(number) or (f.type in ("int", int) and not number.is_integer()):
                raise ImageInputError(f"{source}: XMP rig:{name} = {text!r}: expected a finite {f.type}")
            values[f.name] = int(number) if f.type in ("int", int) else number
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
