"""Run the whole twin bench: the simulated unit and both protocol peers, on real transports.

``TwinServer.start()`` returns the addresses a real station file would carry: a serial device path (the GRBL
peer's pseudo-terminal) and a gphoto2 port string (``ptpip:127.0.0.1:PORT:EVENTPORT``). The drivers that then
open them are the factory's drivers, unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Self

from rig.config.faults import FaultPlan
from rig.config.lenses import LensCatalog
from rig.config.station import StationConfig
from rig.config.unit import TwinUnit
from rig.errors import ConfigError
from rig.twin.faults import FaultInjector, initial_grbl_faults, initial_ptp_faults
from rig.twin.grbl import GrblPeer
from rig.twin.operator import TwinOperator
from rig.twin.ptpip_peer import PtpIpPeer
from rig.twin.world import TwinBench

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
        faults: FaultPlan | None = None,
    ) -> None:
        if station.twin is None:
            raise ConfigError(station.name, "twin", None, "a [twin] table to run the twin")
        self.station = station
        self.unit = unit
        self.lenses = lenses
        self.bench = TwinBench(station, unit, lenses, seed=station.twin.seed if seed is None else seed)
        self.operator = TwinOperator(
            self.bench.state,
            lenses,
            mount=station.mount,
            hardware=self.bench.hardware,
            sensor_switch_s=unit.firmware.sensor_switch_latency_ms / 1000.0,
        )
        # faults of the unit file, the station's [twin.faults] and the caller's (issue #8)
        plan = (unit.faults or FaultPlan()).merged(station.twin.faults).merged(faults)
        self.grbl = GrblPeer(
            self.bench.state,
            station,
            time_scale=station.twin.time_scale,
            faults=initial_grbl_faults(plan),
            hardware=self.bench.hardware,
        )
        self.ptp = PtpIpPeer(
            self.bench, host=host, port=ptp_port, event_port=ptp_event_port, faults=initial_ptp_faults(plan)
        )
        self.faults = FaultInjector(self, plan)
        """The fault plan in force and the test API to break the bench now (``server.faults.inject(...)``)."""
        self.addresses: TwinAddresses | None = None

    def start(self) -> TwinAddresses:
        # the phone's render workers start while the bench homes and the lens goes on, not at the first capture
        self.bench.pipeline.warm_up()
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
        self.faults.close()
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
