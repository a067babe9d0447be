"""Binding, access tokens, cross-site forms and report paths, against a real uvicorn server over real sockets."""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rig.config.station import DEFAULT_STATION
from rig.errors import ArgumentError
from rig.web.security import AccessTokens
from rig.web.serve import ThreadedServer
from rig.web.station_app import create_station_app

TOKENS = AccessTokens(operator="operator-token-0123456789", engineer="engineer-token-0123456789")
RUN_ID = "20260101T000000-XM12SU-000001-signoff"


def _lan_address() -> str:
    """An address of this machine other than loopback (the one a default route would use), else skip."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1 (RFC 5737): no packet is sent by a UDP connect
            address = probe.getsockname()[0]
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address")
    return address


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    run = tmp_path / "reports" / RUN_ID
    run.mkdir(parents=True)
    (run / "report.html").write_text("<h1>report</h1>")
    (tmp_path / "reports" / "secret.txt").write_text("outside every run folder")
    return tmp_path / "reports"


def test_off_loopback_without_tokens_is_refused(reports: Path) -> None:
    app = create_station_app(DEFAULT_STATION, reports)
    with pytest.raises(ArgumentError, match="needs access tokens"):
        ThreadedServer(app, "0.0.0.0", 0, tokens=AccessTokens())


def test_cli_refuses_off_loopback_without_tokens(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("RIG_") or k == "RIG_HOME"}
    result = subprocess.run(
        [sys.executable, "-m", "rig", "station", "serve", "--host", "0.0.0.0", "--reports", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "RIG_OPERATOR_TOKEN" in result.stderr


def test_unauthenticated_request_off_loopback_is_refused(reports: Path) -> None:
    host = _lan_address()
    app = create_station_app(DEFAULT_STATION, reports, tokens=TOKENS)
    with ThreadedServer(app, host, 0, tokens=TOKENS) as server:
        assert httpx.get(server.url + "/").status_code == 401
        assert httpx.get(server.url + "/", headers={"Accept": "text/html"}).status_code == 303  # to /login
        assert (
            httpx.get(server.url + "/", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        )
        ok = httpx.get(server.url + "/", headers={"Authorization": f"Bearer {TOKENS.operator}"})
        assert ok.status_code == 200 and "Start" in ok.text
        # an operator may sign off, but calibration (it writes to the phone) needs an engineer
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKENS.operator}"}) as client:
            page = client.get("/")
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
            answer = client.post(
                "/start",
                data={"csrf": csrf, "serial": "XM12SU-000001", "plan": "calibration", "twin_unit": "golden"},
                follow_redirects=False,
            )
            assert answer.status_code == 303 and "engineer" in answer.headers["location"]


def test_forms_refuse_cross_site_requests(reports: Path) -> None:
    app = create_station_app(DEFAULT_STATION, reports)
    with ThreadedServer(app, tokens=AccessTokens()) as server, httpx.Client(base_url=server.url) as client:
        page = client.get("/")
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        assert client.post("/abort", data={}).status_code == 403  # no token in the form
        assert client.post("/abort", data={"csrf": "x" * 43}).status_code == 403  # a wrong one
        foreign = client.post("/abort", data={"csrf": csrf}, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        assert httpx.post(server.url + "/abort", data={"csrf": csrf}).status_code == 403  # no cookie: not this browser
        assert client.post("/abort", data={"csrf": csrf}, follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    "path",
    [
        f"/reports/{RUN_ID}/../secret.txt",
        f"/reports/{RUN_ID}/%2e%2e/secret.txt",
        f"/reports/{RUN_ID}/..%2fsecret.txt",
        "/reports/../secret.txt",
        "/reports/%2e%2e/secret.txt",
        f"/reports/{RUN_ID}//etc/passwd",
        f"/reports/{RUN_ID}/../../../../etc/passwd",
    ],
)
def test_report_paths_cannot_escape_the_run_folder(reports: Path, path: str) -> None:
    app = create_station_app(DEFAULT_STATION, reports)
    with ThreadedServer(app, tokens=AccessTokens()) as server:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
        connection.request("GET", path)  # sent as written: no client-side dot-segment removal
        answer = connection.getresponse()
        body = answer.read()
        assert answer.status == 404 and b"outside" not in body and b"root:" not in body
        connection.request("GET", f"/reports/{RUN_ID}/report.html")
        good = connection.getresponse()
        assert good.status == 200 and good.read() == b"<h1>report</h1>"
        connection.request("POST", f"/reports/{RUN_ID}/report.html")  # read-only
        assert connection.getresponse().status in (403, 405)
