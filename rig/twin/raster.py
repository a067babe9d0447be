"""Chart rasterisation: a chart's targets, mapped through the lens and blurred, as a transmittance frame.

Each target (a slanted square, a dot) is rendered in its own patch with the blur evaluated at the target's
centre (tilt and field curvature make the blur vary over the field, so one global PSF would be wrong):

* A straight edge of a target gives ``ESF(d)`` at signed distance ``d`` from the edge (inside > 0), with the
  exact edge spread of ``Airy ⊗ defocus disc ⊗ Gauss ⊗ smear ⊗ pixel box`` along the edge normal
  (:func:`rig.twin.optics.edge_spread`): the pixel aperture is integrated analytically, not by supersampling.
* A square is the product of its four edge responses. That is exact wherever a pixel is farther than the blur
  radius from a corner (the whole middle of every edge, where slanted-edge ROIs sit) and exact at the corners
  too for a Gaussian blur; for a defocus disc the corner itself is approximate.
* A dot is one curved edge: ``ESF(R − ρ)`` with the normal along the radius (ESF sampled in 8 directions,
  because the pixel box and the smear are anisotropic).
* The geometric mapping (chart pose, distortion, decentre) is applied to each target's corner points and its
  centre; between them the edges are straight chords (the distortion's bow over one target is < 0.01 px).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rig.config.charts import ChartKind, ChartSpec
from rig.twin.optics import BlurSpec, edge_spread

ToSensor = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Maps chart coordinates (normalised, 1 = half diagonal) to sensor µm from the sensor centre."""

BlurAt = Callable[[float, float], BlurSpec]
"""The blur at a sensor position (µm from the sensor centre)."""

_DOT_DIRECTIONS = 8


@dataclass(frozen=True)
class ChartPose:
    """How the chart sits on the carousel: applied in chart coordinates before the lens.

    ``p' = scale·R(rotation)·p + shift``; rotation turns +x towards +y (degrees), shift in half-diagonal units.
    """

    rotation_deg: float = 0.0
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def apply(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, s = math.cos(math.radians(self.rotation_deg)), math.sin(math.radians(self.rotation_deg))
        return (
            self.scale * (c * x - s * y) + self.shift_x,
            self.scale * (s * x + c * y) + self.shift_y,
        )


@dataclass(frozen=True)
class PixelGrid:
    """The read-out pixel grid: pixel (row i, col j) has its centre at ``((j + ½)·p − W·p/2, (i + ½)·p − H·p/2)`` µm.

    ``offset_x_um``/``offset_y_um`` move every centre (0 for the read-out grid; see :meth:`bayer_plane`).
    """

    width_px: int
    height_px: int
    pitch_um: float
    offset_x_um: float = 0.0
    offset_y_um: float = 0.0

    def x_um(self, cols: np.ndarray) -> np.ndarray:
        return (cols + 0.5) * self.pitch_um - 0.5 * self.width_px * self.pitch_um + self.offset_x_um

    def y_um(self, rows: np.ndarray) -> np.ndarray:
        return (rows + 0.5) * self.pitch_um - 0.5 * self.height_px * self.pitch_um + self.offset_y_um

    def col_of(self, x_um: float) -> float:
        return (x_um - self.offset_x_um + 0.5 * self.width_px * self.pitch_um) / self.pitch_um - 0.5

    def row_of(self, y_um: float) -> float:
        return (y_um - self.offset_y_um + 0.5 * self.height_px * self.pitch_um) / self.pitch_um - 0.5

    def bayer_plane(self, dx: int, dy: int) -> PixelGrid:
        """The sites of one CFA colour, (row 2i + dy, col 2j + dx), as a grid of their own (pitch 2p).

        Its pixel (i, j) has the centre of read-out pixel (2i + dy, 2j + dx): ``(2j + dx + ½)·p − W·p/2``, which is
        the half-size grid's ``(j + ½)·2p − (W/2)·2p/2`` moved by ``(dx − ½)·p``.
        """
        if self.width_px % 2 or self.height_px % 2 or dx not in (0, 1) or dy not in (0, 1):
            raise ValueError(f"a 2×2 CFA plane (dx, dy in 0, 1) of an even grid, got {dx}, {dy} of {self}")
        return PixelGrid(
            self.width_px // 2,
            self.height_px // 2,
            2.0 * self.pitch_um,
            self.offset_x_um + (dx - 0.5) * self.pitch_um,
            self.offset_y_um + (dy - 0.5) * self.pitch_um,
        )

    def patch(self, x_min: float, x_max: float, y_min: float, y_max: float) -> tuple[slice, slice] | None:
        """Rows/cols whose centres fall in the µm box, or None when it misses the sensor."""
        c0 = max(0, math.floor(self.col_of(x_min)))
        c1 = min(self.width_px, math.ceil(self.col_of(x_max)) + 1)
        r0 = max(0, math.floor(self.row_of(y_min)))
        r1 = min(self.height_px, math.ceil(self.row_of(y_max)) + 1)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)


