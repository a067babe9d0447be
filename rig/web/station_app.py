"""The operator station in the browser (``rig station serve --station FILE``): one server per bench.

Screen: serial entry (a keyboard-wedge barcode scanner types the serial and Enter; it is checked against the
station's serial pattern), plan, lens and, on a twin station, the simulated unit on the bench; Start; the live
step list with state, duration and the latest capture; the plan's instructions to the operator full width with
one confirm button; Abort; the verdict as one huge word (colour and text), the failing figures with value and
limit, the next action; Resume for an ERROR run; the report.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from rig.config.lenses import LensCatalog
from rig.config.resolve import load_station_lenses, load_twin_unit
from rig.config.station import StationConfig, load_station
from rig.config.unit import UNITS_DIR
from rig.errors import InputError
from rig.web.common import login_routes, render, report_route, sse_stream, static_mount, templates
from rig.web.files import NotInRunFolder, latest_preview
from rig.web.runner import PLAN_COMMANDS, StartRequest, StationRunner
from rig.web.security import AccessTokens, Role, SecurityMiddleware, role_of
from rig.web.status import StationStatus, create_status_table, publish_status

OPERATOR_PLANS = frozenset({"signoff"})  # calibration writes to the phone, certification rates a lens: engineers


class Station:
    """The station the server drives: its files, its runner and (optionally) its status row in the store."""

    def __init__(
        self,
        station_file: Path,
        reports_dir: Path,
        *,
        store_url: str | None = None,
        public_url: str | None = None,
        unattended: bool = False,
    ) -> None:
        self.station_file = station_file
        self.config: StationConfig = load_station(station_file)
        self.lenses: LensCatalog = load_station_lenses(self.config, station_file=station_file)
        self.reports_dir = reports_dir
        self.public_url = public_url
        self._engine = None
        if store_url:
            from rig.results.store import open_store

            self._store = open_store(store_url)
            self._engine = self._store.engine
            create_status_table(self._engine)
        if unattended and not self.config.is_twin:
            raise InputError(f"{station_file}: only a twin station can run unattended (a real lens needs hands)")
        self.runner = StationRunner(
            station_file, reports_dir, store_url=store_url, on_change=self._publish, unattended=unattended
        )
        self._publish(None)

    def _publish(self, view: Any) -> None:
        if self._engine is not None:
            status = StationStatus.of(
                self.config.name, self.public_url, view, golden_interval_h=self.config.golden_interval_h
            )
            publish_status(self._engine, status)

    def set_public_url(self, url: str) -> None:
        """The address the line view links to (known once the server is bound)."""
        self.public_url = url
        self._publish(self.runner.view())

    @property
    def twin_units(self) -> list[str]:
        return sorted(p.stem for p in UNITS_DIR.glob("*.toml")) if self.config.is_twin else []

    def check(self, form: dict[str, str], role: Role) -> StartRequest:
        """The start form as a run request; :class:`InputError` (one line) for anything the run would refuse."""
        serial = self.config.check_serial(form.get("serial", "").strip())
        plan = form.get("plan") or "signoff"
        if plan not in PLAN_COMMANDS:
            raise InputError(f"plan {plan!r}: expected one of {', '.join(PLAN_COMMANDS)}")
        if plan not in OPERATOR_PLANS and role < Role.ENGINEER:
            raise InputError(f"plan {plan}: needs an engineer's token")
        lens = form.get("lens") or self.config.reference_lens
        self.lenses.get(lens, source="lens", field="lens")
        twin_unit = form.get("twin_unit") or None
        if self.config.is_twin:
            if twin_unit not in self.twin_units:
                raise InputError(f"twin unit {twin_unit!r}: expected one of {', '.join(self.twin_units)}")
            load_twin_unit(self.config, twin_unit, station_file=self.station_file)
        else:
            twin_unit = None
        return StartRequest(
            plan=plan, unit_serial=serial, lens=lens, twin_unit=twin_unit, operator=form.get("operator", "")
        )


def create_station_app(
    station_file: Path,
    reports_dir: Path,
    *,
    store_url: str | None = None,
    tokens: AccessTokens | None = None,
    public_url: str | None = None,
    unattended: bool = False,
) -> Starlette:
    tokens = tokens or AccessTokens()
    station = Station(station_file, reports_dir, store_url=store_url, public_url=public_url, unattended=unattended)

    def panel_context() -> dict[str, Any]:
        view = station.runner.view()
        preview = None
        if view is not None:
            try:
                preview = latest_preview([reports_dir], view.run_id)
            except NotInRunFolder:  # the run's folder is not there yet
                preview = None
        return {"view": view, "preview": preview, "version": station.runner.version, "station": station}

    def panel_html(request: Request) -> str:
        context = {**panel_context(), "csrf": request.scope["rig_csrf"], "role": role_of(request).name.lower()}
        return templates.get_template("_run.html").render(context)

    async def page(request: Request) -> Response:
        return render(request, "station.html", {**panel_context(), "error": request.query_params.get("error")})

    async def panel(request: Request) -> Response:
        return render(request, "_run.html", panel_context())

    async def events(request: Request) -> Response:
        def payload() -> dict[str, Any]:
            view = station.runner.view()
            return {"html": panel_html(request), "running": bool(view and view.running)}

        stream = sse_stream(request, lambda: station.runner.version, payload)
        return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def check_serial(request: Request) -> Response:
        form = await request.form()
        try:
            serial = station.config.check_serial(str(form.get("serial", "")).strip())
        except InputError as exc:
            return JSONResponse({"ok": False, "message": str(exc)})
        return JSONResponse({"ok": True, "message": f"{serial} ✓"})

    async def start(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            station.runner.start(station.check(form, role_of(request)))
        except InputError as exc:
            return _back(str(exc))
        return _back()

    async def resume(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        view = station.runner.view()
        if view is None or view.running or view.verdict != "ERROR" or form.get("run_id") != view.run_id:
            return _back("only the last run, ended in ERROR, can be resumed")
        if view.plan not in OPERATOR_PLANS and role_of(request) < Role.ENGINEER:
            return _back(f"plan {view.plan}: needs an engineer's token")
        twin_unit = form.get("twin_unit") or view.twin_unit
        if station.config.is_twin and twin_unit not in station.twin_units:
            return _back(f"twin unit {twin_unit!r}: expected one of {', '.join(station.twin_units)}")
        request_ = StartRequest(
            plan=view.plan,
            unit_serial=view.unit_serial,
            lens=view.lens,
            twin_unit=twin_unit if station.config.is_twin else None,
            operator=form.get("operator", ""),
            resume=view.run_id,
        )
        try:
            station.runner.start(request_)
        except InputError as exc:
            return _back(str(exc))
        return _back()

    async def confirm(request: Request) -> Response:
        form = await request.form()
        try:
            prompt_id = int(str(form.get("prompt", "")))
        except ValueError:
            return _back("confirm: no prompt number in the form")
        station.runner.confirm(prompt_id)
        return _back()

    async def abort(request: Request) -> Response:
        station.runner.abort()
        return _back()

    routes = [
        Route("/", page),
        Route("/panel", panel),
        Route("/events", events),
        Route("/serial", check_serial, methods=["POST"]),
        Route("/start", start, methods=["POST"]),
        Route("/resume", resume, methods=["POST"]),
        Route("/confirm", confirm, methods=["POST"]),
        Route("/abort", abort, methods=["POST"]),
        report_route(lambda: [reports_dir]),
        *login_routes(tokens),
        static_mount(),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        station.runner.shutdown()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(SecurityMiddleware, tokens=tokens)
    app.state.station = station
    return app


def _back(error: str | None = None) -> Response:
    """Post/redirect/get: the screen reloads with the new state (an error as one line on it)."""
    from urllib.parse import urlencode

    return RedirectResponse("/" + (f"?{urlencode({'error': error})}" if error else ""), status_code=303)
