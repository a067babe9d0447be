"""CFA dot-grid frames with a known lateral colour: each colour plane imaged at its own lensfun poly3 scale.

The grid geometry (principal point, scale, rotation, ptlens distortion) is :class:`dotgrid_synth.GridTruth`
for green. Red and blue are green's image moved radially about the frame centre ((W − 1)/2, (H − 1)/2) exactly as
lensfun's poly3 TCA model says, ``p_c = p_g·(b·r² + c·r + v)`` with r = |p_g| / ((min(W, H) − 1)/2): to render the
colour at a pixel, its green position is found by Newton on the radius, and the disc coverage is evaluated there
(analytic, antialiased over one pixel, then a Gaussian blur). The mosaic takes each site from its colour's frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tests.measure.dotgrid_synth import GridTruth


@dataclass(frozen=True)
class ColourScale:
    """lensfun poly3 TCA of one colour against green (v, c, b)."""

    v: float = 1.0
    c: float = 0.0
    b: float = 0.0

    def radius(self, r_green: np.ndarray) -> np.ndarray:
        return r_green * (self.b * r_green**2 + self.c * r_green + self.v)

    def green_radius(self, r_colour: np.ndarray) -> np.ndarray:
        """Invert :meth:`radius` (Newton from r_g = r_c/v; converges to 1e-12 in a few steps for |v − 1| ≪ 1)."""
        r = r_colour / self.v
        for _ in range(6):
            f = self.radius(r) - r_colour
            r = r - f / (3 * self.b * r**2 + 2 * self.c * r + self.v)
        return r


def _transmittance(truth: GridTruth, scale: ColourScale) -> np.ndarray:
    yy, xx = np.mgrid[0 : truth.height, 0 : truth.width].astype(np.float64)
    centre = np.array([(truth.width - 1) / 2.0, (truth.height - 1) / 2.0])
    r_norm = (min(truth.width, truth.height) - 1) / 2.0
    rel = np.column_stack([xx.ravel(), yy.ravel()]) - centre
    r_c = np.hypot(*rel.T) / r_norm
    ratio = np.where(r_c > 0, scale.green_radius(r_c) / np.where(r_c > 0, r_c, 1.0), 1.0 / scale.v)
    green_pos = centre + rel * ratio[:, None]
    u = truth.distorted_to_undistorted(green_pos)
    t = np.radians(truth.rotation_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    g = (u - truth.origin) @ rot / truth.scale_px_per_unit
    off = (g - np.round(g / truth.pitch) * truth.pitch) * truth.scale_px_per_unit
    # the local scale of the colour image against green is ≈ v: the disc's radius on the colour frame
    coverage = np.clip((truth.radius * truth.scale_px_per_unit - np.hypot(*off.T)) * scale.v + 0.5, 0, 1)
    return (0.8 * (1 - coverage) + 0.1 * coverage).reshape(truth.height, truth.width)


def render_cfa(
    truth: GridTruth,
    *,
    red: ColourScale,
    blue: ColourScale,
    cfa_pattern: str = "RGGB",
    level_dn: float = 600.0,
    blur_px: float = 0.8,
    black_dn: float = 64.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A uint16 CFA mosaic of the dot grid with red and blue at their poly3 scales (photon noise when ``rng``)."""
    frames = {
        colour: ndimage.gaussian_filter(_transmittance(truth, scale) * level_dn, blur_px)
        for colour, scale in (("R", red), ("G", ColourScale()), ("B", blue))
    }
    raw = np.empty((truth.height, truth.width))
    for k, colour in enumerate(cfa_pattern):
        dx, dy = k % 2, k // 2
        raw[dy::2, dx::2] = frames[colour][dy::2, dx::2]
    if rng is not None:
        raw = rng.poisson(raw / 0.16) * 0.16
    return np.clip(np.round(raw + black_dn), 0, 1023).astype(np.uint16)
