"""End of a run: report files and the results store. Neither may cost a measurement.

The record on disk is already complete when this runs (it is saved after every measurement). If the report or
the store cannot be written (disk full, database down), the run keeps its verdict and the record says why the
outputs are missing; ``rig report RUN_ID`` can write them later.
"""

from __future__ import annotations

import logging

from rig.bench.recording import RunRecorder
from rig.errors import RigError

log = logging.getLogger(__name__)


def publish_run(recorder: RunRecorder, *, store_url: str | None, pdf: bool = True) -> list[str]:
    """Write the report files and add the run to the store; returns the problems met (empty when all worked)."""
    from rig.report.outputs import write_run_outputs
    from rig.results.store import open_store

    problems: list[str] = []
    record = recorder.record
    try:
        written = write_run_outputs(record, recorder.run_dir, plots=recorder.plots, pdf=pdf)
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
    if problems:
        record.errors.extend(problems)
        for problem in problems:
            log.error("%s", problem)
    try:
        recorder.save()
    except OSError as exc:  # the last good record.json stays in place (atomic writes)
        log.error("record of %s not rewritten: %s", record.run_id, exc)
    return problems
