"""The twin phone on PTP/IP for tests: a small-sensor twin bench, its peer on 127.0.0.1, libgphoto2 kept at home.

One place for what the peer's own tests (``tests/twin/test_ptpip_*``) and the gphoto2 driver's tests
(``tests/devices/``) both stand on. The directory conftests of tests/twin and tests/devices bind the fixtures;
a module that defines a fixture of the same name keeps its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.config import LensCatalog, StationConfig, TwinUnit, load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.twin.ptpip_peer import PtpIpPeer
from rig.twin.world import TwinBench

SMALL_SENSOR = {"full_width_px": 2048, "full_height_px": 1536, "binning": 4}  # 512×384 read-out: fast renders


def small_station(station: StationConfig | None = None) -> StationConfig:
    """The twin station with a 512×384 read-out (the tests exercise transport, not optics)."""
    station = station or load_station()
    return station.model_copy(update={"sensor": station.sensor.model_copy(update=SMALL_SENSOR)})


def golden_unit(**firmware: object) -> TwinUnit:
    unit = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    if firmware:
        unit = unit.model_copy(update={"firmware": unit.firmware.model_copy(update=firmware)})
    return unit


def make_bench(*, small: bool = True, **firmware: object) -> TwinBench:
    lenses: LensCatalog = load_lens_catalog()
    station = small_station() if small else load_station()
    return TwinBench(station, golden_unit(**firmware), lenses, seed=7)


@pytest.fixture(scope="module")
def gphoto2_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """libgphoto2 keeps its PTP/IP GUID in ~/.gphoto/settings: keep it out of the real home."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        yield home


@pytest.fixture
def bench() -> TwinBench:
    return make_bench()


@pytest.fixture
def peer(bench: TwinBench) -> Iterator[PtpIpPeer]:
    with PtpIpPeer(bench) as running:
        yield running
