"""``rig station configure``: write the GRBL settings a station requires into its controller (only when asked).

The driver's handshake at open compares ``$$`` with :func:`rig.config.station.required_grbl_settings` and refuses
a controller that differs; this command is the station engineer's way to make them agree (gnea/grbl
settings.md: ``$N=value`` is accepted in Idle or Alarm and stored in EEPROM at once).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rig.config.station import DEFAULT_STATION, TWIN_PORT, load_station, required_grbl_settings
from rig.errors import DeviceStateError
from rig.spec.grbl import Setting, format_setting

GROUP = "station"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "configure",
        help="write the station's required GRBL settings into the controller",
        description=__doc__,
    )
    p.add_argument("--station", type=Path, default=DEFAULT_STATION, help="station file (default: the twin)")
    p.add_argument("--port", help="serial port of the controller (default: the station's stage.port)")
    p.add_argument("--dry-run", action="store_true", help="only list the settings that would change")
    p.set_defaults(func=_configure)


def _configure(args: argparse.Namespace) -> int:
    from rig.devices.grbl import GrblController

    station = load_station(args.station)  # a bad axis mapping is exit 2 here, before any port is opened
    port = args.port or station.stage.port
    peer = None
    if port == TWIN_PORT:
        from rig.twin.grbl import GrblPeer
        from rig.twin.state import BenchState

        peer = GrblPeer(BenchState(), station, time_scale=station.twin.time_scale if station.twin else 1.0)
        port = peer.start()
    try:
        with GrblController.for_station(station, port, handshake=False) as controller:
            if controller.eeprom_lost:
                print("controller reported error:7 at power-up: its settings are GRBL's defaults")
            found = controller.read_settings()
            required = required_grbl_settings(station)
            changes = [n for n, need in required.items() if n not in found or not need.satisfied_by(found[n])]
            # homing before soft limits: GRBL refuses $20=1 while $22=0 (error:10)
            changes.sort(key=lambda n: (n != Setting.HOMING_CYCLE, n))
            for number in changes:
                need = required[number]
                old = found.get(number)
                line = format_setting(number, need.value)
                shown = "(missing)" if old is None else f"{old:g}"
                print(f"{line:<16} was {shown} ({need.why})" + ("  [dry run]" if args.dry_run else ""))
                if not args.dry_run:
                    controller.command(line)
            if not changes:
                print(f"controller on {port} already holds the settings station {station.name} requires")
            elif not args.dry_run:
                problems = controller.settings_problems(station)
                if problems:
                    raise DeviceStateError(f"settings did not take: {'; '.join(problems)}")
                print(f"wrote {len(changes)} settings; the controller now matches station {station.name}")
    finally:
        if peer is not None:
            peer.stop()
    sys.stdout.flush()
    return 0
