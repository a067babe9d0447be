"""The twin phone's PTP/IP peer across real TCP on 127.0.0.1: the ``gphoto2`` command and a raw PTP/IP client.

The gphoto2 CLI is an independent client (its own process and libgphoto2 build), so what it accepts is what a
factory host would accept. The raw client checks the wire details the CLI hides (unknown operations, refusals).
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rawpy

from rig.spec.ptp import (
    DataPhase,
    InitFailReason,
    OperationCode,
    PacketType,
    PropertyCode,
    ResponseCode,
)
from rig.twin.ptpip_peer import PtpIpPeer
from rig.twin.ptpip_peer.wire import packet, parse_ptp_string, read_packet, u16, u32
from rig.twin.world import TwinBench
from tests.ptpip_twin import make_bench

pytestmark = pytest.mark.timeout(60)

CLI_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------------------------- gphoto2 CLI
def gphoto2_cli(port: str, home: Path, *args: str) -> str:
    """Run the ``gphoto2`` command against ``port`` with its settings kept under ``home``."""
    exe = shutil.which("gphoto2")
    assert exe is not None, "the gphoto2 command is part of the bench's system tools"
    env = {**os.environ, "HOME": str(home), "LANG": "C"}
    done = subprocess.run(
        [exe, "--port", port, "--camera", "PTP/IP Camera", *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"gphoto2 {' '.join(args)} failed: {done.stdout}\n{done.stderr}"
    return done.stdout


def current(config_output: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in config_output.splitlines() if line.startswith("Current:"))


def test_gphoto2_cli_summary_names_the_phone(peer: PtpIpPeer, bench: TwinBench, tmp_path: Path) -> None:
    assert peer.address is not None
    out = gphoto2_cli(peer.address, tmp_path, "--summary")
    assert "Manufacturer: Xiaomi" in out
    assert "Model: 12S Ultra Concept" in out
    assert f"Serial Number: {bench.unit.serial}" in out
    assert "Generic Image Capture" in out  # InitiateCapture is offered, so libgphoto2 can capture


def test_gphoto2_cli_lists_standard_and_vendor_config(peer: PtpIpPeer, tmp_path: Path) -> None:
    assert peer.address is not None
    widgets = set(gphoto2_cli(peer.address, tmp_path, "--list-config").split())
    assert {"/main/imgsettings/iso", "/main/capturesettings/shutterspeed", "/main/status/serialnumber"} <= widgets
    assert {f"/main/other/{code.widget}" for code in PropertyCode if code.value >= 0xD000} <= widgets


def test_gphoto2_cli_sets_iso_and_shutter_speed(peer: PtpIpPeer, bench: TwinBench, tmp_path: Path) -> None:
    assert peer.address is not None
    assert current(gphoto2_cli(peer.address, tmp_path, "--get-config", "iso")) == "100"
    gphoto2_cli(peer.address, tmp_path, "--set-config", "iso=400", "--set-config", "shutterspeed=0.0050s")
    assert current(gphoto2_cli(peer.address, tmp_path, "--get-config", "iso")) == "400"
    assert current(gphoto2_cli(peer.address, tmp_path, "--get-config", "shutterspeed")) == "0.0050s"
    # the phone applied it: the bench renders with what the host set
    assert bench.state.iso == 400
    assert bench.state.exposure_time_s == pytest.approx(0.005, abs=1e-12)


@pytest.mark.slow
def test_gphoto2_cli_capture_downloads_a_dng_of_the_twin_size(tmp_path: Path) -> None:
    bench = make_bench(small=False)  # the station's own read-out: binned 2048×1536
    sensor = bench.station.sensor
    with PtpIpPeer(bench) as peer:
        assert peer.address is not None
        gphoto2_cli(peer.address, tmp_path, "--capture-image-and-download", "--filename", "frame.dng")
    with rawpy.imread(str(tmp_path / "frame.dng")) as raw:
        assert raw.raw_image.shape == (sensor.height_px, sensor.width_px)
        assert raw.white_level == sensor.white_level_dn
        assert list(raw.black_level_per_channel) == [sensor.black_level_dn] * 4
        assert raw.raw_image.max() <= sensor.white_level_dn


# --------------------------------------------------------------------------------------------- raw client
class RawClient:
    """The smallest PTP/IP initiator: enough to see what libgphoto2 never shows."""

    def __init__(self, port: int, event_port: int) -> None:
        self.cmd = socket.create_connection(("127.0.0.1", port), timeout=5.0)
        self.evt: socket.socket | None = None
        self.event_port = event_port
        self.tid = 0

    def init(self) -> tuple[int, int | str]:
        """InitCommandRequest; returns (packet type, connection number or friendly name)."""
        name = "test\x00".encode("utf-16-le")
        self.cmd.sendall(packet(PacketType.INIT_COMMAND_REQUEST, bytes(16) + name + u16(0) + u16(1)))
        ptype, payload = read_packet(self.cmd)
        if ptype != PacketType.INIT_COMMAND_ACK:
            return ptype, struct.unpack_from("<I", payload)[0]
        number = struct.unpack_from("<I", payload)[0]
        self.evt = socket.create_connection(("127.0.0.1", self.event_port), timeout=5.0)
        self.evt.sendall(packet(PacketType.INIT_EVENT_REQUEST, u32(number)))
        assert read_packet(self.evt)[0] == PacketType.INIT_EVENT_ACK
        return ptype, number

    def request(self, opcode: int, *params: int, data_out: bytes | None = None) -> tuple[int, bytes | None]:
        """One transaction; returns (response code, data-in payload or None)."""
        self.tid += 1
        phase = DataPhase.OUT if data_out is not None else DataPhase.NONE_OR_IN
        body = struct.pack(f"<IHI{len(params)}I", phase, opcode, self.tid, *params)
        self.cmd.sendall(packet(PacketType.OPERATION_REQUEST, body))
        if data_out is not None:
            self.cmd.sendall(packet(PacketType.START_DATA, struct.pack("<IQ", self.tid, len(data_out))))
            self.cmd.sendall(packet(PacketType.END_DATA, u32(self.tid) + data_out))
        data = b""
        got_data = False
        while True:
            ptype, payload = read_packet(self.cmd)
            if ptype in (PacketType.DATA, PacketType.END_DATA):
                data += payload[4:]
                got_data = True
            elif ptype == PacketType.OPERATION_RESPONSE:
                return struct.unpack_from("<H", payload)[0], data if got_data else None

    def close(self) -> None:
        self.cmd.close()
        if self.evt is not None:
            self.evt.close()


@pytest.fixture
def client(peer: PtpIpPeer) -> Iterator[RawClient]:
    raw = RawClient(peer.port, peer.event_port)
    yield raw
    raw.close()


def test_unknown_operations_are_answered_operation_not_supported(client: RawClient) -> None:
    assert client.init()[0] == PacketType.INIT_COMMAND_ACK
    assert client.request(OperationCode.OPEN_SESSION, 1)[0] == ResponseCode.OK
    assert client.request(0x9999)[0] == ResponseCode.OPERATION_NOT_SUPPORTED
    assert client.request(OperationCode.FORMAT_STORE)[0] == ResponseCode.OPERATION_NOT_SUPPORTED
    # and the session survives them
    code, info = client.request(OperationCode.GET_DEVICE_INFO)
    assert code == ResponseCode.OK and info is not None


def test_operations_before_open_session_are_refused(client: RawClient) -> None:
    client.init()
    assert client.request(OperationCode.GET_STORAGE_IDS)[0] == ResponseCode.SESSION_NOT_OPEN


def test_a_second_host_is_refused_while_one_is_connected(peer: PtpIpPeer, client: RawClient) -> None:
    client.init()
    second = RawClient(peer.port, peer.event_port)
    try:
        ptype, reason = second.init()
    finally:
        second.close()
    assert (ptype, reason) == (PacketType.INIT_FAIL, InitFailReason.BUSY)


def test_a_value_the_phone_does_not_offer_is_refused(client: RawClient, bench: TwinBench) -> None:
    client.init()
    client.request(OperationCode.OPEN_SESSION, 1)
    code, _ = client.request(OperationCode.SET_DEVICE_PROP_VALUE, PropertyCode.EXPOSURE_INDEX, data_out=u16(123))
    assert code == ResponseCode.INVALID_DEVICE_PROP_VALUE
    assert bench.state.iso == 100
    code, _ = client.request(OperationCode.SET_DEVICE_PROP_VALUE, PropertyCode.LENS_CODE, data_out=bytes([3]))
    assert code == ResponseCode.ACCESS_DENIED  # read-only vendor property


def test_device_info_carries_the_unit_identity(client: RawClient, bench: TwinBench) -> None:
    client.init()
    code, data = client.request(OperationCode.GET_DEVICE_INFO)
    assert code == ResponseCode.OK and data is not None
    # walk the dataset: fixed header, then five u16 arrays, then four strings
    offset = 2 + 4 + 2
    _, offset = parse_ptp_string(data, offset)
    offset += 2
    arrays = []
    for _ in range(5):
        (count,) = struct.unpack_from("<I", data, offset)
        arrays.append(np.frombuffer(data, "<u2", count, offset + 4).tolist())
        offset += 4 + 2 * count
    texts = []
    for _ in range(4):
        text, offset = parse_ptp_string(data, offset)
        texts.append(text)
    assert texts[0] == "Xiaomi" and texts[1] == "12S Ultra Concept" and texts[3] == bench.unit.serial
    assert OperationCode.INITIATE_CAPTURE in arrays[0]
    assert {PropertyCode.EXPOSURE_TIME, PropertyCode.EXPOSURE_INDEX, PropertyCode.ACTIVE_SENSOR} <= set(arrays[2])
