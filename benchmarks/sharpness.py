"""Sharpness benchmarks: SFR speed, full-frame chart speed and memory, SFR and flange accuracy. Prints figures.

Run from the repository root: ``.venv/bin/python benchmarks/sharpness.py`` (about a minute). Targets (from the
brief): one 100×200 ROI ≤ 2 ms; detection + SFR of every edge of a full 8192×6144 chart frame ≤ 1.5 s wall on
2 cores with peak memory ≤ 4× the frame; MTF50 within 1 % noise-free (median ≤ 0.5 %), within 3 % at SNR 50;
flange within 1 µm, tilt within 0.5 arcmin.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rig.config import load_lens_catalog, load_station, load_unit  # noqa: E402
from rig.config.loader import FIXTURES_DIR  # noqa: E402
from rig.measure.focus import measure_flange  # noqa: E402
from rig.measure.sfr import slanted_edge_sfr  # noqa: E402
from rig.twin.raster import ChartPose  # noqa: E402
from rig.twin.render import render  # noqa: E402
from rig.twin.state import BenchState  # noqa: E402
from tests.measure.analytic import (  # noqa: E402
    EDGE_PSFS,
    F,
    gaussian_edge,
    gaussian_mtf,
    mosaic,
    mtf50,
    pixel_mtf,
)

ANGLES = (2.0, 5.0, 10.0, 20.0, 30.0, 40.0)


def roi_speed() -> None:
    roi = gaussian_edge((200, 100), angle_deg=5.0, sigma_px=0.8)
    for _ in range(20):
        slanted_edge_sfr(roi)
    calls = []
    c0 = time.process_time()
    for _ in range(1000):
        t0 = time.perf_counter()
        slanted_edge_sfr(roi)
        calls.append(time.perf_counter() - t0)
    cpu = (time.process_time() - c0) / len(calls)
    ms = np.array(calls) * 1e3
    # the fastest decile is what a call costs when no other process takes the core (the CI box is shared)
    print(
        f"SFR of one 100×200 ROI: {np.percentile(ms, 10):.2f} ms (10th pct of 1000 calls), median {np.median(ms):.2f} "
        f"ms, {cpu * 1e3:.2f} ms CPU per call   [target ≤ 2 ms]"
    )


_CHILD = r"""
import sys, time
import numpy as np
from rig.measure.edges import measure_chart
raw = np.load(sys.argv[1])
def status_kb(key):
    # VmHWM, not ru_maxrss: after fork + exec, ru_maxrss still carries the (large) parent's peak
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
base = status_kb("VmRSS")
t = time.perf_counter()
result = measure_chart(raw, cfa_pattern="RGGB", black_level=64, white_level=1023, pixel_pitch_um=1.6)
wall = time.perf_counter() - t
peak = status_kb("VmHWM")
print(wall, len(result.edges), len(result.measured), max(peak - base, 0) / 1024, raw.nbytes / 2**20)
"""


def full_frame() -> None:
    station = load_station()
    station = station.model_copy(update={"sensor": station.sensor.model_copy(update={"binning": 1})})
    unit = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    catalog = load_lens_catalog()
    lens = catalog.get(unit.lens.id)
    state = BenchState()
    state.update(rail_mm=station.rail.focus_mm, carousel_mm=0.0, light_pwm=1000, exposure_time_s=0.02)
    state.mount_lens(lens.id)
    t = time.perf_counter()
    frame = render(station, unit, catalog, state.snapshot(), lens=lens, rng=np.random.default_rng(1)).raw
    print(f"twin render of the full 8192×6144 frame: {time.perf_counter() - t:.1f} s (not part of the target)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frame.npy"
        np.save(path, frame)
        del frame
        runs = []
        for _ in range(3):
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, check=True, env=env
            ).stdout.split()
            runs.append([float(v) for v in out])
    wall, edges, measured, extra_mb, frame_mb = min(runs)
    print(
        f"full frame, detection + SFR of every edge: {wall:.2f} s wall (best of 3), {int(measured)}/{int(edges)} "
        f"edges measured   [target ≤ 1.5 s]"
    )
    print(
        f"  peak memory above the loaded frame: {extra_mb:.0f} MB = {extra_mb / frame_mb:.2f}× the "
        f"{frame_mb:.0f} MB frame   [target ≤ 4×]"
    )


def _shape(angle: float, rows: int) -> tuple[int, int]:
    return rows, max(80, math.ceil(rows * math.tan(math.radians(angle))) + 60)


def sfr_accuracy() -> None:
    psfs = EDGE_PSFS
    errors, curves = [], []
    for make, psf_mtf in psfs.values():
        for angle in ANGLES:
            truth = psf_mtf * pixel_mtf(F, angle)
            for polarity in (True, False):
                r = slanted_edge_sfr(make(_shape(angle, 100), angle, polarity))
                errors.append(abs(r.mtf50_cy_px / mtf50(F, truth) - 1))
                keep = r.frequencies_cy_px <= 0.5
                curves.append(np.max(np.abs(r.mtf[keep] - np.interp(r.frequencies_cy_px[keep], F, truth))))
    print(
        f"SFR noise-free ({len(errors)} edges, 5 PSFs × 2°–40° × 2 polarities, 100 rows): MTF50 error max "
        f"{max(errors):.2%}, median {np.median(errors):.2%}; MTF curve max |Δ| {max(curves):.4f} to Nyquist"
        "   [targets 1 %, 0.5 %, 0.02]"
    )
    rng = np.random.default_rng(50)
    errors, curves = [], []
    for angle in ANGLES:
        for sigma in (0.5, 0.8, 1.5):
            clean = gaussian_edge(_shape(angle, 200), angle_deg=angle, sigma_px=sigma)
            truth = gaussian_mtf(F, sigma) * pixel_mtf(F, angle)
            for _ in range(5):
                r = slanted_edge_sfr(clean + rng.normal(0, 600 / 50, clean.shape))
                errors.append(abs(r.mtf50_cy_px / mtf50(F, truth) - 1))
                keep = r.frequencies_cy_px <= 0.5
                curves.append(np.max(np.abs(r.mtf[keep] - np.interp(r.frequencies_cy_px[keep], F, truth))))
    print(
        f"SFR at SNR 50 ({len(errors)} edges, 200 rows): MTF50 error max {max(errors):.2%}, 95th pct "
        f"{np.percentile(errors, 95):.2%}, median {np.median(errors):.2%}; curve max |Δ| {max(curves):.3f}"
        "   [target 3 %]"
    )
    errors = []
    for channel in ("R", "Gr", "Gb", "B", "G"):
        for angle in (5.0, 20.0):
            truth = gaussian_mtf(F, 1.0) * pixel_mtf(F, angle)
            r = slanted_edge_sfr(
                mosaic(gaussian_edge(_shape(angle, 200), angle_deg=angle, sigma_px=1.0)),
                cfa_pattern="RGGB",
                channel=channel,
            )
            errors.append(abs(r.mtf50_cy_px / mtf50(F, truth) - 1))
    print(f"SFR on raw Bayer channels R/Gr/Gb/B/G-sites, noise-free: MTF50 error max {max(errors):.2%}")


def flange_accuracy() -> None:
    station = load_station()
    catalog = load_lens_catalog()
    golden = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    lens = catalog.get(golden.lens.id)
    rng = np.random.default_rng(4)
    rails = station.rail.focus_mm + np.linspace(-3.0, 3.0, 11)
    rows = []
    for f_number in (1.4, 1.4, 2.8, 2.8):
        mount = golden.mount.model_copy(
            update={
                "flange_offset_um": float(rng.uniform(-40, 40)),
                "tilt_x_arcmin": float(rng.uniform(-5, 5)),
                "tilt_y_arcmin": float(rng.uniform(-5, 5)),
            }
        )
        unit = golden.model_copy(update={"mount": mount})
        state = BenchState()
        state.update(carousel_mm=0.0, light_pwm=1000, exposure_time_s=0.02, f_number=f_number)
        state.mount_lens(lens.id)
        frames = []
        pose = ChartPose(rotation_deg=float(rng.uniform(-2, 2)))
        for z in rails:
            state.update(rail_mm=float(z))
            rendering = render(station, unit, catalog, state.snapshot(), lens=lens, chart_pose=pose, rng=rng)
            frames.append(rendering.raw)
        truth = rendering.truth
        t = time.perf_counter()
        result = measure_flange(
            frames,
            np.asarray(rails) - station.rail.focus_mm,  # the twin's state is GRBL Z; rig measures from the focus
            focal_length_mm=lens.focal_length_mm,
            collimator_focal_length_mm=station.optics.collimator_focal_length_mm,
            pixel_pitch_um=station.sensor.readout_pitch_um,
            cfa_pattern="RGGB",
            black_level=64,
            white_level=1023,
        )
        elapsed = time.perf_counter() - t
        rows.append(
            (
                f_number,
                result.flange_offset_um - truth.flange_offset_um,
                result.tilt_x_arcmin - truth.tilt_x_arcmin,
                result.tilt_y_arcmin - truth.tilt_y_arcmin,
                result.fit_rms_um,
                elapsed,
            )
        )
        print(
            f"flange f/{f_number}: truth {truth.flange_offset_um:+6.2f} µm {truth.tilt_x_arcmin:+.2f}′/"
            f"{truth.tilt_y_arcmin:+.2f}′ → error {rows[-1][1]:+.2f} µm, tilt {rows[-1][2]:+.2f}′/{rows[-1][3]:+.2f}′, "
            f"fit rms {result.fit_rms_um:.2f} µm, {result.edges_used} edges, {elapsed:.1f} s for 11 frames"
        )
    arr = np.array(rows)
    print(
        f"flange (2048×1536, 6.4 µm, 11 frames, noise on): max |error| {np.abs(arr[:, 1]).max():.2f} µm, "
        f"tilt {np.abs(arr[:, 2:4]).max():.2f}′   [targets 1 µm, 0.5′]"
    )


if __name__ == "__main__":
    roi_speed()
    full_frame()
    sfr_accuracy()
    flange_accuracy()
