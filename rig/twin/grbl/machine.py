"""The twin's GRBL 1.1h controller: the state machine behind the pty, modelled on the firmware, not on the driver.

Sources: gnea/grbl doc/markdown/interface.md, commands.md, settings.md, doc/csv/*.csv and grbl/protocol.c,
report.c, limits.c, motion_control.c, system.c, gcode.c, jog.c, settings.c of v1.1h (build 20190830). What it does
as the firmware does:

- Power-up (a host opening the port resets the Arduino): ``error:7`` and the ``$$`` dump first if the EEPROM was
  lost (defaults restored: homing off, 500 mm/min, 10 mm/s²), then a blank line and the banner, then
  ``[MSG:'$H'|'$X' to unlock]`` when homing is enabled (the machine boots in Alarm), else the ``$N`` startup lines.
- Machine space: MPos counts from the power-up position; homing (Z, then X and Y: seek at ``$25``, pull off,
  locate at ``$24``, pull off) sets it so that the travel is ``[-$13x, 0]``, the axis resting at ``-$27`` (or
  ``-$13x + $27`` with the ``$23`` bit set). Soft limits refuse targets outside ``[-$13x, 0]`` with ALARM:2; the
  switches themselves sit at the ends of the physical travel (hard limits, ALARM:1).
- Alarms (:data:`rig.spec.grbl.ALARM_BEHAVIOUR`): ``ALARM:N``, then 500 ms during which nothing is answered and a
  critical alarm discards a reset; a critical alarm then prints ``[MSG:Reset to continue]`` and answers nothing,
  not even ``?``, until Ctrl-X. The line being executed gets its (stale) ``ok`` right after that reset, before
  the blank line and the banner. A homing failure (ALARM:6–9) resets by itself the same way; a probe failure
  (ALARM:4/5) reports ``[PRB:..:0]`` and answers its line.
- Status reports in the firmware's field order: ``$10`` picks MPos/WPos and Bf (planner blocks free, RX bytes
  free: 15 and 128 when empty), ``$13=1`` reports inches, ``Pn:`` lists pressed limit switches, WCO and Ov rotate.
- G10 L2/L20, G92/G92.1, G53, G28/G28.1/G30/G30.1, G38.2–.5 (the bench has no probe: contact never happens),
  ``$J=`` jogging with 0x85 cancel (error:15 past the travel), ``$C`` check mode, ``$N`` startup lines, ``$SLP``,
  ``$RST=``.

Time is the injected :class:`~rig.twin.clock.Clock`'s, scaled by ``time_scale`` (simulated firmware time), so a
test on a :class:`~rig.twin.clock.ManualClock` sees exact planned durations.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Self

from rig.config.station import HomingDirection, StationConfig
from rig.spec.grbl import (
    ALARM_PREFIX,
    ALARM_REPORT_DELAY_S,
    BANNER,
    COORD_DECIMALS_INCH,
    COORD_DECIMALS_MM,
    DEFAULT_SETTINGS,
    ERROR_PREFIX,
    HELP_LINE,
    LINE_MAX_CHARS,
    MM_PER_INCH,
    OK,
    OPTIONS_LINE,
    PLANNER_BLOCKS,
    RX_BUFFER_BYTES,
    STARTUP_RESULT_PREFIX,
    STATUS_MASK_BUFFER,
    STATUS_MASK_MPOS,
    VERSION_LINE,
    GrblAlarm,
    GrblError,
    Message,
    Realtime,
    Setting,
    StatusReport,
    alarm_behaviour,
)
from rig.spec.types import StageState
from rig.twin.clock import SYSTEM_CLOCK, Clock
from rig.twin.grbl.eeprom import COORD_SYSTEMS, STARTUP_SET_RE, ZERO, Eeprom, provisioned_settings
from rig.twin.grbl.gcode import Words, clean, parse_words
from rig.twin.grbl.motion import Block, BlockKind, Vec, quantize
from rig.twin.grbl.transport import PtyTransport
from rig.twin.hardware_time import HardwareAction, HardwareLedger
from rig.twin.state import AxesAtRest, BenchState

log = logging.getLogger(__name__)

_TICK_S = 0.002  # real seconds between motion/timer steps while busy (BenchState follows at 500 Hz)
_IDLE_TICK_S = 0.02
_HOMING_SEARCH_SCALAR = 1.5  # config.h HOMING_AXIS_SEARCH_SCALAR
_HOMING_LOCATE_SCALAR = 5.0  # config.h HOMING_AXIS_LOCATE_SCALAR
_HOMING_CYCLES: tuple[tuple[int, ...], ...] = ((2,), (0, 1))  # config.h HOMING_CYCLE_0 = Z, HOMING_CYCLE_1 = X|Y
_AXIS_LETTERS = "XYZ"
_SWITCH_EPS = 1e-6


@dataclass
class GrblFaults:
    """Faults the peer injects (issue #8, #12). One-shot faults clear themselves once they fire.

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
    homing_failure
        The next homing cycle fails with this alarm (6 reset, 7 door, 8 pull-off, 9 switch not found; one-shot).
    late_reply_s
        The next line's answer comes this many clock seconds late (one-shot): a host's timeout, then a late ok.
    """

    vanish_mid_move: bool = False
    alarm_mid_move: bool = False
    error_next_command: int | None = None
    stuck_in_run: bool = False
    drop_after_commands: int | None = None
    homing_failure: int | None = None
    late_reply_s: float | None = None


class _Aborted(Exception):
    """The line being executed was cut short by a reset: its answer, if any, is the reset's stale ``ok``."""


@dataclass
class _Modal:
    """The parser state gc_init() resets (G92 offsets included) on every reset."""

    motion: int = 0  # G number ×10: 0, 10, 382..385
    inches: bool = False
    incremental: bool = False
    coord: int = 0  # G54 + coord
    feed: float = 0.0  # mm/min
    spindle_on: int = 5
    spindle_s: float = 0.0  # programmed S
    coolant_on: bool = False
    g92: Vec = ZERO


@dataclass
class _Alarm:
    code: GrblAlarm
    critical: bool
    delay_until_s: float  # simulated time when report_alarm_message's 500 ms end
    reset_armed: bool = False  # critical: the reset flag was cleared, a new Ctrl-X now counts
    reset_after_delay: bool = False  # GRBL aborts itself (homing failure, abort cycle) once the delay ends


@dataclass
class _Line:
    text: str
    startup: bool = False


@dataclass
class _Timed:
    """Events GRBL's main loop would run when it gets the CPU back (simulated time)."""

    status_pending: bool = False
    reset_pending: bool = False
    boot_at_clock_s: float | None = None


class GrblPeer:
    """A GRBL 1.1h controller on a pseudo-terminal, driving the twin's bench state.

    Parameters
    ----------
    state
        The bench state the peer moves (station coordinates: the physical bench the renderer draws).
    station
        The physical bench: where each homing switch is (``stage.axes``: the station's coordinates of machine
        zero), the axes' travel, the light's PWM; and, unless ``settings`` says otherwise, the EEPROM as the
        station requires it (:func:`~rig.twin.grbl.eeprom.provisioned_settings`).
    time_scale
        Simulated firmware time runs this many times faster than the clock.
    faults
        Faults to inject (see :class:`GrblFaults`); changeable later with :meth:`set_faults`.
    boot_delay_s
        Clock seconds between a client opening the port and the banner (an Arduino's reset after DTR).
    clock
        Where time comes from (default: the machine's monotonic clock).
    settings
        EEPROM values that differ from the provisioned ones, e.g. ``{13: 1, 30: 500}``.
    eeprom_lost
        The EEPROM fails its checksum: the next power-up answers ``error:7`` and restores GRBL's defaults.
    hardware
        The twin's hardware-time ledger: every block is charged its trapezoid's duration in firmware time (what
        the move takes on the real rail, whatever ``time_scale``), every G4 its dwell.
    """

    def __init__(
        self,
        state: BenchState,
        station: StationConfig,
        *,
        time_scale: float = 1.0,
        faults: GrblFaults | None = None,
        boot_delay_s: float = 0.05,
        clock: Clock = SYSTEM_CLOCK,
        settings: dict[int, float] | None = None,
        eeprom_lost: bool = False,
        hardware: HardwareLedger | None = None,
    ) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.state = state
        self.station = station
        self.time_scale = float(time_scale)
        self._hardware = hardware  # motion and dwells are charged at their firmware (= real-bench) duration
        self.boot_delay_s = boot_delay_s
        self.clock = clock
        self._t0_ns = clock.now_ns()
        self._faults = faults or GrblFaults()
        self._cond = threading.Condition(threading.RLock())
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._transport = PtyTransport(self._on_bytes, self._on_connect, self._on_hangup)
        self._eeprom = Eeprom(provisioned_settings(station) | dict(settings or {}), lost=eeprom_lost)
        ranges = station.axis_ranges().values()
        # the physical bench: station coordinate = true machine position - work offset; switch travel per axis
        self._work_offset_phys: Vec = tuple(a.mapping.work_offset for a in ranges)  # type: ignore[assignment]
        self._travel_phys: Vec = tuple(a.mapping.travel for a in ranges)  # type: ignore[assignment]
        self._home_positive = tuple(a.mapping.homing_direction is HomingDirection.POSITIVE for a in ranges)
        with state.lock:
            station_pos: Vec = (state.carousel_mm, state.pitch_deg, state.rail_mm)
        self._origin: Vec = tuple(station_pos[i] + self._work_offset_phys[i] for i in range(3))  # type: ignore
        self._mpos: Vec = ZERO  # GRBL's step counter counts from where it powered up
        self._planned: Vec = ZERO
        self._state = StageState.ALARM
        self._hold_complete = False
        self._alarm: _Alarm | None = None
        self._generation = 0
        self._modal = _Modal()
        self._planner: deque[Block] = deque()
        self._active: Block | None = None
        self._rx = bytearray()
        self._lines: deque[_Line] = deque()
        self._executing = False
        self._booted = False
        self._timed = _Timed()
        self._wco_counter = 0
        self._ovr_counter = 0
        self.status_queries = 0
        """``?`` bytes received (answered or not): a test can check that a host did not ask."""
        self._commands_answered = 0

    # ------------------------------------------------------------------------------------------- lifecycle
    @property
    def path(self) -> str | None:
        return self._transport.path

    @property
    def vanished(self) -> bool:
        return self._transport.vanished

    @property
    def faults(self) -> GrblFaults:
        with self._cond:
            return GrblFaults(**{f.name: getattr(self._faults, f.name) for f in fields(GrblFaults)})

    @property
    def settings(self) -> dict[int, float]:
        """A copy of the EEPROM settings (``$$``)."""
        with self._cond:
            return dict(self._eeprom.settings)

    @property
    def machine_state(self) -> StageState:
        with self._cond:
            return self._state

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
        path = self._transport.start()
        self._stop.clear()
        for target, name in ((self._protocol, "protocol"), (self._motion, "motion")):
            thread = threading.Thread(target=target, name=f"grbl-peer-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        log.debug("GRBL peer on %s", path)
        return path

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads.clear()
        self._transport.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------- time
    def _sim_s(self) -> float:
        return self._sim_s_at(self.clock.now_ns())

    def _sim_s_at(self, clock_ns: int) -> float:
        return (clock_ns - self._t0_ns) / 1e9 * self.time_scale

    def _clock_s(self) -> float:
        return (self.clock.now_ns() - self._t0_ns) / 1e9

    def _sim_deadline_s(self, seconds: float) -> float:
        """The simulated time ``seconds`` of simulated time from now, as :meth:`_sim_s` will read it then.

        Computed at a whole clock nanosecond through the same formula, so a manual clock advanced by exactly
        ``seconds`` reaches it: ``now + seconds`` in floating point can lie one ulp beyond, and a waiter on a
        manual clock would then never wake.
        """
        return self._sim_s_at(self.clock.now_ns() + math.ceil(seconds / self.time_scale * 1e9))

    def _clock_deadline_s(self, seconds: float) -> float:
        """Like :meth:`_sim_deadline_s`, in clock seconds (:meth:`_clock_s`)."""
        return (self.clock.now_ns() + math.ceil(seconds * 1e9) - self._t0_ns) / 1e9

    def _emit(self, text: str) -> None:
        self._transport.write_line(text)

    # ------------------------------------------------------------------------------------------- serial events
    def _on_connect(self) -> None:
        with self._cond:
            self._booted = False
            self._timed.boot_at_clock_s = self._clock_deadline_s(self.boot_delay_s)
            self._cond.notify_all()

    def _on_hangup(self) -> None:
        with self._cond:
            self._booted = False
            self._timed.boot_at_clock_s = None
            self._cond.notify_all()

    def _on_bytes(self, data: bytes) -> None:
        with self._cond:
            if not self._booted:
                return  # the bootloader is still running: bytes are lost
            for byte in data:
                char = bytes([byte])
                if char == Realtime.STATUS.value:
                    self.status_queries += 1
                    self._request_status_locked()
                elif char == Realtime.FEED_HOLD.value:
                    self._feed_hold_locked()
                elif char == Realtime.CYCLE_START.value:
                    self._cycle_start_locked()
                elif char == Realtime.SOFT_RESET.value:
                    self._request_reset_locked()
                elif char == Realtime.JOG_CANCEL.value:
                    self._jog_cancel_locked()
                elif byte >= 0x80:
                    continue  # overrides and the safety door: accepted, not modelled
                elif byte in (0x0A, 0x0D):
                    if self._rx:
                        self._lines.append(_Line(self._rx.decode("ascii", errors="replace")))
                        self._rx.clear()
                    elif byte == 0x0A:
                        self._lines.append(_Line(""))  # an empty line still gets its ok
                else:
                    self._rx.append(byte)
            self._cond.notify_all()

    def _rx_used(self) -> int:
        return len(self._rx) + sum(len(line.text) + 1 for line in self._lines if not line.startup)

    # ------------------------------------------------------------------------------------------- realtime
    def _silent(self) -> bool:
        """GRBL is in report_alarm_message's delay or a critical alarm's loop: it reports nothing."""
        alarm = self._alarm
        return alarm is not None and (alarm.critical or self._sim_s() < alarm.delay_until_s)

    def _request_status_locked(self) -> None:
        alarm = self._alarm
        if alarm is not None and alarm.critical:
            return  # the critical loop never looks at the status flag; the reset clears it
        if self._silent() or self._state is StageState.HOME:
            self._timed.status_pending = True  # limits_go_home has no time for reports; they wait
            return
        self._advance_locked()
        self._emit(self._status_line_locked())

    def _request_reset_locked(self) -> None:
        alarm = self._alarm
        if alarm is not None and self._sim_s() < alarm.delay_until_s:
            if not alarm.critical:
                self._timed.reset_pending = True  # processed once the delay ends
            return  # a critical alarm clears any reset received during the delay
        if self._state is StageState.HOME:
            self._freeze_locked()
            self._raise_alarm_locked(GrblAlarm.HOMING_FAIL_RESET, reset_after_delay=True)
            return
        moving = self._active is not None or bool(self._planner)
        if moving and self._state in (StageState.RUN, StageState.HOLD, StageState.JOG):
            self._freeze_locked()
            self._raise_alarm_locked(GrblAlarm.ABORT_CYCLE, reset_after_delay=True)
            return
        self._reset_locked()

    def _feed_hold_locked(self) -> None:
        if self._state is StageState.JOG:
            self._jog_cancel_locked()
            return
        if self._state is not StageState.RUN:
            return
        self._advance_locked()
        self._state = StageState.HOLD
        block = self._active
        if block is None or block.profile is None:
            self._hold_complete = True
            return
        self._hold_complete = block.decelerate(self._sim_s()) <= 0.0

    def _cycle_start_locked(self) -> None:
        if self._state is not StageState.HOLD or not self._hold_complete:
            return  # GRBL resumes only once the hold has come to rest
        now = self._sim_s()
        block = self._active
        if block is not None and block.profile is not None:
            s, _ = block.profile.at(now - block.t0_s)
            block.start(now, s0=s)
        self._state = StageState.RUN

    def _jog_cancel_locked(self) -> None:
        """0x85: decelerate the jog to a stop and drop the rest of it (jog.c, protocol.c EXEC_MOTION_CANCEL)."""
        if self._state is not StageState.JOG:
            return
        self._advance_locked()
        self._planner.clear()
        if self._active is not None and self._active.profile is not None and not self._active.stopping:
            self._active.decelerate(self._sim_s())

    # ------------------------------------------------------------------------------------------- alarms, resets
    def _raise_alarm_locked(self, code: GrblAlarm, *, reset_after_delay: bool = False) -> None:
        behaviour = alarm_behaviour(code)
        self._state = StageState.ALARM
        # the 500 ms window starts before the line goes out: a client that reads ALARM:N may move a manual clock
        # at once, and a window timed after the write would then start late
        self._alarm = _Alarm(
            code,
            behaviour.critical,
            self._sim_deadline_s(ALARM_REPORT_DELAY_S),
            reset_after_delay=reset_after_delay or behaviour.resets_itself,
        )
        self._emit(f"{ALARM_PREFIX}{int(code)}")
        if behaviour.critical:
            self._freeze_locked()
            self._set_outputs_off_locked()  # mc_reset: spindle and coolant stop
        self._cond.notify_all()

    def _reset_locked(self) -> None:
        """mc_reset and the main loop's re-init: stale ok, blank line, banner, alarm lock or startup lines."""
        if self._executing:
            self._emit(OK)  # protocol_main_loop prints the interrupted line's status before it sees sys.abort
            self._executing = False
        self._freeze_locked()
        self._generation += 1
        self._alarm = None
        self._timed.status_pending = self._timed.reset_pending = False
        self._lines.clear()
        self._rx.clear()
        self._modal = _Modal()
        self._set_outputs_off_locked()
        self._wco_counter = self._ovr_counter = 0
        if self._state is StageState.SLEEP:
            self._state = StageState.ALARM
        elif self._state is not StageState.ALARM:
            self._state = StageState.IDLE
        self._boot_messages_locked()
        self._cond.notify_all()

    def _power_up_locked(self) -> None:
        """The Arduino reset after DTR: settings_init (error:7 on a lost EEPROM), then the main loop."""
        self._booted = True
        self._freeze_locked()
        self._origin = tuple(self._origin[i] + self._mpos[i] for i in range(3))  # type: ignore[assignment]
        self._mpos = self._planned = ZERO
        if self._eeprom.lost:
            self._emit(f"{ERROR_PREFIX}{int(GrblError.SETTING_READ_FAIL)}")
            self._eeprom.restore_defaults()
            for line in self._eeprom.settings_lines():
                self._emit(line)
        self._state = StageState.ALARM if self._eeprom[Setting.HOMING_CYCLE] else StageState.IDLE
        self._executing = False
        self._generation += 1
        self._alarm = None
        self._timed = _Timed()
        self._lines.clear()
        self._rx.clear()
        self._modal = _Modal()
        self._set_outputs_off_locked()
        self._wco_counter = self._ovr_counter = 0
        self._boot_messages_locked()

    def _boot_messages_locked(self) -> None:
        self._emit("")  # report_init_message prints "\r\nGrbl ..."
        self._emit(BANNER)
        if self._state is StageState.ALARM:
            self._emit(Message.UNLOCK_HINT)
        else:
            self._queue_startup_lines_locked()

    def _queue_startup_lines_locked(self) -> None:
        for text in reversed(self._eeprom.startup_lines):
            if text:
                self._lines.appendleft(_Line(text, startup=True))
        self._cond.notify_all()

    def _set_outputs_off_locked(self) -> None:
        self._modal.spindle_on, self._modal.coolant_on = 5, False
        self.state.update(light_pwm=0.0)

    def _freeze_locked(self) -> None:
        """Stop motion where it is (the twin's steppers lose no steps)."""
        self._advance_locked(allow_faults=False)
        self._active = None
        self._planner.clear()
        self._planned = self._mpos
        if self._state in (StageState.RUN, StageState.JOG, StageState.HOLD):
            self._state = StageState.IDLE

    # ------------------------------------------------------------------------------------------- motion thread
    def _motion(self) -> None:
        with self._cond:
            while not self._stop.is_set():
                self._timers_locked()
                self._advance_locked()
                busy = self._active is not None or self._planner or self._alarm or self._timed.boot_at_clock_s
                self._cond.wait(_TICK_S if busy else _IDLE_TICK_S)

    def _timers_locked(self) -> None:
        timed = self._timed
        if timed.boot_at_clock_s is not None and self._clock_s() >= timed.boot_at_clock_s:
            timed.boot_at_clock_s = None
            self._power_up_locked()
        alarm = self._alarm
        if alarm is None or self._sim_s() < alarm.delay_until_s:
            return
        if alarm.critical:
            if not alarm.reset_armed:
                alarm.reset_armed = True
                self._emit(Message.RESET_TO_CONTINUE)
            return
        self._alarm = None
        if alarm.reset_after_delay or timed.reset_pending:
            self._reset_locked()
            return
        if timed.status_pending and self._state is not StageState.HOME:
            timed.status_pending = False
            self._emit(self._status_line_locked())
        self._cond.notify_all()

    def _advance_locked(self, *, allow_faults: bool = True) -> None:
        """Bring position, state and BenchState up to now; start queued blocks; fire mid-move faults."""
        alarm = self._alarm
        if alarm is not None and alarm.critical:
            return
        now = self._sim_s()
        while True:
            block = self._active
            if block is None:
                if not self._planner or self._state not in (StageState.RUN, StageState.HOME, StageState.JOG):
                    return
                block = self._active = self._planner.popleft()
                block.start(now)
                self._announce_rest_locked(block)
                if self._hardware is not None:  # a hold or reset later cuts it short: rare, not refunded
                    self._hardware.charge(HardwareAction.MOTION, block.profile.duration_s)
            assert block.profile is not None
            tau = now - block.t0_s
            s, _ = block.profile.at(tau)
            self._set_mpos_locked(block.point(s) if s < block.length else block.target)
            if allow_faults and self._mid_move_fault_locked(block, tau):
                return
            if tau < block.profile.duration_s:
                return
            self._active = None
            if block.stopping and block.kind is not BlockKind.JOG:
                self._hold_complete = True
                self._active = block  # a feed hold rests on its block until ~ resumes it
                return
            if block.stopping:
                self._planner.clear()  # a cancelled jog
                self._planned = self._mpos
            if not self._planner:
                if self._state is StageState.JOG or (self._state is StageState.RUN and not self._faults.stuck_in_run):
                    self._state = StageState.IDLE
                self._cond.notify_all()
                return
            now = block.t0_s + block.profile.duration_s  # the next block starts where this one ended
            self._cond.notify_all()

    def _true(self, mpos: Vec) -> Vec:
        return (mpos[0] + self._origin[0], mpos[1] + self._origin[1], mpos[2] + self._origin[2])

    def _station_of(self, mpos: Vec) -> Vec:
        """Station coordinates (carousel, pitch, rail) of machine position ``mpos``: what BenchState holds."""
        true = self._true(mpos)
        w = self._work_offset_phys
        return (true[0] - w[0], true[1] - w[1], true[2] - w[2])

    def _set_mpos_locked(self, mpos: Vec) -> None:
        self._mpos = mpos
        carousel, pitch, rail = self._station_of(mpos)
        self.state.update(carousel_mm=carousel, pitch_deg=pitch, rail_mm=rail)

    def _announce_rest_locked(self, block: Block) -> None:
        """A move that empties the planner ends where the bench will be at rest: say where, and when."""
        if block.kind is not BlockKind.MOVE or self._planner or block.profile is None:
            return
        carousel, pitch, rail = self._station_of(block.target)
        self.state.announce_rest(
            AxesAtRest(
                carousel_mm=carousel, pitch_deg=pitch, rail_mm=rail, in_s=block.profile.duration_s / self.time_scale
            )
        )

    def _switch_of(self, axis: int) -> float:
        """True machine position of the homing switch of ``axis`` (its end of the physical travel)."""
        return 0.0 if self._home_positive[axis] else -self._travel_phys[axis]

    def _pressed(self, true: Vec) -> str:
        """Limit pins pressed at ``true`` (both ends of the physical travel are switched, as on the bench)."""
        return "".join(
            _AXIS_LETTERS[i]
            for i in range(3)
            if true[i] >= -_SWITCH_EPS or true[i] <= -self._travel_phys[i] + _SWITCH_EPS
        )

    def _switch_crossing(self, block: Block) -> float:
        """Path length at which ``block`` first reaches a limit switch (an end of the physical travel)."""
        start = self._true(block.origin)
        crossings = [block.length]
        for i in range(3):
            u = block.unit[i]
            if u > 0:
                crossings.append((0.0 - start[i]) / u)
            elif u < 0:
                crossings.append((-self._travel_phys[i] - start[i]) / u)
        return max(0.0, min(crossings))

    def _mid_move_fault_locked(self, block: Block, tau: float) -> bool:
        if block.kind is BlockKind.HOME:
            return False
        if self._eeprom[Setting.HARD_LIMITS] and self._pressed(self._true(self._mpos)):
            # the axis stops on its switch, not wherever the last tick left it
            self._set_mpos_locked(block.point(self._switch_crossing(block)))
            self._active = None
            self._planner.clear()
            self._raise_alarm_locked(GrblAlarm.HARD_LIMIT)
            return True
        if block.kind is not BlockKind.MOVE or block.fault_checked or block.stopping:
            return False
        assert block.profile is not None
        if tau < 0.5 * block.profile.duration_s:
            return False
        block.fault_checked = True
        if self._faults.alarm_mid_move:
            self._faults.alarm_mid_move = False
            self._raise_alarm_locked(GrblAlarm.HARD_LIMIT)
            return True
        if self._faults.vanish_mid_move:
            self._faults.vanish_mid_move = False
            self._transport.vanish()
            return True
        return False

    # ------------------------------------------------------------------------------------------- protocol thread
    def _protocol(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._stop.is_set() and not self._ready_for_line():
                    self._cond.wait(_IDLE_TICK_S)
                if self._stop.is_set():
                    return
                line = self._lines.popleft()
                generation = self._generation
                faults = self._faults
                if not line.startup and faults.drop_after_commands is not None and faults.drop_after_commands <= 0:
                    faults.drop_after_commands = None
                    self._transport.vanish()
                    continue
                injected, late_s = (None, None) if line.startup else (faults.error_next_command, faults.late_reply_s)
                if not line.startup:
                    faults.error_next_command = faults.late_reply_s = None
                self._executing = not line.startup
            try:
                code = int(injected) if injected is not None else self._execute(line.text, generation)
                if late_s:
                    self._sleep_clock(late_s, generation)
            except _Aborted:
                continue
            with self._cond:
                if generation != self._generation or not (self._executing or line.startup):
                    continue
                answer = OK if code is None else f"{ERROR_PREFIX}{int(code)}"
                self._emit(f"{STARTUP_RESULT_PREFIX}{line.text}:{answer}" if line.startup else answer)
                self._executing = False
                if not line.startup:
                    self._commands_answered += 1
                    if faults.drop_after_commands is not None:
                        faults.drop_after_commands -= 1

    def _ready_for_line(self) -> bool:
        if not self._lines or not self._booted or self._state is StageState.SLEEP:
            return False
        return self._alarm is None or (not self._alarm.critical and self._sim_s() >= self._alarm.delay_until_s)

    def _check_live(self, generation: int) -> None:
        if generation != self._generation or self._stop.is_set():
            raise _Aborted

    def _wait_locked(self, generation: int, done: Callable[[], bool]) -> None:
        """Wait (lock held) until ``done()``; raise _Aborted on a reset. A critical alarm waits for its reset."""
        while True:
            self._check_live(generation)
            if done() and (self._alarm is None or not self._alarm.critical):
                return
            self._cond.wait(_TICK_S)

    def _sleep_sim(self, seconds: float, generation: int) -> None:
        end = self._sim_deadline_s(seconds)
        with self._cond:
            self._wait_locked(generation, lambda: self._sim_s() >= end)

    def _sleep_clock(self, seconds: float, generation: int) -> None:
        end = self._clock_deadline_s(seconds)
        with self._cond:
            self._wait_locked(generation, lambda: self._clock_s() >= end)

    def _synchronize_locked(self, generation: int) -> None:
        """protocol_buffer_synchronize: wait until every queued motion has finished."""
        self._wait_locked(
            generation,
            lambda: (
                self._active is None
                and not self._planner
                and self._state not in (StageState.RUN, StageState.HOLD, StageState.JOG)
            ),
        )

    def _execute(self, raw: str, generation: int) -> int | None:
        """Run one line; returns None for ``ok`` or the error code."""
        line = clean(raw)
        if len(line) > LINE_MAX_CHARS:
            return GrblError.OVERFLOW
        if not line:
            return None
        if line.startswith("$"):
            return self._system_command(line, generation)
        with self._cond:
            if self._state in (StageState.ALARM, StageState.JOG):
                return GrblError.SYSTEM_GC_LOCK
        words = parse_words(line)
        if isinstance(words, GrblError):
            return words
        return self._gcode(words, generation, jog=False)

    # ------------------------------------------------------------------------------------------- $ commands
    def _system_command(self, line: str, generation: int) -> int | None:
        with self._cond:
            state = self._state
            idle_or_alarm = state in (StageState.IDLE, StageState.ALARM)
            if line == "$":
                self._emit(HELP_LINE)
            elif line == "$$":
                if state in (StageState.RUN, StageState.HOLD, StageState.JOG):
                    return GrblError.IDLE_ERROR
                for text in self._eeprom.settings_lines():
                    self._emit(text)
            elif line == "$#":
                if state in (StageState.RUN, StageState.HOLD, StageState.JOG):
                    return GrblError.IDLE_ERROR
                for text in self._parameter_lines_locked():
                    self._emit(text)
            elif line == "$G":
                self._emit(self._parser_state_line_locked())
            elif line == "$I":
                if not idle_or_alarm:
                    return GrblError.IDLE_ERROR
                self._emit(VERSION_LINE)
                self._emit(OPTIONS_LINE)
            elif line == "$X":
                if state is StageState.ALARM:
                    self._emit(Message.CAUTION_UNLOCKED)
                    self._state = StageState.IDLE
            elif line == "$H":
                if not self._eeprom[Setting.HOMING_CYCLE]:
                    return GrblError.SETTING_DISABLED
                if not idle_or_alarm:
                    return GrblError.IDLE_ERROR
                self._home_locked(generation)
                self._queue_startup_lines_locked()  # system.c: the startup lines run after a homing cycle
            elif line == "$C":
                return self._check_mode_locked()
            elif line == "$SLP":
                if not idle_or_alarm:
                    return GrblError.IDLE_ERROR
                self._emit(OK)  # the flag is acted on after this line's ok
                self._executing = False
                self._sleep_locked()
                raise _Aborted
            elif line == "$N":
                for index, text in enumerate(self._eeprom.startup_lines):
                    self._emit(f"$N{index}={text}")
            elif (match := STARTUP_SET_RE.match(line)) is not None:
                return self._store_startup_line_locked(int(match["index"]), match["line"], generation)
            elif line.startswith("$J="):
                if state not in (StageState.IDLE, StageState.JOG):
                    return GrblError.IDLE_ERROR
                words = parse_words(line[3:])
                if isinstance(words, GrblError):
                    return words
                return self._gcode(words, generation, jog=True)
            elif line.startswith("$RST="):
                if not idle_or_alarm:
                    return GrblError.IDLE_ERROR
                what = line[5:]
                if what not in ("$", "#", "*"):
                    return GrblError.INVALID_STATEMENT
                if what in ("$", "*"):
                    self._eeprom.settings = dict(DEFAULT_SETTINGS)
                if what in ("#", "*"):
                    self._eeprom.coord_systems = [ZERO] * len(COORD_SYSTEMS)
                    self._eeprom.g28 = self._eeprom.g30 = ZERO
                self._emit(Message.RESTORING_DEFAULTS)
            elif line.startswith("$") and "=" in line and line[1 : line.index("=")].isdigit():
                if not idle_or_alarm:
                    return GrblError.IDLE_ERROR
                number, text = line[1:].split("=", 1)
                return self._eeprom.write(int(number), text)
            else:
                return GrblError.INVALID_STATEMENT
        return None

    def _sleep_locked(self) -> None:
        self._freeze_locked()
        self._set_outputs_off_locked()
        self._state = StageState.SLEEP
        self._emit(Message.SLEEPING)

    def _check_mode_locked(self) -> int | None:
        if self._state is StageState.CHECK:
            self._emit(Message.DISABLED)
            self._emit(OK)
            self._executing = False
            self._state = StageState.IDLE
            self._reset_locked()  # system.c: toggling check mode off is a reset
            raise _Aborted
        if self._state is not StageState.IDLE:
            return GrblError.IDLE_ERROR
        self._state = StageState.CHECK
        self._emit(Message.ENABLED)
        return None

    def _store_startup_line_locked(self, index: int, text: str, generation: int) -> int | None:
        if index >= len(self._eeprom.startup_lines):
            return GrblError.INVALID_STATEMENT
        if self._state is not StageState.IDLE:
            return GrblError.IDLE_ERROR
        line = clean(text)
        if line:
            # system.c executes the block once to prove it valid before storing it
            words = parse_words(line)
            if isinstance(words, GrblError):
                return words
            error = self._gcode(words, generation, jog=False)
            if error is not None:
                return error
        self._eeprom.startup_lines[index] = line
        return None

    def _units(self) -> tuple[float, int]:
        inches = bool(self._eeprom[Setting.REPORT_INCHES])
        return (MM_PER_INCH if inches else 1.0), (COORD_DECIMALS_INCH if inches else COORD_DECIMALS_MM)

    def _triple(self, v: Vec) -> str:
        scale, decimals = self._units()
        return ",".join(f"{x / scale:.{decimals}f}" for x in v)

    def _parameter_lines_locked(self) -> list[str]:
        e = self._eeprom
        lines = [f"[{name}:{self._triple(v)}]" for name, v in zip(COORD_SYSTEMS, e.coord_systems, strict=True)]
        lines += [f"[G28:{self._triple(e.g28)}]", f"[G30:{self._triple(e.g30)}]"]
        lines += [f"[G92:{self._triple(self._modal.g92)}]", "[TLO:0.000]", f"[PRB:{self._triple(ZERO)}:0]"]
        return lines

    def _parser_state_line_locked(self) -> str:
        m = self._modal
        motion = {0: "G0", 10: "G1", 382: "G38.2", 383: "G38.3", 384: "G38.4", 385: "G38.5"}[m.motion]
        feed = m.feed / (MM_PER_INCH if m.inches else 1.0)
        return (
            f"[GC:{motion} G{54 + m.coord} G17 {'G20' if m.inches else 'G21'} {'G91' if m.incremental else 'G90'} "
            f"G94 M{m.spindle_on} {'M8' if m.coolant_on else 'M9'} T0 F{feed:g} S{m.spindle_s:g}]"
        )

    # ------------------------------------------------------------------------------------------- homing
    def _home_locked(self, generation: int) -> None:
        """limits_go_home for each cycle: seek, pull off, locate, pull off; then set the machine position."""
        e = self._eeprom
        if self._state is StageState.CHECK:
            return
        self._state = StageState.HOME
        self._alarm = None
        pull_off = e[Setting.HOMING_PULL_OFF_MM]
        seek, locate = e[Setting.HOMING_SEEK_MM_MIN], e[Setting.HOMING_FEED_MM_MIN]
        failure, self._faults.homing_failure = self._faults.homing_failure, None
        travel = e.vector(130)
        for cycle in _HOMING_CYCLES:
            toward = {i: (1.0 if not int(e[Setting.HOMING_DIR_INVERT]) >> i & 1 else -1.0) for i in cycle}
            true_now = self._true(self._mpos)
            # the seek stops at the switch, if there is one within 1.5 × $13x in the homing direction
            seek_to = list(self._mpos)
            found = True
            for i in cycle:
                to_switch = (self._switch_of(i) - true_now[i]) * toward[i]
                limit = _HOMING_SEARCH_SCALAR * travel[i]
                found &= 0.0 <= to_switch <= limit
                seek_to[i] = self._mpos[i] + toward[i] * (to_switch if 0.0 <= to_switch <= limit else limit)
            self._home_pass_locked(tuple(seek_to), seek, generation)  # type: ignore[arg-type]
            if failure in (GrblAlarm.HOMING_FAIL_APPROACH, GrblAlarm.HOMING_FAIL_DOOR) or not found:
                code = failure if failure is not None else GrblAlarm.HOMING_FAIL_APPROACH
                self._fail_homing_locked(GrblAlarm(code), generation)
            off = tuple(self._mpos[i] - (toward.get(i, 0.0) * pull_off) for i in range(3))
            self._home_pass_locked(off, locate, generation)  # type: ignore[arg-type]
            if failure == GrblAlarm.HOMING_FAIL_PULLOFF:
                self._fail_homing_locked(GrblAlarm.HOMING_FAIL_PULLOFF, generation)
            if failure == GrblAlarm.HOMING_FAIL_RESET:
                self._fail_homing_locked(GrblAlarm.HOMING_FAIL_RESET, generation)
            back = tuple(self._mpos[i] + (toward.get(i, 0.0) * pull_off) for i in range(3))
            self._home_pass_locked(back, locate, generation)  # type: ignore[arg-type]
            off = tuple(self._mpos[i] - (toward.get(i, 0.0) * pull_off) for i in range(3))
            self._home_pass_locked(off, locate, generation)  # type: ignore[arg-type]
            # set the machine position: -pull-off (positive homing) or -travel + pull-off ($23 bit set)
            true_after = self._true(self._mpos)
            mpos = list(self._mpos)
            for i in cycle:
                mpos[i] = -pull_off if toward[i] > 0 else -travel[i] + pull_off
            origin = list(self._origin)
            for i in cycle:
                origin[i] = true_after[i] - mpos[i]
            self._origin = tuple(origin)  # type: ignore[assignment]
            self._set_mpos_locked(tuple(mpos))  # type: ignore[arg-type]
            self._planned = self._mpos
        self._state = StageState.IDLE
        if self._timed.status_pending:
            self._timed.status_pending = False
            self._emit(self._status_line_locked())

    def _home_pass_locked(self, target: Vec, feed: float, generation: int) -> None:
        e = self._eeprom
        self._planned = self._mpos
        block = Block.between(
            self._mpos, target, feed, max_rate=e.vector(110), max_accel=e.vector(120), kind=BlockKind.HOME
        )
        if block is None:
            return
        self._planner.append(block)
        self._planned = target
        self._advance_locked()
        self._cond.notify_all()
        self._wait_locked(generation, lambda: self._active is None and not self._planner)

    def _fail_homing_locked(self, code: GrblAlarm, generation: int) -> None:
        self._freeze_locked()
        self._raise_alarm_locked(code, reset_after_delay=True)
        self._wait_locked(generation, lambda: False)  # the self-reset aborts this line

    # ------------------------------------------------------------------------------------------- G-code
    def _wco(self) -> Vec:
        m = self._modal
        c = self._eeprom.coord_systems[m.coord]
        return (c[0] + m.g92[0], c[1] + m.g92[1], c[2] + m.g92[2])

    def _gcode(self, words: Words, generation: int, *, jog: bool) -> int | None:
        v = words.values
        g = words.g
        nonmodal = g.get("nonmodal")
        if jog and (words.m or set(g) - {"units", "distance", "nonmodal"} or nonmodal not in (None, 530)):
            return GrblError.INVALID_JOG_COMMAND
        if jog and ("F" not in v):
            return GrblError.GCODE_UNDEFINED_FEED_RATE
        if "N" in v and v["N"] > 9_999_999:
            return GrblError.GCODE_INVALID_LINE_NUMBER
        if "T" in v and v["T"] > 255:
            return GrblError.GCODE_MAX_VALUE_EXCEEDED
        uses_axes = nonmodal in (100, 280, 300, 920)
        if uses_axes and "motion" in g:
            return GrblError.GCODE_AXIS_COMMAND_CONFLICT
        if nonmodal == 40 and "P" not in v:
            return GrblError.GCODE_VALUE_WORD_MISSING
        if "P" in v and nonmodal not in (40, 100):
            return GrblError.GCODE_UNUSED_WORDS
        if "L" in v and nonmodal != 100:
            return GrblError.GCODE_UNUSED_WORDS
        with self._cond:
            m = self._modal
            check = self._state is StageState.CHECK
            inches = {200: True, 210: False}.get(g.get("units", -1), m.inches)
            scale = MM_PER_INCH if inches else 1.0
            incremental = {900: False, 910: True}.get(g.get("distance", -1), m.incremental)
            motion = m.motion if jog else g.get("motion", m.motion)
            if jog:
                motion = 10
            feed = v["F"] * scale if "F" in v else (0.0 if jog else m.feed)
            axes = {i: value * scale for i, value in words.axes.items()}
            if nonmodal == 530 and motion not in (0, 10):
                return GrblError.GCODE_G53_INVALID_MOTION_MODE
            if axes and not uses_axes and motion in (10, 382, 383, 384, 385) and feed <= 0:
                return GrblError.GCODE_UNDEFINED_FEED_RATE
            if nonmodal == 100:
                error = self._g10_locked(v, axes, check)
                if error is not None:
                    return error
            if check:
                m.inches, m.incremental, m.motion = inches, incremental, motion
                return None
            if not jog:
                m.feed = feed
                if "coord" in g:
                    m.coord = (g["coord"] - 540) // 10
                    self._wco_counter = 0
            # gc_execute_line order: feed, spindle, coolant, dwell, units, distance, non-modal, motion, stop.
            if "S" in v:
                m.spindle_s = v["S"]
            spindle = words.m.get("spindle")
            if spindle is not None or ("S" in v and m.spindle_on != 5):
                self._synchronize_locked(generation)
                m.spindle_on = spindle if spindle is not None else m.spindle_on
                self._apply_spindle_locked()
            coolant = words.m.get("coolant")
            if coolant is not None:
                self._synchronize_locked(generation)
                m.coolant_on = coolant == 8
                if m.coolant_on:
                    self.state.knock()
            if nonmodal == 40:
                self._synchronize_locked(generation)
                if self._hardware is not None:
                    self._hardware.charge(HardwareAction.MOTION, v["P"])
                end = self._sim_deadline_s(v["P"])
                self._wait_locked(generation, lambda: self._sim_s() >= end)
            if not jog:
                m.inches, m.incremental, m.motion = inches, incremental, motion
            if nonmodal in (281, 301):
                self._synchronize_locked(generation)
                if nonmodal == 281:
                    self._eeprom.g28 = self._mpos
                else:
                    self._eeprom.g30 = self._mpos
            elif nonmodal == 920:
                # G92: the work position becomes the given values (gcode.c: offset = position - G5x - value)
                c = self._eeprom.coord_systems[m.coord]
                here = self._planned
                m.g92 = tuple(  # type: ignore[assignment]
                    here[i] - c[i] - axes[i] if i in axes else m.g92[i] for i in range(3)
                )
                self._wco_counter = 0
            elif nonmodal == 921:
                m.g92 = ZERO
                self._wco_counter = 0
            elif nonmodal in (280, 300):
                stored = self._eeprom.g28 if nonmodal == 280 else self._eeprom.g30
                if axes:
                    via = self._target_locked(axes, incremental, machine=False)
                    error = self._move_locked(via, 0, 0.0, generation, kind=BlockKind.MOVE)
                    if error is not None:
                        return error
                target = tuple(stored[i] if (not axes or i in axes) else self._planned[i] for i in range(3))
                error = self._move_locked(target, 0, 0.0, generation, kind=BlockKind.MOVE)  # type: ignore[arg-type]
                if error is not None:
                    return error
            elif axes and nonmodal != 100:
                target = self._target_locked(axes, incremental, machine=nonmodal == 530)
                kind = BlockKind.JOG if jog else BlockKind.PROBE if motion >= 382 else BlockKind.MOVE
                error = self._move_locked(target, motion, feed, generation, kind=kind)
                if error is not None:
                    return error
            if words.m.get("stop") is not None:
                self._synchronize_locked(generation)
                m.incremental, m.coord, m.g92, m.motion = False, 0, ZERO, 10
                self._set_outputs_off_locked()
                self._emit(Message.PROGRAM_END)
        return None

    def _g10_locked(self, v: dict[str, float], axes: dict[int, float], check: bool) -> int | None:
        """G10 L2 Pn (offsets) / L20 Pn (offsets so that the current position reads the given values)."""
        if "L" not in v or "P" not in v:
            return GrblError.GCODE_VALUE_WORD_MISSING
        if v["L"] not in (2, 20):
            return GrblError.GCODE_UNSUPPORTED_COMMAND
        if not axes:
            return GrblError.GCODE_NO_AXIS_WORDS
        p = int(v["P"])
        if p != v["P"] or p > len(COORD_SYSTEMS):
            return GrblError.GCODE_UNSUPPORTED_COORD_SYS
        if check:
            return None
        index = self._modal.coord if p == 0 else p - 1
        current = list(self._eeprom.coord_systems[index])
        for i, value in axes.items():
            if v["L"] == 2:
                current[i] = value
            else:
                current[i] = self._planned[i] - self._modal.g92[i] - value
        self._eeprom.coord_systems[index] = tuple(current)  # type: ignore[assignment]
        self._wco_counter = 0
        return None

    def _target_locked(self, axes: dict[int, float], incremental: bool, *, machine: bool) -> Vec:
        start = self._planned
        wco = ZERO if machine else self._wco()
        return tuple(  # type: ignore[return-value]
            (start[i] + axes[i] if incremental else axes[i] + wco[i]) if i in axes else start[i] for i in range(3)
        )

    def _within_travel(self, target: Vec) -> bool:
        """system_check_travel_limits: machine space is [-$13x, 0] on every axis."""
        travel = self._eeprom.vector(130)
        return all(-travel[i] - 1e-9 <= target[i] <= 1e-9 for i in range(3))

    def _move_locked(self, target: Vec, motion: int, feed: float, generation: int, *, kind: BlockKind) -> int | None:
        e = self._eeprom
        target = quantize(target, e.vector(100))
        if e[Setting.SOFT_LIMITS] and not self._within_travel(target):
            if kind is BlockKind.JOG:
                return GrblError.TRAVEL_EXCEEDED  # a jog is refused, not an alarm (jog.c)
            self._synchronize_locked(generation)  # limits_soft_check holds the motion before alarming
            self._raise_alarm_locked(GrblAlarm.SOFT_LIMIT)
            self._wait_locked(generation, lambda: False)  # nothing runs until the reset aborts this line
        self._wait_locked(generation, lambda: len(self._planner) + (self._active is not None) < PLANNER_BLOCKS)
        rapid = max(e[110], e[111], e[112])
        block = Block.between(
            self._planned, target, rapid if motion == 0 else feed, max_rate=e.vector(110), max_accel=e.vector(120),
            kind=kind,
        )  # fmt: skip
        self._planned = target
        if block is not None:
            self._planner.append(block)
            if self._state is StageState.IDLE:
                self._state = StageState.JOG if kind is BlockKind.JOG else StageState.RUN
            self._advance_locked()  # an idle planner starts the block now, not at the motion thread's next tick
            self._cond.notify_all()
        if kind is BlockKind.PROBE:
            self._probe_locked(motion, generation)
        return None

    def _probe_locked(self, motion: int, generation: int) -> None:
        """mc_probe_cycle without a probe: the move runs to its end; G38.2/.4 then alarm (no contact)."""
        self._synchronize_locked(generation)
        if motion in (382, 384):
            self._raise_alarm_locked(GrblAlarm.PROBE_FAIL_CONTACT)
            alarm = self._alarm
            assert alarm is not None
            end = alarm.delay_until_s
            self._wait_locked(generation, lambda: self._sim_s() >= end)
        self._emit(f"[PRB:{self._triple(self._mpos)}:0]")

    def _apply_spindle_locked(self) -> None:
        """spindle_compute_pwm_value: S is clamped to [$31, $30]; the panel's duty is that fraction of $30."""
        duty = self._spindle_speed() / max(self._eeprom[Setting.SPINDLE_MAX_RPM], 1e-9)
        self.state.update(light_pwm=duty * self.station.light.pwm_max)

    def _spindle_speed(self) -> float:
        """sys.spindle_speed as reported in FS: 0 when off, else S clamped to GRBL's [$31, $30]."""
        m = self._modal
        if m.spindle_on == 5 or m.spindle_s <= 0:
            return 0.0
        rpm_max, rpm_min = self._eeprom[30], self._eeprom[31]
        if rpm_min >= rpm_max or m.spindle_s >= rpm_max:
            return rpm_max
        return max(m.spindle_s, rpm_min)

    # ------------------------------------------------------------------------------------------- status report
    def _status_line_locked(self) -> str:
        e = self._eeprom
        mask = int(e[Setting.STATUS_REPORT_MASK])
        scale, decimals = self._units()
        state = self._state
        substate = None
        if state is StageState.HOLD:
            substate = 0 if self._hold_complete else 1
        wco = self._wco()
        pos = self._mpos
        speed = 0.0
        if self._active is not None and self._active.profile is not None:
            _, speed = self._active.profile.at(self._sim_s() - self._active.t0_s)
        report_wco = report_ov = False
        if self._wco_counter > 0:
            self._wco_counter -= 1
        else:
            busy = state in (StageState.HOME, StageState.RUN, StageState.HOLD, StageState.JOG, StageState.DOOR)
            self._wco_counter = (30 if busy else 10) - 1
            report_wco = True
            if self._ovr_counter == 0:
                self._ovr_counter = 1
        if self._ovr_counter > 0:
            self._ovr_counter -= 1
        else:
            busy = state in (StageState.HOME, StageState.RUN, StageState.HOLD, StageState.JOG, StageState.DOOR)
            self._ovr_counter = (20 if busy else 10) - 1
            report_ov = True
        accessories = ("S" if self._modal.spindle_on == 3 else "C" if self._modal.spindle_on == 4 else "") + (
            "F" if self._modal.coolant_on else ""
        )

        def units(v: Vec) -> Vec:
            return (v[0] / scale, v[1] / scale, v[2] / scale)

        report = StatusReport(
            state=state.value,
            substate=substate,
            mpos=units(pos) if mask & STATUS_MASK_MPOS else None,
            wpos=None if mask & STATUS_MASK_MPOS else units((pos[0] - wco[0], pos[1] - wco[1], pos[2] - wco[2])),
            planner_blocks_free=PLANNER_BLOCKS - len(self._planner) - (self._active is not None)
            if mask & STATUS_MASK_BUFFER
            else None,
            rx_bytes_free=RX_BUFFER_BYTES - self._rx_used() if mask & STATUS_MASK_BUFFER else None,
            feed=speed * 60 / scale,
            spindle=self._spindle_speed(),
            pins=self._pressed(self._true(pos)),  # report.c reports the limit pins whatever $21 says
            wco=units(wco) if report_wco else None,
            overrides_pct=(100, 100, 100) if report_ov else None,
            accessories=accessories,
            decimals=decimals,
        )
        return report.format()

    # public view for tests of the model (not used by any driver)
    def machine_position(self) -> Vec:
        """GRBL's MPos (mm/degrees), brought up to now."""
        with self._cond:
            self._advance_locked()
            return self._mpos

    def planned_duration_s(self, start: Vec, target: Vec, feed_per_min: float) -> float:
        """The simulated duration of one rest-to-rest block with the current settings (for timing tests)."""
        e = self._eeprom
        block = Block.between(start, target, feed_per_min, max_rate=e.vector(110), max_accel=e.vector(120),
                              kind=BlockKind.MOVE)  # fmt: skip
        return 0.0 if block is None else block.duration_s()
