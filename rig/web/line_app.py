"""The line view (``rig line serve --store URL``): every station, yield, failure causes, control charts and unit
histories, from the results store; live through server-sent events. The view learns of a change from PostgreSQL's
LISTEN/NOTIFY, or on SQLite from a bounded poll (one small query a second, whoever is watching) —
:mod:`rig.web.notify` — and then compares one cheap change marker, so open pages refetch only what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from rig.errors import ArgumentError
from rig.results.store import open_store
from rig.web.common import login_routes, render, report_route, sse_stream, static_mount
from rig.web.files import NotInRunFolder, run_folder
from rig.web.notify import StoreChanges
from rig.web.queries import (
    Filters,
    Period,
    change_marker,
    chart_stations,
    choices,
    control_chart,
    ensure_line_indexes,
    figures,
    golden_overdue,
    last_golden_checks,
    last_verdicts,
    pareto_causes,
    recent_runs,
    station_uncertainty_of,
    unit_history,
    yields,
)
from rig.web.security import AccessTokens, SecurityMiddleware
from rig.web.status import create_status_table, read_statuses


def parse_filters(params: Any) -> Filters:
    def when(key: str) -> datetime | None:
        text = (params.get(key) or "").strip()
        if not text:
            return None
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ArgumentError(f"{key} {text!r}: expected an ISO 8601 date or time (2026-05-01T06:00)") from None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    return Filters(
        plan=params.get("plan") or None,
        lens=params.get("lens") or None,
        station=params.get("station") or None,
        since=when("since"),
        until=when("until"),
    )


def create_line_app(
    store_url: str,
    *,
    reports_dirs: list[Path] | None = None,
    tokens: AccessTokens | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Starlette:
    """The line view's app; ``clock`` (UTC now) decides which golden-unit checks are overdue."""
    tokens = tokens or AccessTokens()
    store = open_store(store_url)
    engine = store.engine
    create_status_table(engine)
    ensure_line_indexes(engine)
    reports = list(reports_dirs or [])
    marker: dict[str, Any] = {"value": None, "version": 0}

    changes = StoreChanges(engine)

    async def follow() -> None:
        """Look at the store's change marker whenever it may have changed (notified, or the poll is due)."""
        while True:
            try:
                value = await asyncio.to_thread(change_marker, engine)
            except Exception:  # a database hiccup must not end live updates
                value = None
            if value != marker["value"]:
                marker["value"] = value
                marker["version"] += 1
            await changes.wait()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(follow())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await changes.close()
        store.close()

    def report_link(run: dict[str, Any], stations: dict[str, dict[str, Any]]) -> str | None:
        try:
            run_folder(reports, run["run_id"])
            return f"/reports/{run['run_id']}/report.html"
        except NotInRunFolder:
            url = (stations.get(run["station"]) or {}).get("url")
            return f"{url}/reports/{run['run_id']}/report.html" if url else None

    def live_context(filters: Filters) -> dict[str, Any]:
        statuses = read_statuses(engine)
        golden = last_golden_checks(engine)
        now = clock()
        for status in statuses:
            status["golden_checked"] = golden.get(status["station"])
            status["golden_overdue"] = golden_overdue(status["golden_checked"], status["golden_interval_h"], now)
        by_station = {s["station"]: s for s in statuses}
        recent = recent_runs(engine, filters)
        for run in recent:
            run["report"] = report_link(run, by_station)
        total = yields(engine, filters, Period.TOTAL)
        return {
            "statuses": statuses,
            "last_verdicts": last_verdicts(engine, filters),
            "total": total[0].summary if total else None,
            "hours": yields(engine, filters, Period.HOUR, newest=24),
            "shifts": yields(engine, filters, Period.SHIFT, newest=9),
            "pareto": pareto_causes(engine, filters),
            "recent": recent,
            "filters": filters,
            "query": filters.query_string(),
            "pct": _pct,
        }

    async def page(request: Request) -> Response:
        try:
            filters = parse_filters(request.query_params)
        except ArgumentError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        context = await asyncio.to_thread(lambda: {**live_context(filters), "choices": choices(engine)})
        context["figures"] = await asyncio.to_thread(figures, engine, filters)
        context["version"] = marker["version"]
        return render(request, "line.html", context)

    async def live(request: Request) -> Response:
        try:
            filters = parse_filters(request.query_params)
        except ArgumentError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        return render(request, "_line_live.html", await asyncio.to_thread(live_context, filters))

    async def events(request: Request) -> Response:
        stream = sse_stream(request, lambda: marker["version"], lambda: {"version": marker["version"]})
        return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def unit(request: Request) -> Response:
        serial = request.path_params["serial"]
        runs = await asyncio.to_thread(unit_history, engine, serial)
        by_station = {s["station"]: s for s in await asyncio.to_thread(read_statuses, engine)}
        for run in runs:
            run["report"] = report_link(run, by_station)
        return render(request, "unit.html", {"serial": serial, "runs": runs}, 200 if runs else 404)

    async def chart(request: Request) -> Response:
        try:
            filters = parse_filters(request.query_params)
        except ArgumentError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        name = request.query_params.get("name", "")
        zone = request.query_params.get("zone") or None
        found = await asyncio.to_thread(control_chart, engine, filters, name, zone)
        if found is None:
            return PlainTextResponse(f"no values of {name} {zone or ''} in the chosen runs", status_code=404)
        stations = (
            [filters.station]
            if filters.station
            else await asyncio.to_thread(chart_stations, engine, filters, name, zone)
        )
        uncertainties = [
            u
            for station in stations
            if (u := await asyncio.to_thread(station_uncertainty_of, store, station, name, zone)) is not None
        ]
        band = uncertainties[0] if len(stations) == 1 and uncertainties else None
        context = {
            "chart": found,
            "svg": chart_svg(found, u=band.uncertainty.expanded_u if band else None),
            "query": filters.query_string(),
            "band": band,
            "uncertainties": uncertainties,
            "stations": stations,
        }
        return render(request, "chart.html", context)

    routes = [
        Route("/", page),
        Route("/live", live),
        Route("/events", events),
        Route("/units/{serial}", unit),
        Route("/chart", chart),
        report_route(lambda: reports),
        *login_routes(tokens),
        static_mount(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(SecurityMiddleware, tokens=tokens)
    return app


def _pct(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{100 * value:.1f} %"


def uncertainty_zones(chart: Any, u: float) -> list[tuple[str, float, float]]:
    """The bands ± U to draw: around each specification limit — where, within U, a value cannot be told in or out
    (ISO 14253-1:2017 decision rules: the uncertainty range at a specification limit) — or, without limits, the centre
    line. (label, low, high) in the figure's unit."""
    limits = [(key, v) for key, v in (("LSL", chart.low), ("USL", chart.high)) if v is not None and math.isfinite(v)]
    around = limits or [("CL", chart.center)]
    return [(f"{key} ± U", value - u, value + u) for key, value in around]


def chart_svg(chart: Any, width: int = 900, height: int = 320, *, u: float | None = None) -> str:
    """An individuals chart as inline SVG: points in run order, centre line, ±3σ control limits, spec limits, and
    with an expanded uncertainty ``u`` its ± U bands (:func:`uncertainty_zones`)."""
    import numpy as np

    values = np.asarray(chart.values, dtype=float)
    lines = {"CL": chart.center, "UCL": chart.ucl, "LCL": chart.lcl, "USL": chart.high, "LSL": chart.low}
    lines = {k: v for k, v in lines.items() if v is not None and math.isfinite(v)}
    zones = uncertainty_zones(chart, u) if u is not None and math.isfinite(u) and u > 0 else []
    edges = [edge for _, low, high in zones for edge in (low, high)]
    lo = min([float(values.min()), *lines.values(), *edges])
    hi = max([float(values.max()), *lines.values(), *edges])
    span = hi - lo or 1.0
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    pad_l, pad_r, pad_y = 60, 50, 20

    def x(i: int) -> float:
        return pad_l + (width - pad_l - pad_r) * (i / max(len(values) - 1, 1))

    def y(v: float) -> float:
        return pad_y + (height - 2 * pad_y) * (1 - (v - lo) / (hi - lo))

    out = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="control chart of {chart.name}">']
    out.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>')
    for label, low, high in zones:
        out.append(
            f'<rect class="u-band" data-low="{low:.6g}" data-high="{high:.6g}" x="{pad_l}" y="{y(high):.1f}" '
            f'width="{width - pad_l - pad_r}" height="{y(low) - y(high):.1f}" fill="#f2b84b" fill-opacity="0.35">'
            f"<title>{label}: {low:.4g} … {high:.4g} {chart.unit}</title></rect>"
        )
    styles = {"CL": "#333", "UCL": "#1a5fd0", "LCL": "#1a5fd0", "USL": "#b3001b", "LSL": "#b3001b"}
    for key, value in lines.items():
        dash = "" if key == "CL" else ' stroke-dasharray="6 4"'
        out.append(
            f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'stroke="{styles[key]}"{dash}/>'
        )
        out.append(f'<text x="{width - pad_r + 4}" y="{y(value) + 4:.1f}">{key} {value:.3g}</text>')
    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
    out.append(f'<polyline points="{points}" fill="none" stroke="#777"/>')
    flagged = set(int(i) for i in chart.out_of_control)
    for i, v in enumerate(values):
        colour = "#b3001b" if i in flagged else "#111"
        out.append(
            f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"><title>{chart.run_ids[i]}: '
            f"{v:.4g} {chart.unit}</title></circle>"
        )
    out.append(f'<text x="4" y="{pad_y}">{hi:.3g}</text><text x="4" y="{height - pad_y}">{lo:.3g}</text></svg>')
    return "\n".join(out)
