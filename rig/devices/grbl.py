"""GRBL 1.1 motion controller over serial: the bench's stage (rail, carousel, fixture pitch, knocker) and light.

One :class:`GrblController` owns the serial port and speaks the line protocol (one line, one ``ok``/``error:N``)
and the realtime bytes (``?``, ``!``, ``~``, Ctrl-X). :class:`GrblStage` and :class:`GrblLight` sit on the same
controller and satisfy :class:`rig.devices.protocols.Stage` and :class:`~rig.devices.protocols.Light`.

The port is opened with :func:`serial.serial_for_url`, so ``/dev/ttyUSB0``, the twin's pty (``/dev/pts/N``) and
pyserial URLs all work with the same code (DESIGN.md §8.3). Protocol: REFERENCE.md §4, gnea/grbl
``doc/markdown/interface.md``. Lines are sent one at a time, each waiting for its answer (send-response), which
keeps GRBL's 128-byte receive buffer from overflowing without character counting; the bench sends few lines.
"""

from __future__ import annotations

import logging
import math
import re
import termios
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Self

import serial

from rig.config.station import StationConfig
from rig.errors import (
    ArgumentError,
    DeviceAlarm,
    DeviceCommandError,
    DeviceLost,
    DeviceStateError,
    DeviceTimeout,
)
from rig.spec.grbl import CRITICAL_ALARMS, alarm_meaning, error_meaning
from rig.spec.types import Axis, StageState, StageStatus

STATUS_QUERY = b"?"
FEED_HOLD = b"!"
CYCLE_START = b"~"
SOFT_RESET = b"\x18"

BANNER_RE = re.compile(r"^Grbl (?P<version>\S+) \[.*\]$")
UNLOCK_HINT = "[MSG:'$H'|'$X' to unlock]"
RESET_TO_CONTINUE = "[MSG:Reset to continue]"
AXES: tuple[Axis, Axis, Axis] = (Axis.CAROUSEL, Axis.PITCH, Axis.RAIL)  # GRBL reports X, Y, Z in this order
LINE_MAX_CHARS = 79  # GRBL's LINE_BUFFER_SIZE is 80 including the terminator

# GRBL ignores a second '?' sent before the first is answered, so the poll interval only bounds the rate.
# 10 Hz is the upper end of what gnea/grbl's interface notes recommend for real hardware.
DEFAULT_POLL_INTERVAL_S = 0.1
# An Arduino resets when the port opens and needs up to ~2 s to boot (gnea/grbl doc/script/stream.py).
BOOT_WAIT_S = 2.5
_READ_SLICE_S = 0.05


@dataclass(frozen=True)
class GrblStatus:
    """One parsed realtime status report ``<State|MPos:...|...>`` (GRBL 1.1 interface.md, "Status reports").

    Positions are machine coordinates in mm (degrees on the pitch axis Y) in the order X, Y, Z. When the report
    carries ``WPos`` instead of ``MPos`` (``$10`` bit 0 clear), ``mpos`` is reconstructed as WPos + WCO from the
    last work-coordinate offset the controller reported.
    """

    state: StageState
    substate: int | None
    mpos: tuple[float, float, float]
    wco: tuple[float, float, float]
    feed_mm_min: float
    spindle: float
    planner_blocks_free: int | None = None
    rx_bytes_free: int | None = None
    overrides_pct: tuple[int, int, int] | None = None
    line_number: int | None = None
    pins: str = ""
    accessories: str = ""
    raw: str = ""

    @property
    def wpos(self) -> tuple[float, float, float]:
        return (self.mpos[0] - self.wco[0], self.mpos[1] - self.wco[1], self.mpos[2] - self.wco[2])

    def to_stage_status(self) -> StageStatus:
        """The Protocol's view: state and machine position per bench axis."""
        return StageStatus(
            state=self.state,
            position=dict(zip(AXES, self.mpos, strict=True)),
            feed=self.feed_mm_min,
            spindle=self.spindle,
        )


def _triple(text: str, raw: str) -> tuple[float, float, float]:
    parts = text.split(",")
    if len(parts) < 3:
        raise DeviceCommandError(f"stage sent a malformed status report (need 3 axes): {raw!r}")
    try:
        x, y, z = (float(p) for p in parts[:3])
    except ValueError:
        raise DeviceCommandError(f"stage sent a malformed status report: {raw!r}") from None
    return x, y, z


