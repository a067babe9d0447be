"""The bench writes what it set into every capture it keeps (issue #15 scope 7).

A frame from the phone knows its exposure and lens (Exif) but not the bench: where the chart rail was, which chart
faced the lens, the fixture pitch, the light. :func:`bench_state` puts those together from the station and the
settings the plan asked for, and :func:`stamp` returns the capture's DNG with them as XMP (the ``rig:`` namespace
is documented in :mod:`rig.spec.capture_state`), so that ``rig measure focus RUN_FOLDER`` can
measure a run's own captures again without being told the rail positions.

Rail positions are relative to the station's focus position (``rig:RailFromFocusMm``), as everywhere in rig.
"""

from __future__ import annotations

from rig.config.station import StationConfig
from rig.spec.capture_state import CaptureBenchState, stamp


def bench_state(
    station: StationConfig,
    *,
    tag: str,
    chart: str,
    rail_mm: float,
    pitch_deg: float,
    light_level: float,
    exposure_time_s: float,
    iso: int,
) -> CaptureBenchState:
    """The bench state of one capture; ``rail_mm`` is relative to the station's focus position (mm)."""
    return CaptureBenchState(
        station=station.name,
        tag=tag,
        chart=chart,
        carousel_mm=float(station.carousel.slots[chart]),
        rail_from_focus_mm=float(rail_mm),
        rail_focus_mm=float(station.rail.focus_mm),
        collimator_focal_length_mm=float(station.optics.collimator_focal_length_mm),
        pitch_deg=float(pitch_deg),
        light_level=float(light_level),
        light_luminance_cd_m2=float(light_level * station.light.luminance_cd_m2_at_max),
        exposure_time_s=float(exposure_time_s),
        iso=int(iso),
        pixel_pitch_um=float(station.sensor.readout_pitch_um),
    )


__all__ = ["bench_state", "stamp"]
