"""Operator.apply_shims (issue #21): the console shows every screw's stack and waits for Enter, over the real PTP/IP
link to the twin phone (which must report the bayonet bare); the twin's hands refuse to shim under a lens."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from rig.bench.procedures import wait_for_sensor
from rig.config import load_station
from rig.config.resolve import load_station_lenses, load_twin_unit
from rig.devices.console_operator import ConsoleOperator
from rig.devices.gphoto2_phone import Gphoto2Phone
from rig.errors import ArgumentError, DeviceStateError, DeviceTimeout
from rig.spec.shims import ScrewShims, ShimPlan
from rig.twin.server import TwinServer

LENS = "summilux-m-35-f1.4-asph-2022"
SHIM_PLAN = ShimPlan(
    (
        ScrewShims("A", (50.0, 20.0), -30.0),
        ScrewShims("B", (50.0, 50.0), 0.0),
        ScrewShims("C", (50.0, 50.0, 10.0), 10.0),
        ScrewShims("D", (), -100.0),
    )
)


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


def test_console_shows_each_screw_and_waits_for_enter(bench) -> None:
    server, phone = bench
    out = io.StringIO()
    confirmations: list[str] = []
    operator = ConsoleOperator(
        phone, server.lenses, timeout_s=5, out=out, confirm=lambda: confirmations.append("y") or "\n"
    )
    operator.apply_shims(SHIM_PLAN)
    text = out.getvalue()
    assert "screw A: 50 + 20 µm = 70 µm (-30 µm)" in text
    assert "screw D: no shim = 0 µm (-100 µm)" in text
    assert confirmations == ["y"]


def test_console_refuses_while_the_phone_reports_a_lens_and_times_out_without_enter(bench) -> None:
    server, phone = bench
    operator = ConsoleOperator(phone, server.lenses, timeout_s=1, out=io.StringIO(), confirm=lambda: None)
    with pytest.raises(DeviceTimeout, match="shims not confirmed"):
        operator.apply_shims(SHIM_PLAN)
    server.bench.state.mount_lens(LENS)
    # the phone reports the lens by an event: wait until it does (a loaded host delivers it late)
    wait_for_sensor(phone, attached=True, timeout_s=60.0)
    with pytest.raises(DeviceStateError, match="remove it first"):
        operator.apply_shims(SHIM_PLAN)


def test_twin_hands_shim_only_a_bare_bayonet_and_only_its_screws(bench) -> None:
    server, _ = bench
    server.operator.apply_shims(SHIM_PLAN)
    assert server.bench.state.snapshot().shim_stacks_um == tuple(sorted(SHIM_PLAN.stacks_um().items()))
    with pytest.raises(ArgumentError, match="screws \\['E'\\]"):
        server.operator.apply_shims(ShimPlan((ScrewShims("E", (5.0,), 5.0),)))
    server.operator.mount_lens(LENS)
    with pytest.raises(DeviceStateError, match="still on the bayonet"):
        server.operator.apply_shims(SHIM_PLAN)