def parse_status(line: str, *, wco: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> GrblStatus:
    """Parse a GRBL 1.1 status report.

    Parameters
    ----------
    line
        The report including its chevrons, e.g. ``<Idle|MPos:0.000,0.000,0.000|FS:0,0|WCO:0.000,0.000,0.000>``.
    wco
        The last known work coordinate offset, used when this report omits ``WCO`` (GRBL sends it only every
        10–30 reports or on change).

    Returns
    -------
    GrblStatus
        Fields in any order are accepted; ``F:`` (no variable spindle) and ``FS:`` are both understood.

    Raises
    ------
    DeviceCommandError
        The line is not a status report or an unknown machine state.
    """
    raw = line
    if not (line.startswith("<") and line.endswith(">")):
        raise DeviceCommandError(f"stage sent a malformed status report: {raw!r}")
    fields = line[1:-1].split("|")
    state_text, _, sub = fields[0].partition(":")
    try:
        state = StageState(state_text)
    except ValueError:
        raise DeviceCommandError(f"stage reported an unknown state {state_text!r} in {raw!r}") from None
    values: dict[str, str] = {}
    for item in fields[1:]:
        key, _, value = item.partition(":")
        values[key] = value
    report_wco = _triple(values["WCO"], raw) if "WCO" in values else wco
    if "MPos" in values:
        mpos = _triple(values["MPos"], raw)
    elif "WPos" in values:
        w = _triple(values["WPos"], raw)
        mpos = (w[0] + report_wco[0], w[1] + report_wco[1], w[2] + report_wco[2])
    else:
        raise DeviceCommandError(f"stage status report has neither MPos nor WPos: {raw!r}")
    feed, spindle = 0.0, 0.0
    try:
        if "FS" in values:
            feed_text, _, spindle_text = values["FS"].partition(",")
            feed, spindle = float(feed_text), float(spindle_text)
        elif "F" in values:
            feed = float(values["F"])
        planner = rx = None
        if "Bf" in values:
            planner_text, _, rx_text = values["Bf"].partition(",")
            planner, rx = int(planner_text), int(rx_text)
        overrides = None
        if "Ov" in values:
            ov = [int(v) for v in values["Ov"].split(",")]
            overrides = (ov[0], ov[1], ov[2])
        line_number = int(values["Ln"]) if "Ln" in values else None
    except (ValueError, IndexError):
        raise DeviceCommandError(f"stage sent a malformed status report: {raw!r}") from None
    return GrblStatus(
        state=state,
        substate=int(sub) if sub.isdigit() else None,
        mpos=mpos,
        wco=report_wco,
        feed_mm_min=feed,
        spindle=spindle,
        planner_blocks_free=planner,
        rx_bytes_free=rx,
        overrides_pct=overrides,
        line_number=line_number,
        pins=values.get("Pn", ""),
        accessories=values.get("A", ""),
        raw=raw,
    )


@dataclass(frozen=True)
class _Wait:
    """A deadline on time.monotonic() and the timeout it came from (for the error message)."""

    deadline: float
    timeout_s: float

    @classmethod
    def of(cls, timeout_s: float) -> _Wait:
        return cls(time.monotonic() + timeout_s, timeout_s)


@dataclass
class _Session:
    """What the controller told us since the port opened (reset by every banner)."""

    version: str = ""
    alarm_code: int | None = None
    needs_reset: bool = False  # a critical alarm: GRBL answers nothing but '?' until Ctrl-X
    wco: tuple[float, float, float] = (0.0, 0.0, 0.0)
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
        Limit for any single answer (a line's ``ok``, a status report, the banner), seconds.
    move_timeout_s
        Limit for a motion (homing, a move reaching Idle, a line that waits for motion to finish), seconds.
    poll_interval_s
        Minimum time between two ``?`` status polls while waiting for Idle, seconds.
    logger
        Defaults to a logger named after the port (one per instance).

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
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        logger: logging.Logger | None = None,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.move_timeout_s = move_timeout_s
        self.poll_interval_s = poll_interval_s
        self.log = logger or logging.getLogger(f"{__name__}.controller[{port}]")
        self._serial: serial.SerialBase | None = None
        self._users = 0
        self._rx = bytearray()
        self._session = _Session()

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
        """Push messages (``[MSG:...]``, ``[GC:...]``, alarms) received since the last banner, oldest first."""
        return list(self._session.messages)

    @property
    def needs_reset(self) -> bool:
        """True after a critical alarm: GRBL ignores every line until a soft reset."""
        return self._session.needs_reset

    @property
    def alarm_code(self) -> int | None:
        """The last ``ALARM:N`` seen since the last banner/unlock, or None."""
        return self._session.alarm_code

    def open(self) -> None:
        """Open the port and wait for GRBL's startup banner; a second call only counts another user.

        Opening the port resets an Arduino (DTR), which then prints the banner. A board that does not reset is
        woken with a soft reset (Ctrl-X) once :data:`BOOT_WAIT_S` pass without a banner.
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
        self._users = 1
        try:
            try:
                self._wait_banner(min(BOOT_WAIT_S, self.timeout_s))
            except DeviceTimeout:
                self.log.info("no banner after opening %s, sending a soft reset", self.port)
                self._write(SOFT_RESET)
                self._wait_banner(self.timeout_s)
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
            port.flush()
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
                if text:
                    self.log.debug("<< %s", text)
                    return text
                continue
            if time.monotonic() >= wait.deadline:
                raise DeviceTimeout(f"stage {self.port}: no answer to {waiting_for} within {wait.timeout_s:g} s")
            try:
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                self._close_port()
                raise DeviceLost(f"stage lost: {self.port}: {exc}") from exc
            self._rx.extend(chunk)

    # ------------------------------------------------------------------------------------------- push messages
    def _on_push(self, line: str, waiting_for: str) -> GrblStatus | None:
        """Handle a line that is not the awaited answer. Returns a parsed status report; raises on alarms."""
        session = self._session
        if line.startswith("<"):
            status = parse_status(line, wco=session.wco)
            session.wco = status.wco
            return status
        if line.startswith("ALARM:"):
            session.messages.append(line)
            try:
                code = int(line[6:])
            except ValueError:
                code = -1
            session.alarm_code = code
            if code in CRITICAL_ALARMS:
                session.needs_reset = True
            raise DeviceAlarm(f"stage {self.port}: {alarm_meaning(code)} (while waiting for {waiting_for})", code)
        if line == RESET_TO_CONTINUE:
            session.needs_reset = True
        match = BANNER_RE.match(line)
        if match:
            self._on_banner(match["version"])
            raise DeviceAlarm(
                f"stage {self.port}: controller reset itself while waiting for {waiting_for}: position is lost, "
                "unlock and re-home"
            )
        session.messages.append(line)
        self.log.info("stage message: %s", line)
        return None

    def _on_banner(self, version: str) -> None:
        self._session = _Session(version=version)
        self.log.info("GRBL %s on %s", version, self.port)

    def _wait_banner(self, timeout_s: float) -> None:
        wait = _Wait.of(timeout_s)
        while True:
            line = self._readline(wait, "the startup banner")
            match = BANNER_RE.match(line)
            if match:
                self._on_banner(match["version"])
                break
        # GRBL answers in order, so a status report drains the messages that follow the banner (the unlock hint
        # when homing is enabled) and proves the link works both ways.
        self.status()

    # ------------------------------------------------------------------------------------------- commands
    def command(self, line: str, *, timeout_s: float | None = None) -> list[str]:
        """Send one line and wait for its ``ok``.

        Returns
        -------
        list of str
            Lines received before the ``ok`` that answer it (``$$`` settings, ``[GC:...]``, ``[VER:...]``...).

        Raises
        ------
        DeviceCommandError
            GRBL answered ``error:N``; the message gives GRBL's meaning of N.
        DeviceAlarm
            An ``ALARM:N`` arrived instead.
        DeviceTimeout
            No answer within ``timeout_s`` (default :attr:`timeout_s`).
        """
        text = line.strip()
        if "\n" in text or "\r" in text or len(text) > LINE_MAX_CHARS:
            raise ArgumentError(f"stage command {line!r}: expected one line of at most {LINE_MAX_CHARS} characters")
        if self._session.needs_reset:
            raise DeviceAlarm(
                f"stage {self.port}: {alarm_meaning(self._session.alarm_code or 0)}; GRBL accepts nothing but a "
                "soft reset now (call recover())",
                self._session.alarm_code,
            )
        self.log.debug(">> %s", text)
        self._write(text.encode("ascii") + b"\n")
        wait = _Wait.of(self.timeout_s if timeout_s is None else timeout_s)
        answer: list[str] = []
        while True:
            reply = self._readline(wait, repr(text))
            if reply == "ok":
                return answer
            if reply.startswith("error:"):
                try:
                    code = int(reply[6:])
                except ValueError:
                    code = -1
                raise DeviceCommandError(f"stage {self.port}: {text!r} → {error_meaning(code)}", code)
            if reply.startswith(("[MSG:", "<", "ALARM:", "Grbl ")):
                self._on_push(reply, repr(text))
            else:
                answer.append(reply)

    def status(self) -> GrblStatus:
        """Ask for a realtime status report (``?``) and parse it."""
        self._write(STATUS_QUERY)
        wait = _Wait.of(self.timeout_s)
        while True:
            line = self._readline(wait, "a status query '?'")
            if line.startswith("<") or not line.startswith(("ok", "error:")):
                status = self._on_push(line, "a status query '?'")
                if status is not None:
                    return status
            else:
                self.log.warning("stage: unexpected %r while waiting for a status report", line)

    def wait_idle(self, *, timeout_s: float | None = None) -> GrblStatus:
        """Poll ``?`` (at most every :attr:`poll_interval_s`) until the controller reports Idle.

        Raises DeviceAlarm if it reports Alarm and DeviceTimeout after ``timeout_s`` (default
        :attr:`move_timeout_s`).
        """
        budget = self.move_timeout_s if timeout_s is None else timeout_s
        end = time.monotonic() + budget
        while True:
            polled_at = time.monotonic()
            status = self.status()
            if status.state is StageState.IDLE:
                return status
            if status.state is StageState.ALARM:
                code = self._session.alarm_code
                meaning = alarm_meaning(code) if code is not None else "in alarm"
                raise DeviceAlarm(f"stage {self.port}: {meaning} (status {status.raw})", code)
            now = time.monotonic()
            if now >= end:
                raise DeviceTimeout(f"stage {self.port}: not Idle within {budget:g} s (last status {status.raw})")
            # A bounded poll rate, not a sleep "for the hardware": the loop ends on the Idle condition.
            time.sleep(min(max(0.0, polled_at + self.poll_interval_s - now), end - now))

    def settings(self) -> dict[int, float]:
        """``$$``: the controller's settings ``{N: value}``."""
        values: dict[int, float] = {}
        for line in self.command("$$"):
            match = re.match(r"^\$(\d+)=([-+0-9.]+)", line)
            if match:
                values[int(match[1])] = float(match[2])
        return values

    def feed_hold(self) -> None:
        """Realtime ``!``: decelerate to a stop and hold (state Hold)."""
        self._write(FEED_HOLD)

    def cycle_start(self) -> None:
        """Realtime ``~``: resume after a feed hold."""
        self._write(CYCLE_START)

    def soft_reset(self) -> None:
        """Realtime Ctrl-X: stop at once, clear the buffers, then wait for the banner (position kept unless moving)."""
        self._write(SOFT_RESET)
        self._rx.clear()
        self._wait_banner(self.timeout_s)

    def unlock(self) -> None:
        """Clear an alarm with ``$X``; after a critical alarm (hard/soft limit) GRBL first needs a soft reset."""
        if self._session.needs_reset:
            self.soft_reset()
        self.command("$X")
        self._session.alarm_code = None


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

    Targets are checked against the station's limits before anything is sent; feed rates come from the station.
    """

    def __init__(self, controller: GrblController, station: StationConfig) -> None:
        super().__init__(controller)
        self.station = station
        s = station
        # axis → (station field name, low, high, unit, max rate per minute, acceleration per s²)
        self._axes: dict[Axis, tuple[str, float, float, str, float, float]] = {
            Axis.RAIL: ("rail_mm", s.rail.min_mm, s.rail.max_mm, "mm", s.rail.max_rate_mm_min, s.rail.accel_mm_s2),
            Axis.CAROUSEL: (
                "carousel_mm",
                0.0,
                s.carousel.max_mm,
                "mm",
                s.carousel.max_rate_mm_min,
                s.carousel.accel_mm_s2,
            ),
            Axis.PITCH: (
                "pitch_deg",
                s.fixture.min_deg,
                s.fixture.max_deg,
                "deg",
                s.fixture.max_rate_deg_min,
                s.fixture.accel_deg_s2,
            ),
        }

    def home(self) -> None:
        """``$H``: homing cycle; returns when the controller is Idle (GRBL answers ``ok`` when homing ends)."""
        self.controller.command("$H", timeout_s=self.controller.move_timeout_s)
        self.controller.wait_idle()

    def _validated(self, axis: Axis, value: float | None) -> float | None:
        if value is None:
            return None
        name, low, high, unit, _, _ = self._axes[axis]
        number = _finite(f"move_to {name}", value)
        if not low <= number <= high:
            raise ArgumentError(
                f"move_to {name} = {number:g}: expected within [{low:g}, {high:g}] {unit} "
                f"(station {self.station.name}, axis {axis.value})"
            )
        return number

    def move_to(
        self,
        *,
        rail_mm: float | None = None,
        carousel_mm: float | None = None,
        pitch_deg: float | None = None,
    ) -> StageStatus:
        """Absolute move (``G90 G21 G1 ... F...``) of the given axes; returns the Idle status at the target.

        The feed is the fastest the station allows for this direction: GRBL limits each axis to its own rate, so
        the path feed is min over moving axes of rate_i / |u_i| (u the unit direction), as GRBL's planner does.
        """
        targets = {
            Axis.RAIL: self._validated(Axis.RAIL, rail_mm),
            Axis.CAROUSEL: self._validated(Axis.CAROUSEL, carousel_mm),
            Axis.PITCH: self._validated(Axis.PITCH, pitch_deg),
        }
        wanted = {axis: v for axis, v in targets.items() if v is not None}
        if not wanted:
            raise ArgumentError("move_to: expected at least one of rail_mm, carousel_mm, pitch_deg")
        here = self.controller.status().to_stage_status().position
        deltas = {axis: wanted[axis] - here[axis] for axis in wanted}
        length = math.sqrt(sum(d * d for d in deltas.values()))
        rates = [self._axes[a][4] * length / abs(d) for a, d in deltas.items() if abs(d) > 0]
        feed = min(rates) if rates else max(self._axes[a][4] for a in wanted)
        words = " ".join(f"{axis.value}{value:.3f}" for axis, value in sorted(wanted.items()))
        self.controller.command(f"G90 G21 G1 {words} F{feed:.1f}")
        return self.controller.wait_idle().to_stage_status()

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
        self.controller.soft_reset()

    def recover(self) -> None:
        """Clear an alarm (soft reset first if GRBL demands it, then ``$X``) and re-home."""
        self.controller.unlock()
        self.home()

    def knock(self) -> None:
        """Pulse the knocker: ``M8``, dwell ``G4 P<pulse_s>``, ``M9`` (the dwell holds the coolant output on)."""
        pulse_s = self.station.knocker.pulse_ms / 1000.0
        budget = self.controller.timeout_s + pulse_s
        self.controller.command("M8", timeout_s=budget)
        try:
            self.controller.command(f"G4 P{pulse_s:.3f}", timeout_s=budget)
        finally:
            if self.controller.is_open and not self.controller.needs_reset:
                self.controller.command("M9", timeout_s=budget)


class GrblLight(_OnController):
    """The chart's light panel on the spindle PWM: ``M3 S<level·pwm_max>``, ``M5`` off.

    GRBL locks G-code (``M3`` included) while in alarm, so the stage must be homed or unlocked first.
    """

    def __init__(self, controller: GrblController, station: StationConfig) -> None:
        super().__init__(controller)
        self.pwm_max = station.light.pwm_max
        self._pwm = 0

    @property
    def level(self) -> float:
        """The level on the panel as a fraction of full scale (the commanded S / pwm_max)."""
        return self._pwm / self.pwm_max

    def set_level(self, level: float) -> None:
        number = _finite("light level", level)
        if not 0.0 <= number <= 1.0:
            raise ArgumentError(f"light level = {number:g}: expected a fraction within [0, 1]")
        pwm = round(number * self.pwm_max)
        self.controller.command(f"M3 S{pwm}")
        self._pwm = pwm

    def off(self) -> None:
        self.controller.command("M5")
        self._pwm = 0
