"""Open the bench a station file describes: real drivers, or the same drivers on the twin's peers.

This is the one place that knows which classes implement the Protocols (labgrid's "resource ≠ driver"): the
station file says what is plugged in where (a serial port and a ``usb:``/``ptpip:`` phone address, or
``twin`` for both), :func:`open_bench` builds and opens the drivers and returns them typed by their Protocols.
The pytest plugin, the CLI, the benchmarks and the tests all open the bench through it, so a test exercises the
wiring a station runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rig.config.faults import FaultPlan
from rig.config.lenses import LensCatalog
from rig.config.station import TWIN_PORT, StationConfig
from rig.config.unit import TwinUnit
from rig.devices.protocols import Light, Operator, Phone, Stage
from rig.devices.retry import RetryLog
from rig.errors import ConfigError, RigError

if TYPE_CHECKING:
    from rig.twin.server import TwinServer

log = logging.getLogger(__name__)


@dataclass
class BenchDevices:
    """Everything plugged into the bench, opened once and closed together (in reverse order of opening)."""

    station: StationConfig
    stage: Stage
    light: Light
    phone: Phone
    operator: Operator
    twin: TwinServer | None = None
    """The twin server on a twin station (its ``bench`` holds the truth; plans never read it), else None."""
    closers: list[Callable[[], None]] = field(default_factory=list)
    retries: RetryLog = field(default_factory=RetryLog)
    """What the drivers repeated on their own (a download after reconnecting); the bench's steps record it."""
    homing: Future[None] | None = None
    """The stage's homing cycle begun by :meth:`start_homing` (None: not begun; :class:`BenchOps` homes then)."""

    def start_homing(self) -> None:
        """Begin the stage's homing cycle on a thread of its own, and return at once.

        Homing is a run's longest motion (≈ 58 s on a real bench, every axis to its switch and back) and needs
        nothing but the stage, so it runs while the run starts up: pytest, the plan's imports, the run record. Until
        it ends nothing else may use the stage's controller (GRBL takes no other command while homing):
        :class:`rig.bench.ops.BenchOps` waits for it before its first move or light command, and gets its error
        there, where its own retries home again.
        """
        if self.homing is not None:
            return
        homing: Future[None] = Future()

        def home() -> None:
            if not homing.set_running_or_notify_cancel():
                return
            try:
                self.stage.home()
            except BaseException as exc:  # handed to whoever waits for the stage (BenchOps.home)
                homing.set_exception(exc)
            else:
                homing.set_result(None)

        self.homing = homing
        threading.Thread(target=home, name="stage-homing", daemon=True).start()

    def reconnect_phone(self) -> None:
        """Close the (lost) phone session and open a new one."""
        try:
            self.phone.close()
        except RigError as exc:
            log.info("closing the lost phone connection: %s", exc)
        self.phone.open()

    def close(self) -> None:
        if self.homing is not None:
            # the controller is the homing thread's until the cycle ends (then the outputs go off, the port closes)
            wait_for([self.homing])
        for closer in reversed(self.closers):
            try:
                closer()
            except Exception as exc:  # closing must go on whatever one device says
                log.warning("closing %s: %s", closer, exc)
        self.closers.clear()


