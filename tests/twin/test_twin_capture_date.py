"""``rig twin capture`` dates its frame at the real capture time, as LibRaw (rawpy) and exiftool read it.

Issue #14: the command set the twin's clock to 0, so every DNG it wrote said 1970. The frame must carry the
wall time (the twin phone's real-time clock) unless a test injects a clock.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import rawpy

from rig.cli import main
from rig.cli.twin_capture import capture
from rig.config.station import DEFAULT_STATION
from rig.spec.dng import read_dng

WITHIN = timedelta(minutes=1)  # the brief's bound: the file's capture time within a minute of now


def _exiftool_datetime_original(path: Path) -> datetime:
    exe = shutil.which("exiftool")
    if exe is None:
        pytest.skip("exiftool not installed (setup.sh installs libimage-exiftool-perl)")
    out = subprocess.run(
        [exe, "-s3", "-d", "%Y-%m-%dT%H:%M:%S", "-DateTimeOriginal", "-OffsetTimeOriginal", str(path)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.split()  # fmt: skip
    stamp, offset = out
    return datetime.fromisoformat(stamp + offset)


def test_the_cli_dates_the_frame_now_for_libraw_and_exiftool(tmp_path: Path) -> None:
    out = tmp_path / "flat.dng"
    before = datetime.now(UTC)
    assert main(["twin", "capture", "--unit", "golden", "--chart", "flat", "--out", str(out)]) == 0
    after = datetime.now(UTC)
    with rawpy.imread(str(out)) as raw:
        # LibRaw hands back the file's DateTimeOriginal wall reading, naive; the phone writes UTC (+00:00)
        libraw_time = raw.other.timestamp.replace(tzinfo=UTC)
    exif_time = _exiftool_datetime_original(out)
    print(f"capture at {before.isoformat()}: LibRaw {libraw_time.isoformat()}, exiftool {exif_time.isoformat()}")
    for when in (libraw_time, exif_time):
        assert before - WITHIN <= when <= after + WITHIN
    # and not merely "recent": whole seconds of the real capture (the file keeps seconds + microseconds)
    assert before.replace(microsecond=0) <= exif_time <= after


def test_an_injected_clock_dates_the_frame(tmp_path: Path) -> None:
    out = tmp_path / "flat.dng"
    taken = datetime(2031, 5, 6, 7, 8, 9, 250_000, tzinfo=UTC)
    args = argparse.Namespace(
        station=str(DEFAULT_STATION), unit="golden", chart="flat", exposure_ms=10.0, iso=100, seed=3,
        light=0.8, rail_mm=0.0, pitch_deg=0.0, out=str(out),
    )  # fmt: skip
    taken_ns = int(taken.timestamp()) * 10**9 + taken.microsecond * 1000
    assert capture(args, clock=lambda: taken_ns) == 0
    image = read_dng(out.read_bytes())
    assert image.timestamp_ms == pytest.approx(taken.timestamp() * 1000.0, abs=1e-3)
    assert image.lens_model  # the lens had been detected: the mount went on before the capture
