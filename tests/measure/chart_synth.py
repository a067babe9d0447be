"""Third-party-style SFR charts drawn here from polygons (test inputs with exact ground truth).

* :func:`iso_esfr_layout`: after the ISO 12233:2023 e-SFR chart's layout: a large central slanted square and rings
  of smaller squares, all rotated ≈ 5°, at 4:1 contrast on a light ground, with round fiducial marks and a
  gray-scale row of low-contrast patches that are not slanted targets.
* :func:`mtf_mapper_layout`: after MTF Mapper's generated test charts: a grid of black squares and 2:1 bars on
  white, each rotated a few degrees by its own amount.

Polygons are drawn on a 4× supersampled canvas (the pixel aperture), mapped through a homography (a chart seen
in perspective), blurred by a Gaussian and given Gaussian noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Chart:
    image: np.ndarray
    targets: list[np.ndarray]  # corners (4 × 2, frame px) of every slanted target
    others: list[np.ndarray]  # outlines of everything else drawn (fiducials, patches)


def _rect(cx: float, cy: float, w: float, h: float, angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    corners = 0.5 * np.array([[-w, -h], [w, -h], [w, h], [-w, h]], dtype=float)
    return corners @ rot.T + [cx, cy]


def _disc(cx: float, cy: float, r: float) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def iso_esfr_layout(shape: tuple[int, int]) -> tuple[list[np.ndarray], list[tuple[np.ndarray, float]]]:
    """Targets (dark at 0.25 of the ground) and other marks (polygon, level) in frame px."""
    rows, cols = shape
    u = min(rows, cols)
    targets = [_rect(cols / 2, rows / 2, 0.16 * u, 0.16 * u, 5.0)]
    for ring, (radius, count, size) in enumerate(((0.25, 8, 0.085), (0.38, 12, 0.065))):
        for k in range(count):
            phi = 2 * math.pi * (k + 0.5 * ring) / count
            cx = cols / 2 + radius * u * 1.25 * math.cos(phi)
            cy = rows / 2 + radius * u * math.sin(phi)
            targets.append(_rect(cx, cy, size * u, size * u, 5.0 if k % 2 else -5.0))
    others = [(_disc(cols * f, rows * g, 0.012 * u), 0.25) for f, g in ((0.06, 0.08), (0.94, 0.08), (0.06, 0.92))]
    for k in range(6):  # a gray row: patches lighter than half-way to the targets, not slanted targets
        others.append((_rect(cols * (0.3 + 0.08 * k), rows * 0.965, 0.05 * u, 0.035 * u, 0.0), 0.75 + 0.03 * k))
    return targets, others


def mtf_mapper_layout(shape: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """A 5 × 4 grid of black squares and bars on white, each turned by 3–8° either way."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    pitch_x, pitch_y = cols / 5.6, rows / 4.6
    targets = []
    for i in range(4):
        for j in range(5):
            cx, cy = (j + 0.8) * pitch_x, (i + 0.8) * pitch_y
            side = 0.55 * min(pitch_x, pitch_y)
            w, h = (side, side) if (i + j) % 3 else (side * 1.2, side * 0.6)
            angle = float(rng.uniform(3.0, 8.0) * rng.choice([-1, 1]))
            targets.append(_rect(cx, cy, w, h, angle))
    return targets


def homography(shape: tuple[int, int], tilt: float) -> np.ndarray:
    """A perspective that shrinks the top of the frame by ``tilt`` (fraction) about the centre."""
    rows, cols = shape
    src = np.float32([[0, 0], [cols, 0], [cols, rows], [0, rows]])
    d = tilt * cols / 2
    dst = np.float32([[d, 0.03 * rows], [cols - d, 0.03 * rows], [cols, rows], [0, rows]])
    return cv2.getPerspectiveTransform(src, dst)


def apply(h: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(polygon.reshape(-1, 1, 2).astype(np.float64), h).reshape(-1, 2)


def render(
    shape: tuple[int, int],
    targets: list[np.ndarray],
    *,
    others: list[tuple[np.ndarray, float]] = (),
    target_level: float = 0.25,
    ground: float = 800.0,
    blur_sigma_px: float = 0.9,
    noise_sigma: float = 0.0,
    warp: np.ndarray | None = None,
    seed: int = 1,
    supersample: int = 4,
) -> Chart:
    """The chart as a float image; levels are fractions of ``ground`` (targets at ``target_level``)."""
    rows, cols = shape
    s = supersample
    level = np.ones((rows * s, cols * s), np.float32)
    warp = np.eye(3) if warp is None else warp
    placed_targets = [apply(warp, t) for t in targets]
    placed_others = [(apply(warp, o), v) for o, v in others]
    for polygon, value in [(t, target_level) for t in placed_targets] + placed_others:
        pts = np.round(((polygon + 0.5) * s - 0.5) * 16).astype(np.int32)
        cv2.fillPoly(level, [pts], float(value), lineType=cv2.LINE_8, shift=4)
    image = cv2.resize(level, (cols, rows), interpolation=cv2.INTER_AREA) * ground
    if blur_sigma_px > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur_sigma_px)
    if noise_sigma > 0:
        image = image + np.random.default_rng(seed).normal(0.0, noise_sigma, image.shape).astype(np.float32)
    return Chart(image.astype(np.float64), placed_targets, [o for o, _ in placed_others])


def burns_layout(shape: tuple[int, int]) -> tuple[list[np.ndarray], list[tuple[np.ndarray, float]]]:
    """After P. Burns' SFR/OECF test target: one large square turned 5° and a row of OECF gray patches."""
    rows, cols = shape
    u = min(rows, cols)
    targets = [_rect(0.42 * cols, 0.45 * rows, 0.5 * u, 0.5 * u, 5.0)]
    others = [
        (_rect(0.85 * cols, (0.12 + 0.13 * k) * rows, 0.09 * u, 0.09 * u, 0.0), 0.95 - 0.04 * k) for k in range(7)
    ]
    return targets, others
