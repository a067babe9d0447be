"""GRBL 1.1 motion controller over serial: the bench's stage (rail, carousel, fixture pitch, knocker) and light.

One :class:`GrblController` owns the serial port and speaks GRBL's line protocol; :class:`GrblStage` and
:class:`GrblLight` sit on the same controller and satisfy :class:`rig.devices.protocols.Stage` and
:class:`~rig.devices.protocols.Light`. The port is opened with :func:`serial.serial_for_url`, so
``/dev/ttyUSB0``, the twin's pty and pyserial URLs all work with the same code (DESIGN.md §8.3).

What the driver relies on, and where GRBL documents it (gnea/grbl doc/markdown/interface.md, commands.md,
settings.md; the wire strings and the alarm table live in :mod:`rig.spec.grbl`):

- One reply queue. Every line sent owes exactly one ``ok``/``error:N``, in order (interface.md "Grbl Response
  Messages"). Alarms, ``[MSG:]``, ``[GC:]``, ``[PRB:]``, status reports and the banner are routed without
  taking a reply; a line whose wait timed out keeps its place, so its late ``ok`` is consumed, not handed to the
  next line. Lines are sent one at a time (send-response), so GRBL's 128-byte RX buffer (``[OPT:..,128]``) never
  holds more than one line.
- Alarms as 1.1h does them (:data:`rig.spec.grbl.ALARM_BEHAVIOUR`): after a critical alarm GRBL answers nothing,
  not even ``?``, and discards a reset received in the 500 ms after ``ALARM:N``; recovery therefore waits for
  ``[MSG:Reset to continue]`` before Ctrl-X, then for the banner. A homing failure makes GRBL reset itself (ok,
  blank line, banner), which the driver waits for before sending anything else.
- Station coordinates: after homing the driver writes the station's work offsets into G54 (``G10 L2 P1``), so
  GRBL's work coordinates are the station's; positions are MPos - WCO (or WPos), feeds come from work deltas.
- A settings handshake at open: ``$$`` against :func:`rig.config.station.required_grbl_settings`.
"""

from __future__ import annotations

import errno
import logging
import math
import termios
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Self

import serial

from rig.config.station import AxisRange, StationConfig, check_axis_mapping, required_grbl_settings
from rig.errors import (
    ArgumentError,
    ConfigError,
    DeviceAlarm,
    DeviceCommandError,
    DeviceError,
    DeviceLost,
    DeviceStateError,
    DeviceTimeout,
)
from rig.spec.grbl import (
    ALARM_PREFIX,
    ALARM_REPORT_DELAY_S,
    BANNER_RE,
    ERROR_PREFIX,
    LINE_MAX_CHARS,
    MESSAGE_PREFIX,
    OK,
    OPTIONS_RE,
    PARAMETER_RE,
    PROBE_RE,
    RX_BUFFER_BYTES,
    SETTING_LINE_RE,
    STARTUP_RESULT_PREFIX,
    GrblError,
    Message,
    Realtime,
    Setting,
    StatusReport,
    alarm_behaviour,
    alarm_meaning,
    error_meaning,
    parse_status_report,
)
from rig.spec.types import Axis, StageState, StageStatus

AXES: tuple[Axis, Axis, Axis] = (Axis.CAROUSEL, Axis.PITCH, Axis.RAIL)  # GRBL reports X, Y, Z in this order

DEFAULT_POLL_INTERVAL_S = 0.2
"""5 Hz: gnea/grbl interface.md recommends about 5 Hz for status polls, 10 Hz at most."""
BOOT_WAIT_S = 2.5
"""An Arduino resets when the port opens and needs up to ~2 s to boot (gnea/grbl doc/script/stream.py)."""
SYNC_LINE = "G4 P0"
"""A zero dwell: GRBL answers it only once every queued motion has finished (protocol_buffer_synchronize)."""
_READ_SLICE_S = 0.05


@dataclass(frozen=True)
class GrblStatus:
    """One status report with machine and work positions in mm (degrees on Y), X, Y, Z order.

    ``mpos`` is reconstructed as WPos + WCO when the report carries WPos (``$10`` bit 0 clear); ``wco`` is the
    last work coordinate offset GRBL reported (it sends WCO only every 10-30 reports or after a change).
    """

    state: StageState
    substate: int | None
    mpos: tuple[float, float, float]
    wco: tuple[float, float, float]
    feed_per_min: float
    spindle: float | None
    report: StatusReport
    raw: str = ""

    @property
    def wpos(self) -> tuple[float, float, float]:
        return (self.mpos[0] - self.wco[0], self.mpos[1] - self.wco[1], self.mpos[2] - self.wco[2])

    @property
    def pins(self) -> str:
        return self.report.pins

    def to_stage_status(self) -> StageStatus:
        """The Protocol's view: state and station (= GRBL work) position per bench axis."""
        return StageStatus(
            state=self.state,
            position=dict(zip(AXES, self.wpos, strict=True)),
            feed=self.feed_per_min,
            spindle=self.spindle or 0.0,
        )


