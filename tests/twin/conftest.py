"""Shared fixtures and test-side measurement helpers for the twin's physics tests.

The helpers measure images the way a person checking the twin would, from geometry the test knows (edge
positions from the chart's own numbers), independent of the twin's rendering code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.special import j1

from rig.config import LensCatalog, StationConfig, TwinUnit, load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.twin.state import BenchSnapshot
from tests import ptpip_twin

# the twin phone on PTP/IP (not in tests/conftest.py: `rig` run from a checkout would load that one)
bench, peer, gphoto2_home = ptpip_twin.bench, ptpip_twin.peer, ptpip_twin.gphoto2_home


@pytest.fixture(scope="session")
def station() -> StationConfig:
    return load_station()


@pytest.fixture(scope="session")
def catalog() -> LensCatalog:
    return load_lens_catalog()


@pytest.fixture(scope="session")
def golden() -> TwinUnit:
    return load_unit(FIXTURES_DIR / "units" / "golden.toml")


def with_sensor(station: StationConfig, **changes: Any) -> StationConfig:
    """The station with sensor fields replaced (e.g. a small full-pitch sensor for fast tests)."""
    return station.model_copy(update={"sensor": station.sensor.model_copy(update=changes)})


def with_lens(catalog: LensCatalog, lens_id: str, **changes: Any) -> LensCatalog:
    """The catalog with one lens's fields replaced."""
    lenses = [
        type(spec).model_validate({**spec.model_dump(), **changes}) if spec.id == lens_id else spec
        for spec in catalog.lens
    ]
    return LensCatalog(native=catalog.native, lens=lenses)


def ideal_unit(unit: TwinUnit, **mount: Any) -> TwinUnit:
    """``unit`` with a perfect mount except for the given MountTruth fields."""
    base = {
        "flange_offset_um": 0.0,
        "tilt_x_arcmin": 0.0,
        "tilt_y_arcmin": 0.0,
        "decentre_x_um": 0.0,
        "decentre_y_um": 0.0,
        "cover_thickness_mm": 0.5,
    }
    base.update(mount)
    return unit.model_copy(update={"mount": unit.mount.model_copy(update=base)})


# --------------------------------------------------------------------------------------------- edge analysis
def edge_profile(
    image: np.ndarray,
    *,
    pitch_um: float,
    origin_um: tuple[float, float],
    point_um: tuple[float, float],
    normal: tuple[float, float],
    half_length_um: float,
    half_width_um: float,
    step_um: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Edge spread sampled on a uniform grid along the edge normal, from pixel centres near a known edge.

    ``origin_um`` is the sensor position of pixel (0, 0)'s centre; the edge passes through ``point_um`` with unit
    ``normal``; pixels within ``half_length_um`` along the edge and ``half_width_um`` across it are used. The
    scattered (distance, value) pairs of a slanted edge are dense; they are merged and linearly resampled.
    """
    rows, cols = np.indices(image.shape)
    x = origin_um[0] + cols * pitch_um - point_um[0]
    y = origin_um[1] + rows * pitch_um - point_um[1]
    nx, ny = normal
    across = x * nx + y * ny
    along = -x * ny + y * nx
    keep = (np.abs(along) <= half_length_um) & (np.abs(across) <= half_width_um)
    t, v = across[keep], image[keep].astype(np.float64)
    order = np.argsort(t)
    t, v = t[order], v[order]
    grid = np.arange(-half_width_um + step_um, half_width_um - step_um, step_um)
    return grid, np.interp(grid, t, v)


def mtf_from_esf(esf: np.ndarray, step_um: float) -> tuple[np.ndarray, np.ndarray]:
    """|FT| of the ESF's derivative, normalised at 0, with the central difference's own response removed."""
    lsf = np.gradient(esf, step_um)
    spectrum = np.abs(np.fft.rfft(lsf))
    freqs = np.fft.rfftfreq(lsf.size, d=step_um)
    difference_response = np.sinc(2.0 * freqs * step_um)  # central difference = sin(2πνh)/(2πνh)
    return freqs, spectrum / spectrum[0] / np.maximum(difference_response, 1e-6)


def jinc(freqs: np.ndarray, diameter_um: float) -> np.ndarray:
    x = np.pi * diameter_um * freqs
    out = np.ones_like(x)
    nz = x > 1e-12
    out[nz] = 2.0 * j1(x[nz]) / x[nz]
    return out


def fit_disc_diameter(freqs: np.ndarray, ratio: np.ndarray, *, guess_um: float) -> float:
    """Diameter D whose |2J1(πDν)/(πDν)| best fits ``ratio`` (least squares, dense search ±40 % of the guess)."""
    candidates = np.linspace(0.6 * guess_um, 1.4 * guess_um, 1601)
    errors = [np.sum((np.abs(jinc(freqs, d)) - ratio) ** 2) for d in candidates]
    return float(candidates[int(np.argmin(errors))])


def sfr_chart_snapshot(
    station: StationConfig,
    lens_id: str,
    *,
    rail_mm: float | None = None,
    f_number: float | None = None,
    exposure_time_s: float = 0.01,
) -> BenchSnapshot:
    """The bench facing the SFR chart square on, lens mounted, panel at 800 PWM: rail at focus unless given."""
    return BenchSnapshot(
        time_ns=0,
        rail_mm=station.rail.focus_mm if rail_mm is None else rail_mm,
        carousel_mm=station.carousel.slots["sfr"],
        pitch_deg=0.0,
        light_pwm=800.0,
        exposure_time_s=exposure_time_s,
        iso=100,
        lens_attached=True,
        lens_id=lens_id,
        lens_attached_at_ns=0,
        remount_index=0,
        f_number=f_number,
        knock_times_ns=(),
        profile=None,
    )