def open_bench(
    station: StationConfig,
    lenses: LensCatalog,
    *,
    unit: TwinUnit | None = None,
    faults: FaultPlan | None = None,
    operator: Operator | None = None,
    twin_station: StationConfig | None = None,
    seed: int | None = None,
) -> BenchDevices:
    """Build and open the station's devices; on a twin station start the twin for ``unit`` first.

    Parameters
    ----------
    station
        The validated station file.
    lenses
        The station's lens catalogue (the operator checks lens ids against it).
    unit
        The twin unit on the bench (twin stations only; required there).
    faults
        Extra faults for the twin (tests, the soak run), merged with the unit's and the station's.
    operator
        The hands at a real station (e.g. a web operator screen); default: prompts on this terminal. The twin's
        operator always acts on the twin.
    twin_station
        The station the twin simulates when it differs from the one the bench believes (a measurement-system
        study's station appraiser: the bench is told a slightly wrong calibration). Default: ``station``.
    seed
        The twin's noise seed (default: the station's).

    Returns
    -------
    BenchDevices
        Opened devices; call :meth:`BenchDevices.close` (or use :func:`bench_devices`) when done.
    """
    from rig.devices.gphoto2_phone import Gphoto2Phone
    from rig.devices.grbl import GrblController, GrblLight, GrblStage

    closers: list[Callable[[], None]] = []
    twin: TwinServer | None = None
    stage_port, phone_port = station.stage.port, station.phone.port
    try:
        if station.is_twin:
            from rig.twin.server import TwinServer

            if unit is None:
                raise ConfigError(station.name, "twin", None, "a twin unit to put on the twin station")
            twin = TwinServer(twin_station or station, unit, lenses, faults=faults, seed=seed)
            addresses = twin.start()
            closers.append(twin.stop)
            if stage_port == TWIN_PORT:
                stage_port = addresses.serial_port
            if phone_port == TWIN_PORT:
                phone_port = addresses.phone_port
        controller = GrblController.for_station(station, stage_port)
        controller.open()
        closers.append(controller.close)
        retries = RetryLog()
        phone = Gphoto2Phone(
            phone_port,
            timeout_s=station.phone.timeout_s,
            min_transfer_bytes_per_s=station.phone.min_transfer_bytes_per_s,
            retries=retries,
        )
        phone.open()
        closers.append(phone.close)
        if twin is not None:
            operator = twin.operator
        elif operator is None:
            from rig.devices.console_operator import ConsoleOperator

            operator = ConsoleOperator(phone, lenses)
        stage = GrblStage(controller, station)
        # Whatever ends the run, the bench is left dark and still before the port closes (closers run in reverse).
        closers.insert(closers.index(controller.close) + 1, stage.outputs_off)
        return BenchDevices(
            station=station,
            stage=stage,
            light=GrblLight(controller, station),
            phone=phone,
            operator=operator,
            twin=twin,
            closers=closers,
            retries=retries,
        )
    except BaseException:
        for closer in reversed(closers):
            closer()
        raise


@contextmanager
def bench_devices(
    station: StationConfig,
    lenses: LensCatalog,
    *,
    unit: TwinUnit | None = None,
    faults: FaultPlan | None = None,
) -> Iterator[BenchDevices]:
    """:func:`open_bench` as a context manager: the devices are closed however the block ends."""
    devices = open_bench(station, lenses, unit=unit, faults=faults)
    try:
        yield devices
    finally:
        devices.close()


class BenchAhead:
    """The bench opened before pytest starts, its stage homing meanwhile: the ``rig`` command's head start.

    Between the checked inputs and the plan's first step lie pytest's start, the plan's imports and the run record
    (≈ 2–3 s); homing needs none of them. The object is handed to pytest as a plugin: the plan's ``bench_devices``
    fixture takes these devices (and closes them when the session ends) instead of opening its own. An error
    opening them is kept and raised by that fixture, in the first step that needs the bench, which records it as
    it would have recorded the same error met there.
    """

    def __init__(self, station: StationConfig, lenses: LensCatalog, *, unit: TwinUnit | None) -> None:
        self._devices: BenchDevices | None = None
        self._error: Exception | None = None
        try:
            self._devices = open_bench(station, lenses, unit=unit)
        except Exception as exc:  # the step that needs the bench raises it (bench_devices)
            self._error = exc
        else:
            self._devices.start_homing()

    def devices(self) -> BenchDevices:
        """The opened devices, or the error opening them met."""
        if self._error is not None:
            raise self._error
        assert self._devices is not None  # one of the two is set by __init__
        return self._devices

    def close(self) -> None:
        """Close the devices if the session did not (no step needed the bench); idempotent."""
        if self._devices is not None:
            self._devices.close()