def parse_status(line: str, *, wco: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> GrblStatus:
    """Parse a GRBL 1.1 status report (grammar: :func:`rig.spec.grbl.parse_status_report`).

    Parameters
    ----------
    line
        The report including its chevrons, e.g. ``<Idle|MPos:0.000,0.000,0.000|FS:0,0|WCO:0.000,0.000,0.000>``.
    wco
        The last known work coordinate offset, used when this report omits ``WCO``.

    Raises
    ------
    DeviceCommandError
        The line is not a status report, or names an unknown machine state.
    """
    try:
        report = parse_status_report(line)
    except (ValueError, IndexError) as exc:
        raise DeviceCommandError(f"stage sent a malformed status report ({exc}): {line!r}") from None
    try:
        state = StageState(report.state)
    except ValueError:
        raise DeviceCommandError(f"stage reported an unknown state {report.state!r} in {line!r}") from None
    report_wco = report.wco if report.wco is not None else wco
    if report.mpos is not None:
        mpos = report.mpos
    else:
        assert report.wpos is not None
        w = report.wpos
        mpos = (w[0] + report_wco[0], w[1] + report_wco[1], w[2] + report_wco[2])
    return GrblStatus(
        state=state,
        substate=report.substate,
        mpos=mpos,
        wco=report_wco,
        feed_per_min=report.feed,
        spindle=report.spindle,
        report=report,
        raw=line,
    )


@dataclass(frozen=True)
class _Wait:
    """A deadline on time.monotonic() and the budget it came from (for the error message)."""

    deadline: float
    timeout_s: float

    @classmethod
    def of(cls, timeout_s: float) -> _Wait:
        return cls(time.monotonic() + timeout_s, timeout_s)

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.deadline


def _drain(port: serial.SerialBase) -> None:
    """Wait until the written bytes have left (``tcdrain``), however often a signal interrupts the wait.

    A signal with a Python handler (Ctrl-C's, a profiler's, a supervisor's SIGTERM) fails ``tcdrain()`` with EINTR,
    and CPython's ``termios``, unlike ``os``, ``select`` and ``socket``, does not retry it (PEP 475 lists the
    functions it changed; ``termios`` is not among them). The bytes are already in the kernel's queue, so waiting
    again is right; reading EINTR as a lost device ended a sign-off's step as ERROR under py-spy.
    """
    while True:
        try:
            port.flush()
            return
        except termios.error as exc:
            if exc.args[0] != errno.EINTR:
                raise


@dataclass
class _Pending:
    """A line sent, and the one ``ok``/``error:N`` it is owed."""

    line: str
    answer: list[str] = field(default_factory=list)  # [GC:], $N=, [VER:] ... received before the reply
    reply: str | None = None
    alarm: int | None = None  # an ALARM:N that arrived while this line was the oldest unanswered
    abandoned: bool = False  # its caller gave up (timeout, critical alarm): the late reply is consumed silently
    dropped: bool = False  # GRBL reset before answering: no reply will ever come


@dataclass
class _Session:
    """What the controller told us since the port opened; the alarm part ends with a reset."""

    version: str = ""
    alarm_code: int | None = None
    silent: bool = False  # a critical alarm: GRBL answers nothing, not even '?', until Ctrl-X
    reset_armed: bool = False  # [MSG:Reset to continue] came: a Ctrl-X now counts
    self_reset_expected: bool = False  # GRBL will print the banner by itself (homing failure, abort cycle)
    position_lost: bool = False  # re-home before any move
    locked: bool = False  # [MSG:'$H'|'$X' to unlock] since the last banner
    eeprom_lost: bool = False  # error:7 before the banner: settings_restore ran
    wco: tuple[float, float, float] = (0.0, 0.0, 0.0)
    probe: str | None = None
    banners: int = 0
    last_status: GrblStatus | None = None
    statuses: int = 0
    messages: deque[str] = field(default_factory=lambda: deque(maxlen=200))


class GrblController:
    """One GRBL 1.1 controller on a serial port; shared by :class:`GrblStage` and :class:`GrblLight`.

    Parameters
    ----------
    port
        Serial device or pyserial URL (``/dev/ttyUSB0``, the twin's ``/dev/pts/N``, ``rfc2217://...``).
    baudrate
        115200 for GRBL 1.1.
    timeout_s
        Budget for any single answer (a line's ``ok``, a status report, the banner), seconds.
    move_timeout_s
        Budget for a motion to finish (a move reaching Idle), seconds.
    homing_timeout_s
        Budget for the homing cycle, seconds.
    poll_interval_s
        Minimum time between two ``?`` polls while waiting for Idle, seconds.
    alarm_message_timeout_s
        Budget for ``[MSG:Reset to continue]`` after a critical alarm (GRBL prints it 0.5 s after the alarm).
    station
        When given, :meth:`open` runs the settings handshake for it (:meth:`check_settings`).
    logger
        Defaults to a logger named after the port.

    Notes
    -----
    No I/O happens in the constructor. :meth:`open` is counted: the Stage and the Light on one controller each
    open and close it, and the port closes with the last :meth:`close`.
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        timeout_s: float = 5.0,
        move_timeout_s: float = 60.0,
        homing_timeout_s: float = 120.0,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        alarm_message_timeout_s: float = 2.0,
        station: StationConfig | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.move_timeout_s = move_timeout_s
        self.homing_timeout_s = homing_timeout_s
        self.poll_interval_s = poll_interval_s
        self.alarm_message_timeout_s = alarm_message_timeout_s
        self.station = station
        self.log = logger or logging.getLogger(f"{__name__}.controller[{port}]")
        self._serial: serial.SerialBase | None = None
        self._users = 0
        self._rx = bytearray()
        self._pending: deque[_Pending] = deque()
        self._session = _Session()
        self.settings: dict[int, float] = {}
        """``$$`` as read by the last :meth:`read_settings` (the handshake at open)."""
        self.rx_buffer_bytes = RX_BUFFER_BYTES
        """GRBL's serial RX buffer from ``$I`` (``[OPT:..,blocks,rx]``)."""

    @classmethod
    def for_station(cls, station: StationConfig, port: str | None = None, *, handshake: bool = True) -> GrblController:
        """A controller with the station's port and budgets; ``handshake``: check the settings at open."""
        s = station.stage
        return cls(
            port or s.port,
            baudrate=s.baudrate,
            timeout_s=s.timeout_s,
            move_timeout_s=s.move_timeout_s,
            homing_timeout_s=s.homing_timeout_s,
            poll_interval_s=s.poll_interval_s,
            alarm_message_timeout_s=s.alarm_message_timeout_s,
            station=station if handshake else None,
        )

    # ------------------------------------------------------------------------------------------- lifecycle
    @property
    def is_open(self) -> bool:
        return self._serial is not None

    @property
    def version(self) -> str:
        """Firmware version from the last banner, e.g. ``1.1h``."""
        return self._session.version

    @property
    def messages(self) -> list[str]:
        """Push messages (``[MSG:...]``, alarms, startup-line results) since the port opened, oldest first."""
        return list(self._session.messages)

    @property
    def needs_reset(self) -> bool:
        """True after a critical alarm: GRBL ignores every line (and ``?``) until a soft reset."""
        return self._session.silent

    @property
    def alarm_code(self) -> int | None:
        """The last ``ALARM:N`` not yet cleared by an unlock or homing, or None."""
        return self._session.alarm_code

    @property
    def gcode_locked(self) -> bool:
        """GRBL is in Alarm (its power-up lock or an alarm): it refuses G-code and its outputs are off."""
        return self._session.locked or self._session.alarm_code is not None or self._session.silent

    @property
    def position_lost(self) -> bool:
        """An alarm that loses the position (hard limit, abort cycle, homing failure) happened since homing."""
        return self._session.position_lost

    @property
    def eeprom_lost(self) -> bool:
        """GRBL reported ``error:7`` at power-up: its settings were restored to the firmware defaults."""
        return self._session.eeprom_lost

    @property
    def pending_replies(self) -> int:
        """Lines sent whose ``ok``/``error`` has not arrived yet (abandoned ones included)."""
        return len(self._pending)

    def open(self) -> None:
        """Open the port, wait for GRBL's banner and (with a station) run the settings handshake.

        Opening the port resets an Arduino (DTR), which then prints the banner. A board that does not reset is
        woken with a soft reset (Ctrl-X) once :data:`BOOT_WAIT_S` pass without one.
        """
        if self._serial is not None:
            self._users += 1
            return
        try:
            self._serial = serial.serial_for_url(
                self.port, baudrate=self.baudrate, timeout=_READ_SLICE_S, write_timeout=self.timeout_s
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceLost(f"stage lost: cannot open {self.port}: {exc}") from exc
        self._rx.clear()
        self._pending.clear()
        self._session = _Session()
        self._users = 1
        try:
            try:
                self._wait_banner(_Wait.of(min(BOOT_WAIT_S, self.timeout_s)))
            except DeviceTimeout:
                self.log.info("no banner after opening %s, sending a soft reset", self.port)
                self._write(Realtime.SOFT_RESET.value)
                self._wait_banner(_Wait.of(self.timeout_s))
            self.status()  # drains what follows the banner and proves the link both ways
            if self.station is not None:
                self.check_settings(self.station)
        except BaseException:
            self._close_port()
            raise

    def close(self) -> None:
        if self._serial is None:
            return
        self._users -= 1
        if self._users <= 0:
            self._close_port()

    def _close_port(self) -> None:
        port, self._serial, self._users = self._serial, None, 0
        self._pending.clear()
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError) as exc:
                self.log.debug("closing %s: %s", self.port, exc)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- raw I/O
    def _port(self) -> serial.SerialBase:
        if self._serial is None:
            raise DeviceStateError(f"stage {self.port} is not open (call open() first)")
        return self._serial

    def _write(self, data: bytes) -> None:
        port = self._port()
        try:
            port.write(data)
            _drain(port)
        except serial.SerialTimeoutException as exc:
            raise DeviceTimeout(f"stage {self.port}: write not accepted within {self.timeout_s} s") from exc
        except (serial.SerialException, OSError, termios.error) as exc:
            # a vanished pty/USB device fails tcdrain() with termios.error (EIO), not a SerialException
            self._close_port()
            raise DeviceLost(f"stage lost: {self.port}: {exc}") from exc

    def _readline(self, wait: _Wait, waiting_for: str) -> str:
        """The next non-empty line; DeviceTimeout when the wait's deadline passes first."""
        port = self._port()
        while True:
            newline = self._rx.find(b"\n")
            if newline >= 0:
                raw = bytes(self._rx[:newline])
                del self._rx[: newline + 1]
                text = raw.decode("ascii", errors="replace").strip()
                if text:  # GRBL prints a blank line before its banner
                    self.log.debug("<< %s", text)
                    return text
                continue
            if wait.expired:
                raise DeviceTimeout(f"stage {self.port}: no answer to {waiting_for} within {wait.timeout_s:g} s")
            try:
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                self._close_port()
                raise DeviceLost(f"stage lost: {self.port}: {exc}") from exc
            self._rx.extend(chunk)

    def _pump(self, wait: _Wait, waiting_for: str) -> None:
        """Read one line and route it (the only reader: every line goes through :meth:`_route`)."""
        self._route(self._readline(wait, waiting_for))

    # ------------------------------------------------------------------------------------------- routing
    def _route(self, line: str) -> None:
        session = self._session
        if line == OK or line.startswith(ERROR_PREFIX):
            self._on_reply(line)
        elif line.startswith("<"):
            status = parse_status(line, wco=session.wco)
            session.wco = status.wco
            session.last_status = status
            session.statuses += 1
        elif line.startswith(ALARM_PREFIX):
            self._on_alarm(line)
        elif line == Message.RESET_TO_CONTINUE:
            session.reset_armed = True
            session.messages.append(line)
        elif line == Message.UNLOCK_HINT:
            session.locked = True
            session.messages.append(line)
        elif (match := BANNER_RE.match(line)) is not None:
            self._on_banner(match["version"])
        elif line.startswith((MESSAGE_PREFIX, STARTUP_RESULT_PREFIX)):
            session.messages.append(line)  # feedback, and results of the $N startup lines (">G21:ok")
            self.log.info("stage message: %s", line)
        elif self._pending and not self._pending[0].dropped:
            if PROBE_RE.match(line):
                session.probe = line
            self._pending[0].answer.append(line)
        elif SETTING_LINE_RE.match(line) and session.eeprom_lost:
            pass  # the $$ dump GRBL prints after restoring its defaults at power-up
        else:
            session.messages.append(line)
            self.log.info("stage: unsolicited %r", line)

    def _on_reply(self, line: str) -> None:
        session = self._session
        if not self._pending:
            if line == f"{ERROR_PREFIX}{int(GrblError.SETTING_READ_FAIL)}" and session.banners == 0:
                session.eeprom_lost = True  # settings_init: EEPROM read failed, defaults restored
                self.log.error("stage %s: %s", self.port, error_meaning(GrblError.SETTING_READ_FAIL))
            else:
                self.log.warning("stage %s: %r with no line waiting for it (ignored)", self.port, line)
            return
        pending = self._pending.popleft()
        pending.reply = line
        if pending.abandoned:
            self.log.info("stage %s: late %r to %r consumed", self.port, line, pending.line)

    def _on_alarm(self, line: str) -> None:
        session = self._session
        session.messages.append(line)
        try:
            code = int(line[len(ALARM_PREFIX) :])
        except ValueError:
            code = -1
        how = alarm_behaviour(code)
        session.alarm_code = code
        session.silent |= how.critical
        session.reset_armed = False
        session.position_lost |= how.position_lost
        session.self_reset_expected |= how.resets_itself
        if self._pending:
            self._pending[0].alarm = code
        self.log.warning("stage %s: %s", self.port, alarm_meaning(code))

    def _on_banner(self, version: str) -> None:
        session = self._session
        for pending in self._pending:
            pending.dropped = True  # GRBL cleared its input buffer: these lines will never be answered
        self._pending.clear()
        session.version = version
        session.banners += 1
        session.silent = session.reset_armed = session.self_reset_expected = session.locked = False
        self.log.info("GRBL %s on %s", version, self.port)

    def _wait_banner(self, wait: _Wait) -> None:
        banners = self._session.banners
        while self._session.banners == banners:
            self._pump(wait, "the startup banner")

    # ------------------------------------------------------------------------------------------- commands
    def command(self, line: str, *, timeout_s: float | None = None) -> list[str]:
        """Send one line and wait for its own ``ok``.

        Returns
        -------
        list of str
            Lines received before the ``ok`` that answer it (``$$`` settings, ``[GC:...]``, ``[VER:...]``...).

        Raises
        ------
        DeviceCommandError
            GRBL answered ``error:N``; the message gives GRBL's meaning of N.
        DeviceAlarm
            An ``ALARM:N`` came while the line ran (its own reply, and GRBL's self-reset, are consumed first
            unless the alarm is critical: then GRBL answers only after a reset).
        DeviceTimeout
            No answer within ``timeout_s`` (default :attr:`timeout_s`); the late answer will be consumed.
        """
        text = line.strip()
        if "\n" in text or "\r" in text or len(text) > LINE_MAX_CHARS or not text.isascii():
            raise ArgumentError(f"stage command {line!r}: expected one ASCII line of at most {LINE_MAX_CHARS} chars")
        session = self._session
        if session.silent:
            raise DeviceAlarm(
                f"stage {self.port}: {alarm_meaning(session.alarm_code or 0)}; GRBL accepts nothing but a "
                "soft reset now (call recover())",
                session.alarm_code,
            )
        budget = self.timeout_s if timeout_s is None else timeout_s
        if session.self_reset_expected:
            self._wait_banner(_Wait.of(self.timeout_s))  # input sent before GRBL's own reset would be lost
        pending = _Pending(text)
        self._pending.append(pending)
        self.log.debug(">> %s", text)
        self._write(text.encode("ascii") + b"\n")
        wait = _Wait.of(budget)
        try:
            while pending.reply is None:
                if pending.dropped:
                    raise DeviceAlarm(
                        f"stage {self.port}: controller reset while {text!r} ran: position unknown, re-home",
                        session.alarm_code,
                    )
                if pending.alarm is not None and alarm_behaviour(pending.alarm).critical:
                    raise DeviceAlarm(f"stage {self.port}: {alarm_meaning(pending.alarm)} (on {text!r})", pending.alarm)
                self._pump(wait, repr(text))
        except DeviceError:
            pending.abandoned = True
            raise
        if pending.alarm is not None:
            if session.self_reset_expected:
                self._wait_banner(_Wait.of(self.timeout_s))
            raise DeviceAlarm(f"stage {self.port}: {alarm_meaning(pending.alarm)} (on {text!r})", pending.alarm)
        if pending.reply != OK:
            try:
                code = int(pending.reply[len(ERROR_PREFIX) :])
            except ValueError:
                code = -1
            raise DeviceCommandError(f"stage {self.port}: {text!r} → {error_meaning(code)}", code)
        return pending.answer

    def status(self) -> GrblStatus:
        """Ask for a realtime status report (``?``) and parse it.

        After a critical alarm GRBL does not answer ``?`` (protocol.c's critical loop); the driver knows it from
        the alarm line and returns at once the last position it saw, in state Alarm, without asking.
        """
        if self._session.silent:
            return self._silent_status()
        seen = self._session.statuses
        self._write(Realtime.STATUS.value)
        wait = _Wait.of(self.timeout_s)
        while self._session.statuses == seen:
            if self._session.silent:
                return self._silent_status()
            self._pump(wait, "a status query '?'")
        status = self._session.last_status
        assert status is not None
        return status

    def _silent_status(self) -> GrblStatus:
        last = self._session.last_status
        report = StatusReport(state=StageState.ALARM.value, mpos=last.mpos if last else (math.nan,) * 3)
        return GrblStatus(
            state=StageState.ALARM,
            substate=None,
            mpos=report.mpos or (math.nan, math.nan, math.nan),
            wco=self._session.wco,
            feed_per_min=0.0,
            spindle=0.0,
            report=report,
            raw=f"(no report: {alarm_meaning(self._session.alarm_code or 0)}; GRBL is silent until reset)",
        )

    def wait_idle(self, *, timeout_s: float | None = None) -> GrblStatus:
        """Wait until the controller is Idle: a zero dwell (answered when the planner is empty), then ``?``.

        Raises DeviceAlarm if it reports Alarm and DeviceTimeout after ``timeout_s`` (default
        :attr:`move_timeout_s`).
        """
        budget = self.move_timeout_s if timeout_s is None else timeout_s
        wait = _Wait.of(budget)
        try:
            self.command(SYNC_LINE, timeout_s=budget)
        except DeviceTimeout:
            status = self.status()
            raise DeviceTimeout(f"stage {self.port}: not Idle within {budget:g} s (last status {status.raw})") from None
        while True:
            polled_at = time.monotonic()
            status = self.status()
            if status.state is StageState.IDLE:
                return status
            if status.state is StageState.ALARM:
                code = self._session.alarm_code
                meaning = alarm_meaning(code) if code is not None else "in alarm"
                raise DeviceAlarm(f"stage {self.port}: {meaning} (status {status.raw})", code)
            if wait.expired:
                raise DeviceTimeout(f"stage {self.port}: not Idle within {budget:g} s (last status {status.raw})")
            # a bounded poll rate (GRBL's guidance: ~5 Hz), not a sleep "for the hardware"
            time.sleep(max(0.0, min(polled_at + self.poll_interval_s, wait.deadline) - time.monotonic()))

    def read_settings(self) -> dict[int, float]:
        """``$$``: the controller's settings ``{N: value}`` (also kept in :attr:`settings`)."""
        values: dict[int, float] = {}
        for line in self.command("$$"):
            match = SETTING_LINE_RE.match(line)
            if match:
                values[int(match["number"])] = float(match["value"])
        self.settings = values
        return values

    def settings_problems(self, station: StationConfig) -> list[str]:
        """Each setting that differs from what ``station`` requires: ``$N = found, expected value (why)``."""
        found = self.read_settings()
        problems = []
        for number, need in required_grbl_settings(station).items():
            value = found.get(number)
            if value is None or not need.satisfied_by(value):
                expected = f"at least {need.value:g}" if need.at_least else f"{need.value:g}"
                shown = "(missing)" if value is None else f"{value:g}"
                problems.append(f"${number} = {shown}, expected {expected} ({need.why})")
        return problems

    def check_settings(self, station: StationConfig) -> None:
        """The handshake at open: the EEPROM, the travel and every setting the station depends on.

        Raises
        ------
        DeviceStateError
            ``error:7`` at power-up (settings lost), or settings that differ from the station's.
        ConfigError
            The station's axis ranges do not fit the controller's travel (``$13x``): bad station input.
        """
        if self._session.eeprom_lost:
            raise DeviceStateError(
                f"stage {self.port}: controller settings were lost (EEPROM): GRBL reported error:7 at power-up and "
                "restored its defaults; run `rig station configure` and re-check the station"
            )
        for line in self.command("$I"):
            match = OPTIONS_RE.match(line)
            if match:
                self.rx_buffer_bytes = int(match["rx"])
        check_axis_mapping(station, station.name)
        problems = self.settings_problems(station)
        for axis_index, axis in enumerate(station.axis_ranges().values()):
            travel = self.settings.get(Setting.X_MAX_TRAVEL_MM + axis_index)
            if travel is not None and travel + 1e-3 < axis.mapping.travel:
                raise ConfigError(
                    station.name,
                    f"stage.axes.{axis.name}.travel",
                    axis.mapping.travel,
                    f"at most the controller's ${130 + axis_index} = {travel:g} {axis.unit} (GRBL's travel)",
                )
        if problems:
            raise DeviceStateError(
                f"stage {self.port}: controller settings differ from station {station.name}: "
                + "; ".join(problems)
                + " (run `rig station configure` to write them)"
            )

    def feed_hold(self) -> None:
        """Realtime ``!``: decelerate to a stop and hold (state Hold)."""
        self._write(Realtime.FEED_HOLD.value)

    def cycle_start(self) -> None:
        """Realtime ``~``: resume after a feed hold."""
        self._write(Realtime.CYCLE_START.value)

    def soft_reset(self) -> None:
        """Realtime Ctrl-X, then wait for the banner; an ``ALARM:3``/``ALARM:6`` it causes is recorded.

        After a critical alarm a reset sent within 500 ms is discarded by GRBL, so this first waits (bounded by
        :attr:`alarm_message_timeout_s`) for ``[MSG:Reset to continue]``.
        """
        session = self._session
        if session.silent and not session.reset_armed:
            wait = _Wait.of(self.alarm_message_timeout_s)
            while not session.reset_armed:
                try:
                    self._pump(wait, str(Message.RESET_TO_CONTINUE))
                except DeviceTimeout:
                    self.log.warning("stage %s: no %s; resetting anyway", self.port, Message.RESET_TO_CONTINUE)
                    break
        self._write(Realtime.SOFT_RESET.value)
        # ALARM:3 (abort during motion) delays the banner by GRBL's 500 ms alarm report
        self._wait_banner(_Wait.of(self.timeout_s + ALARM_REPORT_DELAY_S))

    def await_self_reset(self) -> None:
        """After an alarm GRBL clears by resetting itself (homing failure, abort cycle): wait for its banner."""
        if self._session.self_reset_expected:
            self._wait_banner(_Wait.of(self.timeout_s + ALARM_REPORT_DELAY_S))

    def clear_reset(self) -> None:
        """Whatever the last alarm demands before GRBL listens again: its own reset, or ours after the message."""
        if self._session.silent:
            self.soft_reset()
        else:
            self.await_self_reset()

    def home(self) -> None:
        """``$H`` within :attr:`homing_timeout_s`; a success clears the alarm and the lost-position flag."""
        self.clear_reset()
        self.command("$H", timeout_s=self.homing_timeout_s)
        self._session.alarm_code = None
        self._session.position_lost = self._session.locked = False

    def unlock(self) -> None:
        """Clear an alarm with ``$X`` (after the reset a critical alarm demands); the position may be wrong."""
        self.clear_reset()
        self.command("$X")
        self._session.alarm_code = None
        self._session.locked = False


class _OnController:
    """Open/close and context management delegated to a shared controller."""

    def __init__(self, controller: GrblController) -> None:
        self.controller = controller

    def open(self) -> None:
        self.controller.open()

    def close(self) -> None:
        self.controller.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finite(name: str, value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ArgumentError(f"{name} = {value!r}: expected a number") from None
    if not math.isfinite(number):
        raise ArgumentError(f"{name} = {value!r}: expected a finite number")
    return number


class GrblStage(_OnController):
    """The chart rail (Z, mm), carousel (X, mm), fixture pitch (Y, degrees) and knocker on a GRBL controller.

    Station coordinates are GRBL work coordinates: :meth:`home` writes the station's work offsets into G54.
    Targets are checked against the station's range before anything is sent; feeds come from the station.
    """

    def __init__(self, controller: GrblController, station: StationConfig) -> None:
        super().__init__(controller)
        self.station = station
        self._axes: dict[Axis, AxisRange] = station.axis_ranges()
        self._referenced = False  # homed (or, without homing, unlocked) and G54 set since the last reset
        # where the last move came to rest, as GRBL reported it Idle; None once anything could have moved the axes
        # since (a move under way or failed, homing, a reset): then the next move asks GRBL first
        self._resting: dict[Axis, float] | None = None

    def close(self) -> None:
        """Switch the knocker (and spindle) off before the last user closes the port."""
        self.outputs_off()
        super().close()

    def outputs_off(self) -> None:
        """``M5 M9``: the light (spindle PWM) and the knocker (coolant output) off, as GRBL's own reset does.

        Skipped while G-code is locked (alarm): GRBL's reset has already switched both off then
        (gnea/grbl ``mc_reset``).
        """
        c = self.controller
        if c.is_open and not c.gcode_locked:
            try:
                c.command("M5 M9")
            except DeviceError as exc:
                c.log.warning("stage %s: could not switch the outputs off: %s", c.port, exc)

    def _work_offsets_line(self) -> str:
        words = " ".join(f"{a.value}{self._axes[a].mapping.work_offset:.3f}" for a in AXES)
        return f"G10 L2 P1 {words}"

    def _set_work_coordinates(self) -> None:
        """G54 = the station's work offsets; G92 cleared; mm, absolute (gnea/grbl commands.md, G10 L2)."""
        c = self.controller
        expected = tuple(self._axes[a].mapping.work_offset for a in AXES)
        stored = None
        for line in c.command("$#"):
            match = PARAMETER_RE.match(line)
            if match and match["name"] == "G54":
                stored = tuple(float(v) for v in match["values"].split(","))
        if stored is None or any(abs(v - e) > 1e-3 for v, e in zip(stored, expected, strict=True)):
            c.command(self._work_offsets_line())  # written to EEPROM: only when it differs (wear)
        c.command("G21 G90 G54 G92.1")
        status = c.status()
        if any(abs(w - e) > 1e-3 for w, e in zip(status.wco, expected, strict=True)):
            raise DeviceCommandError(f"stage {c.port}: work offset is {status.wco} after G10 L2, expected {expected}")
        self._referenced = True

    def home(self) -> None:
        """``$H``, then the station's work coordinates; returns when Idle (GRBL answers ``$H`` when homed)."""
        c = self.controller
        self._referenced = False
        self._resting = None
        if not self.station.stage.homing:
            c.unlock()
        else:
            c.home()
        c.wait_idle()
        self._set_work_coordinates()

    def _validated(self, axis: Axis, value: float | None) -> float | None:
        if value is None:
            return None
        a = self._axes[axis]
        number = _finite(f"move_to {a.argument}", value)
        if not a.low <= number <= a.high:
            raise ArgumentError(
                f"move_to {a.argument} = {number:g}: expected within [{a.low:g}, {a.high:g}] {a.unit} "
                f"(station {self.station.name}, axis {axis.value})"
            )
        return number

    def _require_reference(self) -> None:
        c = self.controller
        if c.needs_reset or c.position_lost or not self._referenced:
            why = (
                alarm_meaning(c.alarm_code)
                if c.alarm_code is not None
                else "not homed since the controller (re)started"
            )
            raise DeviceStateError(f"stage {c.port}: position unknown ({why}): call recover() or home() first")

    def move_to(
        self,
        *,
        rail_mm: float | None = None,
        carousel_mm: float | None = None,
        pitch_deg: float | None = None,
    ) -> StageStatus:
        """Absolute move (``G90 G21 G1 ... F...``, work = station coordinates); returns the Idle status there.

        The feed is the fastest the station allows for this direction: GRBL limits each axis to its own rate, so
        the path feed is min over moving axes of rate_i / |u_i| (u the unit direction of the work delta), as
        GRBL's planner does. The final position is compared with the target (within one step and the report's
        0.001 resolution).
        """
        targets = {
            Axis.RAIL: self._validated(Axis.RAIL, rail_mm),
            Axis.CAROUSEL: self._validated(Axis.CAROUSEL, carousel_mm),
            Axis.PITCH: self._validated(Axis.PITCH, pitch_deg),
        }
        wanted = {axis: v for axis, v in targets.items() if v is not None}
        if not wanted:
            raise ArgumentError("move_to: expected at least one of rail_mm, carousel_mm, pitch_deg")
        self._require_reference()
        # the feed needs the direction of travel: from where the last move came to rest (one '?' round trip less
        # a move, ~2-7 ms), else from a status query
        here = self._resting if self._resting is not None else self.controller.status().to_stage_status().position
        self._resting = None
        deltas = {axis: wanted[axis] - here[axis] for axis in wanted}
        length = math.sqrt(sum(d * d for d in deltas.values()))
        rates = [self._axes[a].max_rate_per_min * length / abs(d) for a, d in deltas.items() if abs(d) > 0]
        feed = min(rates) if rates else max(self._axes[a].max_rate_per_min for a in wanted)
        words = " ".join(f"{axis.value}{wanted[axis]:.3f}" for axis in AXES if axis in wanted)
        self.controller.command(f"G90 G21 G1 {words} F{feed:.1f}")
        status = self.controller.wait_idle().to_stage_status()
        for axis, target in wanted.items():
            tolerance = 1.0 / self._axes[axis].mapping.steps_per_unit + 1e-3
            if abs(status.position[axis] - target) > tolerance:
                raise DeviceCommandError(
                    f"stage {self.controller.port}: {self._axes[axis].argument} ended at "
                    f"{status.position[axis]:.3f}, expected {target:.3f} ± {tolerance:.3f} {self._axes[axis].unit}"
                )
        self._resting = dict(status.position)
        return status

    def select_chart(self, name: str) -> StageStatus:
        """Turn the carousel to the station slot of chart ``name``."""
        slots = self.station.carousel.slots
        if name not in slots:
            raise ArgumentError(
                f"select_chart name = {name!r}: expected one of the station's carousel slots: {', '.join(slots)}"
            )
        return self.move_to(carousel_mm=slots[name])

    def status(self) -> StageStatus:
        return self.controller.status().to_stage_status()

    def abort(self) -> None:
        """Stop all motion now (realtime Ctrl-X); where the axes are is unknown until :meth:`recover` re-homes."""
        self._referenced = False
        self._resting = None
        self.controller.soft_reset()

    def recover(self) -> None:
        """Clear an alarm the way 1.1h needs it, then re-home (or unlock without homing) and set G54 again.

        Critical alarm: wait for ``[MSG:Reset to continue]``, Ctrl-X, wait for the banner. Homing failure: wait
        for GRBL's own reset. Then ``$H`` (which also clears the alarm lock), or ``$X`` on a station without
        homing.
        """
        c = self.controller
        self._referenced = False
        c.clear_reset()
        self.home()

    def knock(self) -> None:
        """Pulse the knocker: ``M8``, dwell ``G4 P<pulse_s>``, ``M9`` -- M9 is sent whatever happens to the rest."""
        c = self.controller
        pulse_s = self.station.knocker.pulse_ms / 1000.0
        budget = c.timeout_s + pulse_s
        try:
            c.command("M8", timeout_s=budget)
            c.command(f"G4 P{pulse_s:.3f}", timeout_s=budget)
        finally:
            if c.is_open and not c.needs_reset:
                c.command("M9", timeout_s=budget + c.timeout_s)  # owed after any late reply to M8


class GrblLight(_OnController):
    """The chart's light panel on the spindle PWM: ``M3 S<level·pwm_max>``, ``M5`` off.

    The level reported is what GRBL confirms: the spindle speed of the next status report as a fraction of
    ``$30`` (GRBL clamps S to ``[$31, $30]``), never the value asked for. GRBL locks G-code (``M3`` included)
    while in alarm, so the stage must be homed or unlocked first.
    """

    def __init__(self, controller: GrblController, station: StationConfig) -> None:
        super().__init__(controller)
        self.pwm_max = station.light.pwm_max
        self._level = 0.0

    @property
    def level(self) -> float:
        """The level GRBL confirmed, as a fraction of full scale."""
        return self._level

    def close(self) -> None:
        """Switch the light off before the last user closes the port."""
        c = self.controller
        if c.is_open and not c.gcode_locked and self._level != 0:
            try:
                self.off()
            except DeviceError as exc:
                c.log.warning("light %s: could not switch off: %s", c.port, exc)
        super().close()

    def _confirmed(self) -> float:
        status = self.controller.status()
        if status.spindle is None:
            raise DeviceCommandError(
                f"light {self.controller.port}: status report has no spindle speed (FS:) to confirm the level"
            )
        full = self.controller.settings.get(Setting.SPINDLE_MAX_RPM, float(self.pwm_max))
        return min(1.0, status.spindle / full) if full > 0 else 0.0

    def set_level(self, level: float) -> None:
        number = _finite("light level", level)
        if not 0.0 <= number <= 1.0:
            raise ArgumentError(f"light level = {number:g}: expected a fraction within [0, 1]")
        pwm = round(number * self.pwm_max)
        done = False
        try:
            self.controller.command(f"M3 S{pwm}")
            self._level = self._confirmed()
            done = True
        finally:
            if not done:
                self._level = math.nan
                c = self.controller
                if c.is_open and not c.needs_reset:
                    try:
                        self.off()
                    except DeviceError as exc:
                        c.log.warning("light %s: could not switch off after a failed set_level: %s", c.port, exc)

    def off(self) -> None:
        self.controller.command("M5")
        self._level = self._confirmed()
