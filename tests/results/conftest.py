"""Fixtures of the results tests: a real, throwaway PostgreSQL server and run records built from known values."""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

PG_START_TIMEOUT_S = 60


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    on_path = shutil.which("initdb")
    if found:
        return Path(found[-1]).parent
    if on_path:
        return Path(on_path).parent
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH: "
        "run ./setup.sh (it installs the Debian postgresql package)",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL cluster of our own for this test session: initdb in a temp dir, started on 127.0.0.1.

    initdb and postgres refuse to run as root, so as root they run as the ``postgres`` system user (the
    Debian package creates it) in a directory that user owns. Yields a ``postgresql://`` URL.
    """
    bindir = _pg_bin()
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="rig-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    prefix: list[str] = []
    if as_root:
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
        base.chmod(0o755)
    log = base / "server.log"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=PG_START_TIMEOUT_S, check=False)

    init = run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"initdb failed: {init.stderr.strip()}", pytrace=False)
    started = None
    for _attempt in range(3):  # the free port can be taken between our probe and the server's bind
        port = _free_port()
        opts = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        started = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "30", "start")
        if started.returncode == 0:
            break
    if started is None or started.returncode != 0:
        detail = log.read_text() if log.exists() else started.stderr if started else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {detail.strip()[-2000:]}", pytrace=False)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_url: str, tmp_path: Path) -> str:
    """A database of this test's own on the session's server (its URL): tests that share the server never see
    each other's rows, whichever order a worker runs them in (``--dist worksteal`` moves tests between workers;
    the line test once found 647 runs a store test had left in the shared default database)."""
    name = "t_" + re.sub(r"[^a-z0-9]+", "_", tmp_path.name.lower())[-50:]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"
