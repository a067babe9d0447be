"""Keep the twin's sockets and pipes off file descriptors 0–2.

The twin's peers run inside the bench's process, beside libgphoto2, whose PTP/IP teardown closes descriptor 0
unconditionally (``ptp_ptpip_disconnect`` closes ``jpgfd``, which the generic PTP/IP driver never sets and which
is therefore 0). The driver gives fd 0 back after each teardown (:func:`rig.devices.gphoto2_phone._fd0_guard`),
but between libgphoto2's ``close(0)`` and that repair the kernel hands the lowest free number to whichever thread
opens a descriptor next. When that was one of the twin's listening sockets, the next teardown closed it: a new
session then met "Connection refused" (seen once in a suite run, after a hung capture's session was torn down as
the next test's phone was being made). A descriptor at 3 or above can never be the one libgphoto2 closes.
"""

from __future__ import annotations

import fcntl
import os
import socket

FIRST_SAFE_FD = 3
"""The lowest descriptor no standard stream (and no libgphoto2 teardown) uses."""


def off_stdio_fd(fd: int) -> int:
    """``fd`` itself when it is 3 or above; otherwise a close-on-exec duplicate at 3 or above, with ``/dev/null``
    left in the low slot (``dup2`` replaces it atomically: the low number is never free for another thread)."""
    if fd >= FIRST_SAFE_FD:
        return fd
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, FIRST_SAFE_FD)
    _park_devnull(fd)
    return high


def off_stdio_socket(sock: socket.socket) -> socket.socket:
    """``sock`` itself when its descriptor is 3 or above; otherwise the same connection on a descriptor at 3 or
    above (same family, type, protocol and blocking mode), with ``/dev/null`` left in the low slot."""
    fd = sock.fileno()
    if fd >= FIRST_SAFE_FD:
        return sock
    moved = socket.socket(sock.family, sock.type, sock.proto, fileno=off_stdio_fd(fd))
    moved.settimeout(sock.gettimeout())
    sock.detach()  # forget the low number without closing it: /dev/null holds it now
    return moved


def _park_devnull(fd: int) -> None:
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        os.dup2(null, fd)
    finally:
        if null != fd:
            os.close(null)
