"""Report test data: a sign-off-like run with failures, errors, skips and report data, built from known laws."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np

from rig.results.record import MeasurementRecord, RunRecord, StepRecord, Verdict
from rig.results.reportdata import (
    Check,
    ChecksPlot,
    CurvesPlot,
    FieldPlot,
    FieldPoint,
    HeatmapPlot,
    RefLine,
    ReportData,
    Series,
    Thumbnail,
)
from tests.results.factory import BASE_TIME, make_run

ZONES = {"center": 0.0, "mid": 0.5, "corner": 0.9}


def signoff_record(rng: np.random.Generator) -> RunRecord:
    """A finished sign-off run that FAILs: one limit missed, one measurement ERROR, one SKIP, one step retried."""
    record = make_run(
        rng, run_id="20261102T080000-XM12SU-000042-signoff", unit_serial="XM12SU-000042", started=BASE_TIME
    )
    t = BASE_TIME + timedelta(seconds=30)
    record.measurements[0] = record.measurements[0].model_copy(update={"value": 0.21, "verdict": Verdict.FAIL})
    record.measurements[4] = record.measurements[4].model_copy(
        update={"value": None, "verdict": Verdict.ERROR, "error": "DeviceTimeout: phone did not answer in 5.0 s"}
    )
    record.measurements.append(
        MeasurementRecord(
            name="zebra_iou",
            step="test_features",
            value=None,
            unit="",
            low=0.9,
            verdict=Verdict.SKIP,
            error="unit firmware has no zebra output",
            timestamp=t,
        )
    )
    record.steps.append(
        StepRecord(
            name="test_stability",
            verdict=Verdict.ERROR,
            started=t,
            ended=t + timedelta(seconds=4),
            error="DeviceLost: GRBL port closed",
            retries=2,
        )
    )
    record.steps[0] = record.steps[0].model_copy(update={"retries": 1, "verdict": Verdict.FAIL})
    record.errors.append("test_stability: DeviceLost: GRBL port closed")
    record.verdict = Verdict.FAIL
    return record


def signoff_report_data(run_dir: Path) -> ReportData:
    """Curves from closed forms: Gaussian MTF per zone, parabolic through-focus, cos⁴ shading, damped sine."""
    f = np.linspace(0, 0.5, 26)
    mtf = [
        Series(label=z, zone=z, x=f.tolist(), y=np.exp(-((f / (0.42 - 0.15 * r)) ** 2)).tolist())
        for z, r in ZONES.items()
    ]
    dz = np.linspace(-20, 20, 21)
    through = [Series(label=z, x=dz.tolist(), y=(0.4 - 0.0004 * (dz - 3 * r) ** 2).tolist()) for z, r in ZONES.items()]
    gy, gx = np.mgrid[-1:1:11j, -1:1:11j]
    shading = np.cos(np.arctan(np.hypot(gx, gy * 0.75) * 0.6)) ** 4
    t_ms = np.linspace(0, 500, 101)
    trace = 12 * np.exp(-t_ms / 80) * np.cos(2 * np.pi * t_ms / 60)
    points = [
        FieldPoint(x=x, y=y, value=2.0 + 1.5 * x - 0.8 * y, label=lab)
        for lab, x, y in (("C", 0, 0), ("TL", -0.8, -0.8), ("TR", 0.8, -0.8), ("BL", -0.8, 0.8), ("BR", 0.8, 0.8))
    ]
    preview = np.tile(np.linspace(30, 220, 640, dtype=np.uint8), (480, 1))
    cv2.rectangle(preview, (200, 150), (440, 330), 255, -1)
    (run_dir / "previews").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(run_dir / "previews" / "sfr.png"), preview)
    return ReportData(
        plots=[
            CurvesPlot(
                name="mtf",
                title="MTF per zone",
                x_label="frequency",
                x_unit="cy/px",
                y_label="MTF",
                series=mtf,
                hlines=[RefLine(value=0.5, label="MTF50")],
            ),
            CurvesPlot(
                name="through_focus",
                title="Through focus",
                x_label="defocus",
                x_unit="µm",
                y_label="MTF50",
                y_unit="cy/px",
                series=through,
                vlines=[RefLine(value=0.0, label="nominal")],
            ),
            FieldPlot(
                name="tilt",
                title="Best focus over the field",
                unit="µm",
                points=points,
                plane_offset=2.0,
                plane_slope_x=1.5,
                plane_slope_y=-0.8,
            ),
            HeatmapPlot(name="shading", title="Relative illumination (11×11 blocks)", values=shading.tolist()),
            CurvesPlot(
                name="stability",
                title="Settling after a knock",
                x_label="time",
                x_unit="ms",
                y_label="image shift",
                y_unit="µm",
                series=[Series(label="x", x=t_ms.tolist(), y=trace.tolist())],
            ),
            ChecksPlot(
                name="features",
                title="Camera features",
                checks=[
                    Check(name="raw_bit_depth", expected="10 bits, no missing codes", observed="10 bits", ok=True),
                    Check(name="histogram", expected="max error ≤ 2 %", observed="7.5 %", ok=False, detail="bin 255"),
                ],
            ),
        ],
        thumbnails=[
            Thumbnail(path="previews/sfr.png", caption="SFR chart, focus position"),
            Thumbnail(path="previews/missing.png", caption="not written"),
        ],
    )
