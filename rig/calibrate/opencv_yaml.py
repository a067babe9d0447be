"""The camera model as an OpenCV FileStorage YAML (``camera_matrix``, ``distortion_coefficients``).

OpenCV's pinhole model maps a normalised ray ``x = (u − c)/f`` to ``x·(1 + k1·x² + k2·x⁴ + k3·x⁶)`` (+ tangential
p1, p2, zero here: the dot-grid model is radial). ``fx = fy = f_lens / pitch`` (read-out pixels), so the
undistorted image is the *paraxial* one, where ray directions are physically right for a lens focused at
infinity. The ptlens model fixes radii at ρ = 1 instead, so its undistorted frame is larger by
``1 / (1 − a − b − c)``: with ``r_p = (1 − a − b − c)·r_u`` the OpenCV factor must equal
``P(r_u / r_n) / (1 − a − b − c)``. k1, k2, k3 are the least-squares fit of that factor in pixels of radial
error over the frame out to its corner: exact when only ``b`` is non-zero, while ptlens's odd ``a``, ``c`` terms
leave a residual (0.1 px on a 2048 px frame for a = 0.0015, c = 0.002; 4× that at full size). Past
``max_model_error_px`` the writer switches to OpenCV's 8-coefficient rational model, ~10× closer. The residual
is written as ``model_error_px``.

References
----------
OpenCV ``calib3d`` camera model (``cv::undistortPoints``, ``cv::FileStorage``); lensfun ``ptlens`` model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rig.errors import MISSING, ConfigError
from rig.measure.dotgrid import DotGridFit, ptlens_radius


@dataclass(frozen=True, eq=False)
class OpenCvCamera:
    """An OpenCV camera model plus our provenance fields.

    ``camera_matrix`` 3×3; ``distortion`` (k1, k2, p1, p2, k3[, k4, k5, k6]); ptlens coefficients with ``r_norm_px`` the
    radius where ptlens ρ = 1; ``model_error_px``: max radial disagreement of the OpenCV polynomial with the
    ptlens mapping over the frame; ``rms_residual_px``: the dot-grid fit's residual.
    """

    image_width_px: int
    image_height_px: int
    camera_matrix: np.ndarray
    distortion: np.ndarray
    unit_serial: str
    lens_id: str
    focal_length_mm: float
    pixel_pitch_um: float
    ptlens_a: float
    ptlens_b: float
    ptlens_c: float
    r_norm_px: float
    rms_residual_px: float
    model_error_px: float

    @property
    def focal_length_px(self) -> float:
        return float(self.camera_matrix[0, 0])

    @property
    def principal_point_px(self) -> tuple[float, float]:
        return float(self.camera_matrix[0, 2]), float(self.camera_matrix[1, 2])


def opencv_radial_from_ptlens(
    *,
    a: float,
    b: float,
    c: float,
    r_norm_px: float,
    focal_length_px: float,
    r_max_px: float,
    rational: bool = False,
    samples: int = 400,
) -> tuple[tuple[float, ...], float]:
    """OpenCV radial coefficients reproducing a ptlens mapping about the same centre, and the max error (px).

    Parameters
    ----------
    a, b, c : float
        ptlens coefficients, ρ = r / ``r_norm_px``.
    focal_length_px : float
        OpenCV fx = fy (paraxial).
    r_max_px : float
        Largest undistorted (paraxial) radius to fit over: the distance from the centre to the farthest corner.
    rational : bool
        False: (k1, k2, k3) of ``1 + k1·x² + k2·x⁴ + k3·x⁶``. True: (k1 … k6) of OpenCV's rational model
        ``(1 + k1·x² + k2·x⁴ + k3·x⁶) / (1 + k4·x² + k5·x⁴ + k6·x⁶)``, fitted in its linearised form; an even
        rational function follows ptlens's odd ``a·ρ³`` and ``c·ρ`` terms about ten times more closely.

    Returns
    -------
    coefficients, max_error_px
        Max over the fitted radii of the distorted-radius disagreement (px).
    """
    scale = 1.0 - a - b - c  # paraxial / ptlens-undistorted
    r_p = np.linspace(0.0, r_max_px, samples)
    target = ptlens_radius(r_p / scale, a=a, b=b, c=c, r_norm=r_norm_px)  # distorted radius, px
    x2 = (r_p / focal_length_px) ** 2
    powers = np.column_stack([x2, x2**2, x2**3])
    if rational:
        # r_p·num(x) = target·den(x): linear in k1…k6, residual in px (weighted by r_p like the polynomial case)
        design = np.column_stack([r_p[:, None] * powers, -target[:, None] * powers])
        k, *_ = np.linalg.lstsq(design, target - r_p, rcond=None)
        model = r_p * (1 + powers @ k[:3]) / (1 + powers @ k[3:])
    else:
        design = r_p[:, None] * powers
        k, *_ = np.linalg.lstsq(design, target - r_p, rcond=None)
        model = r_p + design @ k
    return tuple(float(v) for v in k), float(np.abs(model - target).max())


def camera_from_fit(
    fit: DotGridFit,
    *,
    focal_length_mm: float,
    pixel_pitch_um: float,
    unit_serial: str = "",
    lens_id: str = "",
    rational: bool | None = None,
    max_model_error_px: float = 0.05,
) -> OpenCvCamera:
    """OpenCV model of a dot-grid fit; ``pixel_pitch_um`` is the read-out pitch (binning included).

    ``rational``: False writes the classic 5 coefficients (k1, k2, p1, p2, k3), True the 8 of OpenCV's rational
    model (k1, k2, p1, p2, k3, k4, k5, k6); None (default) writes 5 unless their error exceeds
    ``max_model_error_px`` — which happens when ptlens ``a`` or ``c`` are significant — and then 8.
    Every OpenCV function taking ``distCoeffs`` accepts either length.
    """
    f_px = focal_length_mm * 1000.0 / pixel_pitch_um
    cx, cy = fit.principal_point_px
    w, h = fit.image_width_px, fit.image_height_px
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], dtype=float)
    r_max = float(np.hypot(corners[:, 0] - cx, corners[:, 1] - cy).max())
    common = dict(a=fit.ptlens_a, b=fit.ptlens_b, c=fit.ptlens_c, r_norm_px=fit.r_norm_px, focal_length_px=f_px)
    k, err = opencv_radial_from_ptlens(**common, r_max_px=r_max, rational=bool(rational))
    if rational is None and err > max_model_error_px:
        k, err = opencv_radial_from_ptlens(**common, r_max_px=r_max, rational=True)
    distortion = [k[0], k[1], 0.0, 0.0, k[2], *k[3:]]
    return OpenCvCamera(
        image_width_px=w,
        image_height_px=h,
        camera_matrix=np.array([[f_px, 0.0, cx], [0.0, f_px, cy], [0.0, 0.0, 1.0]]),
        distortion=np.array(distortion),
        unit_serial=unit_serial,
        lens_id=lens_id,
        focal_length_mm=focal_length_mm,
        pixel_pitch_um=pixel_pitch_um,
        ptlens_a=fit.ptlens_a,
        ptlens_b=fit.ptlens_b,
        ptlens_c=fit.ptlens_c,
        r_norm_px=fit.r_norm_px,
        rms_residual_px=fit.rms_residual_px,
        model_error_px=err,
    )


_STRINGS = ("unit_serial", "lens_id")
_REALS = (
    "focal_length_mm",
    "pixel_pitch_um",
    "ptlens_a",
    "ptlens_b",
    "ptlens_c",
    "r_norm_px",
    "rms_residual_px",
    "model_error_px",
)


def write_opencv_yaml(path: str | Path, camera: OpenCvCamera) -> Path:
    """Write ``camera`` as an OpenCV FileStorage YAML (readable by ``cv::FileStorage`` in any language)."""
    path = Path(path)
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE | cv2.FILE_STORAGE_FORMAT_YAML)
    try:
        fs.write("image_width", int(camera.image_width_px))
        fs.write("image_height", int(camera.image_height_px))
        fs.write("camera_matrix", np.asarray(camera.camera_matrix, dtype=np.float64))
        fs.write("distortion_coefficients", np.asarray(camera.distortion, dtype=np.float64).reshape(-1, 1))
        fs.writeComment("rig: ptlens source model (r = 1 at r_norm_px) and fit quality")
        for name in _STRINGS:
            fs.write(name, getattr(camera, name))
        for name in _REALS:
            fs.write(name, float(getattr(camera, name)))
    finally:
        fs.release()
    return path


def read_opencv_yaml(path: str | Path) -> OpenCvCamera:
    """Read a file written by :func:`write_opencv_yaml`; a missing or malformed field raises ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "", MISSING, "an existing OpenCV YAML file")
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except cv2.error as exc:
        raise ConfigError(path, "", "(unparsable)", f"an OpenCV FileStorage YAML ({exc.msg.strip()})") from None
    try:
        if not fs.isOpened():
            raise ConfigError(path, "", "(unparsable)", "an OpenCV FileStorage YAML")

        def node(name: str) -> cv2.FileNode:
            n = fs.getNode(name)
            if n.empty():
                raise ConfigError(path, name, MISSING, "a value (the field is required)")
            return n

        def matrix(name: str, sizes: tuple[int, ...], expected: str) -> np.ndarray:
            try:
                m = node(name).mat()
            except cv2.error:
                m = None
            if m is None or m.size not in sizes or not np.isfinite(m).all():
                raise ConfigError(path, name, "(malformed)", f"a finite opencv-matrix of {expected}")
            return np.asarray(m, dtype=np.float64)

        def integer(name: str) -> int:
            n = node(name)
            if not n.isInt() or n.real() <= 0:
                raise ConfigError(path, name, n.string() or n.real(), "a positive integer")
            return int(n.real())

        def real(name: str) -> float:
            n = node(name)
            if not n.isReal() and not n.isInt():
                raise ConfigError(path, name, n.string(), "a number")
            return float(n.real())

        return OpenCvCamera(
            image_width_px=integer("image_width"),
            image_height_px=integer("image_height"),
            camera_matrix=matrix("camera_matrix", (9,), "3×3").reshape(3, 3),
            distortion=matrix("distortion_coefficients", (5, 8), "5 or 8 coefficients").ravel(),
            **{name: node(name).string() for name in _STRINGS},
            **{name: real(name) for name in _REALS},
        )
    finally:
        fs.release()
