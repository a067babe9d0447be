"""The gphoto2 driver's fixture: the real driver over libgphoto2 on the twin's PTP/IP peer (tests/ptpip_twin.py).

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
from tests import ptpip_twin

# the twin phone on PTP/IP (not in tests/conftest.py: `rig` run from a checkout would load that one)
bench, peer, gphoto2_home = ptpip_twin.bench, ptpip_twin.peer, ptpip_twin.gphoto2_home

PHONE_TIMEOUT_S = 3.0
"""The driver's timeout in these tests: a fault must surface well within it."""


@pytest.fixture
def phone(peer: PtpIpPeer, gphoto2_home: Path) -> Iterator[Gphoto2Phone]:
    assert peer.address is not None
    with Gphoto2Phone(peer.address, timeout_s=PHONE_TIMEOUT_S) as opened:
        yield opened
