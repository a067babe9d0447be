"""Camera features checked against our own computation on the same frame: RAW histogram, zebra and focus-peaking
masks, peaking-based focus, RAW bit depth and the sensor-switch latency.

The reference computations follow the features' specification (the phone's documented behaviour):

- RAW histogram: all Bayer samples, black subtracted, ``bins`` equal bins over [0, white − black] DN (values
  below black count in bin 0, white in the last).
- Quad luma: per RGGB quad, Y = 0.2126·R + 0.7152·(Gr + Gb)/2 + 0.0722·B on black-subtracted values, over
  white − black (BT.709 weights on camera RGB).
- Zebra: quad luma ≥ threshold %. Peaking: Sobel gradient magnitude of quad luma, √(Sx² + Sy²)/8, ≥ threshold
  (full-scale fraction per quad), borders mirrored.

They are written independently of the twin's firmware (:mod:`rig.twin.firmware`) with NumPy/SciPy, so a bug in
one does not hide in the other. Besides agreement (histogram intersection, IoU), each check *estimates* what the
phone did (the bin offset, the threshold it really applied), which names the defect rather than only flagging it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from rig.errors import MeasurementError
from rig.spec.types import LensState

_LUMA = (0.2126, 0.7152, 0.0722)


@dataclass(frozen=True)
class HistogramAgreement:
    """Our RAW histogram against the phone's.

    ``intersection`` = Σ min(ours, phone) / Σ ours at zero offset (1 = identical); ``bin_offset`` is the shift of
    the phone's histogram (bins, + = towards brighter) that best matches ours, with ``intersection_at_offset``.
    """

    bins: int
    intersection: float
    bin_offset: int
    intersection_at_offset: float
    total_ours: int
    total_phone: int


@dataclass(frozen=True)
class MaskAgreement:
    """A phone mask (zebra or peaking) against ours.

    ``iou`` = |ours ∩ phone| / |ours ∪ phone| (1 when both are empty); ``effective_threshold`` is the threshold
    that best explains the phone's mask on our quantity (fewest disagreeing quads), in the threshold's own unit
    (zebra: % of white − black; peaking: full-scale fraction per quad); ``threshold_ratio`` = effective / asked.
    """

    iou: float
    marked_ours: int
    marked_phone: int
    threshold: float
    effective_threshold: float
    threshold_error: float
    threshold_ratio: float


@dataclass(frozen=True)
class PeakingFocus:
    """Best focus from the peaking coverage of a through-focus sweep against the SFR best focus (rail mm)."""

    peaking_best_rail_mm: float
    sfr_best_rail_mm: float
    difference_mm: float


@dataclass(frozen=True)
class BitDepth:
    """RAW codes actually used on a gradient or a noisy flat ramp.

    Attributes
    ----------
    code_range
        (lowest, highest) signal code (DN above black) of the 0.1–99.9 % span of the samples.
    codes_in_range, distinct_codes, missing_codes
        Codes the span holds, codes that occur, codes that never occur.
    missing_fraction
        missing_codes / codes_in_range.
    effective_bits
        Nominal bits + log₂(distinct / in range): 10 for a full 10-bit readout, 9 when every other code is missing.
    stuck_bits
        Bit positions (0 = LSB) constant over every sample although the span covers them.
    """

    nominal_bits: int
    code_range: tuple[int, int]
    codes_in_range: int
    distinct_codes: int
    missing_codes: int
    missing_fraction: float
    effective_bits: float
    stuck_bits: tuple[int, ...]

    @property
    def lsb_stuck(self) -> bool:
        return 0 in self.stuck_bits


@dataclass(frozen=True)
class SwitchLatency:
    """Time from the lens being attached to the phone switching to the M-mount sensor (phone clock)."""

    latency_ms: float
    attached_at_ms: float
    switched_at_ms: float


def reference_histogram(raw: np.ndarray, *, black_level: int, white_level: int, bins: int) -> np.ndarray:
    """Our RAW histogram per the specification above (int64 counts).

    The samples are tallied per code first (:func:`_code_tally`), then the codes are binned with their tallies as
    weights: the same counts as binning every sample, but a full-size frame's 50 M samples hold at most 65 536
    codes, so binning them one by one cost ~3 s of CPU per full-readout frame.
    """
    span = white_level - black_level
    codes, tally = _code_tally(raw)
    signal = np.clip(codes - black_level, 0, span)
    counts, _ = np.histogram(signal, bins=bins, range=(0, span + 1), weights=tally)
    return np.rint(counts).astype(np.int64)


_EXACT_FLOAT32_COUNT = 1 << 23
"""OpenCV's histogram counts in float32, exact up to 2²⁴; blocks of at most 2²³ samples keep every count exact."""


