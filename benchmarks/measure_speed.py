"""CPU per call of the bench's two hottest measurements: :func:`rig.measure.registration.register` and
:func:`rig.measure.sfr.slanted_edge_sfr` (issue #17 / #11: together ~23 % of a twin sign-off's CPU samples).

The inputs are the bench's own: TwinBench captures of the slanted-edge chart, binned to 2048 × 1536 as at test
speed. Registration registers the quad luma (1024 × 768) of the chart at fixture pitch 0° against −90° on a soft
mount (a sag of several px and a small rotation), with the sign-off's settings (3 × 3 patches, 2 passes,
1/100 px: ``rig.bench.procedures._shift_against``) and with the function's defaults (5 × 5, 3 passes). The SFR
figure is per edge, over every edge ``find_edges`` finds on that capture, measured per CFA green pair as
``rig.measure.focus.edge_mtf50_row`` does.

The measurements run as the bench runs them, with one BLAS/OpenMP thread (``rig.bench.pipeline``'s limit: with
OpenBLAS's own threads spinning, a registration costs ~5× the CPU on two cores). CPU time is
``time.process_time`` (all threads of this process) per call, the median and the least of the repeats; wall time
and the load average are printed beside it: a shared machine inflates wall time most, but CPU time too (caches,
clock), so compare before/after runs taken one after the other.

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/measure_speed.py [--repeats N] [--inputs FILE] [--dump FILE]``.
For the "before" figures run the same script against another checkout's code (``PYTHONPATH=/path/to/main``):
``--inputs`` caches the captures in an ``.npz`` so both runs measure the very same frames, and ``--dump`` writes
every output figure so two runs can be compared bit for bit (``--compare A.npz B.npz``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from rig.bench.pipeline import limit_native_threads
from rig.config import load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.measure.edges import EdgeRoi, find_edges
from rig.measure.imageio import bayer_mean
from rig.measure.registration import Registration, register
from rig.measure.sfr import SfrResult, slanted_edge_sfr
from rig.twin.world import TwinBench

LENS = "apo-summicron-m-90-f2-asph"
PITCHES_DEG = (-90.0, 0.0)
SIGNOFF_REGISTRATION = {"grid": 3, "iterations": 2, "upsample": 100}  # rig.bench.procedures._shift_against


def _captures() -> dict[str, np.ndarray]:
    """Raw binned captures of the SFR chart at the two fixture pitches, on a soft mount (it sags between them)."""
    station = load_station()
    station = station.model_copy(update={"sensor": station.sensor.model_copy(update={"binning": 4})})
    golden = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    unit = golden.model_copy(
        update={
            "mount": golden.mount.model_copy(update={"rotational_stiffness_nm_per_mrad": 0.4}),
            "lens": golden.lens.model_copy(update={"id": LENS}),
        }
    )
    bench = TwinBench(station, unit, load_lens_catalog(), seed=5)
    clock = [0]
    bench.state.clock = lambda: clock[0]
    bench.state.update(
        carousel_mm=station.carousel.slots["sfr"],
        rail_mm=station.rail.focus_mm,
        light_pwm=0.7 * station.light.pwm_max,
        exposure_time_s=0.004,
        iso=100,
    )
    bench.state.mount_lens(LENS)
    clock[0] = int((unit.firmware.sensor_switch_latency_ms + 50) * 1e6)
    raws = {}
    for pitch in PITCHES_DEG:
        bench.state.update(pitch_deg=pitch)
        frame = bench.capture()
        raws[f"raw_pitch{pitch:+.0f}"] = frame.raw
    raws["black_level"] = np.array(float(station.sensor.black_level_dn))
    raws["white_level"] = np.array(float(station.sensor.white_level_dn))
    raws["cfa_pattern"] = np.array(station.sensor.cfa_pattern)
    return raws


def _load_inputs(path: Path | None) -> dict[str, np.ndarray]:
    if path is not None and path.exists():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    raws = _captures()
    if path is not None:
        np.savez_compressed(path, **raws)
    return raws


@dataclass(frozen=True)
class _Timing:
    cpu_median_s: float
    cpu_min_s: float  # the least disturbed call: other processes on a shared machine inflate even CPU time
    wall_median_s: float

    def per_call(self, calls: int) -> str:
        return (
            f"CPU {self.cpu_median_s / calls * 1e3:.2f} ms/call (min {self.cpu_min_s / calls * 1e3:.2f}), "
            f"wall {self.wall_median_s / calls * 1e3:.2f} ms"
        )


def _timed(call: Callable[[], object], repeats: int) -> tuple[object, _Timing]:
    """The last result of ``repeats`` calls and their CPU and wall times."""
    cpus, walls = [], []
    result: object = None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        result = call()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    return result, _Timing(statistics.median(cpus), min(cpus), statistics.median(walls))


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} on {os.cpu_count()} CPUs"


def _registration_figures(reg: Registration) -> np.ndarray:
    return np.array([float(getattr(reg, f.name)) for f in fields(reg)])


def _sfr_figures(results: list[SfrResult]) -> np.ndarray:
    rows = [
        np.concatenate(([r.mtf50_cy_px, r.angle_deg, r.snr, r.fit_rms_px, r.lsf_window_px, r.rows_used], r.mtf))
        for r in results
    ]
    return np.concatenate(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="calls per figure (median reported)")
    parser.add_argument("--inputs", type=Path, help=".npz cache of the captures (written if missing)")
    parser.add_argument("--dump", type=Path, help="write every output figure to this .npz")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("A", "B"), help="compare two --dump files")
    args = parser.parse_args()
    if args.compare:
        _compare(*args.compare)
        return
    limit_native_threads()  # as the bench runs its measurements: one BLAS/OpenMP thread (rig.bench.pipeline)
    inputs = _load_inputs(args.inputs)
    reference = bayer_mean(inputs["raw_pitch-90"])
    moving = bayer_mean(inputs["raw_pitch+0"])
    black, white = float(inputs["black_level"]), float(inputs["white_level"])
    cfa = str(inputs["cfa_pattern"])
    print(f"inputs: quad luma {reference.shape[1]}x{reference.shape[0]} ({reference.dtype}); {_load()}")
    dumped: dict[str, np.ndarray] = {}

    for label, options in (("sign-off 3x3/2 passes", SIGNOFF_REGISTRATION), ("defaults 5x5/3 passes", {})):
        reg, timing = _timed(lambda o=options: register(reference, moving, **o), args.repeats)
        assert isinstance(reg, Registration)
        again = register(reference, moving, **options)
        same = np.array_equal(_registration_figures(reg), _registration_figures(again))
        print(
            f"register() {label}: {timing.per_call(1)}; "
            f"dx {reg.dx_px:+.4f} dy {reg.dy_px:+.4f} px rot {reg.rotation_deg:+.5f} deg; "
            f"repeat bit-identical: {same}; {_load()}"
        )
        dumped[f"register {label}"] = _registration_figures(reg)

    raw = inputs["raw_pitch+0"]
    rois: list[EdgeRoi] = find_edges(raw, cfa_pattern=cfa, black_level=black)
    crops = [roi.crop(raw) for roi in rois]

    def measure_all() -> list[SfrResult]:
        return [
            slanted_edge_sfr(
                crop, cfa_pattern=cfa, channel="G", black_level=black, white_level=white, orientation=roi.orientation
            )
            for roi, crop in zip(rois, crops, strict=True)
        ]

    results, timing = _timed(measure_all, args.repeats)
    assert isinstance(results, list)
    same = np.array_equal(_sfr_figures(results), _sfr_figures(measure_all()))
    n = len(rois)
    median_mtf50 = float(np.median([r.mtf50_cy_px for r in results]))
    print(
        f"slanted_edge_sfr() raw G, {n} edges of {crops[0].shape[1]}x{crops[0].shape[0]} px: "
        f"{timing.per_call(n)}; median MTF50 {median_mtf50:.4f} cy/px; "
        f"repeat bit-identical: {same}; {_load()}"
    )
    dumped["sfr raw G"] = _sfr_figures(results)
    if args.dump is not None:
        np.savez(args.dump, **dumped)


def _compare(a: Path, b: Path) -> None:
    with np.load(a) as first, np.load(b) as second:
        for key in first.files:
            x, y = first[key], second[key]
            if x.shape == y.shape and np.array_equal(x, y, equal_nan=True):
                print(f"{key}: bit-identical ({x.size} figures)")
                continue
            if x.shape != y.shape:
                print(f"{key}: shapes differ {x.shape} vs {y.shape}")
                continue
            scale = np.maximum(np.abs(x), np.abs(y))
            rel = np.where(scale > 0, np.abs(x - y) / np.where(scale > 0, scale, 1.0), 0.0)
            print(f"{key}: differ, max relative {np.nanmax(rel):.3g} ({int(np.sum(x != y))} of {x.size} figures)")


if __name__ == "__main__":
    main()
