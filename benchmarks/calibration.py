"""Calibration outputs at full sensor size (8192×6144): shading gain-map fit + OpcodeList encode, dot-grid fit.

Frames come from the twin at binning 1 (the heavy-vignetting unit's flat field, the golden unit's dot grid), so
the figures include realistic noise, blur and shading. Prints wall time, peak RSS growth and accuracy against
the twin's ground truth. Run: ``.venv/bin/python benchmarks/calibration.py``.
"""

from __future__ import annotations

import resource
import time

import numpy as np

from rig.calibrate.shading import fit_shading, residual_shading
from rig.config import load_chart, load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.measure.dotgrid import detect_dots, fit_dot_grid, ptlens_radius
from rig.spec.gainmap import apply_opcode_list, decode_opcode_list, shading_opcode_list
from rig.twin.world import TwinBench


class _Clock:
    now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


def _bench(unit_name: str, chart: str, exposure_s: float) -> TwinBench:
    station = load_station()
    station = station.model_copy(update={"sensor": station.sensor.model_copy(update={"binning": 1})})
    unit = load_unit(FIXTURES_DIR / "units" / f"{unit_name}.toml")
    bench = TwinBench(station, unit, load_lens_catalog(), seed=1)
    clock = _Clock()
    bench.state.clock = clock
    bench.state.mount_lens(unit.lens.id)
    clock.now_ns = 5_000_000_000
    bench.state.update(
        carousel_mm=station.carousel.slots[chart],
        rail_mm=station.rail.focus_mm,
        light_pwm=1000,
        exposure_time_s=exposure_s,
    )
    return bench


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    t = time.perf_counter()
    flat_bench = _bench("heavy-vignetting", "flat", 0.012)
    raw = flat_bench.capture().raw
    print(f"twin flat field {raw.shape[1]}×{raw.shape[0]} rendered in {time.perf_counter() - t:.1f} s")

    rss0 = _rss_mb()
    t = time.perf_counter()
    fit = fit_shading(raw, black_level_dn=64)
    t_fit = time.perf_counter() - t
    t = time.perf_counter()
    blob = shading_opcode_list(fit.maps, width_px=raw.shape[1], height_px=raw.shape[0])
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    corrected = apply_opcode_list(raw.astype(np.float64) - 64, decode_opcode_list(blob))
    t_apply = time.perf_counter() - t
    residual = residual_shading(corrected)
    before = residual_shading(raw.astype(np.float64) - 64)
    print(
        f"shading fit {t_fit:.2f} s, OpcodeList2 encode {1000 * t_enc:.1f} ms ({len(blob)} bytes, "
        f"{fit.maps.map_points_v}×{fit.maps.map_points_h} points), decode+apply {t_apply:.2f} s, "
        f"peak RSS +{_rss_mb() - rss0:.0f} MB"
    )
    print(
        "  residual shading after correction (max |1 − block/centre|, %): "
        + ", ".join(f"{k} {v:.2f}" for k, v in residual.max_abs_pct.items())
        + f"  (before: worst {before.worst_pct:.1f} %)"
    )
    del raw, corrected

    t = time.perf_counter()
    grid_bench = _bench("golden", "dotgrid", 0.012)
    frame = grid_bench.capture()
    print(f"twin dot grid rendered in {time.perf_counter() - t:.1f} s")
    truth = frame.truth
    assert truth is not None
    pitch = load_chart("dotgrid").dots.pitch  # type: ignore[union-attr]
    t = time.perf_counter()
    detection = detect_dots(frame.raw, cfa=True, black_level_dn=64)
    t_det = time.perf_counter() - t
    t = time.perf_counter()
    geo = fit_dot_grid(detection, pitch=pitch)
    t_geo = time.perf_counter() - t
    h, w = frame.raw.shape
    centre = ((w - 1) / 2 + truth.decentre_x_px, (h - 1) / 2 + truth.decentre_y_px)
    r = np.linspace(0, np.hypot(w, h) / 2, 200)
    a, b, c = truth.distortion_abc
    mapping = np.abs(
        ptlens_radius(r, a=geo.ptlens_a, b=geo.ptlens_b, c=geo.ptlens_c, r_norm=geo.r_norm_px)
        - ptlens_radius(r, a=a, b=b, c=c, r_norm=min(w, h) / 2)
    ).max()
    print(
        f"dot grid: detection {t_det:.2f} s ({len(detection.centres_px)} dots), fit {t_geo:.2f} s "
        f"({geo.dots_used} used), rms residual {geo.rms_residual_px:.3f} px"
    )
    print(
        f"  principal point error ({geo.principal_point_px[0] - centre[0]:+.3f}, "
        f"{geo.principal_point_px[1] - centre[1]:+.3f}) px, radial mapping error max {mapping:.3f} px, "
        f"ptlens b {geo.ptlens_b:.5f} (true {b})"
    )


if __name__ == "__main__":
    main()
