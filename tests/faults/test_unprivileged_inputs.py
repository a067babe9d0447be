"""Files the user cannot read and a port the user may not open (issue #20, "tracebacks for ordinary mistakes"):
tested for real with a ``rig`` child that lacks the permission (:mod:`tests.faults.child`, an unprivileged user
when the tests run as root). Each ends with exit 2 and one stderr line naming the input and the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.config.loader import FIXTURES_DIR
from tests.faults.child import Child, make_child, one_line

pytestmark = pytest.mark.timeout(300)

EXIT_INPUT = 2
TWIN_STATION = FIXTURES_DIR / "stations" / "twin.toml"
PRIVILEGED_PORT = 1
UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
"""Linux: the lowest port an unprivileged process may bind (ip-sysctl.rst); 1024 unless lowered."""


@pytest.fixture
def child() -> Iterator[Child]:
    with make_child("unprivileged-user") as made:
        yield made


def _unreadable(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    os.chmod(path, 0)
    return path


def _station_with_lenses(work: Path, lenses: Path) -> Path:
    text = TWIN_STATION.read_text().replace('lenses = "fixtures/lenses.toml"', f'lenses = "{lenses}"')
    assert str(lenses) in text
    station = work / "station.toml"
    station.write_text(text)
    return station


def _expect(child: Child, args: tuple[str, ...], *needles: str) -> str:
    done = child.run(*args)
    assert done.returncode == EXIT_INPUT, (done.returncode, done.stdout, done.stderr)
    line = one_line(done.stderr)
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def test_an_unreadable_station_file(child: Child) -> None:
    station = _unreadable(child.work / "station.toml", TWIN_STATION.read_text())
    reports = child.folder("reports")
    _expect(child, ("signoff", "--station", str(station), "--reports", str(reports)), str(station), "Permission denied")
    assert list(reports.iterdir()) == []


def test_an_unreadable_lens_catalogue(child: Child) -> None:
    lenses = _unreadable(child.work / "lenses.toml", (FIXTURES_DIR / "lenses.toml").read_text())
    station = _station_with_lenses(child.work, lenses)
    reports = child.folder("reports")
    _expect(child, ("signoff", "--station", str(station), "--reports", str(reports)), str(lenses), "Permission denied")


def test_an_unreadable_run_record(child: Child) -> None:
    run = child.folder("run")
    record = _unreadable(run / "record.json", '{"run_id": "run"}')
    _expect(child, ("report", str(run), "--no-pdf"), str(record), "Permission denied")


def test_an_unreadable_image(child: Child) -> None:
    image = _unreadable(child.work / "flat.png", b"\x89PNG\r\n\x1a\n" + bytes(64))
    _expect(child, ("measure", "uniformity", str(image)), str(image), "Permission denied")


def test_an_unreadable_results_store(child: Child) -> None:
    store = _unreadable(child.work / "results.sqlite", b"SQLite format 3\x00" + bytes(4080))
    _expect(child, ("spc", "--store", str(store), "--out", str(child.folder("spc"))), str(store))


def test_a_privileged_ptp_port(child: Child) -> None:
    if UNPRIVILEGED_PORT_START.is_file() and int(UNPRIVILEGED_PORT_START.read_text()) <= PRIVILEGED_PORT:
        pytest.skip(f"{UNPRIVILEGED_PORT_START} lets anyone bind port {PRIVILEGED_PORT} here")
    _expect(child, ("twin", "serve", "--ptp-port", str(PRIVILEGED_PORT)), f"--ptp-port {PRIVILEGED_PORT}", "Permission")
