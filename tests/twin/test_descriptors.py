"""The twin's sockets and pipes never take descriptors 0-2, which libgphoto2's PTP/IP teardown closes.

libgphoto2 2.5 closes fd 0 on every PTP/IP disconnect (``ptp_ptpip_disconnect`` closes ``jpgfd``, zero for the
generic driver: libgphoto2 camlibs/ptp2/ptpip.c). A suite run once lost the twin's listening socket that way
("Connection refused" on the next connect). Each check runs in a child process, where fd 0 can be closed without
touching pytest's own streams; with the fix removed, the low descriptor is the socket's and the check fails.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from rig.devices.gphoto2_phone import _fd0_guard

REPO = Path(__file__).resolve().parents[2]
JOIN_S = 10.0  # generous bounds for a loaded machine: only an outcome is asserted, never a duration


def _run_child(body: str) -> str:
    code = "import os, socket, stat\n" + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_socket_on_fd_0_moves_up_and_dev_null_takes_its_place() -> None:
    out = _run_child(
        """
        from rig.twin.descriptors import off_stdio_socket
        os.close(0)
        a, b = socket.socketpair()
        assert a.fileno() == 0, a.fileno()  # the lowest free number, as the kernel hands it out
        a.settimeout(5.0)
        moved = off_stdio_socket(a)
        null = os.stat(os.devnull)
        zero = os.fstat(0)
        assert moved.fileno() >= 3, moved.fileno()
        assert stat.S_ISCHR(zero.st_mode) and zero.st_rdev == null.st_rdev, zero
        assert moved.gettimeout() == 5.0
        b.sendall(b"ping")
        assert moved.recv(4) == b"ping"
        moved.sendall(b"pong")
        assert b.recv(4) == b"pong"
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_the_twin_phone_and_controller_listen_above_fd_2_when_fd_0_is_free() -> None:
    out = _run_child(
        """
        from tests.ptpip_twin import make_bench
        from rig.twin.grbl.transport import PtyTransport
        from rig.twin.ptpip_peer import PtpIpPeer
        os.close(0)
        peer = PtpIpPeer(make_bench())
        peer.start()
        serial = PtyTransport(lambda data: None, lambda: None, lambda: None)
        serial.start()
        zero = os.fstat(0)
        assert stat.S_ISCHR(zero.st_mode) and zero.st_rdev == os.stat(os.devnull).st_rdev, zero
        # a host connects while fd 0 is free: the accepted socket must not keep it either
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        os.close(0)
        client.connect(("127.0.0.1", peer.port))
        import time
        deadline = time.monotonic() + 10.0
        while not os.path.exists("/proc/self/fd/0"):  # until the peer's lobby has accepted
            assert time.monotonic() < deadline, "the peer never accepted"
            time.sleep(0.01)
        target = os.readlink("/proc/self/fd/0")
        assert not target.startswith("socket:"), target
        client.close()
        serial.stop()
        peer.stop()
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_one_fd0_guard_at_a_time_across_threads() -> None:
    # a late teardown on an abandoned worker and the next phone's connect must not check and repair fd 0 at once
    holding, release, entered = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with _fd0_guard():
            holding.set()
            release.wait(JOIN_S)

    def second() -> None:
        holding.wait(JOIN_S)
        with _fd0_guard():
            entered.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    assert holding.wait(JOIN_S)
    assert not entered.wait(0.3), "a second guard entered while the first was held"
    release.set()
    for t in threads:
        t.join(JOIN_S)
    assert entered.is_set()
