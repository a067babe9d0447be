"""Gauge R&R cost: the ANOVA on study tables of growing size, and one twin reading (remount + through-focus sweep).

Prints wall and CPU time with the load average beside them (the machine is shared: wall time alone says little),
and what a full AIAG study (10 parts × 3 appraisers × 3 trials = 90 readings) costs on the twin at this rate.
Run: ``.venv/bin/python benchmarks/msa_grr.py``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

from rig.bench import msa_study as ms
from rig.bench.msa_steps import PlanSteps
from rig.config.limits import load_limits
from rig.config.resolve import load_station_lenses
from rig.config.station import load_station
from rig.config.unit import UNITS_DIR, load_unit
from rig.plans import signoff
from rig.results import msa

REPEATS = 20


def _table(parts: int, appraisers: int, trials: int, rng: np.random.Generator) -> pd.DataFrame:
    p, a, t = np.meshgrid(np.arange(parts), np.arange(appraisers), np.arange(trials), indexing="ij")
    values = rng.normal(0, 1, parts)[p] + rng.normal(0, 0.2, appraisers)[a] + rng.normal(0, 0.1, p.shape)
    return pd.DataFrame({"part": p.ravel(), "appraiser": a.ravel(), "trial": t.ravel(), "value": values.ravel()})


def _timed(fn: object, repeats: int) -> tuple[float, float]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()  # type: ignore[operator]
    return (time.perf_counter() - wall0) / repeats, (time.process_time() - cpu0) / repeats


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for shape in ((10, 3, 3), (50, 10, 5), (200, 10, 10)):
        table = _table(*shape, rng)
        wall, cpu = _timed(lambda table=table: msa.gauge_rr(table, tolerance=6.0), REPEATS)
        print(
            f"gauge_rr {shape[0]}×{shape[1]}×{shape[2]} ({len(table)} readings): {wall * 1e3:.2f} ms wall, "
            f"{cpu * 1e3:.2f} ms CPU"
        )

    station = load_station()
    lenses = load_station_lenses(station)
    golden = load_unit(UNITS_DIR / "golden.toml")
    appraisers = ms.draw_appraisers(ms.AppraiserKind.OPERATOR, 2, spread=ms.AppraiserSpread(), seed=0)
    trials = 3
    wall0, cpu0 = time.perf_counter(), time.process_time()
    flange = PlanSteps.of(signoff, load_limits("signoff"), ["flange_alignment"])
    ms.run_gauge_study(
        station, lenses, [golden], appraisers[:1], plan=flange, trials=trials, kind=ms.AppraiserKind.OPERATOR, seed=0
    )
    wall, cpu = (time.perf_counter() - wall0) / trials, (time.process_time() - cpu0) / trials
    print(
        f"twin reading (remount + {ms.proc.SWEEP_STEPS}-frame sweep at binning {station.sensor.binning}): "
        f"{wall:.2f} s wall, {cpu:.2f} s CPU in this process (the twin renders in it), load "
        f"{os.getloadavg()[0]:.2f}"
    )
    print(f"a 10 × 3 × 3 study on the twin at this rate: {90 * wall / 60:.1f} min wall")


if __name__ == "__main__":
    main()
