"""Faults the twin phone injects (counts consumed by the next matching operations)."""

from __future__ import annotations

from dataclasses import dataclass

LIBGPHOTO2_PTPIP_READ_TIMEOUT_S = 2.5
"""How long libgphoto2 waits for each read on a PTP/IP socket: ``PTPIP_DEFAULT_TIMEOUT_S`` 2 +
``PTPIP_DEFAULT_TIMEOUT_MS`` 500 (camlibs/ptp2/ptpip-private.h, used by ``ptpip_read_with_timeout`` in
camlibs/ptp2/ptpip.c). A phone silent for longer in the middle of a transfer makes the host give up."""


@dataclass
class PtpFaults:
    """Faults the twin phone injects; each count is consumed by the next matching operation(s).

    ``drop_downloads``: GetObject of a frame sends part of the data, then the phone resets both TCP connections.
    ``corrupt_downloads``: GetObject of a frame serves bytes with flipped bits (the CRC-32 property stays right).
    ``truncated_frames``: the next captured frames are stored cut short (firmware wrote a short file; its CRC-32
    matches the short file, so only parsing the DNG shows it).
    ``stuck_captures``: InitiateCapture answers OK but the capture never completes (no events ever).
    ``stalled_downloads``: GetObject of a frame or an assist output sends half the data, then the phone goes
    quiet for ``stall_s`` of wall time (a busy phone, a slow USB link; longer than
    :data:`LIBGPHOTO2_PTPIP_READ_TIMEOUT_S`, the host gives up), then sends the rest and its response as if
    nothing happened. A host that hangs up meanwhile ends the session at once.
    """

    drop_downloads: int = 0
    corrupt_downloads: int = 0
    truncated_frames: int = 0
    stuck_captures: int = 0
    stalled_downloads: int = 0
    stall_s: float = 2 * LIBGPHOTO2_PTPIP_READ_TIMEOUT_S
