"""Serving an app with uvicorn: the bind check first, then a server that can also run on a thread (tests, demo)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

from rig.errors import DeviceError
from rig.web.security import AccessTokens, check_bind

STARTUP_TIMEOUT_S = 30.0
GRACEFUL_SHUTDOWN_S = 2.0
"""On stop, how long open responses may finish before they are cancelled. A browser's event stream (the live
step list) never ends by itself, and uvicorn would otherwise wait for it forever; the app's lifespan shutdown
(which makes the bench safe) still runs after the cancel."""


def serve_forever(app: Starlette, host: str, port: int, tokens: AccessTokens) -> None:
    check_bind(host, tokens)
    uvicorn.run(
        app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S
    )


class ThreadedServer:
    """A uvicorn server on a background thread, bound before :meth:`start` returns (port 0: any free port)."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0, *, tokens: AccessTokens) -> None:
        check_bind(host, tokens)
        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = host, int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DeviceError(f"web server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
