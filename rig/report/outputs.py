"""Everything written into ``reports/<run-id>/`` at the end of a run (or again by ``rig report``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from rig.errors import ConfigError
from rig.report.junit import write_junit
from rig.results.record import ReportState, RunRecord, atomic_write_text
from rig.results.reportdata import REPORT_DATA_FILE, ReportData
from rig.results.tables import write_csv, write_parquet

log = logging.getLogger(__name__)

RECORD_FILE = "record.json"
OUTPUT_FILES: dict[str, str] = {
    "record": RECORD_FILE,
    "plots": REPORT_DATA_FILE,
    "html": "report.html",
    "pdf": "report.pdf",
    "junit": "junit.xml",
    "csv": "measurements.csv",
    "parquet": "measurements.parquet",
}

Progress = Callable[[str], None]


def load_run_dir(run_dir: Path) -> tuple[RunRecord, ReportData | None]:
    """The record of a run folder and its report data (``None`` when the plan attached none)."""
    path = run_dir / RECORD_FILE
    if not path.is_file():
        raise ConfigError(path, "", "(missing)", "a run folder with record.json")
    data_path = run_dir / REPORT_DATA_FILE
    return RunRecord.load(path), ReportData.load(data_path) if data_path.is_file() else None


def write_run_outputs(
    record: RunRecord,
    run_dir: Path,
    *,
    plots: ReportData | None = None,
    pdf: bool = True,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Write the record, report data, report.html, report.pdf, junit.xml and measurements.csv/.parquet.

    The two halves :func:`write_verdict_outputs` and :func:`write_report_outputs`, one after the other; the record
    then says its report is :attr:`~rig.results.record.ReportState.COMPLETE`.

    Parameters
    ----------
    record
        The run (finished or not: an unfinished run gets an INCOMPLETE banner).
    run_dir
        ``reports/<run-id>``; thumbnails in ``plots`` are read relative to it.
    plots
        Curves, maps and checks to draw. ``None`` reuses ``run_dir/plots.json`` if a plan saved one.
    pdf
        Print ``report.pdf`` with headless Chromium (raises :class:`rig.report.pdf.ReportToolError` if absent).
    progress
        Called with the name of each file before it is written (for a progress display).

    Returns
    -------
    dict
        Output name (keys of :data:`OUTPUT_FILES`) → path written.
    """
    out = write_verdict_outputs(record, run_dir, plots=plots, progress=progress)
    out.update(write_report_outputs(record, run_dir, plots=plots, pdf=pdf, progress=progress))
    record.report = ReportState.COMPLETE
    record.artifacts = {name: path.name for name, path in out.items()}
    out["record"] = record.save(run_dir / RECORD_FILE)
    return out


def write_verdict_outputs(
    record: RunRecord, run_dir: Path, *, plots: ReportData | None = None, progress: Progress | None = None
) -> dict[str, Path]:
    """The light half, written before the verdict is printed: record.json, the report data, junit.xml (what the
    MES reads) and measurements.csv. No plot library is imported."""
    tell = progress or (lambda _name: None)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = {k: run_dir / v for k, v in OUTPUT_FILES.items()}
    out: dict[str, Path] = {}
    tell("record")
    out["record"] = record.save(path["record"])
    if plots is not None:
        tell("plots")
        out["plots"] = plots.save(path["plots"])
    elif path["plots"].is_file():
        out["plots"] = path["plots"]
    tell("junit")
    out["junit"] = write_junit(record, path["junit"])
    tell("csv")
    out["csv"] = write_csv(record, path["csv"])
    return out


def write_report_outputs(
    record: RunRecord,
    run_dir: Path,
    *,
    plots: ReportData | None = None,
    pdf: bool = True,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """The heavy half, written after the verdict is out: measurements.parquet, report.html with its plots
    (matplotlib) and report.pdf (headless Chromium, ~2 s)."""
    from rig.report.html import render_html  # matplotlib comes with the plots: only once the verdict is out
    from rig.report.pdf import print_pdf

    tell = progress or (lambda _name: None)
    path = {k: run_dir / v for k, v in OUTPUT_FILES.items()}
    if plots is None and path["plots"].is_file():
        plots = ReportData.load(path["plots"])
    out: dict[str, Path] = {}
    tell("parquet")
    out["parquet"] = write_parquet(record, path["parquet"])
    tell("html")
    out["html"] = atomic_write_text(path["html"], render_html(record, plots, run_dir))
    if pdf:
        tell("pdf")
        out["pdf"] = print_pdf(out["html"], path["pdf"])
    log.info("run %s: wrote %s", record.run_id, ", ".join(sorted(out)))
    return out
