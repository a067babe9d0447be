"""Twin rendering speed and memory: full-size 8192×6144 slanted-edge DNG and the binned 2048×1536 capture.

Targets (not asserted): full size ≤ 3 s wall and ≤ 2 GB peak RSS on 2 cores; binned capture ≤ 0.3 s.
Run: ``.venv/bin/python benchmarks/twin_render.py``. Prints one line per figure.
"""

from __future__ import annotations

import resource
import time

from rig.config import load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.twin.world import TwinBench


def _bench(binning: int, chart: str = "sfr") -> TwinBench:
    station = load_station()
    station = station.model_copy(update={"sensor": station.sensor.model_copy(update={"binning": binning})})
    unit = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    bench = TwinBench(station, unit, load_lens_catalog(), seed=1)
    clock = [0]
    bench.state.clock = lambda: clock[0]
    bench.state.mount_lens(unit.lens.id)
    clock[0] = 5_000_000_000
    bench.state.update(rail_mm=station.rail.focus_mm, carousel_mm=station.carousel.slots[chart], light_pwm=800)
    return bench


def _time(bench: TwinBench, repeats: int) -> tuple[float, float, int]:
    """(first, best of the rest) wall seconds of capture(), and the DNG size."""
    start = time.perf_counter()
    frame = bench.capture()
    first = time.perf_counter() - start
    best = first
    for _ in range(repeats):
        start = time.perf_counter()
        bench.capture()
        best = min(best, time.perf_counter() - start)
    return first, best, len(frame.dng)


def main() -> None:
    for chart in ("sfr", "flat", "dotgrid"):
        first, best, size = _time(_bench(4, chart), repeats=5)
        print(f"binned 2048x1536 {chart:8s} capture+DNG: first {first:.3f} s, best {best:.3f} s ({size / 1e6:.1f} MB)")
    first, best, size = _time(_bench(1, "sfr"), repeats=1)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"full 8192x6144 sfr capture+DNG: first {first:.2f} s, best {best:.2f} s ({size / 1e6:.0f} MB)")
    print(f"peak RSS {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