def _code_tally(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, number of samples at each code) of an integer mosaic, both int64."""
    image = np.asarray(raw)
    if image.dtype not in (np.uint8, np.uint16) or image.ndim != 2:
        codes, tally = np.unique(image.astype(np.int64), return_counts=True)
        return codes, tally.astype(np.int64)
    levels = 1 << (8 * image.dtype.itemsize)
    tally = np.zeros(levels, dtype=np.int64)
    rows = max(1, _EXACT_FLOAT32_COUNT // max(1, image.shape[1]))
    for start in range(0, image.shape[0], rows):
        block = np.ascontiguousarray(image[start : start + rows])
        tally += cv2.calcHist([block], [0], None, [levels], [0, levels]).ravel().astype(np.int64)
    return np.arange(levels, dtype=np.int64), tally


def _overlap(ours: np.ndarray, phone: np.ndarray, offset: int) -> float:
    """Σ min(ours, phone shifted back by ``offset``) / Σ ours."""
    n = ours.size
    if offset >= 0:
        a, b = ours[: n - offset], phone[offset:]
    else:
        a, b = ours[-offset:], phone[: n + offset]
    return float(np.minimum(a, b).sum()) / float(ours.sum())


def histogram_agreement(
    raw: np.ndarray,
    phone_histogram: np.ndarray,
    *,
    black_level: int,
    white_level: int,
    max_offset: int = 16,
) -> HistogramAgreement:
    """Compare the phone's RAW histogram with ours on the same frame.

    Parameters
    ----------
    raw
        The Bayer mosaic the phone computed its histogram on (DN).
    phone_histogram
        The phone's counts per bin (its length sets the bin count).
    black_level, white_level
        DN.
    max_offset
        Largest bin shift searched for.

    Raises
    ------
    MeasurementError
        An empty histogram or a frame without samples.
    """
    phone = np.asarray(phone_histogram, dtype=np.int64).ravel()
    if phone.size < 2:
        raise MeasurementError(f"a histogram of at least 2 bins, got {phone.size}")
    ours = reference_histogram(raw, black_level=black_level, white_level=white_level, bins=phone.size)
    if ours.sum() == 0:
        raise MeasurementError("a frame with samples to histogram")
    reach = min(max_offset, phone.size - 1)
    scores = {k: _overlap(ours, phone, k) for k in range(-reach, reach + 1)}
    # ties (a flat histogram) go to the smallest shift
    best = max(scores, key=lambda k: (round(scores[k], 12), -abs(k)))
    return HistogramAgreement(
        bins=phone.size,
        intersection=scores[0],
        bin_offset=best,
        intersection_at_offset=scores[best],
        total_ours=int(ours.sum()),
        total_phone=int(phone.sum()),
    )


def reference_quad_luma(raw: np.ndarray, *, black_level: int, white_level: int) -> np.ndarray:
    """Our quad luma (fraction of white − black, float64, half the raw size) per the specification above."""
    h, w = raw.shape[0] // 2 * 2, raw.shape[1] // 2 * 2
    quads = (raw[:h, :w].astype(np.float64) - black_level).reshape(h // 2, 2, w // 2, 2)
    r, gr, gb, b = quads[:, 0, :, 0], quads[:, 0, :, 1], quads[:, 1, :, 0], quads[:, 1, :, 1]
    return (_LUMA[0] * r + _LUMA[1] * 0.5 * (gr + gb) + _LUMA[2] * b) / (white_level - black_level)


def reference_gradient(luma: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of quad luma, /8 (full-scale fraction per quad), mirrored borders."""
    gx = ndimage.sobel(luma, axis=1, mode="mirror")
    gy = ndimage.sobel(luma, axis=0, mode="mirror")
    return np.hypot(gx, gy) / 8.0


