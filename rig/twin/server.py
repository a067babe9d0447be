"""Run the whole twin bench: the simulated unit and both protocol peers, on real transports.

``TwinServer.start()`` returns the addresses a real station file would carry: a serial device path (the GRBL
peer's pseudo-terminal) and a gphoto2 port string (``ptpip:127.0.0.1:PORT:EVENTPORT``). The drivers that then
open them are the factory's drivers, unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from rig.config.lenses import LensCatalog, load_lens_catalog
from rig.config.loader import resolve_path
from rig.config.station import StationConfig
from rig.config.unit import TwinUnit, load_unit
from rig.errors import ConfigError
from rig.twin.bench import TwinBench
from rig.twin.grbl_peer import GrblPeer
from rig.twin.operator import TwinOperator
from rig.twin.ptpip_peer import PtpIpPeer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TwinAddresses:
    serial_port: str  # e.g. /dev/pts/7: open it like /dev/ttyUSB0
    phone_port: str  # e.g. ptpip:127.0.0.1:40123:40124


class TwinServer:
    """The twin unit on its bench, reachable over a pty (GRBL) and TCP (PTP/IP)."""

    def __init__(
        self,
        station: StationConfig,
        unit: TwinUnit,
        lenses: LensCatalog,
        *,
        seed: int | None = None,
        ptp_port: int = 0,
        ptp_event_port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        if station.twin is None:
            raise ConfigError(station.name, "twin", None, "a [twin] table to run the twin")
        self.station = station
        self.unit = unit
        self.lenses = lenses
        self.bench = TwinBench(station, unit, lenses, seed=station.twin.seed if seed is None else seed)
        self.operator = TwinOperator(self.bench.state, lenses)
        self.grbl = GrblPeer(self.bench.state, station, time_scale=station.twin.time_scale)
        self.ptp = PtpIpPeer(self.bench, host=host, port=ptp_port, event_port=ptp_event_port)
        self.addresses: TwinAddresses | None = None

    def start(self) -> TwinAddresses:
        serial_port = self.grbl.start()
        try:
            phone_port = self.ptp.start()
        except BaseException:
            self.grbl.stop()
            raise
        self.addresses = TwinAddresses(serial_port=serial_port, phone_port=phone_port)
        log.info("twin %s serving: serial %s, phone %s", self.unit.serial, serial_port, phone_port)
        return self.addresses

    def stop(self) -> None:
        try:
            self.ptp.stop()
        finally:
            self.grbl.stop()
        self.addresses = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def load_twin_unit(station: StationConfig, unit: str | Path | None, *, station_file: Path | None = None) -> TwinUnit:
    """The unit on a twin station: ``unit`` (a path or a name in fixtures/units/) or the station's default."""
    from rig.config.unit import UNITS_DIR

    if unit is None:
        if station.twin is None:
            raise ConfigError(station.name, "twin.unit", None, "a twin unit for a twin station")
        return load_unit(resolve_path(station.twin.unit, station_file.parent if station_file else None))
    path = Path(unit)
    if not path.suffix and not path.exists():
        path = UNITS_DIR / f"{unit}.toml"
    return load_unit(path)


def load_station_lenses(station: StationConfig, *, station_file: Path | None = None) -> LensCatalog:
    return load_lens_catalog(resolve_path(station.lenses, station_file.parent if station_file else None))
