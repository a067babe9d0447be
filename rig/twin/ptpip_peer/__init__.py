"""The twin phone as a PTP/IP responder on 127.0.0.1: libgphoto2 (python-gphoto2 or the ``gphoto2`` command)
talks to it exactly as to the phone on a network (REFERENCE.md §5, DESIGN.md §4).

One job per module:

- :mod:`.wire`: PTP/IP framing and PTP value encodings, with length limits checked before allocating.
- :mod:`.transport`: both listening ports, the Init handshakes, pairing each host's event connection with its
  command connection by connection number, and the single session slot (:class:`PeerBudgets`).
- :mod:`.session`: one host's command loop (requests, data phases, responses; OpenSession/CloseSession).
- :mod:`.operations`: what each PTP operation does.
- :mod:`.store`: the object store (frames ring, assists, the profile slot).
- :mod:`.properties`: the device-property table.
- :mod:`.events`: the event channel and the lens/accelerometer watcher.
- :mod:`.datasets`: DeviceInfo, StorageInfo, ObjectInfo, DevicePropDesc.
- :mod:`.peer`: :class:`PtpIpPeer`, which puts them together, and its faults (:class:`PtpFaults`).

What the phone offers (codes in :mod:`rig.spec.ptp`):

- DeviceInfo ``Xiaomi`` / ``12S Ultra Concept`` with the unit's serial; one storage ``/store_00010001`` holding
  ``DCIM/`` (captures) and ``RIG/`` (the calibration profile slot ``PROFILE.BIN``).
- InitiateCapture renders ``BurstCount`` frames on the twin bench (``IMG_nnnn.DNG``, format 0x3811) and stores the
  assist outputs of the last frame beside it (``.HIS/.ZEB/.PKG``, :mod:`rig.spec.ptp_assist`), computed from
  the first request on, on a thread of their own, by :func:`rig.twin.firmware.assist_outputs`; a GetObject that
  finds them not ready within a second is answered Device Busy (the host asks again). Events: ObjectAdded per
  object, then CaptureComplete.
- Exposure time, ISO, f-number, battery, and the vendor properties (lens, sensor switch, assists, burst, CRC-32).
- The lens: the phone reads the bench state; :func:`rig.twin.firmware.lens_state` says what it reports and when
  the M-mount sensor takes over; LensAttached/LensDetached/SensorSwitched and DevicePropChanged events follow.
- SendObjectInfo/SendObject into the profile slot write ``bench.state.profile``; GetObject reads it back.

Only one host is served at a time, as a phone does: a second host is answered InitFail(busy) once the session
slot has stayed taken for the grace period. Captured frames are kept until the host deletes them or newer ones
push them out (a ring, oldest first).
"""

from rig.twin.ptpip_peer.faults import PtpFaults
from rig.twin.ptpip_peer.peer import PtpIpPeer
from rig.twin.ptpip_peer.transport import PeerBudgets

__all__ = ["PeerBudgets", "PtpFaults", "PtpIpPeer"]
