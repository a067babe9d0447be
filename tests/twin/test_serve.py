"""`rig twin serve` runs the whole twin bench for outside clients: the gphoto2 command talks to its phone and the
GRBL driver to its controller, each in its own process, exactly as a station would."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from rig.config import load_station
from rig.devices.grbl import GrblController, GrblStage
from rig.spec.types import StageState


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig", "twin", "serve", "--unit", "golden"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    fields: dict[str, str] = {}
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while "phone" not in fields or "serial" not in fields:
        assert time.monotonic() < deadline, "rig twin serve printed no addresses within 30 s"
        line = proc.stdout.readline()
        assert line, f"rig twin serve ended early: {proc.stderr.read() if proc.stderr else ''}"
        match = re.match(r"^(unit|serial|phone)\s+(\S+)", line)
        if match:
            fields[match.group(1)] = match.group(2)
    return proc, fields


def test_serve_prints_real_addresses_that_gphoto2_and_the_grbl_driver_use(tmp_path: Path) -> None:
    proc, fields = _start(tmp_path)
    try:
        assert fields["unit"] == "XM12SU-000001"
        assert re.fullmatch(r"ptpip:127\.0\.0\.1:\d+:\d+", fields["phone"]), fields["phone"]
        assert Path(fields["serial"]).exists()
        gphoto2 = shutil.which("gphoto2")
        assert gphoto2, "the gphoto2 command is needed (./setup.sh installs it)"
        summary = subprocess.run(
            [gphoto2, "--camera", "PTP/IP Camera", "--port", fields["phone"], "--summary"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HOME": str(tmp_path)},
            check=False,
        )
        assert summary.returncode == 0, summary.stderr
        assert "XM12SU-000001" in summary.stdout and "12S Ultra Concept" in summary.stdout
        station = load_station()
        with GrblController(fields["serial"], poll_interval_s=0.01) as controller:
            stage = GrblStage(controller, station)
            stage.home()
            status = stage.move_to(rail_mm=station.rail.focus_mm, carousel_mm=station.carousel.slots["flat"])
            assert status.state is StageState.IDLE
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, "rig twin serve did not stop cleanly on SIGTERM"
