"""Flat fields synthesised from a known per-channel shading law (the ground truth the tests hold the fit to)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLACK_DN = 64
WHITE_DN = 1023
CONVERSION_GAIN_DN_PER_E = 0.16  # the twin's SensorTruth default: realistic shot-noise SNR
READ_NOISE_E = 2.0


@dataclass(frozen=True)
class ShadingLaw:
    """Relative response per channel: (1 + k1 r² + k2 r⁴)·(1 + tilt·x)·cos⁴θ about a decentred axis.

    r and x are in half-diagonal units about (cx, cy) (pixels); cos⁴θ uses tan θ = r·tan_half_field. The tilt
    term makes the channels' shading asymmetric (CRA colour shading is not radial on real sensors).
    """

    k1: dict[str, float]
    k2: dict[str, float]
    tilt: dict[str, float]
    level_dn: dict[str, float]
    cx_offset_px: float = 40.0
    cy_offset_px: float = -25.0
    tan_half_field: float = 0.234  # 8.19 mm half diagonal behind a 35 mm lens

    def response(self, channel: str, y: np.ndarray, x: np.ndarray, height: int, width: int) -> np.ndarray:
        """Relative response (1 at the axis) at pixel-coordinate positions (y, x) (pixel centres at +0.5)."""
        half_diag = 0.5 * float(np.hypot(width, height))
        xn = (x - (width / 2 + self.cx_offset_px)) / half_diag
        yn = (y - (height / 2 + self.cy_offset_px)) / half_diag
        r2 = xn**2 + yn**2
        cos4 = 1.0 / (1.0 + r2 * self.tan_half_field**2) ** 2
        return (1 + self.k1[channel] * r2 + self.k2[channel] * r2**2) * (1 + self.tilt[channel] * xn) * cos4


STRONG = ShadingLaw(
    k1={"R": -0.30, "Gr": -0.20, "Gb": -0.21, "B": -0.26},
    k2={"R": 0.03, "Gr": 0.02, "Gb": 0.02, "B": 0.03},
    tilt={"R": 0.02, "Gr": 0.0, "Gb": 0.005, "B": -0.02},
    level_dn={"R": 420.0, "Gr": 700.0, "Gb": 700.0, "B": 520.0},
)

OFFSETS = {"R": (0, 0), "Gr": (0, 1), "Gb": (1, 0), "B": (1, 1)}


def flat_field(law: ShadingLaw, *, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """uint16 RGGB mosaic with photon (Poisson) and read noise, black level and 10-bit clipping."""
    raw = np.empty((height, width), dtype=np.float64)
    for name, (r0, c0) in OFFSETS.items():
        y, x = np.meshgrid(np.arange(r0, height, 2) + 0.5, np.arange(c0, width, 2) + 0.5, indexing="ij")
        signal_dn = law.level_dn[name] * law.response(name, y, x, height, width)
        electrons = rng.poisson(signal_dn / CONVERSION_GAIN_DN_PER_E) + rng.normal(0, READ_NOISE_E, y.shape)
        raw[r0::2, c0::2] = electrons * CONVERSION_GAIN_DN_PER_E
    return np.clip(np.round(raw + BLACK_DN), 0, WHITE_DN).astype(np.uint16)


def true_gains(law: ShadingLaw, *, height: int, width: int, points: tuple[int, int]) -> np.ndarray:
    """Gains (4, V, H) = peak response / response at map points spanning the frame (relative 0..1)."""
    v = np.linspace(0.0, 1.0, points[0]) * height
    h = np.linspace(0.0, 1.0, points[1]) * width
    yy, xx = np.meshgrid(v, h, indexing="ij")
    # The peak over the frame: on a dense grid of pixel centres (the law is smooth, 1/4-px grid is plenty).
    fy, fx = np.meshgrid(np.linspace(0.5, height - 0.5, 385), np.linspace(0.5, width - 0.5, 513), indexing="ij")
    out = []
    for name in ("R", "Gr", "Gb", "B"):
        peak = law.response(name, fy, fx, height, width).max()
        out.append(peak / law.response(name, yy, xx, height, width))
    return np.array(out)
