"""``rig line serve`` (the line view over a results store) and ``rig line demo`` (N twin stations and the view)."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

GROUP = "line"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve the line view of a results store until interrupted")
    p.add_argument("--store", required=True, help="results store URL (postgresql://… for a line, or SQLite)")
    p.add_argument("--reports", type=Path, action="append", default=[], help="run folders to serve (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (beyond loopback needs access tokens)")
    p.add_argument("--port", type=int, default=8200, help="TCP port (default 8200)")
    p.set_defaults(func=serve)
    d = subparsers.add_parser("demo", help="a line on this machine: N twin stations and the line view")
    d.add_argument("--stations", type=int, default=3, help="number of twin stations (default 3)")
    d.add_argument("--store", help="results store URL (default: SQLite in HOME/line-demo)")
    d.add_argument("--home", type=Path, default=Path("line-demo"), help="folder for station files and reports")
    d.add_argument("--port", type=int, default=8200, help="line view port; stations on the next ports")
    d.add_argument("--sign-off", action="store_true", help="start one sign-off on every station at once")
    d.set_defaults(func=demo)


def _port(value: int) -> int:
    from rig.errors import ArgumentError

    if not 0 < value <= 65535:
        raise ArgumentError(f"--port {value}: expected a TCP port 1..65535")
    return value


def serve(args: argparse.Namespace) -> int:
    from rig.web.line_app import create_line_app
    from rig.web.security import AccessTokens, check_bind
    from rig.web.serve import serve_forever

    tokens = AccessTokens.from_env()
    check_bind(args.host, tokens)
    app = create_line_app(args.store, reports_dirs=args.reports, tokens=tokens)
    print(f"line view of {args.store} on http://{args.host}:{_port(args.port)}", flush=True)
    serve_forever(app, args.host, args.port, tokens)
    return 0


def demo(args: argparse.Namespace) -> int:
    from rig.errors import ArgumentError
    from rig.web.demo import start_line

    if not 1 <= args.stations <= 20:
        raise ArgumentError(f"--stations {args.stations}: expected 1..20")
    store = args.store or f"sqlite:///{(args.home / 'results.sqlite').resolve()}"
    line = start_line(args.home, args.stations, store, line_port=_port(args.port), first_station_port=args.port + 1)
    try:
        assert line.line is not None
        print(f"line view  {line.line.url}", flush=True)
        for server, app in zip(line.stations, line.apps, strict=True):
            print(f"station    {app.state.station.config.name} {server.url}", flush=True)
        if args.sign_off:
            for run_id in line.sign_off_all():
                print(f"started    {run_id}", flush=True)
        print("serving; Ctrl-C to stop", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        line.stop()
    return 0
