"""``rig measure uniformity IMAGE`` and ``rig measure shift A B``: flat-field shading and frame registration."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

GROUP = "measure"

FULL_WIDTH_PX = 8192
FULL_PITCH_UM = 1.6


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("uniformity", help="shading of a flat field: falloff, optical centre, grid")
    p.add_argument("image", type=Path, help="flat field: DNG (Bayer or linear), TIFF, PNG or JPEG, gray or colour")
    p.add_argument("--pixel-pitch-um", type=float, help="read-out pixel pitch (default: 1.6 µm × 8192 / width)")
    p.add_argument("--grid", type=int, default=11, help="relative-illumination grid per side (ISO 17957: 11)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=uniformity)

    s = subparsers.add_parser("shift", help="sub-pixel translation and rotation of frame B against frame A")
    s.add_argument("a", type=Path, help="reference frame (DNG, TIFF, PNG or JPEG)")
    s.add_argument("b", type=Path, help="moving frame of the same size")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=shift)


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        from rig.cli.output import json_text

        sys.stdout.write(json_text(result, indent=2) + "\n")
        return
    for key, value in result.items():
        if key != "relative_illumination":
            sys.stdout.write(f"{key:28s} {value}\n")


def uniformity(args: argparse.Namespace) -> int:
    """Shading of a flat field. A Bayer DNG is measured per CFA channel; any other image (gray, colour reduced to
    luminance, 8-bit decoded as sRGB) on its one plane. A frame that is not a flat field is refused (exit 2)."""
    import math

    from rig.errors import ArgumentError, ImageInputError, MeasurementError
    from rig.measure.imageio import load_image
    from rig.measure.uniformity import check_flat_field, measure_plane_uniformity, measure_uniformity

    if args.grid < 3 or args.grid % 2 == 0:
        raise ArgumentError(f"--grid {args.grid}: expected an odd number ≥ 3 (the centre block is the reference)")
    image = load_image(args.image)
    pitch = args.pixel_pitch_um
    if pitch is None:
        pitch = FULL_PITCH_UM * FULL_WIDTH_PX / image.data.shape[1]
    elif not (math.isfinite(pitch) and pitch > 0):
        raise ArgumentError(f"--pixel-pitch-um {pitch}: expected a finite pitch > 0 µm")
    try:
        if image.is_raw:
            result = measure_uniformity(
                image.data,
                black_level=round(image.black_level),
                white_level=round(image.white_level or 0),
                pixel_pitch_um=pitch,
                cfa_pattern=image.cfa_pattern or "RGGB",
                grid=(args.grid, args.grid),
            )
        else:
            white = image.white_level if image.white_level is not None else float(image.data.max())
            result = measure_plane_uniformity(
                image.data,
                black_level=image.black_level,
                white_level=white,
                pixel_pitch_um=pitch,
                grid=(args.grid, args.grid),
            )
        check_flat_field(result)
    except MeasurementError as exc:
        raise ImageInputError(f"{args.image}: {exc}") from None
    shading = result.colour_shading_pct
    _print(
        {
            "image": str(args.image),
            "encoding": str(image.encoding),
            "channels": sorted(result.relative_illumination),
            "corner_falloff_stops": {f"{k:g}": round(v, 4) for k, v in result.corner_falloff_stops.items()},
            "optical_center_px": [round(result.optical_center_px[0], 2), round(result.optical_center_px[1], 2)],
            "decentre_um": [round(result.decentre_x_um, 2), round(result.decentre_y_um, 2)],
            "colour_shading_pct": round(shading, 3) if math.isfinite(shading) else None,
            "centre_signal_dn": round(result.centre_signal_dn, 2),
            "pixel_pitch_um": pitch,
            "fit_rms_pct": round(result.fit_rms_pct, 3),
            "relative_illumination": {
                name: [[round(float(v), 4) for v in row] for row in grid]
                for name, grid in result.relative_illumination.items()
            },
        },
        args.json,
    )
    return 0


def _frame(path: Path) -> tuple[Any, float]:
    """Grey frame to register and the raw pixels per frame pixel (2 for a Bayer mosaic measured on its quads)."""
    from rig.measure.imageio import bayer_mean, load_image

    image = load_image(path)
    if image.is_raw:
        # a mosaic's fixed colour pattern would pull the correlation to zero shift: register quad means
        return bayer_mean(image.data), 2.0
    return image.data, 1.0


def shift(args: argparse.Namespace) -> int:
    """Rigid shift of B against A, with its confidence. The frames are the user's input: a pair that cannot be
    registered (no texture, too small, different sizes) or does not match rigidly is refused (exit 2)."""
    from rig.errors import ImageInputError, MeasurementError
    from rig.measure.registration import check_registration
    from rig.measure.registration import register as register_frames

    a, scale = _frame(args.a)
    b, _ = _frame(args.b)
    try:
        result = register_frames(a, b)
        check_registration(result)
    except MeasurementError as exc:  # RegistrationError included
        raise ImageInputError(f"{args.a} → {args.b}: {exc}") from None
    _print(
        {
            "a": str(args.a),
            "b": str(args.b),
            "dx_px": round(result.dx_px * scale, 4),
            "dy_px": round(result.dy_px * scale, 4),
            "rotation_deg": round(result.rotation_deg, 5),
            "residual_rms_px": round(result.residual_rms_px * scale, 4),
            "scale": round(result.scale, 6),
            "log_polar_scale": round(result.log_polar_scale, 5) if math.isfinite(result.log_polar_scale) else None,
            "peak_correlation": round(result.peak_correlation, 4),
            "patches_used": result.patches_used,
            "patches_matched": result.patches_matched,
        },
        args.json,
    )
    return 0
