"""Web page speed: the station screen's first paint, and the line view over 10 000 stored runs.

Run: ``.venv/bin/python benchmarks/web_pages.py [--runs N] [--store URL] [--repeat R]``. Targets (printed, not
asserted): each page loads in ≤ 1 s. Times come from the browser itself (Debian's Chromium via Playwright):
``first-contentful-paint`` from the Paint Timing API and ``loadEventEnd`` from Navigation Timing, medians of R
loads after one warm-up, beside this process's CPU time and the machine's load average. The runs are the tests'
synthetic fleet (tests/results/factory.py), stored into a temporary SQLite file unless ``--store`` names one.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' record factory and browser settings

from rig.config.station import DEFAULT_STATION
from rig.results.store import open_store
from rig.web.line_app import create_line_app
from rig.web.security import AccessTokens
from rig.web.serve import ThreadedServer
from rig.web.station_app import create_station_app
from tests.results.factory import make_fleet
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

TARGET_S = 1.0


def _cpu_s() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def page_times(browser: object, url: str, repeat: int) -> tuple[float, float]:
    """Median first-contentful-paint and load-event times (s) of ``url`` over ``repeat`` fresh page loads."""
    paints, loads = [], []
    for i in range(repeat + 1):
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(url, wait_until="load")
        fcp = page.evaluate(
            """() => new Promise(resolve => new PerformanceObserver(list => {
                   const entry = list.getEntriesByName('first-contentful-paint')[0];
                   if (entry) resolve(entry.startTime);
               }).observe({type: 'paint', buffered: true}))"""
        )
        load = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
        page.close()
        if i:  # the first load warms caches and the server's imports
            paints.append(fcp / 1000)
            loads.append(load / 1000)
    return statistics.median(paints), statistics.median(loads)


def query_times(store_url: str, repeat: int) -> list[tuple[str, float, float]]:
    """Median wall and CPU time (s) of each question the line view's page asks the store, called directly.

    CPU is this thread's (``time.thread_time``): with SQLite the query runs here; with PostgreSQL the server's
    own CPU is not in it.
    """
    from rig.web import queries as q
    from rig.web.status import read_statuses

    everything = q.Filters()
    questions = {
        "yield total": lambda e: q.yields(e, everything, q.Period.TOTAL),
        "yield per hour (24)": lambda e: q.yields(e, everything, q.Period.HOUR, newest=24),
        "yield per shift (9)": lambda e: q.yields(e, everything, q.Period.SHIFT, newest=9),
        "last verdicts": lambda e: q.last_verdicts(e, everything),
        "pareto": lambda e: q.pareto_causes(e, everything),
        "recent runs": lambda e: q.recent_runs(e, everything),
        "filter choices": q.choices,
        "figures": lambda e: q.figures(e, everything),
        "station states": read_statuses,
        "change marker (1/s)": q.change_marker,
    }
    out = []
    with open_store(store_url) as store:
        q.ensure_line_indexes(store.engine)
        for name, ask in questions.items():
            walls, cpus = [], []
            for i in range(repeat + 1):
                w, c = time.perf_counter(), time.thread_time()
                ask(store.engine)
                if i:
                    walls.append(time.perf_counter() - w)
                    cpus.append(time.thread_time() - c)
            out.append((name, statistics.median(walls), statistics.median(cpus)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the store for the line view")
    parser.add_argument("--store", help="results store URL (default: a temporary SQLite file)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="rig-web-bench-") as tmp:
        store_url = args.store or f"sqlite:///{tmp}/results.sqlite"
        t0, c0 = time.perf_counter(), _cpu_s()
        fleet = make_fleet(np.random.default_rng(7), units=args.runs)[: args.runs]
        with open_store(store_url) as store:
            store.add_runs(fleet)
            stored = store.count()["runs"]
        print(f"stored {stored} runs in {time.perf_counter() - t0:.1f} s wall, {_cpu_s() - c0:.1f} s CPU")
        tokens = AccessTokens()
        station = ThreadedServer(create_station_app(DEFAULT_STATION, Path(tmp) / "reports"), tokens=tokens).start()
        line = ThreadedServer(create_line_app(store_url, tokens=tokens), tokens=tokens).start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                for name, url in (("station screen", station.url + "/"), (f"line view, {stored} runs", line.url)):
                    c0 = _cpu_s()
                    fcp, load = page_times(browser, url, args.repeat)
                    cpu = (_cpu_s() - c0) / (args.repeat + 1)
                    verdict = "ok" if load <= TARGET_S else "SLOW"
                    print(
                        f"{name:<24} first paint {fcp:6.3f} s  load {load:6.3f} s  (target ≤ {TARGET_S:g} s: {verdict})"
                        f"  server CPU {cpu:.3f} s/load  load avg {os.getloadavg()[0]:.2f}"
                    )
                browser.close()
            print(f"line view queries, median of {args.repeat} (load avg {os.getloadavg()[0]:.2f}):")
            for name, wall, cpu in query_times(store_url, args.repeat):
                print(f"  {name:<22} wall {1000 * wall:7.1f} ms  CPU {1000 * cpu:7.1f} ms")
        finally:
            station.stop()
            line.stop()


if __name__ == "__main__":
    main()
