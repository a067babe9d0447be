"""Reporting speed: per-run outputs for one sign-off run, and SPC over 100 000 stored measurements.

Run: ``.venv/bin/python benchmarks/reporting.py [--measurements N] [--repeat R]``. Prints the median of R
repeats (after one warm-up) for each stage. Targets: one run's report ≤ 3 s; SPC over 100 000 measurements
≤ 2 s. Uses the synthetic runs of the tests (tests/results/factory.py), a temporary SQLite store and
Chromium for the PDF.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' record factory

from rig.report import write_run_outputs
from rig.report.html import render_html
from rig.report.spc_page import write_spc_outputs
from rig.results.spc import SPC_MEASUREMENT_COLUMNS, compute_spc
from rig.results.store import open_store
from tests.report.signoff import signoff_record, signoff_report_data
from tests.results.factory import BASE_TIME, SIGNOFF_SPEC, make_run


def _cpu_s() -> float:
    # This process and its finished children (Chromium): on a shared machine CPU time is the stable figure.
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _median_s(call: Callable[[], object], repeat: int) -> float:
    return _median_wall_cpu_s(call, repeat)[0]


def _median_wall_cpu_s(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    call()  # warm-up: imports, font cache, Chromium's first start
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), _cpu_s()
        call()
        wall.append(time.perf_counter() - start)
        cpu.append(_cpu_s() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def bench_report(tmp: Path, repeat: int) -> None:
    run_dir = tmp / "run"
    record = signoff_record(np.random.default_rng(42))
    data = signoff_report_data(run_dir)
    html_s = _median_s(lambda: render_html(record, data, run_dir), repeat)
    no_pdf_s = _median_s(lambda: write_run_outputs(record, run_dir, plots=data, pdf=False), repeat)
    full_s, full_cpu_s = _median_wall_cpu_s(lambda: write_run_outputs(record, run_dir, plots=data), repeat)
    size_kb = (run_dir / "report.html").stat().st_size / 1024
    print(f"report, one sign-off run ({len(record.measurements)} measurements, {len(data.plots)} plots):")
    print(f"  render HTML (plots as SVG)              {html_s:7.3f} s   ({size_kb:.0f} KiB page)")
    print(f"  all outputs without PDF                 {no_pdf_s:7.3f} s")
    print(f"  all outputs with Chromium PDF           {full_s:7.3f} s   (target ≤ 3 s; CPU {full_cpu_s:.2f} s)")
    print(f"  machine load average (1 min)            {os.getloadavg()[0]:7.2f}     on {os.cpu_count()} CPUs")


def bench_spc(tmp: Path, measurements: int, repeat: int) -> None:
    url = f"sqlite:///{tmp / 'results.sqlite'}"
    n_runs = -(-measurements // len(SIGNOFF_SPEC))
    rng = np.random.default_rng(3)
    runs = [
        make_run(
            rng,
            run_id=f"run-{i:06d}",
            unit_serial=f"XM12SU-{i // 2:06d}",  # every unit twice: first pass and a rework
            started=BASE_TIME + timedelta(minutes=i),
            error_rate=0.01,
        )
        for i in range(n_runs)
    ]
    start = time.perf_counter()
    with open_store(url) as store:
        store.add_runs(runs)
        counts = store.count()
    load_s = time.perf_counter() - start
    print(f"SPC over {counts['measurements']} measurements of {counts['runs']} runs (SQLite, WAL):")
    print(f"  bulk store (one transaction)            {load_s:7.3f} s   ({counts['runs'] / load_s:.0f} runs/s)")

    def read() -> tuple:
        with open_store(url) as store:
            return store.runs(plan="signoff"), store.measurements(plan="signoff", columns=SPC_MEASUREMENT_COLUMNS)

    frames = read()
    read_s = _median_s(read, repeat)
    compute_s = _median_s(lambda: compute_spc(*frames, charts=True), repeat)
    result = compute_spc(*frames)
    page_s = _median_s(lambda: write_spc_outputs(result, tmp / "spc", scope="benchmark"), repeat)
    print(f"  read runs + measurements                {read_s:7.3f} s")
    print(f"  yield, Pareto, Cpk, control charts      {compute_s:7.3f} s")
    print(f"  read + compute                          {read_s + compute_s:7.3f} s   (target ≤ 2 s)")
    print(f"  spc.html + CSV ({len(result.charts)} chart images)      {page_s:7.3f} s")

    single = runs[0]
    add_s = _median_s(lambda: _add_one(url, single), repeat)
    print(f"  add_run of one run (re-store, commit)   {add_s * 1e3:7.1f} ms")


def _add_one(url: str, record: object) -> None:
    with open_store(url) as store:
        store.add_run(record)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--measurements", type=int, default=100_000, help="measurements to store for SPC")
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats per stage (median printed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rig-bench-") as tmp:
        bench_report(Path(tmp), args.repeat)
        bench_spc(Path(tmp), args.measurements, args.repeat)


if __name__ == "__main__":
    main()
