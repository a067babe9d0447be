"""Fixtures of the web tests: station servers on threads, Debian's Chromium driven by Playwright, PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.web.security import AccessTokens
from rig.web.serve import ThreadedServer
from tests.results.conftest import postgres_database, postgres_url  # noqa: F401  (the store tests' PostgreSQL)

CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium, never a downloaded browser; no sandbox (root in CI), nothing that phones home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: run ./setup.sh (it installs Debian's chromium package)", pytrace=False)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def artefacts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where a browser test saves its screenshots: ``$RIG_TEST_ARTEFACTS/<test>`` or a temp folder."""
    import os

    root = os.environ.get("RIG_TEST_ARTEFACTS")
    name = request.node.name.replace("/", "_")
    folder = Path(root) / name if root else tmp_path_factory.mktemp("artefacts") / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def serve_station(
    station_file: Path,
    reports: Path,
    *,
    store_url: str | None = None,
    host: str = "127.0.0.1",
    tokens: AccessTokens | None = None,
) -> ThreadedServer:
    from rig.web.station_app import create_station_app

    tokens = tokens or AccessTokens()
    app = create_station_app(station_file, reports, store_url=store_url, tokens=tokens)
    return ThreadedServer(app, host, 0, tokens=tokens).start()
