"""Whole-process start-up of ``rig measure sfr EDGE.png --json``, next to the interpreter's own floor.

Run from the repository root: ``.venv/bin/python benchmarks/measure_startup.py [RUNS]`` (default 15 runs each).
Target (issue #15): median wall ≤ 0.15 s on a quiet machine (MTF Mapper: 0.097 s on the same kind of edge).
The floor is ``python -c pass`` and ``python -c "import numpy, cv2"`` (what any measurement must import); CPU
time (user + system of the children) and the load average are printed beside wall time, because a shared box
inflates wall time but not CPU time.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.measure.analytic import gaussian_edge  # noqa: E402


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(label: str, argv: list[str], runs: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    walls, cpus = [], []
    for _ in range(runs):
        c0 = _children_cpu()
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        walls.append(time.perf_counter() - t0)
        cpus.append(_children_cpu() - c0)
    print(
        f"{label:48s} wall median {statistics.median(walls):.3f} s (min {min(walls):.3f}), "
        f"CPU median {statistics.median(cpus):.3f} s   load {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    with tempfile.TemporaryDirectory() as tmp:
        edge = Path(tmp) / "edge.png"
        image = gaussian_edge((120, 100), angle_deg=5.0, sigma_px=0.8, lo=8000.0, hi=40000.0)
        cv2.imwrite(str(edge), np.round(image).astype(np.uint16))
        py = sys.executable
        measure("python -c pass", [py, "-c", "pass"], runs)
        measure('python -c "import numpy, cv2"', [py, "-c", "import numpy, cv2"], runs)
        measure(
            "rig measure sfr EDGE.png --json   [≤ 0.15 s]",
            [py, "-m", "rig", "measure", "sfr", str(edge), "--json"],
            runs,
        )


if __name__ == "__main__":
    main()
