"""A slow phone on the wire: the twin's peer stalling mid-transfer and answering Device Busy, seen by a raw PTP/IP
client (what libgphoto2 hides). The driver's side of the same faults: tests/devices/test_gphoto2_download_retry.py.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rig.spec.ptp import OperationCode, PacketType, ResponseCode
from rig.twin import firmware
from rig.twin.hardware_time import HardwareAction, HardwareLedger
from rig.twin.ptpip_peer import PtpIpPeer
from rig.twin.ptpip_peer.store import StoredObject
from rig.twin.ptpip_peer.wire import read_packet
from rig.twin.world import TwinBench
from tests.twin.test_ptpip_peer import RawClient

pytestmark = pytest.mark.timeout(60)

WAIT_S = 10.0  # bound on anything the peer should do at once (a loaded host stretches it, never past this)


@pytest.fixture
def client(peer: PtpIpPeer) -> Iterator[RawClient]:
    raw = RawClient(peer.port, peer.event_port)
    assert raw.init()[0] == PacketType.INIT_COMMAND_ACK
    assert raw.request(OperationCode.OPEN_SESSION, 1)[0] == ResponseCode.OK
    yield raw
    raw.close()


def _capture(client: RawClient, peer: PtpIpPeer, bench: TwinBench) -> None:
    rendered = bench.frames_rendered
    assert client.request(OperationCode.INITIATE_CAPTURE, 0, 0)[0] == ResponseCode.OK
    deadline = time.monotonic() + WAIT_S
    while not peer.store.last_frame or bench.frames_rendered == rendered:
        assert time.monotonic() < deadline, "the capture was never stored"
        time.sleep(0.01)


def _stored(peer: PtpIpPeer, name: str) -> StoredObject:
    obj = peer.store.by_name(name)
    assert obj is not None, name
    return obj


def _last_frame(peer: PtpIpPeer) -> str:
    name = peer.store.last_frame
    assert name, "no frame stored yet"
    return name


def test_a_stalled_download_arrives_whole_after_the_silence(
    client: RawClient, peer: PtpIpPeer, bench: TwinBench
) -> None:
    _capture(client, peer, bench)
    frame = _stored(peer, _last_frame(peer))
    peer.faults.stalled_downloads, peer.faults.stall_s = 1, 0.5
    code, data = client.request(OperationCode.GET_OBJECT, frame.handle)
    assert code == ResponseCode.OK and data == frame.data()
    assert peer.faults.stalled_downloads == 0


def test_a_host_that_hangs_up_during_a_stall_frees_the_phone_at_once(
    client: RawClient, peer: PtpIpPeer, bench: TwinBench
) -> None:
    _capture(client, peer, bench)
    frame = _stored(peer, _last_frame(peer))
    stall_s = 60.0  # far beyond the test's own timeout: only noticing the hang-up can free the session
    peer.faults.stalled_downloads, peer.faults.stall_s = 1, stall_s
    client.tid += 1
    body = struct.pack("<IHII", 1, OperationCode.GET_OBJECT, client.tid, frame.handle)
    client.cmd.sendall(struct.pack("<II", 8 + len(body), PacketType.OPERATION_REQUEST) + body)
    assert read_packet(client.cmd)[0] == PacketType.START_DATA
    assert read_packet(client.cmd)[0] == PacketType.DATA  # the first half; then the phone goes quiet
    client.close()
    deadline = time.monotonic() + WAIT_S
    while peer.session_holder is not None:
        assert time.monotonic() < deadline, "the stalled session kept the phone after its host hung up"
        time.sleep(0.01)
    second = RawClient(peer.port, peer.event_port)  # and the next host gets in
    try:
        assert second.init()[0] == PacketType.INIT_COMMAND_ACK
    finally:
        second.close()


def test_an_assist_still_being_computed_is_answered_device_busy_then_served(
    client: RawClient, peer: PtpIpPeer, bench: TwinBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    compute = firmware.assist_outputs

    def held(*args: Any, **kwargs: Any) -> Any:
        release.wait(WAIT_S)  # the phone's assist computation takes as long as the test says
        return compute(*args, **kwargs)

    monkeypatch.setattr(firmware, "assist_outputs", held)
    _capture(client, peer, bench)
    histogram = _stored(peer, _last_frame(peer).rsplit(".", 1)[0] + ".HIS")
    code, data = client.request(OperationCode.GET_OBJECT, histogram.handle)
    assert (code, data) == (ResponseCode.DEVICE_BUSY, None)  # no data phase: the session stays in step
    assert client.request(OperationCode.GET_DEVICE_INFO)[0] == ResponseCode.OK
    release.set()
    code, data = client.request(OperationCode.GET_OBJECT, histogram.handle)
    assert code == ResponseCode.OK and data == histogram.data()


class RecordedWall:
    """The ledger's wall clock: time moves only by the waits the twin asks for, which are recorded."""

    def __init__(self) -> None:
        self.now_s = 100.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now_s += seconds


def test_a_frame_waits_its_exposure_at_the_capture_and_its_transfer_at_the_download(
    client: RawClient, peer: PtpIpPeer, bench: TwinBench
) -> None:
    """A real phone answers InitiateCapture's frame after exposure and read-out; the USB transfer is GetObject's
    data phase. Paced in both places, a frame's wall time would count the transfer twice (issue #17)."""
    wall = RecordedWall()
    scale = 20.0
    bench.hardware = HardwareLedger(time_scale=scale, monotonic=wall.monotonic, sleep=wall.sleep)
    bench.state.update(exposure_time_s=0.04)
    _capture(client, peer, bench)
    sensor, costs = bench.station.sensor, bench.hardware.costs
    exposure_and_readout_s = 0.04 + costs.readout_s(sensor.width_px * sensor.height_px)
    assert wall.waits == [pytest.approx(exposure_and_readout_s / scale, rel=1e-9)]
    frame = _stored(peer, _last_frame(peer))
    code, data = client.request(OperationCode.GET_OBJECT, frame.handle)
    assert code == ResponseCode.OK and data == frame.data()
    assert wall.waits[1:] == [pytest.approx(costs.transfer_s(len(data)) / scale, rel=1e-9)]
    # what is charged is unchanged: exposure, read-out and transfer, once each
    spent = bench.hardware.by_action()
    assert spent[HardwareAction.TRANSFER] == pytest.approx(costs.transfer_s(len(data)), rel=1e-12)
    assert spent[HardwareAction.EXPOSURE] + spent[HardwareAction.READOUT] == pytest.approx(exposure_and_readout_s)
