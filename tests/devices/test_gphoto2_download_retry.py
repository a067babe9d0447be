"""A download that stalls beyond libgphoto2's PTP/IP read timeout, against the twin's peer through real libgphoto2.

The peer's ``stalled_downloads`` fault sends half an object, then stays silent longer than libgphoto2's 2.5 s per
read (camlibs/ptp2/ptpip-private.h), as a busy phone or a slow link does. The driver must end that session, open
a new one and download the same object again, once, noting the retry; a second stall is a one-line DeviceLost.
Truth comes from the twin's side: the bytes the phone stored, the frames the bench rendered, the sessions served.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rig.devices.gphoto2_phone import Gphoto2Phone
from rig.errors import ArgumentError, DeviceLost, DeviceTimeout
from rig.spec.dng import read_dng
from rig.twin import firmware
from rig.twin.ptpip_peer import PtpIpPeer
from rig.twin.ptpip_peer.faults import LIBGPHOTO2_PTPIP_READ_TIMEOUT_S
from rig.twin.world import TwinBench
from tests.devices.conftest import PHONE_TIMEOUT_S

pytestmark = pytest.mark.timeout(120)

TIMEOUT_S = PHONE_TIMEOUT_S
STALL_S = 2 * LIBGPHOTO2_PTPIP_READ_TIMEOUT_S  # certain to outlast libgphoto2's read


@pytest.fixture(scope="module", autouse=True)
def _libgphoto2_home(gphoto2_home: Path) -> Path:
    return gphoto2_home  # every test here, not only those with a phone, keeps libgphoto2 out of the real home


def _stored_bytes(peer: PtpIpPeer, name: str) -> bytes:
    obj = peer.store.by_name(name)
    assert obj is not None, f"the phone no longer holds {name}"
    return obj.data()


def _assists_of(
    shot: Any, assist: Any, bench: TwinBench, *, compute: Callable[..., Any] = firmware.assist_outputs
) -> Any:
    """What the phone's firmware computes from the frame's own raw at the thresholds the download reported."""
    sensor = bench.station.sensor
    return compute(
        read_dng(shot.dng).raw,
        bench.unit.firmware,
        black_level=sensor.black_level_dn,
        white_level=sensor.white_level_dn,
        zebra_threshold_pct=assist.zebra_threshold_pct,
        peaking_threshold=assist.peaking_threshold,
    )


def test_a_stalled_frame_download_is_repeated_in_a_new_session_not_recaptured(
    phone: Gphoto2Phone, peer: PtpIpPeer, bench: TwinBench
) -> None:
    phone.capture()
    first_session = peer.session_holder
    rendered = bench.frames_rendered
    peer.faults.stalled_downloads, peer.faults.stall_s = 1, STALL_S
    shot = phone.capture()
    assert peer.faults.stalled_downloads == 0  # the stall really happened
    assert bench.frames_rendered == rendered + 1  # the same frame, downloaded again: nothing recaptured
    assert shot.dng == _stored_bytes(peer, shot.filename)
    assert read_dng(shot.dng).width == bench.station.sensor.width_px
    assert peer.session_holder is not None and peer.session_holder != first_session  # a new session
    assert phone.retries.count == 1, phone.retries.events
    event = phone.retries.events[0]
    assert f"downloading /store_00010001/DCIM/{shot.filename}: attempt 1 failed" in event and "retrying" in event
    assert phone.is_open and phone.capture().dng  # the new session goes on working


def test_a_stalled_assist_download_is_repeated_and_arrives_intact(
    phone: Gphoto2Phone, peer: PtpIpPeer, bench: TwinBench
) -> None:
    shot = phone.capture()
    peer.faults.stalled_downloads, peer.faults.stall_s = 1, STALL_S
    assist = phone.assist_outputs()  # the first assist object (.HIS) stalls
    expected = _assists_of(shot, assist, bench)
    np.testing.assert_array_equal(assist.histogram, expected.histogram)
    np.testing.assert_array_equal(assist.zebra_mask, expected.zebra_mask)
    np.testing.assert_array_equal(assist.peaking_mask, expected.peaking_mask)
    assert phone.retries.count == 1 and ".HIS: attempt 1 failed" in phone.retries.events[0]


def test_a_download_that_breaks_again_after_reconnecting_is_one_line_device_lost(
    phone: Gphoto2Phone, peer: PtpIpPeer
) -> None:
    phone.capture()
    peer.faults.stalled_downloads, peer.faults.stall_s = 2, STALL_S
    with pytest.raises(DeviceLost) as info:
        phone.capture()
    message = str(info.value)
    assert "\n" not in message
    assert "broke off twice, also after reconnecting" in message
    assert message.count("[-") == 2  # both of libgphoto2's reasons, e.g. "[-7] I/O problem; then [-10] Timeout …"
    assert phone.retries.count == 1  # one retry, never a third download
    assert not phone.is_open  # lost: the bench reconnects before using it again
    phone.close()
    phone.open()
    assert phone.capture().dng


def test_the_download_deadline_grows_with_the_object(peer: PtpIpPeer) -> None:
    """A transfer that takes longer than the per-call timeout is allowed its size at the slowest stated rate, and
    only that: the same slow transfer with a high stated rate overruns the driver's deadline."""
    assert peer.address is not None
    per_call_s = 1.5
    stall_s = 2.0  # beyond the per-call timeout, within libgphoto2's 2.5 s read: only the driver can object
    with Gphoto2Phone(peer.address, timeout_s=per_call_s) as phone:
        size = len(phone.capture().dng)
    slow_rate = size / 4.0  # 4 s more for an object of this size
    with Gphoto2Phone(peer.address, timeout_s=per_call_s, min_transfer_bytes_per_s=slow_rate) as phone:
        assert phone.transfer_timeout_s(size) == pytest.approx(per_call_s + 4.0)
        peer.faults.stalled_downloads, peer.faults.stall_s = 1, stall_s
        assert phone.capture().dng
        assert phone.retries.count == 0
    with Gphoto2Phone(peer.address, timeout_s=per_call_s, min_transfer_bytes_per_s=1e12) as phone:
        peer.faults.stalled_downloads, peer.faults.stall_s = 1, stall_s
        with pytest.raises(DeviceTimeout, match=r"downloading .* did not finish within 1\.5 s"):
            phone.capture()


