"""End of a run: report files and the results store. Neither may cost a measurement.

The record on disk is already complete when this runs (it is saved at the end of every step). If the report or
the store cannot be written (disk full, database down), the run keeps its verdict and the record says why the
outputs are missing; ``rig report RUN_ID`` can write them later.

Publishing is derived from the record and idempotent: the report files are rewritten from it and the store row is
an upsert keyed by the run id, so publishing twice leaves exactly one row. A process killed between saving the
verdict and publishing leaves a finished record without its outputs; ``--resume`` of that run (every step done)
calls :func:`complete_run`, which finishes the record if needed and publishes it again.

Publishing has two halves (issue #17): the verdict's (record, JUnit, CSV, store row), written before the verdict is
printed, and the report's (HTML with plots, Parquet, PDF), which ``rig signoff`` writes after printing it. Between
the two the record's ``report`` is PENDING; a process killed there leaves a PENDING run that ``rig report RUN`` or
``--resume RUN`` completes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rig.bench.recording import RECORD_FILE, RunRecorder
from rig.errors import RigError, RunStorageError

log = logging.getLogger(__name__)


def publish_run(
    recorder: RunRecorder, *, store_url: str | None, pdf: bool = True, defer_report: bool = False
) -> list[str]:
    """Write the report files and add the run to the store; returns the problems met (empty when all worked).

    ``defer_report``: write only the verdict's half (record, JUnit, CSV, store row; the record says its report is
    PENDING) and leave report.html, the Parquet table and report.pdf to :func:`finish_report`, which the caller
    runs once it has printed the verdict (issue #17: ~3 s of plots and Chromium off the critical path).
    """
    from rig.report.outputs import write_verdict_outputs
    from rig.results.record import ReportState
    from rig.results.store import open_store

    problems: list[str] = []
    record = recorder.record
    if recorder.capture_retention is not None and record.verdict is not None:
        from rig.bench.retention import apply_retention

        apply_retention(record, recorder.run_dir, recorder.capture_retention)
    record.report = ReportState.PENDING
    try:
        written = write_verdict_outputs(record, recorder.run_dir, plots=recorder.plots)
        record.artifacts = {name: path.name for name, path in written.items()}
    except (OSError, RigError) as exc:
        problems.append(f"report not written: {type(exc).__name__}: {exc}")
    url = store_url or str(recorder.run_dir.parent / "results.sqlite")
    try:
        store = open_store(url)
        try:
            store.add_run(record)
        finally:
            store.close()
    except (OSError, RigError) as exc:
        problems.append(f"results store {url} not updated: {type(exc).__name__}: {exc}")
    _note_problems(recorder, problems)
    if not defer_report and not problems:
        problems += finish_report(recorder, pdf=pdf)
    return problems


def finish_report(recorder: RunRecorder, *, pdf: bool = True) -> list[str]:
    """The heavy half of publishing (report.html with its plots, the Parquet table, report.pdf); the record then
    says its report is COMPLETE. Returns the problems met (a PENDING report stays PENDING)."""
    from rig.report.outputs import write_report_outputs
    from rig.results.record import ReportState

    problems: list[str] = []
    record = recorder.record
    try:
        written = write_report_outputs(record, recorder.run_dir, plots=recorder.plots, pdf=pdf)
        record.artifacts.update({name: path.name for name, path in written.items()})
        record.report = ReportState.COMPLETE
    except (OSError, RigError) as exc:
        problems.append(f"report not written: {type(exc).__name__}: {exc}")
    _note_problems(recorder, problems)
    return problems


def _note_problems(recorder: RunRecorder, problems: list[str]) -> None:
    """Keep the problems in the record's errors (once each) and save the record."""
    record = recorder.record
    if problems:
        record.errors.extend(p for p in problems if p not in record.errors)
        for problem in problems:
            log.error("%s: %s", recorder.run_dir, problem)
    try:
        recorder.save()
    except RunStorageError as exc:  # the last good record.json stays in place (atomic writes)
        log.error("record of %s not rewritten: %s", record.run_id, exc)


def finish_pending_report(run_dir: Path, *, pdf: bool = True) -> list[str]:
    """Finish the report of a run folder whose record says PENDING (the process printed its verdict and died, or
    the caller deferred it); nothing to do for any other run."""
    from rig.config.limits import load_limits
    from rig.results.record import ReportState, RunRecord
    from rig.results.reportdata import REPORT_DATA_FILE, ReportData

    record = RunRecord.load(run_dir / RECORD_FILE)
    if record.report is not ReportState.PENDING:
        return []
    plots_path = run_dir / REPORT_DATA_FILE
    plots = ReportData.load(plots_path) if plots_path.is_file() else None
    return finish_report(RunRecorder(record, run_dir, load_limits(record.plan), plots), pdf=pdf)


def complete_run(run_dir: Path, *, store_url: str | None, pdf: bool = True) -> list[str]:
    """Finish a run whose steps are all recorded (its verdict, if the process died before it) and publish it.

    Returns the problems met while publishing (see :func:`publish_run`).
    """
    from rig.config.limits import load_limits
    from rig.results.record import RunRecord
    from rig.results.reportdata import REPORT_DATA_FILE, ReportData

    record = RunRecord.load(run_dir / RECORD_FILE)
    plots_path = run_dir / REPORT_DATA_FILE
    plots = ReportData.load(plots_path) if plots_path.is_file() else None
    recorder = RunRecorder(record, run_dir, load_limits(record.plan), plots)
    if record.verdict is None:
        recorder.finish()
    return publish_run(recorder, store_url=store_url, pdf=pdf)