def _best_threshold(values: np.ndarray, mask: np.ndarray) -> float:
    """The threshold τ for which ``values ≥ τ`` disagrees with ``mask`` on the fewest elements (midpoint of the gap)."""
    order = np.argsort(values.ravel(), kind="stable")
    v = values.ravel()[order]
    m = mask.ravel()[order]
    # τ placed before sorted index k: marked below it and unmarked from it on are the disagreements
    marked_below = np.concatenate([[0], np.cumsum(m)])
    unmarked_above = np.concatenate([np.cumsum((~m)[::-1])[::-1], [0]])
    k = int(np.argmin(marked_below + unmarked_above))
    if k == 0:
        return float(v[0])
    if k == v.size:
        return float(v[-1])
    return 0.5 * float(v[k - 1] + v[k])


def _mask_agreement(ours_value: np.ndarray, phone_mask: np.ndarray, threshold: float, name: str) -> MaskAgreement:
    phone = np.asarray(phone_mask, dtype=bool)
    if phone.shape != ours_value.shape:
        raise MeasurementError(f"{name} mask of one value per Bayer quad {ours_value.shape}, got {phone.shape}")
    ours = ours_value >= threshold
    union = int(np.count_nonzero(ours | phone))
    iou = 1.0 if union == 0 else int(np.count_nonzero(ours & phone)) / union
    effective = _best_threshold(ours_value, phone)
    return MaskAgreement(
        iou=iou,
        marked_ours=int(ours.sum()),
        marked_phone=int(phone.sum()),
        threshold=threshold,
        effective_threshold=effective,
        threshold_error=effective - threshold,
        threshold_ratio=effective / threshold if threshold else math.nan,
    )


def zebra_agreement(
    raw: np.ndarray, phone_mask: np.ndarray, *, black_level: int, white_level: int, threshold_pct: float
) -> MaskAgreement:
    """The phone's zebra mask against ours; thresholds in % of white − black.

    Use a frame whose luma covers the threshold densely (a gradient), or the effective threshold is only
    bracketed by the nearest luma values present.
    """
    luma_pct = 100.0 * reference_quad_luma(raw, black_level=black_level, white_level=white_level)
    return _mask_agreement(luma_pct, phone_mask, threshold_pct, "zebra")


def peaking_agreement(
    raw: np.ndarray, phone_mask: np.ndarray, *, black_level: int, white_level: int, threshold: float
) -> MaskAgreement:
    """The phone's focus-peaking mask against ours; threshold in full-scale fraction per quad."""
    luma = reference_quad_luma(raw, black_level=black_level, white_level=white_level)
    return _mask_agreement(reference_gradient(luma), phone_mask, threshold, "peaking")


def peaking_focus(
    rail_mm: np.ndarray | list[float],
    coverage: np.ndarray | list[float],
    *,
    sfr_best_rail_mm: float,
) -> PeakingFocus:
    """Best focus where the peaking coverage peaks, against the SFR best focus.

    The coverage (fraction of quads marked) of a through-focus sweep is fitted with a parabola over the five
    positions around its maximum; the vertex is the peaking best focus.

    Raises
    ------
    MeasurementError
        Fewer than 5 positions, or a coverage with no interior maximum.
    """
    z = np.asarray(rail_mm, dtype=float)
    c = np.asarray(coverage, dtype=float)
    if z.size != c.size or z.size < 5:
        raise MeasurementError(f"at least 5 rail positions with one coverage each, got {z.size} and {c.size}")
    order = np.argsort(z)
    z, c = z[order], c[order]
    k = int(np.argmax(c))
    if k in (0, z.size - 1):
        raise MeasurementError("peaking coverage has no maximum inside the sweep: widen it around focus")
    lo = min(max(k - 2, 0), z.size - 5)
    a, b, _ = np.polyfit(z[lo : lo + 5], c[lo : lo + 5], 2)
    if a >= 0:
        raise MeasurementError("peaking coverage has no maximum inside the sweep: widen it around focus")
    vertex = -b / (2 * a)
    if not z[0] <= vertex <= z[-1]:
        raise MeasurementError(f"peaking best focus {vertex:.3f} mm lies outside the sweep {z[0]}..{z[-1]} mm")
    return PeakingFocus(
        peaking_best_rail_mm=float(vertex),
        sfr_best_rail_mm=sfr_best_rail_mm,
        difference_mm=float(vertex) - sfr_best_rail_mm,
    )


