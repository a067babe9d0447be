"""Capture + download of a DNG over PTP/IP on loopback, through libgphoto2, at full size and binned.

Targets: full-size 8192×6144 DNG (≈100 MB) ≤ 1.5 s per frame for the transport, binned 2048×1536 ≤ 0.3 s.
The twin's rendering of a frame is timed separately (it is the simulated phone's exposure and processing, not
the link), so the split printed is: render (inside the peer) and transport + validation (everything else: PTP
events, GetObject over TCP, libgphoto2's copy, the CRC-32 and strict DNG parse in the driver).
Run: ``.venv/bin/python benchmarks/ptpip_capture.py [repeats]``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from typing import Any

from rig.config import load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.devices.gphoto2_phone import Gphoto2Phone
from rig.twin.ptpip_peer import PtpIpPeer
from rig.twin.world import TwinBench, TwinFrame


class TimedBench:
    """The twin bench with its capture time recorded (the peer sees the same interface)."""

    def __init__(self, bench: TwinBench) -> None:
        self._bench = bench
        self.render_s: list[float] = []

    def capture(self) -> TwinFrame:
        start = time.perf_counter()
        frame = self._bench.capture()
        self.render_s.append(time.perf_counter() - start)
        return frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bench, name)


def run(binning: int, repeats: int) -> None:
    station = load_station()
    station = station.model_copy(update={"sensor": station.sensor.model_copy(update={"binning": binning})})
    bench = TimedBench(TwinBench(station, load_unit(FIXTURES_DIR / "units" / "golden.toml"), load_lens_catalog()))
    bench.state.update(light_pwm=600.0, exposure_time_s=0.01)
    totals: list[float] = []
    size = 0
    with PtpIpPeer(bench) as peer:  # type: ignore[arg-type]  # a duck-typed TwinBench
        assert peer.address is not None
        with Gphoto2Phone(peer.address, timeout_s=60.0) as phone:
            phone.capture()  # warm-up: first render builds caches, first download sizes buffers
            bench.render_s.clear()
            for _ in range(repeats):
                start = time.perf_counter()
                shot = phone.capture()
                totals.append(time.perf_counter() - start)
                size = len(shot.dng)
    total = statistics.median(totals)
    render = statistics.median(bench.render_s)
    transport = statistics.median(t - r for t, r in zip(totals, bench.render_s, strict=True))
    print(
        f"{station.sensor.width_px}×{station.sensor.height_px} (binning {binning}): DNG {size / 1e6:.1f} MB, "
        f"median of {repeats}: capture+download {total:.3f} s = render {render:.3f} s + transport/validation "
        f"{transport:.3f} s ({size / 1e6 / transport:.0f} MB/s)"
    )


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    # libgphoto2 keeps its PTP/IP GUID under $HOME/.gphoto: keep the benchmark's out of the real home
    os.environ["HOME"] = tempfile.mkdtemp(prefix="rig-bench-home-")
    run(4, repeats)
    run(1, max(2, repeats // 2))


if __name__ == "__main__":
    main()
