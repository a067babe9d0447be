"""The console operator believes the phone, not the person: a lens change is done when the phone reports it
(attached, with the expected 6-bit code), over the real PTP/IP link to the twin phone."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest

from rig.config import load_station
from rig.config.resolve import load_station_lenses, load_twin_unit
from rig.devices.console_operator import ConsoleOperator
from rig.devices.gphoto2_phone import Gphoto2Phone
from rig.errors import ArgumentError, DeviceStateError, DeviceTimeout
from rig.twin.server import TwinServer

LENS = "summilux-m-35-f1.4-asph-2022"
OTHER = "apo-summicron-m-90-f2-asph"


@pytest.fixture
def bench(tmp_path, monkeypatch) -> Iterator[tuple[TwinServer, Gphoto2Phone]]:
    monkeypatch.setenv("HOME", str(tmp_path))  # libgphoto2 keeps its PTP/IP GUID under ~/.gphoto
    station = load_station()
    server = TwinServer(station, load_twin_unit(station, "golden"), load_station_lenses(station))
    server.start()
    assert server.addresses is not None
    phone = Gphoto2Phone(server.addresses.phone_port, timeout_s=10)
    phone.open()
    try:
        yield server, phone
    finally:
        phone.close()
        server.stop()


def _later(seconds: float, action) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def test_mount_waits_for_the_phone_to_see_the_lens(bench) -> None:
    server, phone = bench
    out = io.StringIO()
    operator = ConsoleOperator(phone, server.lenses, timeout_s=10, poll_s=0.05, out=out)
    hands = _later(0.4, lambda: server.bench.state.mount_lens(LENS))
    operator.mount_lens(LENS)
    hands.join()
    assert "mount Summilux-M 1:1.4/35" in out.getvalue()
    state = phone.lens_state()
    assert state.attached and state.lens_code == server.lenses.get(LENS).lens_code


def test_the_wrong_lens_is_caught_by_its_code(bench) -> None:
    server, phone = bench
    operator = ConsoleOperator(phone, server.lenses, timeout_s=10, poll_s=0.05, out=io.StringIO())
    hands = _later(0.3, lambda: server.bench.state.mount_lens(OTHER))
    with pytest.raises(DeviceStateError, match=r"code 15, expected Summilux-M 1:1\.4/35 ASPH \(2022\) \(code 11\)"):
        operator.mount_lens(LENS)
    hands.join()


def test_nobody_mounting_times_out(bench) -> None:
    server, phone = bench
    operator = ConsoleOperator(phone, server.lenses, timeout_s=0.8, poll_s=0.05, out=io.StringIO())
    with pytest.raises(DeviceTimeout, match="not seen by the phone within 1 s"):
        operator.mount_lens(LENS)


def test_aperture_needs_a_marked_stop_and_a_confirmation(bench) -> None:
    server, phone = bench
    answers: list[str | None] = ["\n", None]
    operator = ConsoleOperator(
        phone, server.lenses, timeout_s=5, poll_s=0.05, out=io.StringIO(), confirm=lambda: answers.pop(0)
    )
    hands = _later(0.2, lambda: server.bench.state.mount_lens(LENS))
    operator.mount_lens(LENS)
    hands.join()
    operator.set_aperture(2.8)
    with pytest.raises(ArgumentError, match=r"f/3\.3: expected one of the lens's marked stops"):
        operator.set_aperture(3.3)
    with pytest.raises(DeviceTimeout, match=r"no confirmation of f/5\.6"):
        operator.set_aperture(5.6)
