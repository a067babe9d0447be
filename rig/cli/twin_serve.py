"""``rig twin serve``: run the twin's GRBL and PTP/IP peers for real clients (gphoto2, a serial terminal)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from rig.config.station import DEFAULT_STATION, load_station

GROUP = "twin"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve the twin bench over a pty (GRBL) and PTP/IP until interrupted")
    p.add_argument("--station", type=Path, default=DEFAULT_STATION, help="twin station file")
    p.add_argument("--unit", help="twin unit file or name in fixtures/units/ (default: the station's)")
    p.add_argument("--ptp-port", type=int, default=0, help="PTP/IP command port (0 = any free port)")
    p.add_argument("--ptp-event-port", type=int, default=0, help="PTP/IP event port (0 = any free port)")
    p.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    from rig.config.resolve import load_station_lenses, load_twin_unit
    from rig.errors import ArgumentError
    from rig.twin.server import TwinServer

    for name in ("ptp_port", "ptp_event_port"):
        value = getattr(args, name)
        if not 0 <= value <= 65535:
            raise ArgumentError(f"--{name.replace('_', '-')} {value}: expected a TCP port 0..65535")
    if args.ptp_port and args.ptp_port == args.ptp_event_port:
        raise ArgumentError(f"--ptp-event-port {args.ptp_event_port}: expected a port other than --ptp-port")
    station = load_station(args.station)
    unit = load_twin_unit(station, args.unit, station_file=args.station)
    lenses = load_station_lenses(station, station_file=args.station)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = TwinServer(station, unit, lenses, ptp_port=args.ptp_port, ptp_event_port=args.ptp_event_port)
    try:
        addresses = server.start()
    except OSError as exc:  # the port is taken, privileged, or not this machine's: the user's choice of port
        ports = f"--ptp-port {args.ptp_port} / --ptp-event-port {args.ptp_event_port}"
        raise ArgumentError(f"{ports}: cannot listen on 127.0.0.1 ({exc.strerror or exc})") from None
    try:
        print(f"unit    {unit.serial} ({unit.description or 'twin unit'})", flush=True)
        print(f"serial  {addresses.serial_port}", flush=True)
        print(f"phone   {addresses.phone_port}", flush=True)
        print("serving; Ctrl-C to stop", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        server.stop()
    return 0
