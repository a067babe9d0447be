"""``rig station serve``: the operator station in the browser, one server per bench (rig.web.station_app)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rig.config.station import DEFAULT_STATION

GROUP = "station"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve the operator screen of one station until interrupted")
    p.add_argument("--station", type=Path, default=DEFAULT_STATION, help="station file (default: the twin)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (beyond loopback needs access tokens)")
    p.add_argument("--port", type=int, default=8100, help="TCP port (default 8100)")
    p.add_argument("--home", type=Path, help="data home for reports/ (default: $RIG_HOME or .)")
    p.add_argument("--reports", type=Path, help="folder for run folders (default: HOME/reports)")
    p.add_argument("--store", help="results store URL the runs go to (and the station's state, for the line view)")
    p.add_argument("--public-url", help="this station's address as the line view should link it")
    p.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    from rig.config.home import default_reports_dir
    from rig.errors import ArgumentError
    from rig.web.security import AccessTokens
    from rig.web.serve import serve_forever
    from rig.web.station_app import create_station_app

    if not 0 < args.port <= 65535:
        raise ArgumentError(f"--port {args.port}: expected a TCP port 1..65535")
    tokens = AccessTokens.from_env()
    from rig.web.security import check_bind

    check_bind(args.host, tokens)
    reports = args.reports if args.reports is not None else default_reports_dir(args.home)
    public = args.public_url or f"http://{args.host}:{args.port}"
    app = create_station_app(args.station, reports, store_url=args.store, tokens=tokens, public_url=public)
    print(f"station {app.state.station.config.name} on {public}", flush=True)
    serve_forever(app, args.host, args.port, tokens)
    return 0
