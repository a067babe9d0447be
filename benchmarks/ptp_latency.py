"""Latency of one PTP property set (SetDevicePropValue) and of a capture against the twin, through libgphoto2.

Target (issue #17 point 3): a property set under 5 ms, median of 50. libgphoto2 writes an OperationRequest and
then its StartData/EndData as separate small writes without ``TCP_NODELAY`` (camlibs/ptp2/ptpip.c,
``ptp_ptpip_sendreq`` / ``ptp_ptpip_senddata``), so Nagle holds the data until the responder ACKs the request;
a responder with delayed ACKs costs 40+ ms per set. The peer re-arms ``TCP_QUICKACK`` before every read
(:mod:`rig.twin.ptpip_peer.wire`); the run with it disabled shows what that buys.

Printed beside the wall times: the process CPU time of the run (peer and libgphoto2 share this process) and the
load average, so a slow figure on a busy machine can be told from a slow peer.
Run: ``.venv/bin/python benchmarks/ptp_latency.py [sets] [captures]``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from rig.config import load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.devices.gphoto2_phone import Gphoto2Phone
from rig.twin.ptpip_peer import PtpIpPeer, wire
from rig.twin.world import TwinBench

PEAKING_VALUES = (0.05, 0.1)  # alternated so every set changes the value


def timed(repeats: int, action: Callable[[int], object]) -> tuple[list[float], float]:
    """Wall times of ``repeats`` calls (s) and the CPU time they took together (s)."""
    walls = []
    cpu_start = time.process_time()
    for i in range(repeats):
        start = time.perf_counter()
        action(i)
        walls.append(time.perf_counter() - start)
    return walls, time.process_time() - cpu_start


def report(label: str, walls: list[float], cpu_s: float) -> None:
    walls_ms = sorted(w * 1e3 for w in walls)
    p90 = walls_ms[int(0.9 * (len(walls_ms) - 1))]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"  {label}: median {statistics.median(walls_ms):.2f} ms, p90 {p90:.2f} ms, max {walls_ms[-1]:.2f} ms "
        f"over {len(walls_ms)} (wall {sum(walls_ms) / 1e3:.2f} s, CPU {cpu_s:.2f} s; load average {load})"
    )


def run(sets: int, captures: int, *, quickack: bool) -> None:
    station = load_station()
    bench = TwinBench(station, load_unit(FIXTURES_DIR / "units" / "golden.toml"), load_lens_catalog())
    bench.state.update(light_pwm=600.0, exposure_time_s=0.001)
    saved = wire._QUICKACK
    if not quickack:
        wire._QUICKACK = None  # the peer as it was: delayed ACKs
    try:
        with PtpIpPeer(bench) as peer:
            assert peer.address is not None
            with Gphoto2Phone(peer.address, timeout_s=60.0) as phone:
                phone.capture()  # warm-up: render caches, buffer sizes
                print(f"TCP_QUICKACK {'re-armed' if quickack else 'off (delayed ACKs)'}:")
                walls, cpu = timed(sets, lambda i: phone.set_assist_thresholds(peaking_threshold=PEAKING_VALUES[i % 2]))
                report("property set (PeakingThreshold, get + SetDevicePropValue)", walls, cpu)
                walls, cpu = timed(captures, lambda i: phone.capture())
                sensor = station.sensor
                report(f"capture + download + validation ({sensor.width_px}×{sensor.height_px})", walls, cpu)
    finally:
        wire._QUICKACK = saved


def main() -> None:
    sets = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    captures = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    # libgphoto2 keeps its PTP/IP GUID under $HOME/.gphoto: keep the benchmark's out of the real home
    os.environ["HOME"] = tempfile.mkdtemp(prefix="rig-bench-home-")
    run(sets, captures, quickack=True)
    run(sets, captures, quickack=False)


if __name__ == "__main__":
    main()
