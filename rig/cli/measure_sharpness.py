"""``rig measure sfr | chart | focus``: sharpness and focus of image files (pure measurements, no bench).

* ``sfr IMAGE [--roi X Y W H]``: ISO 12233 SFR of one edge; without ``--roi`` the unflagged chart edge nearest
  the frame centre, or the whole image when it holds no chart but one clean edge; else exit 2 asking for --roi.
* ``chart IMAGE``: every edge of the SFR chart with its field position and MTF50, and per-zone medians.
* ``focus RUN_FOLDER``, ``focus FILE...``, ``focus FILE... --rail-mm Z...`` or ``focus --manifest sweep.csv``:
  a through-focus sweep → flange offset, tilt and field curvature. A bench capture carries the bench state it
  was taken at as XMP (:mod:`rig.spec.capture_state`), so a run's captures (or a run folder: the captures its
  record names for ``flange_offset_um``, printed beside the figure the run recorded) need nothing else. Files
  without it take their positions from ``--rail-mm`` (one per file, in order) or a CSV manifest with columns
  ``file,rail_mm`` (paths relative to the manifest); given for bench captures, they must agree with what the
  files record. **Rail positions are mm from the station's focus position** (0 = the chart at the collimator's
  focus), the one convention of ``rig twin capture --rail-mm``, the bench and its captures. The collimator focal
  length and pixel pitch come from the captures' bench state, else from the station file; the lens focal length
  from ``--lens``, else the frames' Exif ``FocalLength``, else the station's reference lens.

Images: PNG, JPEG or TIFF (8/16-bit gray or colour, reduced to BT.709 luminance; 8-bit decoded as sRGB unless
``--encoding`` says otherwise) or a DNG (Bayer, measured on its green sites, or linear). Frequencies are in
cycles per pixel of the file; ``--pixel-um`` adds lp/mm.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rig.errors import ArgumentError, ImageInputError, MeasurementError

GROUP = "measure"

_MTF_STEP_CY_PX = 0.01
FLANGE_MEASUREMENT = "flange_offset_um"
RAIL_AGREEMENT_MM = 0.001
"""A rail position given for a bench capture must match the one it records within 1 µm of rail (0.03 µm of image
focus at 35 mm behind a 200 mm collimator): more is another convention or another file, never rounding."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sfr", help="ISO 12233 slanted-edge SFR of one edge")
    p.add_argument("image", type=Path, help="PNG, JPEG, TIFF or DNG")
    p.add_argument("--roi", type=int, nargs=4, metavar=("X", "Y", "W", "H"), help="edge ROI in pixels")
    _common(p)
    p.add_argument("--npol", type=int, help="edge fit polynomial order 1..5 (default 1; 5 with --method sfrmat5)")
    p.set_defaults(func=cmd_sfr)

    p = subparsers.add_parser("chart", help="find every edge of the SFR chart and measure its SFR")
    p.add_argument("image", type=Path, help="PNG, JPEG, TIFF or DNG")
    _common(p)
    p.set_defaults(func=cmd_chart)

    p = subparsers.add_parser("focus", help="through-focus sweep → flange offset, tilt, field curvature")
    p.add_argument("files", type=Path, nargs="*", help="the sweep's frames (DNG, PNG, JPEG or TIFF), or a run folder")
    p.add_argument(
        "--rail-mm", type=float, nargs="+", help="rail of each file, in order: mm from the station's focus position"
    )
    p.add_argument("--manifest", type=Path, help="CSV with columns file,rail_mm (instead of FILES and --rail-mm)")
    p.add_argument(
        "--measurement",
        default=FLANGE_MEASUREMENT,
        help=f"with a run folder: the recorded figure whose captures form the sweep (default {FLANGE_MEASUREMENT})",
    )
    p.add_argument("--station", type=Path, help="station file (default: the twin station)")
    p.add_argument("--lens", help="lens id from the station's catalog (default: the station's reference lens)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_focus)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pixel-um", type=float, help="pixel pitch in µm, to report lp/mm")
    p.add_argument("--channel", default="G", choices=["G", "R", "Gr", "Gb", "B"], help="CFA channel for a DNG")
    p.add_argument(
        "--method",
        default="adaptive",
        choices=["adaptive", "sfrmat5"],
        help="SFR method: adaptive (default, most accurate) or sfrmat5 (ISO 12233:2023 reference code defaults)",
    )
    p.add_argument(
        "--encoding",
        help="how values relate to light: srgb, linear or gamma=G (default: srgb for 8-bit files, else linear)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _load(args: argparse.Namespace) -> Any:
    """The image with the chosen encoding; warnings (tolerated file problems) go to stderr."""
    from rig.measure.imageio import Encoding, load_image

    encoding = None
    if args.encoding is not None:
        try:
            encoding = Encoding.parse(args.encoding)
        except ValueError as exc:
            raise ArgumentError(f"--encoding: {exc}") from None
    image = load_image(args.image, encoding=encoding)
    for warning in image.warnings:
        sys.stderr.write(f"rig: warning: {warning}\n")
    return image


# --------------------------------------------------------------------------------------------- sfr
def cmd_sfr(args: argparse.Namespace) -> int:
    from rig.measure.sfr import slanted_edge_sfr

    pixel_um = _pixel_um(args.pixel_um)
    if args.npol is not None and not 1 <= args.npol <= 5:
        raise ArgumentError(f"--npol {args.npol}: expected 1..5")
    image = _load(args)
    options = {
        "pixel_pitch_um": pixel_um,
        "npol": args.npol,
        "method": args.method,
        "cfa_pattern": image.cfa_pattern,
        "channel": args.channel,
        "black_level": image.black_level,
        "white_level": image.white_level,
    }
    if args.roi is None:
        (x, y, w, h), result = _best_edge(image, options)
    else:
        height, width = image.data.shape
        x, y, w, h = args.roi
        if w < 8 or h < 8 or x < 0 or y < 0 or x + w > width or y + h > height:
            raise ArgumentError(
                f"--roi {x} {y} {w} {h}: expected a region of at least 8×8 px inside the {width}×{height} image"
            )
        if image.cfa_pattern is not None:
            # keep the crop on the CFA's 2×2 phase so that the pattern still starts with the frame's colour
            x, y = x - x % 2, y - y % 2
        crop = (slice(y, y + h), slice(x, x + w))
        try:
            result = slanted_edge_sfr(
                image.data[crop], clipped=None if image.clipped is None else image.clipped[crop], **options
            )
        except MeasurementError as exc:
            raise ArgumentError(f"--roi {x} {y} {w} {h}: {exc}") from None
    out = {"image": str(args.image), "roi": [x, y, w, h], "encoding": str(image.encoding), "method": args.method}
    out |= sfr_json(result)
    _emit(out, args.json, _sfr_text)
    return 0


def _best_edge(image: Any, options: dict[str, Any]) -> tuple[tuple[int, int, int, int], Any]:
    """The unflagged edge nearest the frame centre: its ROI and SFR, or a one-line refusal.

    Candidates are the chart's edges, or, in a frame with no chart square, the frame itself as one edge ROI (a
    file cropped to one edge). A flagged edge (poor fit, too few rows, clipped, ...) is a poor basis for a single
    figure, so only unflagged ones qualify; with none, the user must point at the edge.
    """
    from rig.measure.edges import measure_chart
    from rig.measure.sfr import slanted_edge_sfr

    height, width = image.data.shape
    try:
        chart = measure_chart(image.data, clipped=image.clipped, **options)
    except MeasurementError:
        chart = None
    if chart is not None:
        good = [e for e in chart.edges if e.sfr is not None and not e.sfr.flags]
        if good:
            best = min(good, key=lambda e: e.roi.field_r)
            return (best.roi.x, best.roi.y, best.roi.w, best.roi.h), best.sfr
    else:
        try:
            whole = slanted_edge_sfr(image.data, clipped=image.clipped, **options)
        except MeasurementError:
            whole = None
        if whole is not None and not whole.flags:
            return (0, 0, width, height), whole
    raise ImageInputError(f"{image.source}: no slanted edge found; pass --roi X Y W H")


def sfr_json(result: Any) -> dict[str, Any]:
    """The JSON form of an :class:`rig.measure.sfr.SfrResult` (MTF as [cy/px, value] pairs every 0.01 cy/px)."""
    grid = np.round(np.arange(0.0, 1.0 + 1e-9, _MTF_STEP_CY_PX), 4)
    return {
        "mtf50_cy_px": _num(result.mtf50_cy_px),
        "mtf50_lp_mm": _num(result.mtf50_lp_mm),
        "mtf_at_nyquist_4": _num(result.mtf_at_nyquist_4),
        "mtf_at_nyquist_2": _num(result.mtf_at_nyquist_2),
        "angle_deg": _num(result.angle_deg),
        "orientation": str(result.orientation),
        "dark_to_light": bool(result.dark_to_light),
        "edge_contrast": _num(result.edge_contrast),
        "snr": _num(result.snr),
        "fit_rms_px": _num(result.fit_rms_px),
        "rows_used": int(result.rows_used),
        "lsf_window_px": _num(result.lsf_window_px),
        "flags": sorted(str(f) for f in result.flags),
        "mtf": [[float(f), round(result.mtf_at(f), 5)] for f in grid],
    }


def _sfr_text(out: dict[str, Any]) -> str:
    lp = f", {out['mtf50_lp_mm']:.1f} lp/mm" if out["mtf50_lp_mm"] is not None else ""
    flags = ", ".join(out["flags"]) or "none"
    return (
        f"{out['image']} ROI {out['roi']}: MTF50 {_fmt(out['mtf50_cy_px'])} cy/px{lp}; "
        f"MTF at Nyquist/4 {_fmt(out['mtf_at_nyquist_4'])}, Nyquist/2 {_fmt(out['mtf_at_nyquist_2'])}; "
        f"{out['orientation']} edge {_fmt(out['angle_deg'], 2)}°, contrast {_fmt(out['edge_contrast'], 2)}, "
        f"SNR {_fmt(out['snr'], 0) if out['snr'] is not None else 'inf'}; flags: {flags}"
    )


# --------------------------------------------------------------------------------------------- chart
def cmd_chart(args: argparse.Namespace) -> int:
    from rig.measure.edges import measure_chart

    pixel_um = _pixel_um(args.pixel_um)
    image = _load(args)
    try:
        result = measure_chart(
            image.data,
            cfa_pattern=image.cfa_pattern,
            channel=args.channel,
            black_level=image.black_level,
            white_level=image.white_level,
            pixel_pitch_um=pixel_um,
            clipped=image.clipped,
            method=args.method,
        )
    except MeasurementError as exc:
        raise ImageInputError(f"{args.image}: {exc}") from None
    edges = []
    for edge in result.edges:
        roi, sfr = edge.roi, edge.sfr
        edges.append(
            {
                "roi": [roi.x, roi.y, roi.w, roi.h],
                "orientation": str(roi.orientation),
                "polarity": str(roi.polarity),
                "field_r": round(roi.field_r, 4),
                "azimuth_deg": round(roi.azimuth_deg, 2),
                "zone": str(roi.zone),
                "mtf50_cy_px": _num(sfr.mtf50_cy_px) if sfr else None,
                "mtf50_lp_mm": _num(sfr.mtf50_lp_mm) if sfr else None,
                "angle_deg": _num(sfr.angle_deg) if sfr else None,
                "flags": sorted(str(f) for f in sfr.flags) if sfr else [],
                "error": edge.error,
            }
        )
    zones = {
        str(z): {
            "edges": s.edges,
            "mtf50_median_cy_px": _num(s.mtf50_median_cy_px),
            "mtf50_min_cy_px": _num(s.mtf50_min_cy_px),
            "mtf50_median_lp_mm": _num(s.mtf50_median_lp_mm),
        }
        for z, s in result.zones.items()
    }
    out = {"image": str(args.image), "encoding": str(image.encoding), "width_px": result.width_px}
    out |= {"height_px": result.height_px}
    out |= {"edges": edges, "zones": zones}
    _emit(out, args.json, _chart_text)
    return 0


def _chart_text(out: dict[str, Any]) -> str:
    lines = [f"{out['image']}: {len(out['edges'])} edges"]
    for name, z in out["zones"].items():
        lines.append(f"  {name:6s} {z['edges']:3d} edges  MTF50 median {_fmt(z['mtf50_median_cy_px'])} cy/px")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- focus
@dataclass(frozen=True)
class _SweepFiles:
    """The sweep's files, the rail positions given for them (None: take the captures' own) and, for a run
    folder, the figure the run recorded from them."""

    files: list[Path]
    given_rail_mm: list[float] | None
    given_as: str
    run_dir: Path | None = None
    recorded: float | None = None


def cmd_focus(args: argparse.Namespace) -> int:
    from rig.config.resolve import load_station_lenses
    from rig.config.station import DEFAULT_STATION, load_station
    from rig.measure.capture_meta import read_capture_meta
    from rig.measure.focus import measure_flange
    from rig.measure.imageio import load_image

    sweep = _sweep_inputs(args)
    metas = [read_capture_meta(f) for f in sweep.files]
    rails = _rails(sweep, [m.bench for m in metas])
    states = [m.bench for m in metas if m.bench is not None]
    station_file = args.station or DEFAULT_STATION
    station = load_station(station_file)
    catalog = load_station_lenses(station, station_file=Path(station_file))
    images = [load_image(f) for f in sweep.files]
    shape = images[0].data.shape
    for f, im in zip(sweep.files, images, strict=True):
        if im.data.shape != shape or im.cfa_pattern != images[0].cfa_pattern:
            raise ImageInputError(f"{f}: {im.data.shape[1]}×{im.data.shape[0]} does not match the sweep's first frame")
    if states:
        collimator_mm = _one(sweep.files, metas, "rig:CollimatorFocalLengthMm", lambda m: m.collimator_focal_length_mm)
        pitch_um = _one(sweep.files, metas, "rig:PixelPitchUm", lambda m: m.pixel_pitch_um)
        if args.station is not None and station.optics.collimator_focal_length_mm != collimator_mm:
            raise ArgumentError(
                f"--station {args.station}: collimator {station.optics.collimator_focal_length_mm:g} mm, but the "
                f"captures record rig:CollimatorFocalLengthMm {collimator_mm:g} mm: expected the station they were "
                "taken on"
            )
    else:
        collimator_mm = station.optics.collimator_focal_length_mm
        # the frame's pitch follows from its size: a binned read-out has larger pixels
        pitch_um = station.sensor.full_width_px * station.sensor.pixel_pitch_um / shape[1]
    focal_length_mm, lens_id = _focal_length(args, station, catalog, station_file, sweep.files, metas)
    first = images[0]
    try:
        result = measure_flange(
            [im.data for im in images],
            rails,
            focal_length_mm=focal_length_mm,
            collimator_focal_length_mm=collimator_mm,
            pixel_pitch_um=pitch_um,
            cfa_pattern=first.cfa_pattern,
            black_level=first.black_level,
            white_level=first.white_level,
        )
    except MeasurementError as exc:
        raise ImageInputError(f"{sweep.files[0].parent}: sweep of {len(sweep.files)} frames: {exc}") from None
    out = {
        "station": states[0].station if states else station.name,
        "lens": lens_id,
        "focal_length_mm": focal_length_mm,
        "collimator_focal_length_mm": collimator_mm,
        "frames": len(sweep.files),
        "rail_convention": "mm from the station's focus position",
        "rails_from": sweep.given_as if sweep.given_rail_mm is not None else "captures (XMP rig:RailFromFocusMm)",
        "rail_mm": rails,
        "pixel_pitch_um": pitch_um,
        "run_dir": None if sweep.run_dir is None else str(sweep.run_dir),
        f"recorded_{args.measurement}": _num(sweep.recorded) if sweep.run_dir is not None else None,
        "flange_offset_um": _num(result.flange_offset_um),
        "flange_offset_sigma_um": _num(result.flange_offset_sigma_um),
        "tilt_x_arcmin": _num(result.tilt_x_arcmin),
        "tilt_x_sigma_arcmin": _num(result.tilt_x_sigma_arcmin),
        "tilt_y_arcmin": _num(result.tilt_y_arcmin),
        "tilt_y_sigma_arcmin": _num(result.tilt_y_sigma_arcmin),
        "field_curvature_um": _num(result.field_curvature_um),
        "fit_rms_um": _num(result.fit_rms_um),
        "edges_used": result.edges_used,
        "edges_total": result.edges_total,
        "edges": [
            {
                "x_um": round(e.x_um, 1),
                "y_um": round(e.y_um, 1),
                "field_r": round(e.roi.field_r, 4),
                "zone": str(e.roi.zone),
                "best_rail_mm": _num(e.best.position) if e.best else None,
                "image_focus_um": _num(e.image_focus_um),
                "image_focus_sigma_um": _num(e.image_focus_sigma_um),
                "peak_mtf50_cy_px": _num(e.best.peak_mtf50_cy_px) if e.best else None,
                "error": e.error,
            }
            for e in result.edges
        ],
    }
    _emit(out, args.json, _focus_text)
    return 0


def _sweep_inputs(args: argparse.Namespace) -> _SweepFiles:
    if args.manifest is not None:
        if args.files or args.rail_mm:
            raise ArgumentError("--manifest: give either a manifest or FILES with --rail-mm, not both")
        files, rails = _read_manifest(args.manifest)
        return _SweepFiles(files, rails, f"--manifest {args.manifest}")
    if not args.files:
        raise ArgumentError(
            "focus: expected a run folder, FILES (with --rail-mm unless they are bench captures), or --manifest CSV"
        )
    if len(args.files) == 1 and args.files[0].is_dir():
        if args.rail_mm is not None:
            raise ArgumentError(f"--rail-mm: a run folder ({args.files[0]}) records its rail positions in its captures")
        return _run_folder(args.files[0], args.measurement)
    if args.rail_mm is None:
        return _SweepFiles(list(args.files), None, "captures")
    if len(args.rail_mm) != len(args.files):
        raise ArgumentError(
            f"--rail-mm: expected one rail position per file ({len(args.files)}), got {len(args.rail_mm)}"
        )
    for value in args.rail_mm:
        if not math.isfinite(value):
            raise ArgumentError(f"--rail-mm {value}: expected a finite number of mm")
    return _SweepFiles(list(args.files), list(args.rail_mm), "--rail-mm")


def _run_folder(run_dir: Path, measurement: str) -> _SweepFiles:
    """The captures a run's record names for ``measurement`` (its last recording with captures), all still kept."""
    from rig.results.record import RunRecord

    record_path = run_dir / "record.json"
    if not record_path.is_file():
        raise ArgumentError(f"{run_dir}: no record.json: expected a run folder (reports/RUN_ID)")
    record = RunRecord.load(record_path)
    entries = [m for m in record.measurements if m.name == measurement and m.captures]
    if not entries:
        raise ArgumentError(
            f"{record_path}: no {measurement} measurement with captures: expected a run that measured it"
        )
    entry = entries[-1]
    missing = [c for c in entry.captures if not (run_dir / c).is_file()]
    if missing:
        dropped = [c for c in missing if c in record.captures_dropped]
        why = (
            f"dropped by the run's capture retention ({record.capture_retention}); keep them with --keep-captures all"
            if dropped
            else "not in the folder"
        )
        raise ArgumentError(
            f"{run_dir}: {len(missing)} of the {len(entry.captures)} captures of {measurement} are missing "
            f"({missing[0]} …): {why}"
        )
    return _SweepFiles([run_dir / c for c in entry.captures], None, "captures", run_dir, entry.value)


def _rails(sweep: _SweepFiles, states: list[Any]) -> list[float]:
    """One rail position per file (mm from the focus position): the given one, checked against what a bench
    capture records, else the recorded one."""
    rails = []
    for i, (path, state) in enumerate(zip(sweep.files, states, strict=True)):
        given = None if sweep.given_rail_mm is None else sweep.given_rail_mm[i]
        if state is None:
            if given is None:
                raise ArgumentError(
                    f"{path}: carries no bench state (XMP rig:RailFromFocusMm): give --rail-mm for every file "
                    "(mm from the station's focus position) or --manifest"
                )
            rails.append(given)
            continue
        recorded = state.rail_from_focus_mm
        if given is not None and abs(given - recorded) > RAIL_AGREEMENT_MM:
            raise ArgumentError(
                f"{path}: {sweep.given_as} gives rail {given:g} mm, but the capture records rig:RailFromFocusMm "
                f"{recorded:g} mm (absolute {state.rail_absolute_mm:g} mm on GRBL Z): rail positions are mm from "
                "the station's focus position"
            )
        rails.append(recorded)
    return rails


def _one(files: list[Path], metas: list[Any], what: str, value: Any) -> float:
    """The one value of a bench-state field every capture of the sweep shares (one bench, one read-out)."""
    found = [(f, value(m.bench)) for f, m in zip(files, metas, strict=True) if m.bench is not None]
    for f, v in found[1:]:
        if v != found[0][1]:
            raise ImageInputError(f"{f}: {what} {v:g}, but {found[0][0]} has {found[0][1]:g}: expected one bench")
    return float(found[0][1])


def _focal_length(
    args: argparse.Namespace, station: Any, catalog: Any, station_file: Any, files: list[Path], metas: list[Any]
) -> tuple[float, str | None]:
    """(focal length in mm, lens id or None): ``--lens``, else the frames' Exif FocalLength, else the station's
    reference lens."""
    if args.lens:
        lens = catalog.get(args.lens, source="--lens", field="lens id")
        return float(lens.focal_length_mm), lens.id
    exif = [(f, m.focal_length_mm) for f, m in zip(files, metas, strict=True) if m.focal_length_mm is not None]
    if exif:
        for f, v in exif[1:]:
            if abs(v - exif[0][1]) > 1e-6:
                raise ImageInputError(
                    f"{f}: Exif FocalLength {v:g} mm, but {exif[0][0]} has {exif[0][1]:g} mm: expected one lens"
                )
        return float(exif[0][1]), None
    lens = catalog.get(station.reference_lens, source=str(station_file), field="lens id")
    return float(lens.focal_length_mm), lens.id


def _read_manifest(path: Path) -> tuple[list[Path], list[float]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArgumentError(f"--manifest {path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArgumentError(f"--manifest {path}: byte {exc.start}: expected UTF-8 text (a CSV manifest)") from None
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or not {"file", "rail_mm"} <= set(reader.fieldnames):
        raise ArgumentError(f"{path}: header {reader.fieldnames}: expected columns file,rail_mm")
    files, rails = [], []
    for line, row in enumerate(reader, start=2):
        try:
            rail = float(row["rail_mm"])
        except (TypeError, ValueError):
            raise ArgumentError(f"{path}:{line}: rail_mm = {row['rail_mm']!r}: expected a number of mm") from None
        if not math.isfinite(rail):
            raise ArgumentError(f"{path}:{line}: rail_mm = {row['rail_mm']!r}: expected a finite number of mm")
        files.append(path.parent / (row["file"] or "").strip())
        rails.append(rail)
    if not files:
        raise ArgumentError(f"{path}: no rows: expected one row per frame")
    return files, rails


def _focus_text(out: dict[str, Any]) -> str:
    recorded = [(k.removeprefix("recorded_"), v) for k, v in out.items() if k.startswith("recorded_") and v is not None]
    run = "".join(f"; the run recorded {name} {_fmt(value, 2)}" for name, value in recorded)
    return (
        f"{out['frames']} frames, {out['edges_used']}/{out['edges_total']} edges: "
        f"flange offset {_fmt(out['flange_offset_um'], 2)} ± {_fmt(out['flange_offset_sigma_um'], 2)} µm, "
        f"tilt x {_fmt(out['tilt_x_arcmin'], 2)}′, tilt y {_fmt(out['tilt_y_arcmin'], 2)}′, "
        f"field curvature {_fmt(out['field_curvature_um'], 2)} µm, fit rms {_fmt(out['fit_rms_um'], 2)} µm{run}"
    )


# --------------------------------------------------------------------------------------------- helpers
def _pixel_um(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ArgumentError(f"--pixel-um {value:g}: expected a pitch in µm > 0")
    return value


def _num(value: float | None) -> float | None:
    """JSON has no NaN: an unmeasured number is null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _emit(out: dict[str, Any], as_json: bool, text: Any) -> None:
    from rig.cli.output import json_text

    sys.stdout.write((json_text(out) if as_json else text(out)) + "\n")
