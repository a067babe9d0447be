"""Slanted edges synthesised from a known law, with their MTF in closed form (test ground truth).

An edge at angle θ off vertical through ``centre``: signed distance of a point to the edge along its normal
``d = (x − cx)·cos θ − (y − cy)·sin θ``, the light side at d > 0. A pixel integrates the blurred edge over its
square aperture. Over the pixel, d varies as ``d0 + u·cos θ − v·sin θ`` with u, v uniform on [−½, ½], so the pixel
value is the edge spread function (ESF) averaged over the sum of two uniform variables of widths ``|cos θ|`` and
``|sin θ|``. The pre-sampling MTF along the edge normal is therefore

    MTF(f) = MTF_psf(f) · |sinc(f·cos θ)| · |sinc(f·sin θ)|      (f in cycles per pixel, sinc(x) = sin πx / πx)

which is what an unbiased slanted-edge measurement must return.

Gaussian PSF: ESF Φ(d/σ), MTF exp(−2π²σ²f²); the pixel average is exact in closed form through the second
antiderivative of Φ. Uniform defocus disc of diameter D: ESF = the disc's area left of d, MTF |2·J1(πDf)/(πDf)|;
the pixel average is a convolution on a 1/2000-px grid (error < 1e-6 of the step).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import special


def pixel_mtf(freqs_cy_px: np.ndarray, angle_deg: float) -> np.ndarray:
    """MTF of the square pixel aperture along the normal of an edge at ``angle_deg`` off vertical."""
    t = math.radians(angle_deg)
    return np.abs(np.sinc(freqs_cy_px * math.cos(t)) * np.sinc(freqs_cy_px * math.sin(t)))


def gaussian_mtf(freqs_cy_px: np.ndarray, sigma_px: float) -> np.ndarray:
    return np.exp(-2.0 * math.pi**2 * sigma_px**2 * np.asarray(freqs_cy_px) ** 2)


def disc_mtf(freqs_cy_px: np.ndarray, diameter_px: float) -> np.ndarray:
    x = math.pi * diameter_px * np.asarray(freqs_cy_px, dtype=np.float64)
    safe = np.where(x == 0, 1.0, x)
    return np.where(x == 0, 1.0, np.abs(2.0 * special.j1(safe) / safe))


F = np.linspace(0.0, 1.0, 20001)
"""A dense frequency grid (cycles/pixel) for analytic curves."""


def mtf50(freqs: np.ndarray, mtf: np.ndarray) -> float:
    """First crossing of 0.5 on a dense analytic curve (linear between samples)."""
    k = int(np.nonzero(mtf <= 0.5)[0][0])
    return float(freqs[k - 1] + (mtf[k - 1] - 0.5) * (freqs[k] - freqs[k - 1]) / (mtf[k - 1] - mtf[k]))


def _distance(shape: tuple[int, int], angle_deg: float, centre: tuple[float, float] | None) -> np.ndarray:
    rows, cols = shape
    cx, cy = centre if centre is not None else ((cols - 1) / 2.0, (rows - 1) / 2.0)
    t = math.radians(angle_deg)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    return (x - cx) * math.cos(t) - (y - cy) * math.sin(t)


def _scale(unit_edge: np.ndarray, lo: float, hi: float, dark_to_light: bool) -> np.ndarray:
    e = unit_edge if dark_to_light else 1.0 - unit_edge
    return lo + (hi - lo) * e


def gaussian_edge(
    shape: tuple[int, int],
    *,
    angle_deg: float,
    sigma_px: float,
    lo: float = 200.0,
    hi: float = 800.0,
    dark_to_light: bool = True,
    centre: tuple[float, float] | None = None,
) -> np.ndarray:
    """A near-vertical edge blurred by a Gaussian PSF of σ ``sigma_px``, integrated exactly over each pixel."""
    d0 = _distance(shape, angle_deg, centre)
    t = math.radians(angle_deg)
    a, b = abs(math.cos(t)), abs(math.sin(t))

    def g2(z: np.ndarray) -> np.ndarray:  # second antiderivative of Φ
        return 0.5 * ((z * z + 1.0) * special.ndtr(z) + z * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi))

    s = sigma_px
    total = (g2((d0 + a / 2 + b / 2) / s) - g2((d0 + a / 2 - b / 2) / s) - g2((d0 - a / 2 + b / 2) / s)) + g2(
        (d0 - a / 2 - b / 2) / s
    )
    return _scale(total * s * s / (a * b), lo, hi, dark_to_light)


def disc_esf(d: np.ndarray, diameter_px: float) -> np.ndarray:
    """Fraction of a uniform disc of diameter D lying at normal distance < d from its centre's edge line."""
    u = np.clip(np.asarray(d) / (diameter_px / 2.0), -1.0, 1.0)
    return 0.5 + (u * np.sqrt(1.0 - u * u) + np.arcsin(u)) / math.pi


