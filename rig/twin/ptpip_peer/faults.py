"""Faults the twin phone injects (counts consumed by the next matching operations)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PtpFaults:
    """Faults the twin phone injects; each count is consumed by the next matching operation(s).

    ``drop_downloads``: GetObject of a frame sends part of the data, then the phone resets both TCP connections.
    ``corrupt_downloads``: GetObject of a frame serves bytes with flipped bits (the CRC-32 property stays right).
    ``truncated_frames``: the next captured frames are stored cut short (firmware wrote a short file; its CRC-32
    matches the short file, so only parsing the DNG shows it).
    ``stuck_captures``: InitiateCapture answers OK but the capture never completes (no events ever).
    """

    drop_downloads: int = 0
    corrupt_downloads: int = 0
    truncated_frames: int = 0
    stuck_captures: int = 0
