"""Dot-grid frames synthesised from a known geometry (principal point, scale, rotation, ptlens a, b, c)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class GridTruth:
    width: int = 2048
    height: int = 1536
    cx: float = 1031.37  # principal point: the sensor centre (1023.5, 767.5) + a decentre
    cy: float = 762.81
    scale_px_per_unit: float = 1290.0  # a 2048×1536 frame has a 1280 px half diagonal; the chart is 0.8 % large
    rotation_deg: float = 0.35
    a: float = 0.0015
    b: float = -0.006
    c: float = 0.002
    pitch: float = 0.08
    radius: float = 0.015
    origin_dx_px: float = 0.0  # chart origin's undistorted image minus the principal point (an off-axis chart)
    origin_dy_px: float = 0.0

    @property
    def origin(self) -> np.ndarray:
        return np.array([self.cx + self.origin_dx_px, self.cy + self.origin_dy_px])

    @property
    def r_norm(self) -> float:
        return min(self.width, self.height) / 2

    def factor(self, r_u: np.ndarray) -> np.ndarray:
        rho = r_u / self.r_norm
        return self.a * rho**3 + self.b * rho**2 + self.c * rho + 1 - self.a - self.b - self.c

    def undistorted_to_distorted(self, u: np.ndarray) -> np.ndarray:
        rel = u - [self.cx, self.cy]
        return np.array([self.cx, self.cy]) + rel * self.factor(np.hypot(*rel.T))[:, None]

    def distorted_to_undistorted(self, d: np.ndarray) -> np.ndarray:
        rel = d - [self.cx, self.cy]
        r_d = np.hypot(*rel.T)
        r_u = r_d.copy()
        for _ in range(5):  # Newton on r_u·f(r_u) = r_d: quadratic convergence from r_u = r_d, 1e-12 px by step 4
            rho = r_u / self.r_norm
            g = r_u * self.factor(r_u) - r_d
            dg = self.factor(r_u) + rho * (3 * self.a * rho**2 + 2 * self.b * rho + self.c)
            r_u -= g / dg
        scale = np.where(r_d > 0, r_u / np.where(r_d > 0, r_d, 1), 1.0)
        return np.array([self.cx, self.cy]) + rel * scale[:, None]

    def node_positions(self, nodes: np.ndarray) -> np.ndarray:
        """Distorted image (px) of grid nodes (i, j)."""
        t = np.radians(self.rotation_deg)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        u = self.origin + self.scale_px_per_unit * (nodes * self.pitch) @ rot.T
        return self.undistorted_to_distorted(u)


def render(truth: GridTruth, *, rng: np.random.Generator, level_dn: float = 700.0, blur_px: float = 0.8,
           black_dn: float = 64.0) -> np.ndarray:  # fmt: skip
    """Grey frame (float DN incl. black): dark discs (transmittance 0.1) on 0.8, blurred, with photon noise."""
    yy, xx = np.mgrid[0 : truth.height, 0 : truth.width].astype(np.float64)
    d = np.column_stack([xx.ravel(), yy.ravel()])
    u = truth.distorted_to_undistorted(d)
    t = np.radians(truth.rotation_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    g = (u - truth.origin) @ rot / truth.scale_px_per_unit  # chart units
    off = (g - np.round(g / truth.pitch) * truth.pitch) * truth.scale_px_per_unit  # px from the nearest node
    coverage = np.clip(truth.radius * truth.scale_px_per_unit - np.hypot(*off.T) + 0.5, 0, 1)
    trans = (0.8 * (1 - coverage) + 0.1 * coverage).reshape(truth.height, truth.width)
    signal = ndimage.gaussian_filter(trans * level_dn, blur_px)
    electrons = rng.poisson(signal / 0.16)
    return electrons * 0.16 + black_dn


def mosaic(grey: np.ndarray, gains: tuple[float, float, float, float] = (0.6, 1.0, 1.0, 0.8)) -> np.ndarray:
    """An RGGB CFA frame of a neutral scene: each site scaled by its channel's response (white balance)."""
    out = grey.copy()
    for (r0, c0), g in zip(((0, 0), (0, 1), (1, 0), (1, 1)), gains, strict=True):
        out[r0::2, c0::2] = 64 + (grey[r0::2, c0::2] - 64) * g
    return np.clip(np.round(out), 0, 1023).astype(np.uint16)