def esf_edge(
    shape: tuple[int, int],
    *,
    angle_deg: float,
    esf: Callable[[np.ndarray], np.ndarray],
    support_px: float,
    lo: float = 200.0,
    hi: float = 800.0,
    dark_to_light: bool = True,
    centre: tuple[float, float] | None = None,
    step_px: float = 1.0 / 2000.0,
) -> np.ndarray:
    """An edge with any ESF (0 → 1 over ±``support_px``), averaged over each pixel's square aperture."""
    d0 = _distance(shape, angle_deg, centre)
    t = math.radians(angle_deg)
    a, b = abs(math.cos(t)), abs(math.sin(t))
    # trapezoidal density of u·cos θ − v·sin θ: two boxes convolved, on the fine grid
    box_a = np.ones(max(1, round(a / step_px)))
    box_b = np.ones(max(1, round(b / step_px)))
    kernel = np.convolve(box_a, box_b)
    kernel /= kernel.sum()
    half = (len(kernel) - 1) / 2.0
    reach = support_px + (a + b) / 2 + 1.0
    grid = np.arange(-reach - half * step_px, reach + half * step_px + step_px, step_px)
    smooth = np.convolve(esf(grid), kernel, mode="valid")
    centres = grid[: len(smooth)] + half * step_px
    unit = np.interp(d0, centres, smooth, left=0.0, right=1.0)
    return _scale(unit, lo, hi, dark_to_light)


def disc_edge(shape: tuple[int, int], *, angle_deg: float, diameter_px: float, **kwargs: object) -> np.ndarray:
    """A near-vertical edge blurred by a uniform defocus disc of diameter ``diameter_px``."""
    return esf_edge(
        shape,
        angle_deg=angle_deg,
        esf=lambda d: disc_esf(d, diameter_px),
        support_px=diameter_px / 2.0,
        **kwargs,  # type: ignore[arg-type]
    )


def mosaic(gray: np.ndarray, *, gains: tuple[float, float, float, float] = (0.55, 1.0, 1.0, 0.7)) -> np.ndarray:
    """An RGGB mosaic of a gray scene: each 2×2 site scaled by its channel's gain (R, Gr, Gb, B)."""
    out = gray.copy()
    out[0::2, 0::2] *= gains[0]
    out[0::2, 1::2] *= gains[1]
    out[1::2, 0::2] *= gains[2]
    out[1::2, 1::2] *= gains[3]
    return out


