"""Where the lens sits relative to the sensor at one instant, beyond the unit's static alignment.

:func:`rig.twin.mount.mount_pose` computes it from the mount's dynamics (sag under the lens's weight at the
fixture pitch, ringing after a knock, the scatter of each remount); the renderer adds it to the unit's static
flange offset, tilt and decentre. Same sign conventions as :class:`rig.config.unit.MountTruth`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MountPose:
    image_shift_x_um: float = 0.0  # lateral image displacement on the sensor
    image_shift_y_um: float = 0.0
    tilt_x_arcmin: float = 0.0  # extra image-plane tilt (added to MountTruth.tilt_x_arcmin)
    tilt_y_arcmin: float = 0.0
    axial_um: float = 0.0  # extra flange offset (added to MountTruth.flange_offset_um)
    motion_blur_um: float = 0.0  # length of the image's linear smear during the exposure (ringing)
    motion_blur_angle_deg: float = 0.0


STATIC = MountPose()
