"""The twin phone's PTP/IP peer under abuse (issue #20 point 5): after each case, a well-behaved host, the
:class:`~rig.devices.gphoto2_phone.Gphoto2Phone` driver over the real libgphoto2, must still be served.

Cases: stray, garbage and slow connections on either port, a connect-and-close during a session, a length field
of 2 GiB, 50 concurrent connects, immediate reconnects after a clean close. In every case, the peak RSS grows by
less than :data:`RSS_BOUND_BYTES` over the abuse and the session served after it (:func:`rss_stays_bounded`).
Expiry of the peer's handshake deadlines is driven by a :class:`~rig.twin.clock.ManualClock`; the only wall-clock
waits are generous bounds on "eventually", never asserted durations.
"""

from __future__ import annotations

import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.devices.gphoto2_phone import Gphoto2Phone
from rig.spec.dng import read_dng
from rig.spec.ptp import InitFailReason, OperationCode, PacketType, ResponseCode
from rig.twin.clock import ManualClock
from rig.twin.ptpip_peer import PeerBudgets, PtpIpPeer
from rig.twin.ptpip_peer.wire import packet, u32
from rig.twin.world import TwinBench
from tests.ptpip_twin import make_bench
from tests.twin.test_ptpip_peer import RawClient

pytestmark = pytest.mark.timeout(90)

DRIVER_TIMEOUT_S = 5.0
EVENTUALLY_S = 20.0  # bound on "the peer eventually does X" (a busy machine), never an asserted duration
RSS_BOUND_BYTES = 64 << 20
"""Peak RSS growth allowed over one abuse case and the well-behaved session after it. A session (open, set ISO,
capture a 512×384 DNG, close) costs 5-14 MiB here; the 2 GiB length field cost 2.18 GB before the fix."""
HUGE_LENGTH = 0x7FFFFFF0
CONCURRENT_CONNECTS = 50


@pytest.fixture(scope="module", autouse=True)
def _libgphoto2_home(gphoto2_home: Path) -> Path:
    return gphoto2_home  # every case keeps libgphoto2 out of the real home


@pytest.fixture(autouse=True)
def rss_stays_bounded() -> Iterator[None]:
    """Every case, with the session served after it, within :data:`RSS_BOUND_BYTES` of peak RSS growth.

    The peer runs in this process (its threads), so the growth is the peer's and the client's together: an upper
    bound on the peer's own. Set up before the peer starts and checked after it stopped (autouse fixtures first).
    """
    reset_peak_rss()
    baseline = peak_rss_bytes()
    yield
    growth = peak_rss_bytes() - baseline
    assert growth < RSS_BOUND_BYTES, f"peak RSS grew by {growth / 2**20:.0f} MiB (bound {RSS_BOUND_BYTES >> 20} MiB)"


@pytest.fixture
def bench() -> TwinBench:
    return make_bench()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def peer(bench: TwinBench, clock: ManualClock) -> Iterator[PtpIpPeer]:
    with PtpIpPeer(bench, clock=clock) as running:
        yield running


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + EVENTUALLY_S
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


