"""Cost of the pupil-wavefront PSF in a twin capture: binned 2048×1536 and full 8192×6144, with and without a wavefront.

Each figure is printed with its process CPU time and the 1-minute load average beside the wall time (the machine is
shared; judge by CPU time). Three cases per readout, the Summilux-M 35 on the golden unit, and the steep case:

* ``aberration-free``: the lens with its wavefront zeroed (the analytic Airy ⊗ disc kernel, as before wavefronts);
* ``wavefront, new focus``: a through-focus sweep's frame, the rail moved since the last capture and the pupil-OTF
  and edge-spread caches emptied (every pupil OTF of the frame is computed, as at any new defocus);
* ``wavefront, same focus``: the same bench state captured again (pupil OTFs and edge spreads from the caches);
* ``noctilux W040 3.1``: the Noctilux-M 50 sample with strong focus shift (unit ``cert-focus-shift``, its own
  W040 = 3.1 waves wide open at f/0.95, the steepest wavefront of the fixtures), new and same focus.

With ``--full`` the same for the full read-out (one frame each, not a median), then the issue's full-size figure
for one lens: the Summilux-M 35 warmed, at a new focus, render + DNG written to a file.

Every frame is rendered on this thread (the station's render workers off): the process CPU time is the render's.
Targets (not asserted, the issue's): binned capture ≤ 0.3 s, full-size render + DNG ≤ 3 s on 2 cores.
Run: ``.venv/bin/python benchmarks/twin_wavefront.py [--full]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rig.config import LensCatalog, load_lens_catalog, load_station, load_unit
from rig.config.lenses import AxialColour, Wavefront
from rig.config.loader import FIXTURES_DIR
from rig.twin.optics import _spread as edge_spread_cache
from rig.twin.wavefront import clear_caches
from rig.twin.world import TwinBench

LENS_ID = "summilux-m-35-f1.4-asph-2022"
STEEP_UNIT, STEEP_LENS_ID = "cert-focus-shift", "noctilux-m-50-f0.95-asph"
"""The steepest wavefront of the fixtures: a Noctilux-M 50 sample whose own W040 is 3.1 waves at f/0.95."""

REPRESENTATIVE = Wavefront(
    spherical_w040=1.2, coma_w131=0.3, astigmatism_w222=0.8, axial_colour=AxialColour(red_um=2.0, blue_um=-3.0)
)
"""The wavefront timed when the catalogue's lens has none (its slope sets the pupil sampling, hence the cost)."""


def _catalog(wavefront: Wavefront | None) -> LensCatalog:
    """The fixture catalogue with the lens's wavefront replaced (None: the catalogue's, or :data:`REPRESENTATIVE`)."""
    catalog = load_lens_catalog()
    if wavefront is None:
        own = catalog.get(LENS_ID).wavefront
        if not own.is_aberration_free:
            return catalog
        wavefront = REPRESENTATIVE
    lenses = [spec.model_copy(update={"wavefront": wavefront}) if spec.id == LENS_ID else spec for spec in catalog.lens]
    # a new model, not model_copy: the catalogue's id index is a cached property and would survive a copy
    return LensCatalog(native=catalog.native, lens=lenses)


def _bench(binning: int, catalog: LensCatalog, *, unit_name: str = "golden", lens_id: str = LENS_ID) -> TwinBench:
    station = load_station()
    # rendered on this thread (no render workers): the process CPU time is then the render's, and the cache
    # clearing of a new focus empties the caches the render reads (a worker's are its own)
    twin = station.twin.model_copy(update={"render_processes": 0}) if station.twin is not None else None
    station = station.model_copy(
        update={"sensor": station.sensor.model_copy(update={"binning": binning}), "twin": twin}
    )
    unit = load_unit(FIXTURES_DIR / "units" / f"{unit_name}.toml")
    bench = TwinBench(station, unit, catalog, seed=1)
    clock = [5_000_000_000]
    bench.state.clock = lambda: clock[0]
    bench.state.mount_lens(lens_id)
    clock[0] += 5_000_000_000
    bench.state.update(rail_mm=station.rail.focus_mm, carousel_mm=station.carousel.slots["sfr"], light_pwm=800)
    return bench


def _capture(bench: TwinBench, dng_path: Path | None = None) -> tuple[float, float]:
    """(wall s, process CPU s) of one capture including the DNG's bytes, and its file at ``dng_path`` if given."""
    wall, cpu = time.perf_counter(), time.process_time()
    frame = bench.capture()
    if dng_path is not None:
        dng_path.write_bytes(frame.dng)
    return time.perf_counter() - wall, time.process_time() - cpu


def _report(label: str, wall_s: float, cpu_s: float) -> None:
    load = os.getloadavg()[0]
    print(f"{label:64s} wall {wall_s:6.3f} s  cpu {cpu_s:6.3f} s  load(1 min) {load:5.2f}")


def _run(binning: int, name: str, frames: int) -> None:
    zero = _bench(binning, _catalog(Wavefront()))
    _capture(zero)  # charts, caches of the analytic kernel
    _report(f"{name} aberration-free", *_capture(zero))
    _sweep(_bench(binning, _catalog(None)), name, frames)
    steep = _bench(binning, load_lens_catalog(), unit_name=STEEP_UNIT, lens_id=STEEP_LENS_ID)
    _sweep(steep, f"{name} noctilux W040 3.1", frames)


def _sweep(bench: TwinBench, name: str, frames: int) -> None:
    """Time ``frames`` captures each at a new rail position (caches emptied), then one at the same position."""
    station_rail = load_station().rail.focus_mm
    walls, cpus = [], []
    for i in range(frames):
        bench.state.update(rail_mm=station_rail + 0.01 * (i + 1))
        clear_caches()
        edge_spread_cache.cache_clear()
        wall, cpu = _capture(bench)
        walls.append(wall)
        cpus.append(cpu)
    _report(f"{name} wavefront, new focus (median of {frames})", sorted(walls)[frames // 2], sorted(cpus)[frames // 2])
    _report(f"{name} wavefront, same focus", *_capture(bench))


def _full_dng() -> None:
    """The issue's full-size figure for one lens: the Summilux-M 35's wavefront at a new focus, render + DNG file.

    Warmed first (charts, shading gains, pupil grids: what any frame after the first has), then the rail moved and
    the pupil-OTF and edge-spread caches emptied; the DNG is written to a file (page cache, no fsync: the disk's
    own speed is not the twin's).
    """
    bench = _bench(1, _catalog(None))
    _capture(bench)
    bench.state.update(rail_mm=load_station().rail.focus_mm + 0.05)
    clear_caches()
    edge_spread_cache.cache_clear()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frame.dng"
        wall, cpu = _capture(bench, path)
        size_mb = path.stat().st_size / 1e6
    _report(f"full 8192x6144 sfr render + {size_mb:.0f} MB DNG file, new focus", wall, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also the full 8192x6144 readout")
    args = parser.parse_args()
    _run(4, "binned 2048x1536 sfr", frames=5)
    if args.full:
        _run(1, "full 8192x6144 sfr", frames=1)
        _full_dng()


if __name__ == "__main__":
    main()
