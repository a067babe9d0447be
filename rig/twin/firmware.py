"""The phone firmware's own processing, as the twin's phone runs it, with the unit's injectable defects.

This is the *phone's* computation, served over PTP; :mod:`rig.measure.assist` is the bench's independent
reference computation of the same features, and the twin never imports it (it could grade itself otherwise).

What the phone's assists compute (the feature's specification, shared with the reference by documentation):

- **RAW histogram**: every Bayer sample (all four channels together) of the frame, black level subtracted and
  counted in ``histogram_bins`` equal bins over [0, white − black] DN; values below black go into bin 0 and
  values at white into the last bin.
- **Quad luma**: per 2×2 Bayer quad (RGGB), Y = 0.2126·R + 0.7152·(Gr + Gb)/2 + 0.0722·B on black-subtracted
  values, as a fraction of white − black (Rec. ITU-R BT.709 weights on camera RGB; no white balance).
- **Zebra**: quads whose luma is ≥ the threshold (% of white − black).
- **Focus peaking**: the Sobel gradient magnitude of quad luma, |∇Y| = √(Sx² + Sy²)/8 (the 3×3 Sobel kernels
  sum to 8× the central difference slope, so |∇Y| is in full-scale fractions per quad), marked where
  ≥ the peaking threshold. Borders are reflected without repeating the edge sample (OpenCV's default).

Defects (:class:`rig.config.unit.FirmwareTruth`): ``raw_bits`` < 10 drops LSBs of the RAW codes;
``histogram_bin_offset`` shifts the histogram's counts by that many bins (empty bins enter at the other end);
``zebra_threshold_offset_pct`` is added to the zebra threshold the phone applies (while it reports the one asked
for); ``peaking_threshold_factor`` scales the peaking threshold the same way; ``sensor_switch_latency_ms`` delays
the switch to the M-mount sensor after a lens is attached.
"""

from __future__ import annotations

import cv2
import numpy as np

from rig.config.unit import FirmwareTruth
from rig.spec.types import ActiveSensor, AssistOutputs, LensState
from rig.twin.state import BenchSnapshot

FULL_RAW_BITS = 10

_LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)


def apply_raw_defects(raw: np.ndarray, firmware: FirmwareTruth, *, black_level: int) -> np.ndarray:
    """The RAW codes as the phone's firmware writes them.

    With ``firmware.raw_bits`` < 10 the phone drops the low ``10 − raw_bits`` bits of the signal above black
    (floor towards −∞, so the black pedestal itself survives when it is a multiple of the step).

    Parameters
    ----------
    raw
        Integer Bayer mosaic (DN), as the sensor read it out.
    firmware
        The unit's firmware behaviour.
    black_level
        Black pedestal (DN).

    Returns
    -------
    numpy.ndarray
        ``raw`` itself when the firmware keeps every bit (the twin hands over its fresh read-out: copying a
        full-size frame cost ~0.1 s per capture), else a new array of the same dtype and shape.
    """
    drop = FULL_RAW_BITS - firmware.raw_bits
    if drop <= 0:
        return raw
    step = 1 << drop
    signal = raw.astype(np.int32) - black_level
    return (np.floor_divide(signal, step) * step + black_level).clip(0, None).astype(raw.dtype)


def quad_luma(raw: np.ndarray, *, black_level: int, white_level: int) -> np.ndarray:
    """Luma per RGGB quad as a fraction of white − black (float32, half the raw size)."""
    h, w = raw.shape
    h2, w2 = h - h % 2, w - w % 2

    def plane(dy: int, dx: int) -> np.ndarray:
        # one CFA plane at a time: converting the whole mosaic first cost a 200 MB float copy per full-size frame
        return raw[dy:h2:2, dx:w2:2].astype(np.float32) - np.float32(black_level)

    r = plane(0, 0)
    g = 0.5 * (plane(0, 1) + plane(1, 0))
    b = plane(1, 1)
    wr, wg, wb = _LUMA_WEIGHTS
    return (wr * r + wg * g + wb * b) / np.float32(white_level - black_level)


