"""The gphoto2 driver's fixtures: a twin bench, its PTP/IP peer on 127.0.0.1 and the real driver over libgphoto2.

Shared by the driver's tests (``test_gphoto2_phone.py``) and its slow-transfer tests
(``test_gphoto2_download_retry.py``); a module that defines a fixture of the same name (the GRBL tests' ``bench``)
keeps its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.devices.gphoto2_phone import Gphoto2Phone
from rig.twin.ptpip_peer import PtpIpPeer
from rig.twin.world import TwinBench
from tests.twin.test_ptpip_peer import make_bench

PHONE_TIMEOUT_S = 3.0
"""The driver's timeout in these tests: a fault must surface well within it."""


@pytest.fixture(scope="module")
def gphoto2_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """libgphoto2 keeps its PTP/IP GUID in ~/.gphoto/settings: keep it out of the real home."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        yield home


@pytest.fixture
def bench() -> TwinBench:
    return make_bench()


@pytest.fixture
def peer(bench: TwinBench) -> Iterator[PtpIpPeer]:
    with PtpIpPeer(bench) as running:
        yield running


@pytest.fixture
def phone(peer: PtpIpPeer, gphoto2_home: Path) -> Iterator[Gphoto2Phone]:
    assert peer.address is not None
    with Gphoto2Phone(peer.address, timeout_s=PHONE_TIMEOUT_S) as opened:
        yield opened
