"""Who may use a server, from where, and how forms are protected.

* Every server binds 127.0.0.1 unless told otherwise; binding another address requires access tokens
  (:func:`check_bind`), taken from the environment (``RIG_OPERATOR_TOKEN``, ``RIG_ENGINEER_TOKEN``) so they do
  not show in a process list. With tokens, every request carries one (``Authorization: Bearer TOKEN`` or the
  cookie the login form sets) and gets that token's :class:`Role`; without tokens (loopback only) every request
  is an engineer's.
* Forms are protected against cross-site requests by a double-submit token (OWASP CSRF Prevention Cheat Sheet,
  "Signed double-submit cookie" / "Verifying origin with standard headers"): the ``rig_csrf`` cookie
  (SameSite=Strict) must equal the ``csrf`` form field or the ``X-CSRF-Token`` header, and an ``Origin``
  header, when the browser sends one, must name this server.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rig.errors import ArgumentError

CSRF_COOKIE = "rig_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
TOKEN_COOKIE = "rig_token"
TOKEN_ENV = {"operator": "RIG_OPERATOR_TOKEN", "engineer": "RIG_ENGINEER_TOKEN"}
MIN_TOKEN_CHARS = 16
PUBLIC_PATHS = ("/login", "/static/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Role(IntEnum):
    """What a request may do; an engineer may do everything an operator may."""

    NONE = 0
    OPERATOR = 1
    ENGINEER = 2


@dataclass(frozen=True)
class AccessTokens:
    """The tokens of the two roles (both None: no tokens, loopback only)."""

    operator: str | None = None
    engineer: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AccessTokens:
        env = dict(os.environ) if env is None else env
        tokens = cls(operator=env.get(TOKEN_ENV["operator"]) or None, engineer=env.get(TOKEN_ENV["engineer"]) or None)
        for role, value in (("operator", tokens.operator), ("engineer", tokens.engineer)):
            if value is not None and len(value) < MIN_TOKEN_CHARS:
                raise ArgumentError(f"{TOKEN_ENV[role]}: expected at least {MIN_TOKEN_CHARS} characters")
        if tokens.operator is not None and tokens.operator == tokens.engineer:
            raise ArgumentError(f"{TOKEN_ENV['operator']} and {TOKEN_ENV['engineer']}: expected two different tokens")
        return tokens

    @property
    def enabled(self) -> bool:
        return self.operator is not None or self.engineer is not None

    def role_of(self, token: str | None) -> Role:
        if not self.enabled:
            return Role.ENGINEER
        if not token:
            return Role.NONE
        # constant-time comparisons: the time taken must not tell how much of a guess was right
        if self.engineer is not None and hmac.compare_digest(token.encode(), self.engineer.encode()):
            return Role.ENGINEER
        if self.operator is not None and hmac.compare_digest(token.encode(), self.operator.encode()):
            return Role.OPERATOR
        return Role.NONE


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: AccessTokens) -> None:
    """Refuse to serve on a non-loopback address without access tokens (one line, naming what to set)."""
    if not is_loopback(host) and not tokens.enabled:
        raise ArgumentError(
            f"--host {host}: serving beyond this machine needs access tokens; set {TOKEN_ENV['operator']} and/or "
            f"{TOKEN_ENV['engineer']} (at least {MIN_TOKEN_CHARS} characters each)"
        )


def request_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(TOKEN_COOKIE)


def role_of(request: Request) -> Role:
    return Role(request.scope.get("rig_role", Role.NONE))


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser (the cookie's, or a fresh one the middleware will set)."""
    return str(request.scope["rig_csrf"])


class SecurityMiddleware:
    """Authentication (role per request), CSRF checks on unsafe methods, and the CSRF cookie."""

    def __init__(self, app: ASGIApp, tokens: AccessTokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = cookie is None or len(cookie) < 32
        scope["rig_csrf"] = secrets.token_urlsafe(32) if fresh else cookie
        role = self.tokens.role_of(request_token(request))
        scope["rig_role"] = role
        path = scope["path"]
        response: Response | None = None
        if role is Role.NONE and not path.startswith(PUBLIC_PATHS):
            if request.method in SAFE_METHODS and "text/html" in request.headers.get("accept", ""):
                response = RedirectResponse(f"/login?next={path}", status_code=303)
            else:
                response = PlainTextResponse("an access token is required (Authorization: Bearer …)", 401)
        elif request.method not in SAFE_METHODS:
            body = await request.body()
            receive = _replay(body, receive)  # the endpoint reads the body the check has consumed
            problem = await _csrf_problem(request, cookie)
            if problem:
                response = PlainTextResponse(f"cross-site request refused: {problem}", 403)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, _set_cookie(send, scope, fresh))


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replaying() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await receive())

    return replaying


def _set_cookie(send: Send, scope: Scope, fresh: bool) -> Callable[[dict], Awaitable[None]]:
    async def sending(message: dict) -> None:
        if fresh and message["type"] == "http.response.start":
            cookie = f"{CSRF_COOKIE}={scope['rig_csrf']}; Path=/; SameSite=Strict; HttpOnly"
            message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
        await send(message)

    return sending


async def _csrf_problem(request: Request, cookie: str | None) -> str | None:
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            return f"Origin {origin} is not this server ({host})"
    if request.headers.get("authorization", "").lower().startswith("bearer ") and not request.cookies:
        return None  # a script with a bearer token: no ambient credentials a foreign page could borrow
    if not cookie:
        return "no CSRF cookie (load the page first)"
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), cookie.encode()):
        return "the form's CSRF token does not match this browser's"
    return None