def raw_bit_depth(raw: np.ndarray, *, black_level: int, white_level: int, nominal_bits: int = 10) -> BitDepth:
    """Codes used by a RAW frame of a gradient (or a flat field with enough noise to dither the codes).

    Raises
    ------
    MeasurementError
        A frame whose samples span fewer than 8 codes: nothing to tell the bits apart.
    """
    # one tally of the codes instead of sorting the samples: the same order statistics and code set (a full-size
    # frame is 50 M samples; an int64 copy of it alone cost more than the tally)
    span = white_level - black_level
    if span <= 0:
        raise MeasurementError(f"a white level above black, got black {black_level} and white {white_level}")
    codes, tally = _code_tally(raw)
    keep = (codes >= black_level) & (codes < white_level)
    counts = np.zeros(span, dtype=np.int64)
    counts[codes[keep] - black_level] = tally[keep]
    total = int(counts.sum())
    if total == 0:
        raise MeasurementError("samples between black and white to count codes on")
    cumulative = np.cumsum(counts)
    lo, hi = (_percentile_code(cumulative, total, q) for q in (0.1, 99.9))
    if hi - lo < 8:
        raise MeasurementError(f"a gradient spanning at least 8 codes, got {lo}..{hi} DN above black")
    present = np.flatnonzero(counts[lo : hi + 1]) + lo
    distinct = int(present.size)
    in_range = hi - lo + 1
    stuck = tuple(
        bit for bit in range(nominal_bits) if (1 << (bit + 1)) <= hi - lo and np.unique((present >> bit) & 1).size == 1
    )
    return BitDepth(
        nominal_bits=nominal_bits,
        code_range=(lo, hi),
        codes_in_range=in_range,
        distinct_codes=distinct,
        missing_codes=in_range - distinct,
        missing_fraction=(in_range - distinct) / in_range,
        effective_bits=nominal_bits + math.log2(distinct / in_range),
        stuck_bits=stuck,
    )


def _percentile_code(cumulative: np.ndarray, total: int, q: float) -> int:
    """``int(np.percentile(samples, q))`` (linear method) from the samples' cumulative code histogram."""
    position = q / 100.0 * (total - 1)
    below = math.floor(position)
    lower = int(np.searchsorted(cumulative, below, side="right"))
    upper = int(np.searchsorted(cumulative, min(below + 1, total - 1), side="right"))
    return int(lower + (position - below) * (upper - lower))


def sensor_switch_latency(state: LensState) -> SwitchLatency:
    """Latency from lens attached to M-mount sensor active, from the phone's own event timestamps.

    Raises
    ------
    MeasurementError
        The phone reports no lens, or has not (yet) switched sensors.
    """
    if not state.attached or state.attached_at_ms is None:
        raise MeasurementError("the phone reports no lens attached: no sensor switch to time")
    if state.sensor_switched_at_ms is None:
        raise MeasurementError(f"the phone has not switched to the M-mount sensor (active: {state.active_sensor})")
    latency = state.sensor_switched_at_ms - state.attached_at_ms
    if latency < 0:
        raise MeasurementError(f"sensor switched {-latency:.1f} ms before the lens was attached: phone clock fault")
    return SwitchLatency(
        latency_ms=latency, attached_at_ms=state.attached_at_ms, switched_at_ms=state.sensor_switched_at_ms
    )
