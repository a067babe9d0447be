"""The twin GRBL's serial line: a pseudo-terminal whose slave a host opens like ``/dev/ttyUSB0``.

One reader thread polls the pty master and hands bytes, connects and hang-ups to the controller's callbacks;
output is written whole lines at a time. A host that does not read loses output (as on a UART) rather than
blocking the controller. :meth:`vanish` closes the master for good, like a USB cable pulled.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import threading
import tty
from collections.abc import Callable

from rig.twin.descriptors import off_stdio_fd

log = logging.getLogger(__name__)

_POLL_S = 0.02  # how soon stop() and a connecting client are noticed (real seconds)


class PtyTransport:
    """The pty and its reader thread; callbacks run on the reader thread."""

    def __init__(
        self,
        on_bytes: Callable[[bytes], None],
        on_connect: Callable[[], None],
        on_hangup: Callable[[], None],
    ) -> None:
        self._on_bytes = on_bytes
        self._on_connect = on_connect
        self._on_hangup = on_hangup
        self._master = -1
        self._wake_r = self._wake_w = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._vanish_requested = False
        self.path: str | None = None
        self.connected = False
        self.vanished = False

    def start(self) -> str:
        master, slave = (off_stdio_fd(fd) for fd in os.openpty())
        tty.setraw(slave)  # no echo, no line discipline: bytes pass as on a UART
        self.path = os.ttyname(slave)
        os.close(slave)  # the master sees POLLHUP until a client opens the slave
        fcntl.fcntl(master, fcntl.F_SETFL, fcntl.fcntl(master, fcntl.F_GETFL) | os.O_NONBLOCK)
        self._master = master
        self._wake_r, self._wake_w = (off_stdio_fd(fd) for fd in os.pipe())
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="grbl-peer-serial", daemon=True)
        self._thread.start()
        return self.path

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        for fd in (self._master, self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._wake_r = self._wake_w = -1
        self.path = None

    def write_line(self, text: str) -> None:
        """``text`` and GRBL's CR LF; dropped when nobody listens."""
        if self._master < 0 or not self.connected or self._vanish_requested:
            return
        try:
            os.write(self._master, text.encode("ascii") + b"\r\n")
        except BlockingIOError:
            log.warning("GRBL peer: host is not reading, dropped %r", text)
        except OSError as exc:
            log.debug("GRBL peer: write failed: %s", exc)

    def vanish(self) -> None:
        """Close the port from the reader thread (the only thread that polls the fd)."""
        self._vanish_requested = True
        self.connected = False
        self._wake()

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._master, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            if self._vanish_requested:
                fd, self._master = self._master, -1
                poller.unregister(fd)
                # flagged before the close: the host sees EIO the instant the fd closes and may ask at once
                self.vanished = True
                os.close(fd)
                log.info("GRBL peer: port %s vanished (fault)", self.path)
                self._on_hangup()
                return
            hangup = False
            for fd, events in poller.poll(_POLL_S * 1000):
                if fd == self._wake_r:
                    os.read(self._wake_r, 64)
                    continue
                if events & select.POLLIN:
                    try:
                        data = os.read(self._master, 4096)
                    except BlockingIOError:
                        data = b""
                    except OSError as exc:
                        if exc.errno != errno.EIO:
                            raise
                        hangup, data = True, b""
                    if data and self.connected:
                        self._on_bytes(data)
                if events & select.POLLHUP:
                    hangup = True
            if hangup:
                if self.connected:
                    self.connected = False
                    self._on_hangup()
                    log.debug("GRBL peer: client closed %s", self.path)
                self._stop.wait(0.005)  # no client: POLLHUP stays set, so pace the loop until one opens the slave
                continue
            if not self.connected and not self._vanish_requested:
                self.connected = True
                self._on_connect()
