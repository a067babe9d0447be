"""``rig twin capture``: render one frame of a twin unit on a station and write it as a DNG."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rig.bench.capture_state import bench_state, stamp
from rig.config import load_lens_catalog, load_station, load_unit
from rig.config.loader import resolve_path
from rig.config.station import DEFAULT_STATION
from rig.config.unit import UNITS_DIR
from rig.errors import ArgumentError, ConfigError
from rig.twin.world import TwinBench

GROUP = "twin"

_SETTLED_NS = 10_000_000_000  # capture 10 s (simulated) after mounting: the sensor has switched, ringing is gone


def _unit_path(value: str) -> Path:
    path = Path(value)
    if path.suffix == ".toml" or path.exists():
        return path
    named = UNITS_DIR / f"{value}.toml"
    if not named.is_file():
        known = ", ".join(sorted(p.stem for p in UNITS_DIR.glob("*.toml")))
        raise ConfigError("--unit", "", value, f"a unit file or one of {known}")
    return named


MAX_EXPOSURE_MS = 60_000.0
"""Longest exposure the twin phone takes (60 s); longer would overflow the renderer's photon counts."""
ISO_RANGE = (25, 409_600)
"""ISO settings a phone offers (whole numbers)."""
MAX_SEED = 2**32 - 1
CAPTURE_TAG = "twin-capture"
"""The ``rig:CaptureTag`` of a frame written by this command."""


def _within(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> float:
    ok = math.isfinite(value) and (low < value if low_open else low <= value) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ArgumentError(f"{name} {value:g}: expected a number within {bracket}{low:g}, {high:g}]")
    return value


def _iso(value: float) -> int:
    _within("--iso", value, *ISO_RANGE)
    if not float(value).is_integer():
        raise ArgumentError(f"--iso {value:g}: expected a whole ISO setting")
    return int(value)


def capture(args: argparse.Namespace, *, clock: Callable[[], int] | None = None) -> int:
    """Render the frame ``args`` describe and write it as a DNG dated now.

    ``clock`` (ns since the Unix epoch, default the twin phone's real-time clock: the wall clock) is when the
    frame is taken; the lens went on 10 s of simulated time before, so the sensor has switched and the mount has
    settled. The DNG's DateTimeOriginal is that capture time, never the simulation's origin.
    """
    station = load_station(args.station)
    unit = load_unit(_unit_path(args.unit))
    lenses = load_lens_catalog(resolve_path(station.lenses))
    lenses.get(unit.lens.id, source=str(args.unit), field="lens.id")
    if args.chart not in station.carousel.slots:
        raise ArgumentError(
            f"--chart {args.chart!r}: expected one of the station's slots {sorted(station.carousel.slots)}"
        )
    exposure_s = _within("--exposure-ms", args.exposure_ms, 0.0, MAX_EXPOSURE_MS, low_open=True) / 1000.0
    iso = _iso(args.iso)
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise ArgumentError(f"--seed {args.seed}: expected an integer within [0, {MAX_SEED}]")
    if not (math.isfinite(args.light) and 0.0 <= args.light <= 1.0):
        raise ArgumentError(f"--light {args.light:g}: expected a fraction of full brightness in [0, 1]")
    rail = station.rail.focus_mm + args.rail_mm
    if not (math.isfinite(rail) and station.rail.min_mm <= rail <= station.rail.max_mm):
        low, high = station.rail.min_mm - station.rail.focus_mm, station.rail.max_mm - station.rail.focus_mm
        raise ArgumentError(f"--rail-mm {args.rail_mm:g}: expected within [{low:g}, {high:g}] of the focus position")
    if not (math.isfinite(args.pitch_deg) and station.fixture.min_deg <= args.pitch_deg <= station.fixture.max_deg):
        low, high = station.fixture.min_deg, station.fixture.max_deg
        raise ArgumentError(f"--pitch-deg {args.pitch_deg:g}: expected within [{low:g}, {high:g}]")

    bench = TwinBench(station, unit, lenses, seed=args.seed)
    taken_ns = (clock or bench.state.clock)()
    now_ns = [taken_ns - _SETTLED_NS]
    bench.state.clock = lambda: now_ns[0]
    bench.state.mount_lens(unit.lens.id)
    now_ns[0] = taken_ns
    bench.state.update(
        rail_mm=rail,
        carousel_mm=station.carousel.slots[args.chart],
        pitch_deg=args.pitch_deg,
        light_pwm=args.light * station.light.pwm_max,
        exposure_time_s=exposure_s,
        iso=iso,
    )
    frame = bench.capture()
    state = bench_state(
        station,
        tag=CAPTURE_TAG,
        chart=args.chart,
        rail_mm=args.rail_mm,
        pitch_deg=args.pitch_deg,
        light_level=args.light,
        exposure_time_s=exposure_s,
        iso=iso,
    )
    out = Path(args.out)
    try:
        out.write_bytes(stamp(frame.dng, state))  # the bench state as XMP, as the bench keeps its captures
    except OSError as exc:
        raise ArgumentError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    truth = frame.truth
    assert truth is not None
    defocus = float(truth.defocus_um(0.0, 0.0, rail_mm=rail))
    height, width = frame.raw.shape
    print(
        f"{out}: {width}×{height} {station.sensor.cfa_pattern}, unit {unit.serial}, chart {frame.chart}, "
        f"lens {truth.lens_id} f/{truth.f_number:g}, mean {float(np.mean(frame.raw)):.1f} DN, "
        f"defocus at centre {defocus:+.2f} µm"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("capture", help="render one twin frame to a DNG")
    parser.add_argument("--unit", required=True, help="twin unit file, or a name in fixtures/units/")
    parser.add_argument("--chart", default="sfr", help="chart slot on the carousel (default sfr)")
    parser.add_argument("--rail-mm", type=float, default=0.0, help="chart rail, mm from the station's focus position")
    parser.add_argument("--pitch-deg", type=float, default=0.0, help="fixture pitch (degrees, + = lens down)")
    parser.add_argument("--light", type=float, default=0.8, help="light panel level, 0..1")
    parser.add_argument("--exposure-ms", type=float, default=10.0, help="exposure time (ms)")
    parser.add_argument("--iso", type=float, default=100)
    parser.add_argument("--station", default=str(DEFAULT_STATION), help="station file (default: the twin station)")
    parser.add_argument("--seed", type=int, default=None, help="noise seed (default: the station's)")
    parser.add_argument("--out", required=True, help="output DNG path")
    parser.set_defaults(func=capture)
