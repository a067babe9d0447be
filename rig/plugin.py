"""pytest plugin of the bench (registered as the ``rig`` pytest11 entry point).

Options: ``--station PATH`` (default: the twin station). Fixtures: ``station``.
Importing this module must stay cheap: pytest loads it for every run in an environment where rig is installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.config.station import DEFAULT_STATION, StationConfig, load_station


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rig", "camera bench")
    group.addoption("--station", default=str(DEFAULT_STATION), help="station file (default: the twin station)")


@pytest.fixture(scope="session")
def station(pytestconfig: pytest.Config) -> StationConfig:
    """The station file the run uses, validated."""
    return load_station(Path(pytestconfig.getoption("--station")))
