"""Geometry results → profile fields: the dot-grid fit and its OpenCV model as :class:`Geometry`, decentre in µm."""

from __future__ import annotations

from rig.calibrate.opencv_yaml import OpenCvCamera
from rig.measure.dotgrid import DotGridFit
from rig.spec.profile import Geometry


def decentre_um(
    optical_center_px: tuple[float, float], *, width_px: int, height_px: int, pixel_pitch_um: float
) -> tuple[float, float]:
    """Optical centre minus sensor centre ((W − 1)/2, (H − 1)/2), in µm on the sensor (x right, y down).

    ``pixel_pitch_um`` is the read-out pitch (binning included).
    """
    x, y = optical_center_px
    return ((x - (width_px - 1) / 2) * pixel_pitch_um, (y - (height_px - 1) / 2) * pixel_pitch_um)


def geometry_for_profile(fit: DotGridFit, camera: OpenCvCamera) -> Geometry:
    """The profile's :class:`Geometry` from a dot-grid fit and the OpenCV model made from it."""
    return Geometry(
        image_width_px=fit.image_width_px,
        image_height_px=fit.image_height_px,
        focal_length_px=camera.focal_length_px,
        principal_point_px=fit.principal_point_px,
        ptlens_a=fit.ptlens_a,
        ptlens_b=fit.ptlens_b,
        ptlens_c=fit.ptlens_c,
        opencv_distortion=[float(v) for v in camera.distortion],
        rms_residual_px=fit.rms_residual_px,
        dots_used=fit.dots_used,
    )
