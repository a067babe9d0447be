"""What a finished run keeps of its raw captures (issue #14: a passing sign-off kept ~290 MB of DNGs).

A production line needs the DNGs behind a failure — to look at a FAIL or diagnose an ERROR — not the fifty frames
of every unit that passed; a lab studying a unit wants them all. The policy (:class:`CaptureRetention`, station
``keep_captures`` or ``--keep-captures``) is applied once the verdict is known, before the outputs are written:
thumbnails, the report, the tables and the record are always kept, and the record lists every capture dropped,
so nothing disappears without a trace.
"""

from __future__ import annotations

from pathlib import Path

from rig.bench.recording import CAPTURES_DIR
from rig.results.record import RunRecord, Verdict
from rig.spec.types import CaptureRetention

RAW_SUFFIX = ".dng"
_KEEP_VERDICTS = frozenset({Verdict.FAIL, Verdict.ERROR})


def captures_to_drop(record: RunRecord, run_dir: Path, policy: CaptureRetention) -> list[str]:
    """The raw captures (paths relative to ``run_dir``) that ``policy`` removes from this finished run.

    FAILED keeps every DNG a FAIL or ERROR measurement names, and on a run that did not PASS also the DNGs no
    measurement names (the frames of a step that broke before it measured); it drops the rest.
    """
    folder = run_dir / CAPTURES_DIR
    raws = sorted(f"{CAPTURES_DIR}/{p.name}" for p in folder.glob(f"*{RAW_SUFFIX}")) if folder.is_dir() else []
    if policy is CaptureRetention.ALL:
        return []
    if policy is CaptureRetention.NONE:
        return raws
    named = {c for m in record.measurements for c in m.captures}
    behind_failures = {c for m in record.measurements if m.verdict in _KEEP_VERDICTS for c in m.captures}
    passed = record.verdict is Verdict.PASS
    return [c for c in raws if c not in behind_failures and (passed or c in named)]


def apply_retention(record: RunRecord, run_dir: Path, policy: CaptureRetention) -> list[str]:
    """Remove the captures ``policy`` drops and note them (and the policy) in ``record``; returns those removed."""
    dropped = captures_to_drop(record, run_dir, policy)
    for relative in dropped:
        (run_dir / relative).unlink(missing_ok=True)
    record.capture_retention = policy
    record.captures_dropped = sorted({*record.captures_dropped, *dropped})
    return dropped
