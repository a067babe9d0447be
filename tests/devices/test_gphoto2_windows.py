"""Windowed native-pitch read-out (``ReadoutWindows``, 0xD00E) through the real libgphoto2 against the twin phone.

Truth is the twin's side: what it rendered for that exposure (its frames' raw codes), its property table's
refusal (InvalidDevicePropValue), the store's object names; the DNGs are read by LibRaw (rawpy) as well as the
project's strict reader.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import rawpy

from rig.devices.gphoto2_phone import Gphoto2Phone
from rig.errors import ArgumentError
from rig.spec.capture_state import read_readout_window
from rig.spec.dng import read_dng
from rig.spec.ptp import MAX_READOUT_WINDOWS, PropertyCode, ReadoutWindow
from rig.twin.ptpip_peer import PtpIpPeer
from rig.twin.world import TwinBench, TwinFrame

pytestmark = pytest.mark.timeout(120)

# the test sensor is 2048 × 1536 native px (read out binned 4 × 4 as 512 × 384 otherwise)
WINDOWS = (ReadoutWindow(0, 0, 256, 192), ReadoutWindow(896, 640, 256, 256), ReadoutWindow(1792, 1344, 256, 192))


@pytest.fixture(scope="module", autouse=True)
def _libgphoto2_home(gphoto2_home: Path) -> Path:
    return gphoto2_home


def _rendered(bench: TwinBench) -> list[TwinFrame]:
    frames: list[TwinFrame] = []
    original = bench.capture_windows

    def keep(windows, **kwargs):  # type: ignore[no-untyped-def]
        out = original(windows, **kwargs)
        frames.extend(out)
        return out

    bench.capture_windows = keep  # type: ignore[method-assign]
    return frames


def test_windows_come_as_one_dng_each_at_native_pitch(phone: Gphoto2Phone, bench: TwinBench) -> None:
    rendered = _rendered(bench)
    exposures_before = bench.frames_rendered
    shots = phone.capture_windows(WINDOWS)
    assert bench.frames_rendered == exposures_before + 1  # one exposure for all windows
    assert len(shots) == len(WINDOWS) == len(rendered)
    numbers = [int(s.filename[4:8]) for s in shots]
    assert numbers == list(range(numbers[0], numbers[0] + len(WINDOWS)))  # consecutive, in the order asked
    sensor = bench.station.sensor
    for shot, window, truth in zip(shots, WINDOWS, rendered, strict=True):
        image = read_dng(shot.dng)
        assert (image.width, image.height) == (window.width_px, window.height_px)
        np.testing.assert_array_equal(image.raw, truth.raw)
        with rawpy.imread(io.BytesIO(shot.dng)) as raw:
            np.testing.assert_array_equal(raw.raw_image_visible, truth.raw)
            assert raw.raw_pattern.tolist() == [[0, 1], [3, 2]]  # RGGB: the window starts on the R site
        state = read_readout_window(shot.dng, source=shot.filename)
        assert state is not None and state.window == window
        assert state.pixel_pitch_um == sensor.pixel_pitch_um == 1.6
        assert (state.sensor_width_px, state.sensor_height_px) == (sensor.full_width_px, sensor.full_height_px)
    # the phone keeps the windows until told otherwise; a plain capture asks for the whole read-out again
    whole = phone.capture()
    assert (whole.image.width, whole.image.height) == (sensor.width_px, sensor.height_px)
    assert read_readout_window(whole.dng, source=whole.filename) is None
    again = phone.capture_windows(WINDOWS[1:2])
    assert len(again) == 1 and again[0].image.width == 256


@pytest.mark.parametrize(
    ("windows", "why"),
    [
        ((ReadoutWindow(1, 0, 256, 256),), "odd x"),
        ((ReadoutWindow(0, 0, 255, 256),), "odd width"),
        ((ReadoutWindow(1900, 0, 256, 256),), "outside the sensor"),
        ((ReadoutWindow(0, 0, 8, 8),), "too small"),
        ((ReadoutWindow(0, 0, 256, 256), ReadoutWindow(128, 128, 256, 256)), "overlapping"),
        (tuple(ReadoutWindow(64 * k, 0, 16, 16) for k in range(MAX_READOUT_WINDOWS + 1)), "too many"),
    ],
)
def test_the_phone_refuses_bad_windows_and_the_driver_says_so_in_one_line(
    phone: Gphoto2Phone, peer: PtpIpPeer, bench: TwinBench, windows: tuple[ReadoutWindow, ...], why: str
) -> None:
    before = bench.frames_rendered
    with pytest.raises(ArgumentError) as caught:
        phone.capture_windows(windows)
    message = str(caught.value)
    assert "\n" not in message and "refused by the phone" in message and windows[0].text in message, why
    assert bench.frames_rendered == before  # nothing was exposed
    assert peer.props.value(PropertyCode.READOUT_WINDOWS) == ""  # the phone kept its normal read-out
    shot = phone.capture()  # and the session is still good
    assert shot.image.width == bench.station.sensor.width_px


def test_no_windows_is_an_argument_error(phone: Gphoto2Phone) -> None:
    with pytest.raises(ArgumentError, match="at least one"):
        phone.capture_windows([])