def assert_serves(peer: PtpIpPeer, bench: TwinBench, *, iso: int = 400) -> None:
    """A whole well-behaved session: open, set a property, capture a valid DNG, close."""
    assert peer.address is not None
    with Gphoto2Phone(peer.address, timeout_s=DRIVER_TIMEOUT_S) as phone:
        assert phone.set_exposure(iso=iso).iso == iso
        assert bench.state.iso == iso
        shot = phone.capture()
        assert read_dng(shot.dng).width == bench.station.sensor.width_px
    eventually(lambda: peer.session_holder is None, "the session slot is freed after the host closed")


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=EVENTUALLY_S)


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the peer closed (or reset) ``sock``: reads until end of stream, within EVENTUALLY_S."""
    sock.settimeout(EVENTUALLY_S)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def advance_until_answered(clock: ManualClock, sock: socket.socket, step_s: float) -> bool:
    """Advance the peer's clock by ``step_s`` at a time until the peer writes to or closes ``sock``.

    The peer may not have seen the connection yet when the test first advances (its deadline would then start
    later): advancing in steps until the answer comes makes the test independent of that race.
    """
    deadline = time.monotonic() + EVENTUALLY_S
    while time.monotonic() < deadline:
        clock.advance(step_s)
        readable, _, _ = select.select([sock], [], [], 0.02)
        if readable:
            return True
    return False


def advance_until_closed(clock: ManualClock, sock: socket.socket, step_s: float) -> bool:
    return advance_until_answered(clock, sock, step_s) and closed_by_peer(sock)


def init_command(sock: socket.socket) -> tuple[int, int]:
    """Send InitCommandRequest; returns (packet type, connection number or InitFail reason)."""
    name = "abuser\x00".encode("utf-16-le")
    sock.sendall(packet(PacketType.INIT_COMMAND_REQUEST, bytes(16) + name + struct.pack("<HH", 0, 1)))
    header = _recv_exact(sock, 8)
    length, ptype = struct.unpack("<II", header)
    payload = _recv_exact(sock, length - 8)
    return ptype, struct.unpack_from("<I", payload)[0]


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"end of stream after {len(data)} of {size} bytes"
        data += chunk
    return data


def peak_rss_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) * 1024


def reset_peak_rss() -> None:
    """Linux proc(5) clear_refs: writing 5 resets the peak RSS (VmHWM) to the current RSS."""
    Path("/proc/self/clear_refs").write_text("5")


# --------------------------------------------------------------------------------------------- event port
def test_a_stray_connection_on_the_event_port_does_not_take_the_next_session(peer: PtpIpPeer, bench: TwinBench) -> None:
    stray = connect(peer.event_port)  # connected first, says nothing, stays open through the session
    try:
        assert_serves(peer, bench)
    finally:
        stray.close()


@pytest.mark.parametrize("port_name", ["event_port", "port"])
def test_garbage_on_either_port_is_dropped_and_hosts_are_still_served(
    peer: PtpIpPeer, bench: TwinBench, port_name: str
) -> None:
    garbage = connect(getattr(peer, port_name))
    garbage.sendall(bytes(range(64)))  # a length field of 0x03020100: far above any packet
    assert closed_by_peer(garbage)
    garbage.close()
    assert_serves(peer, bench)


def test_an_event_connection_naming_nobody_is_refused(peer: PtpIpPeer, bench: TwinBench) -> None:
    stale = connect(peer.event_port)
    stale.sendall(packet(PacketType.INIT_EVENT_REQUEST, u32(999)))
    length, ptype = struct.unpack("<II", _recv_exact(stale, 8))
    assert ptype == PacketType.INIT_FAIL
    assert struct.unpack("<I", _recv_exact(stale, length - 8))[0] == InitFailReason.REJECTED_INITIATOR
    assert closed_by_peer(stale)
    stale.close()
    assert_serves(peer, bench)


def test_a_slow_event_connection_is_paired_by_connection_number_past_strays(peer: PtpIpPeer, bench: TwinBench) -> None:
    host = RawClient(peer.port, peer.event_port)
    ptype, number = init_command(host.cmd)
    assert ptype == PacketType.INIT_COMMAND_ACK
    strays = [connect(peer.event_port) for _ in range(3)]  # open before the host's own event connection
    strays[0].sendall(b"\xff" * 64)
    try:
        host.evt = connect(peer.event_port)
        host.evt.sendall(packet(PacketType.INIT_EVENT_REQUEST, u32(number)))
        assert struct.unpack("<II", _recv_exact(host.evt, 8))[1] == PacketType.INIT_EVENT_ACK
        assert host.request(OperationCode.OPEN_SESSION, 1)[0] == ResponseCode.OK
    finally:
        host.close()
        for stray in strays:
            stray.close()
    eventually(lambda: peer.session_holder is None, "the raw host's close freed the slot")
    assert_serves(peer, bench)


def test_a_host_that_never_opens_its_event_connection_loses_the_slot_at_the_deadline(
    peer: PtpIpPeer, bench: TwinBench, clock: ManualClock
) -> None:
    slow = connect(peer.port)
    assert init_command(slow)[0] == PacketType.INIT_COMMAND_ACK
    assert peer.session_holder is not None
    time.sleep(0.2)  # wall time passes, the peer's clock does not: the host keeps its slot
    assert peer.session_holder is not None
    assert advance_until_closed(clock, slow, peer.budgets.event_connect_s)
    slow.close()
    eventually(lambda: peer.session_holder is None, "the slot is freed")
    assert_serves(peer, bench)


def test_a_silent_connection_is_dropped_at_the_handshake_deadline(
    peer: PtpIpPeer, bench: TwinBench, clock: ManualClock
) -> None:
    silent = connect(peer.port)
    half = connect(peer.event_port)
    half.sendall(packet(PacketType.INIT_EVENT_REQUEST, u32(1))[:5])  # half a header, then nothing
    assert advance_until_closed(clock, silent, peer.budgets.handshake_s)
    assert advance_until_closed(clock, half, peer.budgets.handshake_s)
    silent.close()
    half.close()
    assert_serves(peer, bench)


# --------------------------------------------------------------------------------------------- command port
def test_connect_and_close_during_a_session_leaves_the_session_and_the_acceptor_alive(
    peer: PtpIpPeer, bench: TwinBench
) -> None:
    assert peer.address is not None
    with Gphoto2Phone(peer.address, timeout_s=DRIVER_TIMEOUT_S) as phone:
        connect(peer.port).close()  # before any packet
        contender = connect(peer.port)
        contender.sendall(packet(PacketType.INIT_COMMAND_REQUEST, bytes(16) + b"\x00\x00" + bytes(4)))
        contender.close()  # while it waits for the slot
        assert phone.set_exposure(iso=800).iso == 800
        assert phone.capture().dng
    assert_serves(peer, bench)  # and the acceptor still takes the next host


def test_a_second_host_is_refused_busy_while_a_session_is_open(
    peer: PtpIpPeer, bench: TwinBench, clock: ManualClock
) -> None:
    holder = RawClient(peer.port, peer.event_port)
    holder.init()
    second = connect(peer.port)
    try:
        name = "second\x00".encode("utf-16-le")
        second.sendall(packet(PacketType.INIT_COMMAND_REQUEST, bytes(16) + name + struct.pack("<HH", 0, 1)))
        assert advance_until_answered(clock, second, peer.budgets.busy_grace_s)
        length, ptype = struct.unpack("<II", _recv_exact(second, 8))
        assert ptype == PacketType.INIT_FAIL
        assert struct.unpack("<I", _recv_exact(second, length - 8))[0] == InitFailReason.BUSY
        assert holder.request(OperationCode.OPEN_SESSION, 1)[0] == ResponseCode.OK  # the holder is untouched
    finally:
        second.close()
        holder.close()
    eventually(lambda: peer.session_holder is None, "the holder's close freed the slot")
    assert_serves(peer, bench)


def test_a_2gib_length_field_is_refused_without_allocating(peer: PtpIpPeer, bench: TwinBench) -> None:
    cases = []
    before_init = connect(peer.port)
    cases.append((before_init, struct.pack("<II", HUGE_LENGTH, PacketType.INIT_COMMAND_REQUEST)))
    in_session = RawClient(peer.port, peer.event_port)
    in_session.init()
    cases.append((in_session.cmd, struct.pack("<II", HUGE_LENGTH, PacketType.OPERATION_REQUEST)))
    try:
        for sock, header in cases:
            sock.sendall(header)
            assert closed_by_peer(sock)
    finally:
        before_init.close()
        in_session.close()
    eventually(lambda: peer.session_holder is None, "the violating session released the slot")
    assert_serves(peer, bench)


def test_a_start_data_announcing_2gib_is_refused(peer: PtpIpPeer, bench: TwinBench) -> None:
    client = RawClient(peer.port, peer.event_port)
    try:
        client.init()
        assert client.request(OperationCode.OPEN_SESSION, 1)[0] == ResponseCode.OK
        body = struct.pack("<IHII", 2, OperationCode.SEND_OBJECT, 99, 0)
        client.cmd.sendall(packet(PacketType.OPERATION_REQUEST, body))
        client.cmd.sendall(packet(PacketType.START_DATA, struct.pack("<IQ", 99, 1 << 31)))
        assert closed_by_peer(client.cmd)
    finally:
        client.close()
    assert_serves(peer, bench)


def test_fifty_concurrent_connects_then_a_host_is_served(peer: PtpIpPeer, bench: TwinBench, clock: ManualClock) -> None:
    barrier = threading.Barrier(CONCURRENT_CONNECTS)
    answers: list[int] = []
    socks: list[socket.socket] = []
    lock = threading.Lock()

    def rush() -> None:
        sock = connect(peer.port)
        with lock:
            socks.append(sock)
        barrier.wait()
        ptype, _ = init_command(sock)
        with lock:
            answers.append(ptype)

    threads = [threading.Thread(target=rush) for _ in range(CONCURRENT_CONNECTS)]
    for thread in threads:
        thread.start()
    # one gets the slot (and never opens its event connection); the others wait out the grace period: BUSY

    def all_answered() -> bool:
        clock.advance(peer.budgets.busy_grace_s)
        return len(answers) == CONCURRENT_CONNECTS

    try:
        eventually(all_answered, "every rushing host answered")
        for thread in threads:
            thread.join(timeout=EVENTUALLY_S)
        assert answers.count(PacketType.INIT_COMMAND_ACK) == 1
        assert set(answers) <= {PacketType.INIT_COMMAND_ACK, PacketType.INIT_FAIL}
    finally:
        for sock in socks:
            sock.close()
    eventually(lambda: peer.session_holder is None, "the acked host's close freed the slot")
    assert_serves(peer, bench)


def test_fifty_silent_connections_do_not_keep_a_host_out(peer: PtpIpPeer, bench: TwinBench) -> None:
    silent = [connect(port) for port in (peer.port, peer.event_port) for _ in range(CONCURRENT_CONNECTS // 2)]
    try:
        assert_serves(peer, bench)
    finally:
        for sock in silent:
            sock.close()


def test_immediate_reconnects_after_a_clean_close_are_never_busy(bench: TwinBench) -> None:
    with PtpIpPeer(bench, budgets=PeerBudgets(busy_grace_s=0.0)) as peer:  # no grace: the release must be at once
        assert peer.address is not None
        for attempt in range(20):
            with Gphoto2Phone(peer.address, timeout_s=DRIVER_TIMEOUT_S) as phone:
                assert phone.identity().serial == bench.unit.serial, f"reconnect {attempt}"
