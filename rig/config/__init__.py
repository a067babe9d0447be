"""The bench as data: typed, validated views of the TOML files in ``fixtures/``.

Every loader turns a bad file into one :class:`rig.errors.ConfigError` naming the file, the field, the value
and what was expected (DESIGN.md §7); nothing is clipped or defaulted silently.
"""

from rig.config.charts import ChartSpec, load_chart
from rig.config.lenses import LensCatalog, LensSpec, load_lens_catalog
from rig.config.limits import Limit, LimitSet, load_limits
from rig.config.loader import load_toml, read_toml
from rig.config.station import StationConfig, load_station
from rig.config.unit import TwinUnit, load_unit

__all__ = [
    "ChartSpec",
    "LensCatalog",
    "LensSpec",
    "Limit",
    "LimitSet",
    "StationConfig",
    "TwinUnit",
    "load_chart",
    "load_lens_catalog",
    "load_limits",
    "load_station",
    "load_toml",
    "load_unit",
    "read_toml",
]
