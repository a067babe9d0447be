"""OpenCV YAML export: cv2.undistortPoints with the written model maps distorted dots onto the ideal grid."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rig.calibrate.geometry import decentre_um, geometry_for_profile
from rig.calibrate.opencv_yaml import OpenCvCamera, camera_from_fit, read_opencv_yaml, write_opencv_yaml
from rig.errors import ConfigError
from rig.measure.dotgrid import DotGridFit
from tests.calibrate.test_profile import make_profile

# Twin test read-out: 2048×1536 at 6.4 µm (binning 4) behind a 35 mm lens.
WIDTH, HEIGHT, PITCH_UM, FOCAL_MM = 2048, 1536, 6.4, 35.0
F_PX = FOCAL_MM * 1000 / PITCH_UM
R_NORM = HEIGHT / 2
UNDISTORT_TOL_PX = 0.1  # brief


def _fit(a: float, b: float, c: float, cx: float = 1031.4, cy: float = 762.8) -> DotGridFit:
    empty = np.zeros((0, 2))
    return DotGridFit(
        principal_point_px=(cx, cy), principal_point_sigma_px=(0.02, 0.02), grid_origin_px=(cx, cy),
        scale_px_per_unit=1280.0, rotation_deg=0.0, ptlens_a=a, ptlens_b=b, ptlens_c=c, r_norm_px=R_NORM,
        rms_residual_px=0.03, max_residual_px=0.08, dots_used=300, dots_detected=310, image_width_px=WIDTH,
        image_height_px=HEIGHT, centres_px=empty, grid_indices=empty.astype(int), residuals_px=empty,
    )  # fmt: skip


def _distorted_grid(a: float, b: float, c: float, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    """Ideal (paraxial pinhole) grid over the frame and its ptlens-distorted image, computed from the law."""
    xs, ys = np.meshgrid(np.linspace(0, WIDTH - 1, 33), np.linspace(0, HEIGHT - 1, 25))
    ideal = np.column_stack([xs.ravel(), ys.ravel()])
    rel = ideal - [cx, cy]
    r_p = np.hypot(*rel.T)
    r_u = r_p / (1 - a - b - c)  # ptlens keeps ρ = 1 fixed: its undistorted frame is the paraxial one scaled
    rho = r_u / R_NORM
    r_d = r_u * (a * rho**3 + b * rho**2 + c * rho + 1 - a - b - c)
    scale = np.where(r_p > 0, r_d / np.where(r_p > 0, r_p, 1), 1.0)
    return ideal, np.array([cx, cy]) + rel * scale[:, None]


@pytest.mark.parametrize(
    ("a", "b", "c"),
    [
        (0.0, -0.004, 0.0),  # the catalog's Summilux 35: barrel, b only (exactly representable)
        (0.0, 0.012, 0.0),  # pincushion
        (0.0015, -0.006, 0.002),  # all three terms: odd powers need OpenCV's rational model (written as 8 terms)
    ],
)
def test_undistort_points_with_the_written_model_lands_on_the_ideal_grid(
    tmp_path: Path, a: float, b: float, c: float
) -> None:
    camera = camera_from_fit(_fit(a, b, c), focal_length_mm=FOCAL_MM, pixel_pitch_um=PITCH_UM, unit_serial="XM12SU-1")
    path = write_opencv_yaml(tmp_path / "camera.yaml", camera)
    back = read_opencv_yaml(path)
    ideal, distorted = _distorted_grid(a, b, c, 1031.4, 762.8)
    assert np.abs(distorted - ideal).max() > 2.0  # the distortion is visible: the test can fail
    k, d = back.camera_matrix, back.distortion
    undistorted = cv2.undistortPoints(distorted.reshape(-1, 1, 2), k, d, P=k).reshape(-1, 2)
    err = np.hypot(*(undistorted - ideal).T)
    assert err.max() < UNDISTORT_TOL_PX, f"max {err.max():.3f} px at {ideal[err.argmax()]}"
    assert back.model_error_px < UNDISTORT_TOL_PX
    assert len(d) == (8 if a or c else 5)


def test_odd_ptlens_terms_exceed_the_five_coefficient_model_at_full_size() -> None:
    # Full-size read-out (8192×6144, 1.6 µm): the classic model's error grows with the frame, the rational
    # model's stays well under 0.1 px. Forcing rational=False shows why the writer switches.
    fit = _fit(0.0015, -0.006, 0.002)
    full = DotGridFit(**{**fit.__dict__, "image_width_px": 4 * WIDTH, "image_height_px": 4 * HEIGHT,
                         "r_norm_px": 4 * R_NORM, "principal_point_px": (4 * 1031.4, 4 * 762.8)})  # fmt: skip
    classic = camera_from_fit(full, focal_length_mm=FOCAL_MM, pixel_pitch_um=1.6, rational=False)
    auto = camera_from_fit(full, focal_length_mm=FOCAL_MM, pixel_pitch_um=1.6)
    assert classic.model_error_px > 0.3 and len(classic.distortion) == 5
    assert auto.model_error_px < 0.05 and len(auto.distortion) == 8


def test_yaml_round_trips_every_field(tmp_path: Path) -> None:
    camera = camera_from_fit(
        _fit(0.001, -0.004, 0.0005), focal_length_mm=FOCAL_MM, pixel_pitch_um=PITCH_UM,
        unit_serial="XM12SU-000001", lens_id="summilux-m-35-f1.4-asph-2022",
    )  # fmt: skip
    back = read_opencv_yaml(write_opencv_yaml(tmp_path / "c.yaml", camera))
    assert back.camera_matrix[0, 0] == back.camera_matrix[1, 1] == pytest.approx(F_PX)
    assert back.principal_point_px == (1031.4, 762.8)
    np.testing.assert_array_equal(back.distortion, camera.distortion)
    assert len(back.distortion) == 5  # small a, c: the classic model is within 0.05 px
    assert back.distortion[2] == back.distortion[3] == 0.0  # radial model: no tangential terms
    for name in OpenCvCamera.__dataclass_fields__:
        if name not in ("camera_matrix", "distortion"):
            assert getattr(back, name) == getattr(camera, name), name
    text = (tmp_path / "c.yaml").read_text()
    assert text.startswith("%YAML") and "camera_matrix: !!opencv-matrix" in text


def test_bad_files_name_the_field(tmp_path: Path) -> None:
    camera = camera_from_fit(_fit(0, -0.004, 0), focal_length_mm=FOCAL_MM, pixel_pitch_um=PITCH_UM)
    path = write_opencv_yaml(tmp_path / "c.yaml", camera)
    text = path.read_text()
    path.write_text(text.replace("image_width: 2048\n", ""))
    with pytest.raises(ConfigError, match=r"c\.yaml: image_width = \(missing\)"):
        read_opencv_yaml(path)
    path.write_text(text.replace("rows: 3", "rows: 2"))
    with pytest.raises(ConfigError, match="camera_matrix"):
        read_opencv_yaml(path)
    with pytest.raises(ConfigError, match="an existing OpenCV YAML file"):
        read_opencv_yaml(tmp_path / "nope.yaml")


def test_geometry_goes_into_the_profile_and_survives_its_json() -> None:
    fit = _fit(0.0015, -0.006, 0.002)
    camera = camera_from_fit(fit, focal_length_mm=FOCAL_MM, pixel_pitch_um=PITCH_UM)
    geometry = geometry_for_profile(fit, camera)
    profile = make_profile(geometry=geometry)
    back = type(profile).from_json(profile.to_json())
    assert back.geometry == geometry and len(back.geometry.opencv_distortion) == 8
    # (1031.4 − 1023.5) px × 6.4 µm = 50.56 µm; (762.8 − 767.5) × 6.4 = −30.08 µm
    dx, dy = decentre_um(fit.principal_point_px, width_px=WIDTH, height_px=HEIGHT, pixel_pitch_um=PITCH_UM)
    assert (dx, dy) == pytest.approx((50.56, -30.08))
