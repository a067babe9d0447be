"""Files a station refers to: its lens catalog and (on a twin station) the simulated unit."""

from __future__ import annotations

from pathlib import Path

from rig.config.lenses import LensCatalog, load_lens_catalog
from rig.config.loader import resolve_path
from rig.config.station import StationConfig
from rig.config.unit import UNITS_DIR, TwinUnit, load_unit
from rig.errors import ConfigError


def load_twin_unit(station: StationConfig, unit: str | Path | None, *, station_file: Path | None = None) -> TwinUnit:
    """The unit on a twin station: ``unit`` (a path, or a name in fixtures/units/) or the station's default."""
    if unit is None:
        if station.twin is None:
            raise ConfigError(station_file or station.name, "twin.unit", None, "a twin unit for a twin station")
        return load_unit(resolve_path(station.twin.unit, station_file.parent if station_file else None))
    path = Path(unit)
    if not path.suffix and not path.exists():
        path = UNITS_DIR / f"{unit}.toml"
    return load_unit(path)


def load_station_lenses(station: StationConfig, *, station_file: Path | None = None) -> LensCatalog:
    """The lens catalog the station names (relative to the station file or the repository)."""
    return load_lens_catalog(resolve_path(station.lenses, station_file.parent if station_file else None))
