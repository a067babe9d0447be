"""A through-focus sweep's MTF50 rows, measured while the rail moves on (issue #17).

The sweep's edges are found on its reference frame, the one nearest the middle of the rail range
(:func:`rig.measure.focus.sweep_reference_index`): there the edges are sharpest. Each frame's row is the MTF50 of
every one of those edges on that frame (:func:`rig.measure.focus.edge_mtf50_row`). Waiting for the reference
leaves the frames before it unmeasured until half the sweep is taken, and their rows then pile up after the last
frame: at real rail speed that backlog was most of the 0.5–0.8 s the flange step ran past its hardware time.

So while the rail moves to the reference, each earlier frame is measured on the edges found on itself. An edge's
MTF50 on a frame depends on nothing but the frame's pixels inside the edge's ROI box and the edge's orientation
(:func:`rig.measure.edges.crops_mtf50` is a pure function of the crops), so a value measured on a frame's own edges
*is* the reference's value wherever the two ROI boxes coincide (golden twin sweep: 35 of 76 on the first frame,
70 of 76 on the one before the reference); only the others are measured once the reference's edges are known. The
rows are the serial bench's rows, bit for bit, however many edges the early frames share with the reference. A
frame on which no edges are found early just contributes nothing ahead; the inline (``--pipeline off``) bench
skips the early measuring altogether.
"""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np

from rig.bench.ops import Frame
from rig.bench.pipeline import MeasurementPool, PipelineMode, gather
from rig.measure.edges import EdgeRoi, crops_mtf50, edge_crops, find_edges
from rig.measure.sfr import EdgeOrientation

AHEAD_MAX_PIXELS = 16_000_000
"""Frames larger than this are not measured ahead: finding the edges of a full 8192 × 6144 read-out costs more CPU
than the backlog it saves, on a bench whose full-readout sign-off is CPU-bound anyway."""

RoiBox = tuple[int, int, int, int, EdgeOrientation]
"""What an edge's MTF50 on a given frame depends on: its ROI (x, y, w, h, read-out px) and orientation."""


def roi_box(roi: EdgeRoi) -> RoiBox:
    return (roi.x, roi.y, roi.w, roi.h, roi.orientation)


class SweepRows:
    """Collects a sweep's frames as they are taken and measures their rows in the bench's pool.

    ``reference``: index of the frame whose edges every row is measured on.
    """

    def __init__(self, pool: MeasurementPool, reference: int) -> None:
        self._pool = pool
        self._reference = reference
        self._frames: list[Frame] = []
        self._ahead: dict[int, Future[dict[RoiBox, float]]] = {}
        self._rois: Future[list[EdgeRoi]] | None = None
        self._rows: list[Future[np.ndarray]] = []

    def add(self, frame: Frame) -> None:
        """The next frame of the sweep, just taken."""
        index = len(self._frames)
        self._frames.append(frame)
        if index < self._reference:
            # the pool has nothing else to do while the rail moves
            if self._pool.mode is PipelineMode.ON and frame.raw.size <= AHEAD_MAX_PIXELS:
                self._ahead[index] = self._pool.submit(self._measure_ahead, frame)
            return
        if index == self._reference:
            image = frame.image
            self._rois = self._pool.submit(
                find_edges, frame.raw, cfa_pattern=image.cfa_pattern, black_level=image.black_level
            )
            # submitted after what they wait for (the ahead measures, the edges): the pool's queue is FIFO, so a
            # row never holds a thread that what it waits for would need
            self._rows = [self._pool.submit(self._row, i) for i in range(index + 1)]
        else:
            self._rows.append(self._pool.submit(self._row, index))

    def result(self) -> tuple[list[EdgeRoi], list[np.ndarray]] | None:
        """The reference's edges and every frame's row (waits for the analyses still running); None when the sweep
        never reached its reference frame."""
        if self._rois is None:
            return None
        return self._rois.result(), gather(self._rows)

    def _measure_ahead(self, frame: Frame) -> dict[RoiBox, float]:
        """MTF50 of the edges found on ``frame`` itself, by ROI box; empty where that fails (the row, measured on
        the reference's edges, meets any real error itself)."""
        image = frame.image
        try:
            rois = find_edges(frame.raw, cfa_pattern=image.cfa_pattern, black_level=image.black_level)
            values = self._measure(frame, rois)
        except Exception:
            return {}
        return {roi_box(roi): float(value) for roi, value in zip(rois, values, strict=True)}

    def _row(self, index: int) -> np.ndarray:
        """Frame ``index``'s MTF50 on the reference's edges: measured ahead where the boxes coincide, else now."""
        assert self._rois is not None  # rows are submitted once the edges are
        rois = self._rois.result()
        ahead = self._ahead[index].result() if index in self._ahead else {}
        frame = self._frames[index]
        missing = [i for i, roi in enumerate(rois) if roi_box(roi) not in ahead]
        row = np.array([ahead.get(roi_box(roi), np.nan) for roi in rois], dtype=np.float64)
        if missing:
            row[missing] = self._measure(frame, [rois[i] for i in missing])
        return row

    def _measure(self, frame: Frame, rois: list[EdgeRoi]) -> np.ndarray:
        """MTF50 of ``rois`` on ``frame``, the edges split over the analysis processes (the last frame's row is
        what the step waits for after its last capture)."""
        image = frame.image
        crops = edge_crops(frame.raw, rois)
        parts = np.array_split(np.arange(len(rois)), max(1, min(self._pool.processes, len(rois))))
        values = self._pool.compute_each(
            crops_mtf50,
            [([crops[i] for i in part], [rois[i].orientation for i in part]) for part in parts],
            cfa_pattern=image.cfa_pattern,
            black_level=image.black_level,
            white_level=image.white_level,
        )
        return np.concatenate(values) if values else np.array([], dtype=np.float64)