def render_chart(
    shape: tuple[int, int],
    *,
    rotation_deg: float = 0.0,
    scale: float = 1.0,
    shift_px: tuple[float, float] = (0.0, 0.0),
    blur_sigma_px: float = 0.8,
    background: float = 800.0,
    foreground: float = 200.0,
    shading_k1: float = 0.0,
    supersample: int = 4,
) -> np.ndarray:
    """The SFR chart of ``fixtures/charts/sfr.toml`` drawn from its definition (not through the twin).

    Squares are filled polygons on a ``supersample``× canvas, box-averaged to pixels (the pixel aperture),
    blurred by a Gaussian and multiplied by a radial shading ``1 + k1·r²``. The chart is rotated by
    ``rotation_deg`` about the frame centre, scaled and shifted. Returns the noise-free float image and the
    chart's square corners (frame pixels) for ground truth via :func:`chart_squares_px`.
    """
    import cv2

    rows, cols = shape
    s = supersample
    canvas = np.zeros((rows * s, cols * s), np.uint8)
    for quad in chart_squares_px(shape, rotation_deg=rotation_deg, scale=scale, shift_px=shift_px):
        pts = np.round((quad + 0.5) * s * 16.0 - 0.5 * 16).astype(np.int32)  # 4 fractional bits
        cv2.fillPoly(canvas, [pts], 255, lineType=cv2.LINE_8, shift=4)
    dark = cv2.resize(canvas.astype(np.float32) / 255.0, (cols, rows), interpolation=cv2.INTER_AREA)
    if blur_sigma_px > 0:
        dark = cv2.GaussianBlur(dark, (0, 0), blur_sigma_px)
    image = background + (foreground - background) * dark
    if shading_k1:
        y, x = np.mgrid[0:rows, 0:cols]
        r2 = ((x - (cols - 1) / 2) ** 2 + (y - (rows - 1) / 2) ** 2) / (0.25 * (rows**2 + cols**2))
        image = image * (1.0 + shading_k1 * r2)
    return image


def chart_squares_px(
    shape: tuple[int, int], *, rotation_deg: float = 0.0, scale: float = 1.0, shift_px: tuple[float, float] = (0, 0)
) -> list[np.ndarray]:
    """Corners (4×2, frame pixels x, y) of every square of the SFR chart at the given pose."""
    from rig.config import load_chart

    rows, cols = shape
    half_diag = 0.5 * math.hypot(rows, cols)
    centre = np.array([(cols - 1) / 2.0 + shift_px[0], (rows - 1) / 2.0 + shift_px[1]])
    rot = math.radians(rotation_deg)
    r_chart = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
    quads = []
    for sq in load_chart("sfr").squares:
        a = math.radians(sq.angle_deg)
        r_sq = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        corners = 0.5 * sq.size * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float) @ r_sq.T
        pts = (corners + np.array([sq.x, sq.y])) * half_diag * scale
        quads.append(pts @ r_chart.T + centre)
    return quads


EdgeMaker = Callable[[tuple[int, int], float, bool], np.ndarray]

EDGE_PSFS: dict[str, tuple[EdgeMaker, np.ndarray]] = {
    "gauss0.5": (
        lambda shape, a, pol: gaussian_edge(shape, angle_deg=a, sigma_px=0.5, dark_to_light=pol),
        gaussian_mtf(F, 0.5),
    ),
    "gauss0.8": (
        lambda shape, a, pol: gaussian_edge(shape, angle_deg=a, sigma_px=0.8, dark_to_light=pol),
        gaussian_mtf(F, 0.8),
    ),
    "gauss1.5": (
        lambda shape, a, pol: gaussian_edge(shape, angle_deg=a, sigma_px=1.5, dark_to_light=pol),
        gaussian_mtf(F, 1.5),
    ),
    "disc2": (
        lambda shape, a, pol: disc_edge(shape, angle_deg=a, diameter_px=2.0, dark_to_light=pol),
        disc_mtf(F, 2.0),
    ),
    "disc4": (
        lambda shape, a, pol: disc_edge(shape, angle_deg=a, diameter_px=4.0, dark_to_light=pol),
        disc_mtf(F, 4.0),
    ),
}
"""Edges with a known PSF (edge synthesis, analytic PSF MTF without the pixel), shared by the SFR tests and the
accuracy benchmark."""
