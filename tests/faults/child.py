"""A ``rig`` child process that meets a folder or file it may not write or read, for real (issue #20).

As root, ``chmod`` alone proves nothing (root reads and writes anywhere), so the child runs either as an
unprivileged user (``setpriv --reuid=65534``, when the tests run as root; a plain child with ``chmod``
otherwise) or against a read-only bind mount (``mount --bind`` then ``mount -o remount,bind,ro``, which the
kernel refuses to write for root too: EROFS). A mechanism this machine cannot provide is skipped with the reason.

References: setpriv(1) (util-linux), mount(8) "bind mount … read-only" (``-o remount,bind,ro``), open(2) EROFS.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import rig

NOBODY = 65534
"""The unprivileged user (and group) of Debian/Ubuntu, ``nobody``/``nogroup``."""
REPO_ROOT = Path(rig.__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 600.0  # a whole sign-off on a loaded 2-core machine; a bound on a hang, never an asserted time


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


MECHANISMS: dict[str, Callable[[], ReadOnly]] = {
    "unprivileged-user": _unprivileged,
    "read-only-mount": _read_only_mount,
}


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


@contextlib.contextmanager
def make_child(mechanism_name: str) -> Iterator[Child]:
    """A :class:`Child` of the named mechanism in a fresh work folder (skipped when the machine cannot do it)."""
    mechanism = MECHANISMS[mechanism_name]()
    # a folder the child's user can reach: pytest's own tmp_path sits under a 0700 folder of the current user
    work = Path(tempfile.mkdtemp(prefix="rig-child-"))
    try:
        os.chmod(work, 0o755)
        child = Child(mechanism, work)
        child.own(work)
        probe = child.run("--version")
        if probe.returncode != 0:
            pytest.skip(f"the rig child cannot start as {mechanism.name}: {probe.stderr.strip()[-300:]}")
        yield child
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def frozen(child: Child, folder: Path) -> Iterator[None]:
    """``folder`` read-only for the child while the block runs."""
    child.mechanism.freeze(folder)
    try:
        yield
    finally:
        child.mechanism.thaw(folder)


def one_line(stderr: str) -> str:
    """The one stderr line of a failed command (no traceback)."""
    assert "Traceback" not in stderr and "INTERNALERROR" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]
