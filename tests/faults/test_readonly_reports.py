"""A read-only reports folder (issue #20), tested for real: as root ``chmod`` alone proves nothing (root writes
anywhere), so the ``rig`` child runs either as an unprivileged user (``setpriv --reuid=65534``, when the tests run
as root; a plain child with ``chmod`` otherwise) or against a read-only bind mount (``mount --bind`` then
``mount -o remount,bind,ro``, which the kernel refuses to write for root too, EROFS). A mechanism this machine
cannot provide is skipped with the reason.

- Read-only before the run: pre-flight refuses it, exit 2, one stderr line naming the folder, nothing written.
- Read-only mid-run (after the first step is recorded): the run stops, ERROR, exit 3, one stderr line naming the
  run folder; the ``record.json`` on disk is the last one saved, whole; once the folder takes writes again,
  ``--resume`` finishes the run with every measurement of the completed steps unchanged.

References: setpriv(1) (util-linux), mount(8) "bind mount … read-only" (``-o remount,bind,ro``), open(2) EROFS.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import rig
from rig.results.record import RunRecord, Verdict

pytestmark = pytest.mark.timeout(900)

NOBODY = 65534
"""The unprivileged user (and group) of Debian/Ubuntu, ``nobody``/``nogroup``."""
REPO_ROOT = Path(rig.__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 600.0  # a whole sign-off on a loaded 2-core machine; a bound on a hang, never an asserted time
RUN_ID = "read-only-mid-run"
EXIT_INPUT = 2
EXIT_ERROR = 3


@dataclass(frozen=True)
class ReadOnly:
    """One way of making a folder read-only for the ``rig`` child."""

    name: str
    prefix: tuple[str, ...]
    """What the child's command line starts with (the user it runs as)."""
    owner: int | None
    """uid (and gid) the child's own folders must belong to, None for the current user."""
    freeze: Callable[[Path], None]
    thaw: Callable[[Path], None]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)