def test_a_transfer_rate_that_is_not_a_rate_is_refused() -> None:
    with pytest.raises(ArgumentError, match=r"min_transfer_bytes_per_s = 0: expected a rate in bytes/s > 0"):
        Gphoto2Phone("ptpip:127.0.0.1:15740", min_transfer_bytes_per_s=0)


def test_a_burst_is_allowed_to_store_its_frames_at_the_slowest_stated_rate(
    peer: PtpIpPeer, bench: TwinBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The phone writes every frame of a burst before it reports the capture complete: beyond the per-call timeout
    (which covers one frame) each further frame may take its size at ``min_transfer_bytes_per_s``."""
    assert peer.address is not None
    per_call_s, count = 1.5, 4
    with Gphoto2Phone(peer.address, timeout_s=TIMEOUT_S) as phone:
        size = len(phone.capture().dng)
    render = bench.capture_burst
    slow_s = 2.5  # a phone storing the burst this much longer than per_call_s + count × (exposure + interval)

    def slow_burst(*args: Any, **kwargs: Any) -> Any:
        frames = render(*args, **kwargs)
        time.sleep(slow_s)
        return frames

    monkeypatch.setattr(bench, "capture_burst", slow_burst)
    with Gphoto2Phone(peer.address, timeout_s=per_call_s, min_transfer_bytes_per_s=size / 1.5) as phone:
        phone.capture()  # the driver learns the frame size: 1.5 s per further frame of a burst
        shots = phone.capture_burst(count)
        assert len(shots) == count and phone.retries.count == 0
    with Gphoto2Phone(peer.address, timeout_s=per_call_s, min_transfer_bytes_per_s=1e12) as phone:
        phone.capture()
        with pytest.raises(DeviceTimeout, match="capture did not finish"):
            phone.capture_burst(count)


def test_a_phone_busy_computing_an_assist_is_asked_again_in_the_same_session(
    peer: PtpIpPeer, bench: TwinBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Busy is waited out for as long as a download of the last frame may take (here 10 s and its size)."""
    assert peer.address is not None
    compute = firmware.assist_outputs
    busy_s = 2 * LIBGPHOTO2_PTPIP_READ_TIMEOUT_S  # a silent phone this slow would break libgphoto2's read

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(busy_s)
        return compute(*args, **kwargs)

    monkeypatch.setattr(firmware, "assist_outputs", slow)
    with Gphoto2Phone(peer.address, timeout_s=10.0) as phone:
        shot = phone.capture()
        session = peer.session_holder
        assist = phone.assist_outputs()
        assert peer.session_holder == session and phone.retries.count == 0  # waited out, not reconnected
    expected = _assists_of(shot, assist, bench, compute=compute)
    np.testing.assert_array_equal(assist.peaking_mask, expected.peaking_mask)