def raw_histogram(raw: np.ndarray, *, black_level: int, white_level: int, bins: int) -> np.ndarray:
    """Counts of all Bayer samples in ``bins`` equal bins over [0, white − black] DN above black (int64).

    The samples are counted per code first, then the codes are binned: a full-size frame holds 50 M samples but at
    most 65 536 distinct codes, so binning each sample (an int64 copy of the frame and three passes over it) cost
    ~3 s of CPU per full-readout frame against ~0.1 s this way, with the same counts.
    """
    per_code = _code_counts(raw)
    span = white_level - black_level
    signal = np.clip(np.arange(per_code.size, dtype=np.int64) - black_level, 0, span)
    index = np.minimum(signal * bins // (span + 1), bins - 1)
    return np.bincount(index, weights=per_code, minlength=bins).astype(np.int64)


def _code_counts(raw: np.ndarray, *, chunk: int = 1 << 20) -> np.ndarray:
    """How many samples hold each code (int64, index = code), counted ~1 M samples at a time (bounded memory)."""
    flat = raw.reshape(-1)
    if flat.dtype.kind not in "ui" or (flat.dtype.kind == "i" and flat.size and int(flat.min()) < 0):
        raise ValueError(f"an integer RAW mosaic with codes >= 0, got dtype {raw.dtype}")
    size = int(flat.max()) + 1 if flat.size else 1
    counts = np.zeros(size, dtype=np.int64)
    for start in range(0, flat.size, chunk):
        counts += np.bincount(flat[start : start + chunk], minlength=size)
    return counts


def _shift_bins(hist: np.ndarray, offset: int) -> np.ndarray:
    shifted = np.zeros_like(hist)
    if offset >= 0:
        shifted[offset:] = hist[: hist.size - offset]
    else:
        shifted[:offset] = hist[-offset:]
    return shifted


def _sobel_magnitude(luma: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    return np.sqrt(gx * gx + gy * gy) / np.float32(8.0)


def assist_outputs(
    raw: np.ndarray,
    firmware: FirmwareTruth,
    *,
    black_level: int,
    white_level: int,
    zebra_threshold_pct: float,
    peaking_threshold: float,
    histogram_bins: int = 256,
) -> AssistOutputs:
    """The phone's histogram, zebra and focus-peaking outputs for one RAW frame (defects included).

    Parameters
    ----------
    raw
        The Bayer mosaic the phone captured (after :func:`apply_raw_defects`), DN.
    firmware
        The unit's firmware behaviour and defects.
    black_level, white_level
        Black pedestal and white level (DN).
    zebra_threshold_pct
        Zebra threshold asked for (% of white − black); the phone reports this value.
    peaking_threshold
        Peaking threshold asked for (quad-luma full-scale fraction per quad); the phone reports this value.
    histogram_bins
        Number of histogram bins.

    Returns
    -------
    AssistOutputs
        Histogram (int64 counts), zebra and peaking masks (bool, one per Bayer quad).
    """
    if histogram_bins < 1:
        raise ValueError(f"histogram_bins >= 1, got {histogram_bins}")
    hist = raw_histogram(raw, black_level=black_level, white_level=white_level, bins=histogram_bins)
    hist = _shift_bins(hist, firmware.histogram_bin_offset)
    luma = quad_luma(raw, black_level=black_level, white_level=white_level)
    zebra = luma >= np.float32((zebra_threshold_pct + firmware.zebra_threshold_offset_pct) / 100.0)
    peaking = _sobel_magnitude(luma) >= np.float32(peaking_threshold * firmware.peaking_threshold_factor)
    return AssistOutputs(
        histogram=hist,
        histogram_bins=histogram_bins,
        zebra_mask=zebra,
        zebra_threshold_pct=zebra_threshold_pct,
        peaking_mask=peaking,
        peaking_threshold=peaking_threshold,
    )


def lens_state(snapshot: BenchSnapshot, firmware: FirmwareTruth, *, lens_code: int | None) -> LensState:
    """What the phone reports about the bayonet at ``snapshot.time_ns``.

    Timestamps are the phone's clock in ms, which the twin takes as its simulated clock. The phone switches to the
    M-mount sensor ``firmware.sensor_switch_latency_ms`` after the lens is attached; before that it still reports
    the main sensor and no switch time.
    """
    if not snapshot.lens_attached or snapshot.lens_attached_at_ns is None:
        return LensState(attached=False, lens_code=None, active_sensor=ActiveSensor.MAIN)
    attached_ms = snapshot.lens_attached_at_ns / 1e6
    switched_ms = attached_ms + firmware.sensor_switch_latency_ms
    switched = snapshot.time_ns / 1e6 >= switched_ms
    return LensState(
        attached=True,
        lens_code=lens_code,
        active_sensor=ActiveSensor.M_MOUNT if switched else ActiveSensor.MAIN,
        attached_at_ms=attached_ms,
        sensor_switched_at_ms=switched_ms if switched else None,
    )
