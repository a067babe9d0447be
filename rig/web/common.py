"""What both servers share: templates, static files, the login page and the read-only report route."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from rig.web.files import NotInRunFolder, run_file
from rig.web.security import TOKEN_COOKIE, AccessTokens, Role, csrf_token, role_of

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
SSE_POLL_S = 0.25
SSE_HEARTBEAT_S = 15.0


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    base = {"csrf": csrf_token(request), "role": role_of(request).name.lower()}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def static_mount() -> Mount:
    return Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static")


def login_routes(tokens: AccessTokens) -> list[Route]:
    async def login_page(request: Request) -> Response:
        return render(request, "login.html", {"next": _local_next(request.query_params.get("next"))})

    async def login(request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token", ""))
        target = _local_next(str(form.get("next", "/")))
        if tokens.role_of(token) is Role.NONE:
            return render(request, "login.html", {"next": target, "error": "That token is not valid."}, 401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    return [Route("/login", login_page, methods=["GET"]), Route("/login", login, methods=["POST"])]


def _local_next(target: str | None) -> str:
    """Only a path on this server (an open redirect would hand the token page to any site)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def report_route(reports_dirs: Callable[[], list[Path]]) -> Route:
    async def report_file(request: Request) -> Response:
        try:
            path = run_file(reports_dirs(), request.path_params["run_id"], request.path_params["path"])
        except NotInRunFolder:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(path, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    return Route("/reports/{run_id}/{path:path}", report_file, methods=["GET", "HEAD"])


async def sse_stream(
    request: Request, version: Callable[[], Any], payload: Callable[[], dict[str, Any]]
) -> AsyncIterator[str]:
    """Server-sent events (WHATWG HTML §9.2): one ``data:`` JSON line whenever ``version()`` changes, and a
    comment line as heartbeat so proxies keep the connection. Bounded polling of an in-process counter."""
    last: Any = object()
    idle = 0.0
    yield "retry: 1000\n\n"
    while not await request.is_disconnected():
        current = version()
        if current != last:
            last = current
            idle = 0.0
            yield f"data: {json.dumps(await asyncio.to_thread(payload))}\n\n"
        elif idle >= SSE_HEARTBEAT_S:
            idle = 0.0
            yield ": heartbeat\n\n"
        await asyncio.sleep(SSE_POLL_S)
        idle += SSE_POLL_S