def square_vertices(cx: float, cy: float, size: float, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Corners (chart coordinates) of a square of side ``size`` centred at (cx, cy), turned by ``angle_deg``."""
    half = 0.5 * size
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    u = np.array([-half, half, half, -half])
    v = np.array([-half, -half, half, half])
    return cx + c * u - s * v, cy + s * u + c * v


def dot_centres(chart: ChartSpec, *, extent_x: float, extent_y: float) -> tuple[np.ndarray, np.ndarray]:
    """Dot-grid centres (chart coordinates): a square grid through the origin covering ±extent (+ one pitch)."""
    assert chart.dots is not None
    pitch = chart.dots.pitch
    nx = math.ceil(extent_x / pitch) + 1
    ny = math.ceil(extent_y / pitch) + 1
    gx, gy = np.meshgrid(np.arange(-nx, nx + 1) * pitch, np.arange(-ny, ny + 1) * pitch)
    return gx.ravel(), gy.ravel()


def _pixel_centres(grid: PixelGrid, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
    x = grid.x_um(np.arange(cols.start, cols.stop, dtype=np.float64))
    y = grid.y_um(np.arange(rows.start, rows.stop, dtype=np.float64))
    return x[None, :], y[:, None]


def _add_polygon(
    frame: np.ndarray, grid: PixelGrid, vx: np.ndarray, vy: np.ndarray, blur: BlurSpec, contrast: float
) -> None:
    margin = blur.support_um()
    region = grid.patch(vx.min() - margin, vx.max() + margin, vy.min() - margin, vy.max() + margin)
    if region is None:
        return
    rows, cols = region
    px, py = _pixel_centres(grid, rows, cols)
    area2 = float(np.sum(vx * np.roll(vy, -1) - np.roll(vx, -1) * vy))
    orientation = 1.0 if area2 > 0 else -1.0
    inside = np.ones((rows.stop - rows.start, cols.stop - cols.start), dtype=np.float32)
    for k in range(len(vx)):
        ex, ey = vx[(k + 1) % len(vx)] - vx[k], vy[(k + 1) % len(vy)] - vy[k]
        length = math.hypot(ex, ey)
        # the interior lies to the left of each edge for a positively oriented polygon
        nx, ny = -orientation * ey / length, orientation * ex / length
        distance = (px - vx[k]) * nx + (py - vy[k]) * ny
        inside *= edge_spread(blur, angle_rad=math.atan2(ny, nx))(distance)
    frame[rows, cols] += contrast * inside


def _add_dot(
    frame: np.ndarray, grid: PixelGrid, cx: float, cy: float, radius_um: float, blur: BlurSpec, contrast: float
) -> None:
    margin = radius_um + blur.support_um()
    region = grid.patch(cx - margin, cx + margin, cy - margin, cy + margin)
    if region is None:
        return
    rows, cols = region
    px, py = _pixel_centres(grid, rows, cols)
    dx, dy = px - cx, py - cy
    rho = np.hypot(dx, dy)
    # the kernel is symmetric under n → −n, so directions over [0, π) suffice
    direction = np.floor(np.mod(np.arctan2(dy, dx), np.pi) / np.pi * _DOT_DIRECTIONS + 0.5).astype(np.int64)
    direction %= _DOT_DIRECTIONS
    value = np.zeros(rho.shape, dtype=np.float32)
    for k in range(_DOT_DIRECTIONS):
        mask = direction == k
        if np.any(mask):
            esf = edge_spread(blur, angle_rad=k * np.pi / _DOT_DIRECTIONS)
            value[mask] = esf(radius_um - rho[mask])
    frame[rows, cols] += contrast * value


def rasterise(chart: ChartSpec, *, grid: PixelGrid, to_sensor_um: ToSensor, blur_at: BlurAt) -> np.ndarray:
    """The chart's blurred transmittance on the read-out grid (float32, height × width, 0..1).

    Parameters
    ----------
    chart
        The chart (geometry in normalised image coordinates).
    grid
        Read-out pixel grid.
    to_sensor_um
        The full geometric mapping chart → sensor µm (pose, distortion, decentre).
    blur_at
        The blur at a sensor position (µm); evaluated once per target, at its centre.
    """
    frame = np.full((grid.height_px, grid.width_px), chart.background, dtype=np.float32)
    contrast = chart.foreground - chart.background
    if chart.kind is ChartKind.SLANTED_EDGE:
        for square in chart.squares:
            cx, cy = to_sensor_um(np.array([square.x]), np.array([square.y]))
            vx, vy = to_sensor_um(*square_vertices(square.x, square.y, square.size, square.angle_deg))
            _add_polygon(frame, grid, vx, vy, blur_at(float(cx[0]), float(cy[0])), contrast)
    elif chart.kind is ChartKind.DOT_GRID:
        assert chart.dots is not None
        radius = chart.dots.radius
        # how far the grid reaches from the sensor centre (a window of a windowed read-out sits off it)
        half_w = 0.5 * grid.width_px * grid.pitch_um + abs(grid.offset_x_um)
        half_h = 0.5 * grid.height_px * grid.pitch_um + abs(grid.offset_y_um)
        unit_um = float(np.hypot(half_w, half_h))
        gx, gy = dot_centres(chart, extent_x=2.0 * half_w / unit_um + radius, extent_y=2.0 * half_h / unit_um + radius)
        cx, cy = to_sensor_um(gx, gy)
        # local magnification from the mapping of a small cross around each dot: a circle stays a circle of
        # radius R·√|det J| to first order
        h = 1e-4
        xr, yr = to_sensor_um(gx + h, gy)
        xu, yu = to_sensor_um(gx, gy + h)
        det = np.abs((xr - cx) * (yu - cy) - (xu - cx) * (yr - cy)) / (h * h)
        radii = radius * np.sqrt(det)
        for k in range(gx.size):
            if abs(cx[k]) > half_w + radii[k] + 50 or abs(cy[k]) > half_h + radii[k] + 50:
                continue
            _add_dot(frame, grid, float(cx[k]), float(cy[k]), float(radii[k]), blur_at(cx[k], cy[k]), contrast)
    return frame