def _chmod_tree(folder: Path, *, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        os.chmod(path, (mode | 0o200) if writable else (mode & ~0o222))


def _unprivileged() -> ReadOnly:
    as_root = os.geteuid() == 0
    if as_root and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv(1): cannot run the child as an unprivileged user")
    prefix = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups") if as_root else ()
    return ReadOnly(
        "unprivileged-user",
        prefix,
        NOBODY if as_root else None,
        lambda folder: _chmod_tree(folder, writable=False),
        lambda folder: _chmod_tree(folder, writable=True),
    )


def _bind_ro(folder: Path) -> None:
    for argv in (("mount", "--bind", str(folder), str(folder)), ("mount", "-o", "remount,bind,ro", str(folder))):
        done = _run(*argv)
        if done.returncode != 0:
            if argv[1] == "-o":
                _run("umount", str(folder))
            raise OSError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")


def _read_only_mount() -> ReadOnly:
    if shutil.which("mount") is None:
        pytest.skip("no mount(8) here")
    probe = Path(tempfile.mkdtemp(prefix="rig-ro-probe-"))
    try:
        _bind_ro(probe)
    except OSError as exc:
        pytest.skip(f"cannot make a read-only bind mount here ({exc}): needs CAP_SYS_ADMIN")
    finally:
        _run("umount", str(probe))
        probe.rmdir()
    return ReadOnly("read-only-mount", (), None, _bind_ro, lambda folder: _check(_run("umount", str(folder))))


def _check(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr


MECHANISMS = {"unprivileged-user": _unprivileged, "read-only-mount": _read_only_mount}


@dataclass
class Child:
    """The ``rig`` command as the mechanism's user, in a work folder of its own (home, temp files)."""

    mechanism: ReadOnly
    work: Path

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        return {
            **os.environ,
            "HOME": str(self.work),
            "TMPDIR": str(self.work),
            "MPLCONFIGDIR": str(self.work / "mpl"),
            "RIG_HOME": str(self.work),
            "PYTHONPATH": path,
        }

    def argv(self, *args: str) -> list[str]:
        return [*self.mechanism.prefix, sys.executable, "-m", "rig", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), cwd=self.work, env=self.env(), capture_output=True, text=True,
            timeout=CHILD_TIMEOUT_S, check=False,
        )  # fmt: skip

    def folder(self, name: str) -> Path:
        path = self.work / name
        path.mkdir()
        self.own(path)
        return path

    def own(self, path: Path) -> None:
        if self.mechanism.owner is not None:
            os.chown(path, self.mechanism.owner, self.mechanism.owner)


@pytest.fixture(params=list(MECHANISMS))
def child(request: pytest.FixtureRequest) -> Iterator[Child]:
    mechanism = MECHANISMS[request.param]()
    # a folder the child's user can reach: pytest's own tmp_path sits under a 0700 folder of the current user
    work = Path(tempfile.mkdtemp(prefix="rig-readonly-"))
    try:
        os.chmod(work, 0o755)
        result = Child(mechanism, work)
        result.own(work)
        probe = result.run("--version")
        if probe.returncode != 0:
            pytest.skip(f"the rig child cannot start as {mechanism.name}: {probe.stderr.strip()[-300:]}")
        yield result
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def frozen(child: Child, folder: Path) -> Iterator[None]:
    child.mechanism.freeze(folder)
    try:
        yield
    finally:
        child.mechanism.thaw(folder)


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr and "INTERNALERROR" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# --------------------------------------------------------------------------------------------- before the run
@pytest.mark.parametrize("where", ["the-folder", "its-parent"])
def test_a_read_only_reports_folder_is_refused_by_pre_flight(child: Child, where: str) -> None:
    read_only = child.folder("reports")
    reports = read_only if where == "the-folder" else read_only / "new"
    with frozen(child, read_only):
        done = child.run("signoff", "--quiet", "--reports", str(reports))
        assert done.returncode == EXIT_INPUT, (done.returncode, done.stdout, done.stderr)
        line = _one_line(done.stderr)
        assert line.startswith(f"rig: error: {reports}: --reports is not a writable folder ("), line
        assert done.stdout == "", "no verdict line: the run never started"
        assert list(read_only.iterdir()) == [], "nothing written"


# --------------------------------------------------------------------------------------------- during the run
def _record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # not there yet, or between an atomic rename and our read
        return None


def _wait_for_a_completed_step(proc: subprocess.Popen[str], record_path: Path) -> None:
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before its first step was recorded"
        data = _record(record_path)
        if data and data.get("steps") and data.get("measurements"):
            return
        time.sleep(0.02)
    raise AssertionError("no step recorded in time")


def _completed(record: RunRecord) -> dict[tuple[str, str, str | None], float | None]:
    done = {s.name for s in record.steps if s.verdict is not Verdict.ERROR}
    return {(m.step, m.name, m.zone): m.value for m in record.measurements if m.step in done}


@pytest.mark.slow
def test_a_reports_folder_made_read_only_mid_run_ends_error_and_keeps_the_measurements(child: Child) -> None:
    reports = child.folder("reports")
    run_dir = reports / RUN_ID
    record_path = run_dir / "record.json"
    args = ("signoff", "--quiet", "--reports", str(reports))
    proc = subprocess.Popen(
        child.argv(*args, "--run-id", RUN_ID), cwd=child.work, env=child.env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_for_a_completed_step(proc, record_path)
        with frozen(child, run_dir):
            saved = record_path.read_bytes()  # what the run folder holds from here on
            out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
            assert proc.returncode == EXIT_ERROR, (proc.returncode, out, err)
            line = _one_line(err)
            assert line.startswith(f"rig: bench error: run folder {run_dir}: "), line
            assert "not written (" in line and "record.json keeps the" in line, line
            last = out.strip().splitlines()[-1]
            assert last.startswith(f"ERROR XM12SU-000001 signoff {run_dir}"), last
            assert last.endswith(f"--resume {RUN_ID}"), last
            assert record_path.read_bytes() == saved, "the last record saved stays whole"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    before = RunRecord.model_validate_json(saved)
    kept = _completed(before)
    assert kept, "the record held a completed step when the folder became read-only"
    # writable again: the resume finishes the run and publishes it; the completed steps are not measured again
    done = child.run(*args, "--resume", RUN_ID)
    assert done.returncode == 0, (done.stdout, done.stderr)
    final = RunRecord.load(record_path)
    assert final.verdict is Verdict.PASS
    assert {k: v for k, v in _completed(final).items() if k in kept} == kept
    assert (run_dir / "report.html").is_file()
