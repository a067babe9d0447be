"""The twin's GRBL 1.1 controller: a state machine that answers on a pseudo-terminal like the bench's Arduino.

pyserial opens the pty slave (``/dev/pts/N``) exactly as it opens ``/dev/ttyUSB0``, so the real driver
(:mod:`rig.devices.grbl`) runs unchanged against it (DESIGN.md §4). The peer moves the simulated bench: it writes
``rail_mm`` (Z), ``carousel_mm`` (X), ``pitch_deg`` (Y), ``light_pwm`` (spindle S) and knocker pulses (M8) into the
shared :class:`~rig.twin.state.BenchState`.

What is modelled (gnea/grbl v1.1h, REFERENCE.md §4):

- Connection: opening the port resets the board (Arduino DTR): after ``boot_delay_s`` the peer prints the banner
  ``Grbl 1.1h ['$' for help]``; homing is enabled, so it boots in Alarm with ``[MSG:'$H'|'$X' to unlock]``.
- Line protocol: one ``ok``/``error:N`` per line with GRBL's codes; G0 G1 G4 G17 G20 G21 G54 G90 G91 G94,
  M2 M3 M4 M5 M8 M9 M30, words F S P N T X Y Z; ``$``, ``$$``, ``$#``, ``$G``, ``$I``, ``$X``, ``$H``, ``$N=value``.
  Other ``$`` commands (``$C``, ``$J=``, ``$SLP``, ``$RST``, ``$N``) answer ``error:3``.
- Realtime bytes: ``?`` (report; none during homing, as GRBL), ``!`` feed hold with deceleration, ``~`` resume,
  Ctrl-X soft reset (``ALARM:3`` if it interrupts motion, ``ALARM:6`` during homing, then the banner).
- Motion: each block is a trapezoidal profile from rest to rest along the straight path; the path rate is the
  feed limited per axis by ``$110``–``$112`` and the acceleration by ``$120``–``$122`` (GRBL's planner limits),
  simulated time runs ``time_scale`` times faster than real time. Blocks queued back to back do not blend at the
  junctions (the driver sends one move at a time). Spindle, coolant and dwell wait for motion to finish, as in
  GRBL (``protocol_buffer_synchronize``).
- Homing (``$H``): Z first, then X and Y, at the seek rate ``$25`` (limited per axis), to machine zero: the
  station's origin (rail 0 mm, carousel 0 mm, pitch 0°), or the nearest end of an axis whose travel excludes 0.
  The slow locate pass and pull-off are not modelled.
- Machine coordinates equal the station's coordinates. The soft-limit envelope per axis is
  ``[low, low + $13x]`` with ``low`` the station's minimum (carousel 0, ``fixture.min_deg``, ``rail.min_mm``);
  ``$130``–``$132`` start as the station's travel. With ``$20=1`` a target outside gives ``ALARM:2`` before any
  motion; with ``$20=0`` and ``$21=1`` crossing the envelope mid-move gives ``ALARM:1``. Both are critical, as in
  GRBL: ``[MSG:Reset to continue]`` and nothing but ``?`` is answered until Ctrl-X.
- Status reports ``<State|MPos:x,y,z|Bf:..|FS:feed,S|WCO:..|Ov:..|A:..>``; ``$10`` bit 0 picks MPos or WPos,
  bit 1 adds ``Bf``. Work offsets are always zero (G10/G92 are not supported).

Faults for tests and soak runs (:class:`GrblFaults`, at construction or :meth:`GrblPeer.set_faults`): the port
vanishing mid-move (the pty master closes, like a USB cable pulled), a hard-limit alarm mid-move, ``error:N`` to the
next line, a move that never reports Idle, and the port dropping after N more answered lines.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import math
import os
import re
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Self

from rig.config.station import StationConfig
from rig.spec.grbl import GrblAlarm, GrblError
from rig.spec.types import StageState
from rig.twin.state import BenchState

log = logging.getLogger(__name__)

BANNER = "Grbl 1.1h ['$' for help]"
VERSION_LINE = "[VER:1.1h.20190830:]"
OPTIONS_LINE = "[OPT:V,15,128]"
HELP_LINE = "[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]"
MSG_UNLOCK_HINT = "[MSG:'$H'|'$X' to unlock]"
MSG_UNLOCKED = "[MSG:Caution: Unlocked]"
MSG_RESET_TO_CONTINUE = "[MSG:Reset to continue]"

PLANNER_BLOCKS = 15  # BLOCK_BUFFER_SIZE 16 − 1 on an ATmega328p
RX_BUFFER_BYTES = 128
LINE_MAX_CHARS = 79  # LINE_BUFFER_SIZE 80 − 1
MM_PER_INCH = 25.4
_TICK_S = 0.002  # motion thread period while moving (real seconds): BenchState follows at 500 Hz
_IDLE_POLL_S = 0.02  # reader poll period (real seconds): how soon stop() and a connecting client are noticed

# Settings GRBL prints as integers in $$ (the others with 3 decimals), gnea/grbl settings.md.
_INTEGER_SETTINGS = frozenset({0, 1, 2, 3, 4, 5, 6, 10, 13, 20, 21, 22, 23, 26, 30, 31, 32})
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")


@dataclass
class GrblFaults:
    """Faults the peer injects (issue #8). One-shot faults clear themselves once they fire.

    Attributes
    ----------
    vanish_mid_move
        Close the port halfway through the next G0/G1 move (one-shot).
    alarm_mid_move
        ``ALARM:1`` (hard limit) halfway through the next G0/G1 move (one-shot).
    error_next_command
        Answer the next line with ``error:N`` without executing it (one-shot).
    stuck_in_run
        Moves reach their target but the state stays Run (the planner never drains) until a soft reset.
    drop_after_commands
        Answer this many more lines, then close the port when the next one arrives (it is not executed).
    """

    vanish_mid_move: bool = False
    alarm_mid_move: bool = False
    error_next_command: int | None = None
    stuck_in_run: bool = False
    drop_after_commands: int | None = None


@dataclass(frozen=True)
class TrapezoidProfile:
    """Path position s(τ) of a move from ``s0`` at speed ``v0`` that ends at rest at ``s_end`` (units, seconds).

    Three phases: accelerate at ``accel`` from ``v0`` to ``v_peak``, cruise, decelerate at ``decel`` to rest.
    For a move from rest the duration is L/v + v/a when L ≥ v²/a (trapezoid), else 2·√(L/a) (triangle).
    """

    s0: float
    s_end: float
    v0: float
    v_peak: float
    accel: float
    decel: float
    t_acc: float
    t_cruise: float
    t_dec: float

    @classmethod
    def plan(cls, s0: float, s_end: float, *, v0: float, v_max: float, accel: float) -> TrapezoidProfile:
        """The fastest profile within ``v_max`` and ``accel`` (units/s, units/s²) from ``s0`` to ``s_end``."""
        length = max(0.0, s_end - s0)
        if length == 0.0 and v0 == 0.0:
            return cls(s0, s0, 0.0, 0.0, accel, accel, 0.0, 0.0, 0.0)
        if v0 * v0 / (2 * accel) >= length:
            return cls.stop(s0, v0=v0, accel=accel, s_limit=s0 + length)
        v_peak = max(v0, min(v_max, math.sqrt(accel * length + 0.5 * v0 * v0)))
        d_acc = (v_peak * v_peak - v0 * v0) / (2 * accel)
        d_dec = v_peak * v_peak / (2 * accel)
        t_cruise = max(0.0, length - d_acc - d_dec) / v_peak
        return cls(s0, s0 + length, v0, v_peak, accel, accel, (v_peak - v0) / accel, t_cruise, v_peak / accel)

    @classmethod
    def stop(cls, s0: float, *, v0: float, accel: float, s_limit: float) -> TrapezoidProfile:
        """Decelerate from ``v0`` to rest at ``accel``, harder if needed to stop by ``s_limit`` (a feed hold)."""
        if v0 <= 0.0:
            return cls(s0, s0, 0.0, 0.0, accel, accel, 0.0, 0.0, 0.0)
        distance = v0 * v0 / (2 * accel)
        decel = accel
        if s0 + distance > s_limit:
            distance = max(s_limit - s0, 1e-12)
            decel = v0 * v0 / (2 * distance)
        return cls(s0, s0 + distance, v0, v0, accel, decel, 0.0, 0.0, v0 / decel)

    @property
    def duration_s(self) -> float:
        return self.t_acc + self.t_cruise + self.t_dec

    def at(self, tau: float) -> tuple[float, float]:
        """(position, speed) at simulated time ``tau`` seconds after the profile starts."""
        if tau <= 0.0:
            return self.s0, self.v0
        if tau >= self.duration_s:
            return self.s_end, 0.0
        if tau < self.t_acc:
            return self.s0 + self.v0 * tau + 0.5 * self.accel * tau * tau, self.v0 + self.accel * tau
        s = self.s0 + (self.v_peak * self.v_peak - self.v0 * self.v0) / (2 * self.accel) if self.t_acc else self.s0
        tau -= self.t_acc
        if tau < self.t_cruise:
            return s + self.v_peak * tau, self.v_peak
        s += self.v_peak * self.t_cruise
        tau -= self.t_cruise
        if tau < self.t_dec:
            return min(self.s_end, s + self.v_peak * tau - 0.5 * self.decel * tau * tau), self.v_peak - self.decel * tau
        return self.s_end, 0.0


Vec = tuple[float, float, float]


@dataclass
class _Block:
    """One planned straight move in machine coordinates (X carousel, Y pitch, Z rail)."""

    origin: Vec
    unit: Vec
    length: float
    rate: float  # units/s along the path
    accel: float  # units/s² along the path
    kind: str  # "move" (G0/G1) or "home"
    profile: TrapezoidProfile | None = None
    t0: float = 0.0  # time.monotonic() when ``profile`` started
    stopping: bool = False  # the profile is a feed-hold deceleration
    fault_checked: bool = False

    def point(self, s: float) -> Vec:
        o, u = self.origin, self.unit
        return (o[0] + u[0] * s, o[1] + u[1] * s, o[2] + u[2] * s)

    def start(self, now: float, s0: float = 0.0) -> None:
        self.profile = TrapezoidProfile.plan(s0, self.length, v0=0.0, v_max=self.rate, accel=self.accel)
        self.t0 = now
        self.stopping = False


@dataclass
class _Modal:
    """The G-code parser state that GRBL keeps between lines (reset by Ctrl-X)."""

    motion: int = 0  # G0 / G1
    inches: bool = False  # G20
    incremental: bool = False  # G91
    feed_mm_min: float = 0.0
    spindle_on: int = 5  # M3 / M4 / M5
    spindle_s: float = 0.0
    coolant_on: bool = False  # M8 / M9


@dataclass
class _Words:
    g: dict[str, int] = field(default_factory=dict)  # modal group → G number
    m: dict[str, int] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)


_G_GROUPS = {0: "motion", 1: "motion", 4: "nonmodal", 17: "plane", 20: "units", 21: "units", 54: "coord"}
_G_GROUPS |= {90: "distance", 91: "distance", 94: "feedmode"}
_M_GROUPS = {2: "stop", 30: "stop", 3: "spindle", 4: "spindle", 5: "spindle", 8: "coolant", 9: "coolant"}
_VALUE_LETTERS = frozenset("FSPNTXYZ")
_AXIS_INDEX = {"X": 0, "Y": 1, "Z": 2}


class _Aborted(Exception):
    """The line being executed was cut short by a soft reset or a critical alarm: it gets no answer."""


class GrblPeer:
    """A GRBL 1.1 controller on a pseudo-terminal, driving the twin's bench state.

    Parameters
    ----------
    state
        The bench state the peer moves (shared with the renderer and the phone peer).
    station
        Rates, accelerations, travel, PWM range and homing of the simulated machine come from here.
    time_scale
        Simulated motion and dwell run this many times faster than real time.
    faults
        Faults to inject (see :class:`GrblFaults`); changeable later with :meth:`set_faults`.
    boot_delay_s
        Real time between a client opening the port and the banner (an Arduino's reset after DTR).

    Notes
    -----
    ``start()`` returns the pty slave path for ``serial.serial_for_url``. The peer runs three daemon threads
    (serial reader, line protocol, motion); ``stop()`` ends them. After a vanish fault the pty is gone for good.
    """

    def __init__(
        self,
        state: BenchState,
        station: StationConfig,
        *,
        time_scale: float = 1.0,
        faults: GrblFaults | None = None,
        boot_delay_s: float = 0.05,
    ) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.state = state
        self.station = station
        self.time_scale = float(time_scale)
        self.boot_delay_s = boot_delay_s
        self._faults = faults or GrblFaults()
        self._cond = threading.Condition(threading.RLock())
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._master = -1
        self._wake_r = self._wake_w = -1
        self._path: str | None = None
        self._connected = False
        self._vanish_requested = False
        self._vanished = False
        self._boot_at: float | None = None
        self._rx = bytearray()
        self._lines: deque[str] = deque()
        self._settings = _default_settings(station)
        self._low: Vec = (0.0, station.fixture.min_deg, station.rail.min_mm)
        self._state = StageState.ALARM
        self._hold_complete = False
        self._critical = False
        self._generation = 0
        self._modal = _Modal()
        self._planner: deque[_Block] = deque()
        self._active: _Block | None = None
        with state.lock:
            self._pos: Vec = (state.carousel_mm, state.pitch_deg, state.rail_mm)
        self._planned: Vec = self._pos
        self._reports = 0
        self._commands_answered = 0

    # ------------------------------------------------------------------------------------------- lifecycle
    @property
    def path(self) -> str | None:
        """The pty slave path while running."""
        return self._path

    @property
    def vanished(self) -> bool:
        """True once a vanish/drop fault closed the port."""
        return self._vanished

    @property
    def faults(self) -> GrblFaults:
        """A copy of the faults currently armed."""
        with self._cond:
            return GrblFaults(**{f.name: getattr(self._faults, f.name) for f in fields(GrblFaults)})

    def set_faults(self, **changes: object) -> None:
        """Arm or clear faults at run time, e.g. ``peer.set_faults(alarm_mid_move=True)``."""
        with self._cond:
            for name, value in changes.items():
                if name not in {f.name for f in fields(GrblFaults)}:
                    raise AttributeError(f"GrblFaults has no field {name!r}")
                setattr(self._faults, name, value)
            self._cond.notify_all()

    def start(self) -> str:
        """Create the pty and start the threads; returns the slave path (e.g. ``/dev/pts/5``)."""
        if self._threads:
            raise RuntimeError("GrblPeer already started")
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass as on a UART
        self._path = os.ttyname(slave)
        os.close(slave)  # the master sees POLLHUP until a client opens the slave
        fcntl.fcntl(master, fcntl.F_SETFL, fcntl.fcntl(master, fcntl.F_GETFL) | os.O_NONBLOCK)
        self._master = master
        self._wake_r, self._wake_w = os.pipe()
        self._stop.clear()
        for target, name in ((self._reader, "reader"), (self._protocol, "protocol"), (self._motion, "motion")):
            thread = threading.Thread(target=target, name=f"grbl-peer-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        log.debug("GRBL peer on %s", self._path)
        return self._path

    def stop(self) -> None:
        """Stop the threads and close the pty."""
        self._stop.set()
        self._wake()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads.clear()
        with self._cond:
            fds, self._master = [self._master, self._wake_r, self._wake_w], -1
            self._wake_r = self._wake_w = -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._path = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    # ------------------------------------------------------------------------------------------- output
    def _emit(self, text: str) -> None:
        """Write one line to the host (caller holds the lock). A host that does not read loses output, as on a
        UART, rather than blocking the controller."""
        if self._master < 0 or not self._connected:
            return
        try:
            os.write(self._master, text.encode("ascii") + b"\r\n")
        except BlockingIOError:
            log.warning("GRBL peer: host is not reading, dropped %r", text)
        except OSError as exc:
            log.debug("GRBL peer: write failed: %s", exc)

    def _vanish(self) -> None:
        """Close the port from the reader thread (the only thread that polls the fd)."""
        self._vanish_requested = True
        self._connected = False
        self._wake()

    # ------------------------------------------------------------------------------------------- reader thread
    def _reader(self) -> None:
        poller = select.poll()
        poller.register(self._master, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            if self._vanish_requested:
                with self._cond:
                    fd, self._master = self._master, -1
                    self._vanished = True
                    self._cond.notify_all()
                poller.unregister(fd)
                os.close(fd)
                log.info("GRBL peer: port %s vanished (fault)", self._path)
                return
            timeout_s = _IDLE_POLL_S
            if self._boot_at is not None:
                timeout_s = max(0.0, min(timeout_s, self._boot_at - time.monotonic()))
            hangup = False
            for fd, events in poller.poll(timeout_s * 1000):
                if fd == self._wake_r:
                    os.read(self._wake_r, 64)
                    continue
                if events & select.POLLIN:
                    try:
                        data = os.read(self._master, 4096)
                    except BlockingIOError:
                        data = b""
                    except OSError as exc:
                        if exc.errno != errno.EIO:
                            raise
                        hangup = True
                        data = b""
                    if data:
                        self._on_bytes(data)
                if events & select.POLLHUP:
                    hangup = True
            if hangup:
                if self._connected:
                    with self._cond:
                        self._connected = False
                        self._boot_at = None
                    log.debug("GRBL peer: client closed %s", self._path)
                # no client: POLLHUP stays set, so pace the loop until one opens the slave
                self._stop.wait(0.005)
                continue
            if not self._connected and not self._vanish_requested:
                with self._cond:
                    self._connected = True
                    self._boot_at = time.monotonic() + self.boot_delay_s
            if self._boot_at is not None and time.monotonic() >= self._boot_at:
                self._boot_at = None
                self._power_up()

    def _on_bytes(self, data: bytes) -> None:
        for byte in data:
            if byte == 0x3F:  # ?
                self._report_status()
            elif byte == 0x21:  # !
                self._feed_hold()
            elif byte == 0x7E:  # ~
                self._cycle_start()
            elif byte == 0x18:  # Ctrl-X
                self._soft_reset()
            elif byte >= 0x80:  # overrides, safety door, jog cancel: accepted, not modelled
                continue
            elif byte in (0x0A, 0x0D):
                line = self._rx.decode("ascii", errors="replace")
                self._rx.clear()
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
            else:
                self._rx.append(byte)

    # ------------------------------------------------------------------------------------------- resets
    def _power_up(self) -> None:
        """A client opened the port: the Arduino resets (DTR) and boots with homing lock."""
        with self._cond:
            self._abort_locked(report_alarm=False)
            self._state = StageState.ALARM if self._settings[22] else StageState.IDLE
            self._boot_messages_locked()

    def _soft_reset(self) -> None:
        with self._cond:
            self._abort_locked(report_alarm=True)
            self._boot_messages_locked()

    def _abort_locked(self, *, report_alarm: bool) -> None:
        """Stop everything where it is (GRBL mc_reset): motion, spindle, coolant, queued lines, parser state."""
        moving = self._active is not None or bool(self._planner)
        if self._state is StageState.HOME:
            self._enter_alarm_locked(GrblAlarm.HOMING_FAIL_RESET, report=report_alarm, critical=False)
        elif moving and self._state in (StageState.RUN, StageState.HOLD):
            self._enter_alarm_locked(GrblAlarm.ABORT_CYCLE, report=report_alarm, critical=False)
        self._freeze_locked()
        self._critical = False
        self._generation += 1
        self._lines.clear()
        self._rx.clear()
        self._modal = _Modal()
        self._reports = 0
        self.state.update(light_pwm=0.0)
        if self._state is not StageState.ALARM:
            self._state = StageState.IDLE
        self._cond.notify_all()

    def _boot_messages_locked(self) -> None:
        self._emit(BANNER)
        if self._state is StageState.ALARM:
            self._emit(MSG_UNLOCK_HINT)

    def _freeze_locked(self) -> None:
        """Stop motion at the current point (position kept: the twin's steppers lose no steps)."""
        self._advance_locked(time.monotonic(), allow_faults=False)
        self._active = None
        self._planner.clear()
        self._planned = self._pos

    def _enter_alarm_locked(self, code: GrblAlarm, *, report: bool = True, critical: bool = False) -> None:
        self._state = StageState.ALARM
        if report:
            self._emit(f"ALARM:{int(code)}")
        if critical:
            self._freeze_locked()
            self._critical = True
            self._emit(MSG_RESET_TO_CONTINUE)
        self._cond.notify_all()

    # ------------------------------------------------------------------------------------------- realtime
    def _report_status(self) -> None:
        with self._cond:
            if self._state is StageState.HOME or not self._connected:
                return
            self._advance_locked(time.monotonic())
            self._emit(self._status_line_locked())

    def _status_line_locked(self) -> str:
        mask = int(self._settings[10])
        state = self._state.value
        if self._state is StageState.HOLD:
            state += ":0" if self._hold_complete else ":1"
        pos = self._pos
        fields_out = [state, f"{'MPos' if mask & 1 else 'WPos'}:{pos[0]:.3f},{pos[1]:.3f},{pos[2]:.3f}"]
        if mask & 2:
            used = len(self._planner) + (self._active is not None)
            fields_out.append(f"Bf:{PLANNER_BLOCKS - used},{RX_BUFFER_BYTES - 1 - len(self._rx)}")
        speed = 0.0
        if self._active is not None and self._active.profile is not None:
            _, speed = self._active.profile.at((time.monotonic() - self._active.t0) * self.time_scale)
        spindle = self._modal.spindle_s if self._modal.spindle_on != 5 else 0.0
        fields_out.append(f"FS:{speed * 60:.0f},{spindle:.0f}")
        # WCO and Ov are refreshed every 10 (idle) or 30/20 (busy) reports, WCO first (GRBL report.c).
        busy = self._state in (StageState.RUN, StageState.HOLD, StageState.HOME)
        if self._reports % (30 if busy else 10) == 0:
            fields_out.append("WCO:0.000,0.000,0.000")
        elif self._reports % (20 if busy else 10) == 1:
            fields_out.append("Ov:100,100,100")
            accessories = ("S" if self._modal.spindle_on == 3 else "C" if self._modal.spindle_on == 4 else "") + (
                "F" if self._modal.coolant_on else ""
            )
            if accessories:
                fields_out.append(f"A:{accessories}")
        self._reports += 1
        return "<" + "|".join(fields_out) + ">"

    def _feed_hold(self) -> None:
        with self._cond:
            if self._state is not StageState.RUN:
                return
            now = time.monotonic()
            self._advance_locked(now)
            self._state = StageState.HOLD
            block = self._active
            if block is None or block.profile is None:
                self._hold_complete = True
                return
            s, v = block.profile.at((now - block.t0) * self.time_scale)
            block.profile = TrapezoidProfile.stop(s, v0=v, accel=block.accel, s_limit=block.length)
            block.t0, block.stopping = now, True
            self._hold_complete = v <= 0.0
            self._cond.notify_all()

    def _cycle_start(self) -> None:
        with self._cond:
            # GRBL resumes only once the hold has come to rest.
            if self._state is not StageState.HOLD or not self._hold_complete:
                return
            now = time.monotonic()
            block = self._active
            if block is not None and block.profile is not None:
                s, _ = block.profile.at((now - block.t0) * self.time_scale)
                block.start(now, s0=s)
            self._state = StageState.RUN
            self._cond.notify_all()

    # ------------------------------------------------------------------------------------------- motion thread
    def _motion(self) -> None:
        with self._cond:
            while not self._stop.is_set():
                self._advance_locked(time.monotonic())
                busy = self._active is not None or (bool(self._planner) and not self._critical)
                self._cond.wait(_TICK_S if busy else 0.1)

    def _advance_locked(self, now: float, *, allow_faults: bool = True) -> None:
        """Bring position, state and BenchState up to ``now``; start queued blocks; fire mid-move faults."""
        if self._critical:
            return
        while True:
            block = self._active
            if block is None:
                if not self._planner or self._state not in (StageState.RUN, StageState.HOME):
                    return
                block = self._active = self._planner.popleft()
                block.start(now)
            assert block.profile is not None
            tau = (now - block.t0) * self.time_scale
            s, _ = block.profile.at(tau)
            self._set_pos_locked(block.point(s))
            if allow_faults and self._mid_move_fault_locked(block, tau):
                return
            if tau < block.profile.duration_s:
                return
            if block.stopping:
                self._hold_complete = True
                return
            self._active = None
            if not self._planner:
                if self._state is StageState.RUN and not self._faults.stuck_in_run:
                    self._state = StageState.IDLE
                self._cond.notify_all()
                return
            # the next queued block starts where this one ended, at this instant
            self._cond.notify_all()

    def _set_pos_locked(self, pos: Vec) -> None:
        self._pos = pos
        self.state.update(carousel_mm=pos[0], pitch_deg=pos[1], rail_mm=pos[2])

    def _mid_move_fault_locked(self, block: _Block, tau: float) -> bool:
        if block.kind == "move" and self._settings[21] and not self._settings[20] and not self._inside(self._pos):
            # the axis stops on its limit switch at the end of travel, not wherever the last tick left it
            self._set_pos_locked(block.point(self._envelope_exit(block)))
            self._active = None
            self._enter_alarm_locked(GrblAlarm.HARD_LIMIT, critical=True)
            return True
        if block.kind != "move" or block.fault_checked or block.stopping:
            return False
        assert block.profile is not None
        if tau < 0.5 * block.profile.duration_s:
            return False
        block.fault_checked = True
        if self._faults.alarm_mid_move:
            self._faults.alarm_mid_move = False
            self._enter_alarm_locked(GrblAlarm.HARD_LIMIT, critical=True)
            return True
        if self._faults.vanish_mid_move:
            self._faults.vanish_mid_move = False
            self._vanish()
            return True
        return False

    # ------------------------------------------------------------------------------------------- limits
    def _high(self) -> Vec:
        s = self._settings
        return (self._low[0] + s[130], self._low[1] + s[131], self._low[2] + s[132])

    def _inside(self, p: Vec, eps: float = 1e-6) -> bool:
        high = self._high()
        return all(self._low[i] - eps <= p[i] <= high[i] + eps for i in range(3))

    def _envelope_exit(self, block: _Block) -> float:
        """Path length at which ``block`` leaves the travel envelope."""
        high = self._high()
        exits = [block.length]
        for i in range(3):
            if block.unit[i] > 0:
                exits.append((high[i] - block.origin[i]) / block.unit[i])
            elif block.unit[i] < 0:
                exits.append((self._low[i] - block.origin[i]) / block.unit[i])
        return max(0.0, min(exits))

    def _home_position(self) -> Vec:
        high = self._high()
        return (
            min(max(0.0, self._low[0]), high[0]),
            min(max(0.0, self._low[1]), high[1]),
            min(max(0.0, self._low[2]), high[2]),
        )

    # ------------------------------------------------------------------------------------------- protocol thread
    def _protocol(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._stop.is_set() and (not self._lines or self._critical or self._vanish_requested):
                    self._cond.wait(0.1)
                if self._stop.is_set():
                    return
                line = self._lines.popleft()
                generation = self._generation
                if self._faults.drop_after_commands is not None and self._faults.drop_after_commands <= 0:
                    # the line that arrives after the N answered ones finds the port gone (answers in flight on a
                    # closing pty would be lost, which would make N ambiguous)
                    self._faults.drop_after_commands = None
                    self._vanish()
                    continue
                injected = self._faults.error_next_command
                self._faults.error_next_command = None
            try:
                code = int(injected) if injected is not None else self._execute(line, generation)
            except _Aborted:
                continue
            with self._cond:
                if generation != self._generation or self._critical or self._vanish_requested:
                    continue
                self._emit("ok" if code is None else f"error:{int(code)}")
                self._commands_answered += 1
                if self._faults.drop_after_commands is not None:
                    self._faults.drop_after_commands -= 1

    def _check_live(self, generation: int) -> None:
        """Raise _Aborted if a reset or a critical alarm happened since the line was taken (caller holds lock)."""
        if generation != self._generation or self._critical or self._stop.is_set() or self._vanish_requested:
            raise _Aborted

    def _wait_locked(self, generation: int, done: Callable[[], bool], timeout_s: float | None = None) -> None:
        """Wait (lock held) until ``done()`` is true; raise _Aborted on reset/stop."""
        end = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self._check_live(generation)
            if done():
                return
            remaining = 0.1 if end is None else end - time.monotonic()
            if end is not None and remaining <= 0:
                return
            self._cond.wait(min(0.1, remaining))

    def _synchronize_locked(self, generation: int) -> None:
        """GRBL protocol_buffer_synchronize: wait until every queued motion has finished."""
        self._wait_locked(
            generation,
            lambda: self._active is None and not self._planner and self._state not in (StageState.RUN, StageState.HOLD),
        )

    def _execute(self, raw: str, generation: int) -> int | None:
        """Run one line; returns None for ``ok`` or the error code."""
        line = _clean(raw)
        if len(line) > LINE_MAX_CHARS:
            return GrblError.OVERFLOW
        if not line:
            return None
        if line.startswith("$"):
            return self._system_command(line, generation)
        with self._cond:
            if self._state is StageState.ALARM:
                return GrblError.SYSTEM_GC_LOCK
        words = _parse_words(line)
        if isinstance(words, GrblError):
            return words
        return self._gcode(words, generation)

    # ------------------------------------------------------------------------------------------- $ commands
    def _system_command(self, line: str, generation: int) -> int | None:
        with self._cond:
            state = self._state
            idle_or_alarm = state in (StageState.IDLE, StageState.ALARM)
            if line == "$":
                self._emit(HELP_LINE)
            elif line in ("$$", "$#"):
                if state in (StageState.RUN, StageState.HOLD):
                    return GrblError.IDLE_ERROR
                for text in self._settings_lines() if line == "$$" else _parameter_lines():
                    self._emit(text)
            elif line == "$G":
                self._emit(self._parser_state_line())
            elif line == "$I":
                if not idle_or_alarm:
                    return GrblError.IDLE_ERROR
                self._emit(VERSION_LINE)
                self._emit(OPTIONS_LINE)
            elif line == "$X":
                if state is StageState.ALARM:
                    self._emit(MSG_UNLOCKED)
                    self._state = StageState.IDLE
            elif line == "$H":
                if not idle_or_alarm:
                    return GrblError.IDLE_ERROR
                if not self._settings[22]:
                    return GrblError.SETTING_DISABLED
                self._home_locked(generation)
            elif (match := re.fullmatch(r"\$(\d+)=(.*)", line)) is not None:
                if not idle_or_alarm:
                    return GrblError.IDLE_ERROR
                return self._write_setting(int(match[1]), match[2])
            else:
                return GrblError.INVALID_STATEMENT
        return None

    def _settings_lines(self) -> list[str]:
        out = []
        for number, value in sorted(self._settings.items()):
            out.append(f"${number}={int(value)}" if number in _INTEGER_SETTINGS else f"${number}={value:.3f}")
        return out

    def _parser_state_line(self) -> str:
        m = self._modal
        return (
            f"[GC:G{m.motion} G54 G17 {'G20' if m.inches else 'G21'} {'G91' if m.incremental else 'G90'} G94 "
            f"M{m.spindle_on} {'M8' if m.coolant_on else 'M9'} T0 F{m.feed_mm_min:.0f} S{m.spindle_s:.0f}]"
        )

    def _write_setting(self, number: int, text: str) -> int | None:
        if number not in self._settings:
            return GrblError.INVALID_STATEMENT
        if not _NUMBER.fullmatch(text):
            return GrblError.BAD_NUMBER_FORMAT
        value = float(text)
        if value < 0:
            return GrblError.NEGATIVE_VALUE
        if number == 20 and value and not self._settings[22]:
            return GrblError.SOFT_LIMIT_ERROR
        self._settings[number] = float(int(value)) if number in _INTEGER_SETTINGS else value
        return None

    def _home_locked(self, generation: int) -> None:
        self._state = StageState.HOME
        self._planned = self._pos
        target = self._home_position()
        seek = self._settings[25]
        # GRBL's default cycles: Z first (clear the chart), then X and Y together.
        self._queue_locked((self._planned[0], self._planned[1], target[2]), seek, "home")
        self._queue_locked(target, seek, "home")
        self._cond.notify_all()
        self._wait_locked(generation, lambda: self._active is None and not self._planner)
        self._set_pos_locked(target)
        self._planned = target
        self._state = StageState.IDLE

    # ------------------------------------------------------------------------------------------- G-code
    def _gcode(self, words: _Words, generation: int) -> int | None:
        v = words.values
        if "N" in v and v["N"] > 9_999_999:
            return GrblError.GCODE_INVALID_LINE_NUMBER
        if "T" in v and v["T"] > 255:
            return GrblError.GCODE_MAX_VALUE_EXCEEDED
        dwell = words.g.get("nonmodal") == 4
        if dwell and "P" not in v:
            return GrblError.GCODE_VALUE_WORD_MISSING
        if "P" in v and not dwell:
            return GrblError.GCODE_UNUSED_WORDS
        with self._cond:
            modal = self._modal
            inches = {20: True, 21: False}.get(words.g.get("units", -1), modal.inches)
            scale = MM_PER_INCH if inches else 1.0
            motion = words.g.get("motion", modal.motion)
            incremental = {90: False, 91: True}.get(words.g.get("distance", -1), modal.incremental)
            feed = v["F"] * scale if "F" in v else modal.feed_mm_min
            axes = {letter: v[letter] * scale for letter in "XYZ" if letter in v}
            if axes and motion == 1 and feed <= 0:
                return GrblError.GCODE_UNDEFINED_FEED_RATE
            target = None
            if axes:
                start = self._planned
                target = tuple(
                    (start[i] if incremental else 0.0) + axes[letter] if letter in axes else start[i]
                    for letter, i in _AXIS_INDEX.items()
                )
            # Execution order of GRBL gc_execute_line: F, S, spindle, coolant, dwell, units, distance, motion, stop.
            modal.feed_mm_min = feed
            if "S" in v:
                modal.spindle_s = min(v["S"], self._settings[30])
            spindle = words.m.get("spindle")
            if spindle is not None or ("S" in v and modal.spindle_on != 5):
                self._synchronize_locked(generation)
                modal.spindle_on = spindle if spindle is not None else modal.spindle_on
                on = modal.spindle_on != 5
                self.state.update(light_pwm=float(max(modal.spindle_s, self._settings[31])) if on else 0.0)
            coolant = words.m.get("coolant")
            if coolant is not None:
                self._synchronize_locked(generation)
                modal.coolant_on = coolant == 8
                if modal.coolant_on:
                    self.state.knock()
            if dwell:
                self._synchronize_locked(generation)
                self._wait_locked(generation, lambda: False, timeout_s=v["P"] / self.time_scale)
            modal.inches, modal.incremental, modal.motion = inches, incremental, motion
            if target is not None:
                error = self._move_locked(target, motion, feed, generation)
                if error is not None:
                    return error
            if words.m.get("stop") is not None:
                self._synchronize_locked(generation)
                modal.incremental, modal.spindle_on, modal.coolant_on, modal.motion = False, 5, False, 1
                self.state.update(light_pwm=0.0)
        return None

    def _move_locked(self, target: Vec, motion: int, feed_mm_min: float, generation: int) -> int | None:
        if self._settings[20] and not self._inside(target):
            # GRBL limits_soft_check: the move is refused before it starts and the machine locks (critical).
            self._enter_alarm_locked(GrblAlarm.SOFT_LIMIT, critical=True)
            raise _Aborted
        self._wait_locked(generation, lambda: len(self._planner) + (self._active is not None) < PLANNER_BLOCKS)
        rapid = max(self._settings[110], self._settings[111], self._settings[112])
        self._queue_locked(target, rapid if motion == 0 else feed_mm_min, "move")
        if self._state is StageState.IDLE:
            self._state = StageState.RUN
        self._cond.notify_all()
        return None

    def _queue_locked(self, target: Vec, feed_mm_min: float, kind: str) -> None:
        start = self._planned
        delta = (target[0] - start[0], target[1] - start[1], target[2] - start[2])
        length = math.sqrt(sum(d * d for d in delta))
        self._planned = target
        if length == 0.0:
            return
        unit = (delta[0] / length, delta[1] / length, delta[2] / length)
        rate = feed_mm_min / 60.0
        accel = math.inf
        for i in range(3):
            if unit[i] != 0.0:
                rate = min(rate, self._settings[110 + i] / 60.0 / abs(unit[i]))
                accel = min(accel, self._settings[120 + i] / abs(unit[i]))
        self._planner.append(_Block(origin=start, unit=unit, length=length, rate=rate, accel=accel, kind=kind))


def _default_settings(station: StationConfig) -> dict[int, float]:
    """``$$`` of the simulated controller: GRBL 1.1 defaults, motion and travel from the station."""
    s = station
    rates = (s.carousel.max_rate_mm_min, s.fixture.max_rate_deg_min, s.rail.max_rate_mm_min)
    return {
        0: 10,
        1: 25,
        2: 0,
        3: 0,
        4: 0,
        5: 0,
        6: 0,
        10: 1,
        11: 0.010,
        12: 0.002,
        13: 0,
        20: 1,
        21: 1,
        22: 1,
        23: 0,
        24: 25.0,
        25: max(rates),  # seek as fast as each axis allows (the planner limits per axis)
        26: 250,
        27: 1.0,
        30: s.light.pwm_max,
        31: 0,
        32: 0,
        100: 250.0,
        101: 250.0,
        102: 250.0,
        110: rates[0],
        111: rates[1],
        112: rates[2],
        120: s.carousel.accel_mm_s2,
        121: s.fixture.accel_deg_s2,
        122: s.rail.accel_mm_s2,
        130: s.carousel.max_mm,
        131: s.fixture.max_deg - s.fixture.min_deg,
        132: s.rail.max_mm - s.rail.min_mm,
    }


def _parameter_lines() -> list[str]:
    zero = "0.000,0.000,0.000"
    lines = [f"[{name}:{zero}]" for name in ("G54", "G55", "G56", "G57", "G58", "G59", "G28", "G30", "G92")]
    return [*lines, "[TLO:0.000]", f"[PRB:{zero}:0]"]


def _clean(raw: str) -> str:
    """What GRBL keeps of a line: no whitespace, no comments (``(...)`` and ``;...``), upper case."""
    out = []
    in_paren = False
    for char in raw:
        if in_paren:
            in_paren = char != ")"
        elif char == "(":
            in_paren = True
        elif char == ";":
            break
        elif not char.isspace() and char not in "/%":
            out.append(char.upper())
    return "".join(out)


def _parse_words(line: str) -> _Words | GrblError:
    """Split a cleaned G-code line into words, checking them the way GRBL's gc_execute_line does."""
    words = _Words()
    pos = 0
    while pos < len(line):
        letter = line[pos]
        if not "A" <= letter <= "Z":
            return GrblError.EXPECTED_COMMAND_LETTER
        match = _NUMBER.match(line, pos + 1)
        if match is None:
            return GrblError.BAD_NUMBER_FORMAT
        pos = match.end()
        value = float(match[0])
        if letter in "GM":
            if value != int(value):
                return GrblError.GCODE_UNSUPPORTED_COMMAND
            number = int(value)
            groups = _G_GROUPS if letter == "G" else _M_GROUPS
            table = words.g if letter == "G" else words.m
            group = groups.get(number)
            if group is None:
                return GrblError.GCODE_UNSUPPORTED_COMMAND
            if group in table:
                return GrblError.GCODE_MODAL_GROUP_VIOLATION
            table[group] = number
        elif letter in _VALUE_LETTERS:
            if letter in words.values:
                return GrblError.GCODE_WORD_REPEATED
            if letter in "FSPNT" and value < 0:
                return GrblError.NEGATIVE_VALUE
            words.values[letter] = value
        else:
            return GrblError.GCODE_UNSUPPORTED_COMMAND
    return words
