"""kill -9 at seeded random moments of a sign-off, then --resume (issue #20): record, report and exactly one store
row per run, no measurement lost. Three kills here (a few minutes); ``benchmarks/kill_resume.py`` runs twenty."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.cli.soak import run_kill_resume

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def test_three_kills_then_resume_lose_nothing(tmp_path: Path) -> None:
    figures = run_kill_resume(kills=3, seed=3, reports=tmp_path / "reports", work=tmp_path)
    assert figures.kills == 3
    assert figures.soak.hung_runs == 0
    assert figures.lost_measurements == 0
    assert figures.missing_outputs == 0
    # the reference run and every killed run that got a run folder end finished, each with one store row
    assert figures.runs_finished == 1 + figures.kills - figures.before_run_folder
    assert figures.store_rows == figures.runs_finished
