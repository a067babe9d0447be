"""Command round trip to the twin's GRBL peer across its pty: ``?`` status, ``G4 P0`` and a full home + move.

Run: ``.venv/bin/python benchmarks/grbl_roundtrip.py [--count N]``. Prints median and p95 in ms
(target: median ≤ 5 ms for ``?`` and ``G4 P0``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from rig.config.station import load_station
from rig.devices.grbl import GrblController, GrblStage
from rig.twin.grbl import GrblPeer
from rig.twin.state import BenchState


def _timed_ms(call: Callable[[], object], count: int) -> np.ndarray:
    out = np.empty(count)
    for i in range(count):
        start = time.perf_counter()
        call()
        out[i] = (time.perf_counter() - start) * 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=500, help="round trips per command")
    args = parser.parse_args()
    station = load_station()
    with GrblPeer(BenchState(), station, time_scale=100.0) as peer:
        assert peer.path is not None
        start = time.perf_counter()
        with GrblController(peer.path, poll_interval_s=0.005) as controller:
            opened_ms = (time.perf_counter() - start) * 1e3
            stage = GrblStage(controller, station)
            stage.home()
            figures = {
                "? status": _timed_ms(controller.status, args.count),
                "G4 P0": _timed_ms(lambda: controller.command("G4 P0"), args.count),
                "M3 S500 (light)": _timed_ms(lambda: controller.command("M3 S500"), args.count),
            }
            targets = iter(np.tile([10.0, 20.0], args.count // 20 + 1))
            figures["move_to rail 10 mm (x100 time)"] = _timed_ms(
                lambda: stage.move_to(rail_mm=float(next(targets))), max(10, args.count // 20)
            )
    print(f"open (banner + first status): {opened_ms:.1f} ms")
    print(f"{'command':34s} {'n':>5s} {'median ms':>10s} {'p95 ms':>8s}")
    for name, ms in figures.items():
        print(f"{name:34s} {ms.size:5d} {np.median(ms):10.3f} {np.percentile(ms, 95):8.3f}")


if __name__ == "__main__":
    main()
