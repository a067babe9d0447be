"""A line on one machine: N twin stations and the line view over one results store (``rig line demo``).

Each station is its own station server with its own station file (``twin-01`` … ``twin-N``, otherwise the
shipped twin station) and reports folder; every run starts its own twin peers on their own free ports, so the
stations sign off units in parallel exactly as separate benches would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from rig.config.station import DEFAULT_STATION
from rig.web.runner import StartRequest
from rig.web.security import AccessTokens
from rig.web.serve import ThreadedServer

DEMO_UNITS = (("golden", "XM12SU-000001"), ("flange-plus8", "XM12SU-000102"), ("tilt-3arcmin", "XM12SU-000103"))
"""The simulated units the demo signs off, station by station (cycled)."""


def station_files(folder: Path, count: int, template: Path = DEFAULT_STATION) -> list[Path]:
    """``count`` twin station files named twin-01 …, identical to ``template`` but for the name."""
    text = template.read_text(encoding="utf-8")
    if not re.search(r'^name = ".*"$', text, flags=re.M):
        raise ValueError(f'{template}: expected a top-level name = "…" line')
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(1, count + 1):
        path = folder / f"twin-{i:02d}.toml"
        path.write_text(re.sub(r'^name = ".*"$', f'name = "twin-{i:02d}"', text, count=1, flags=re.M), "utf-8")
        files.append(path)
    return files


@dataclass
class DemoLine:
    """The running line: its station servers and the line view (stop with :meth:`stop`)."""

    stations: list[ThreadedServer] = field(default_factory=list)
    line: ThreadedServer | None = None
    apps: list = field(default_factory=list)

    def sign_off_all(self) -> list[str]:
        """Start one sign-off on every station, units taken in turn from :data:`DEMO_UNITS`."""
        run_ids = []
        for i, app in enumerate(self.apps):
            unit, serial = DEMO_UNITS[i % len(DEMO_UNITS)]
            request = StartRequest(plan="signoff", unit_serial=serial, twin_unit=unit, operator="demo")
            run_ids.append(app.state.station.runner.start(request))
        return run_ids

    def stop(self) -> None:
        for server in [*self.stations, *([self.line] if self.line else [])]:
            server.stop()


def start_line(
    home: Path,
    count: int,
    store_url: str,
    *,
    host: str = "127.0.0.1",
    line_port: int = 0,
    first_station_port: int = 0,
    tokens: AccessTokens | None = None,
    unattended: bool = True,
) -> DemoLine:
    from rig.web.line_app import create_line_app
    from rig.web.station_app import create_station_app

    tokens = tokens or AccessTokens()
    demo = DemoLine()
    reports_dirs = []
    try:
        for i, station_file in enumerate(station_files(home / "stations", count)):
            reports = home / f"reports-{station_file.stem}"
            reports_dirs.append(reports)
            app = create_station_app(station_file, reports, store_url=store_url, tokens=tokens, unattended=unattended)
            port = first_station_port + i if first_station_port else 0
            server = ThreadedServer(app, host, port, tokens=tokens).start()
            app.state.station.set_public_url(server.url)
            demo.stations.append(server)
            demo.apps.append(app)
        line_app = create_line_app(store_url, reports_dirs=reports_dirs, tokens=tokens)
        demo.line = ThreadedServer(line_app, host, line_port, tokens=tokens).start()
    except BaseException:
        demo.stop()
        raise
    return demo
