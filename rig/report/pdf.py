"""report.pdf: the HTML report printed by headless Chromium.

Why Chromium rather than matplotlib's PdfPages: the PDF is then the same document as the HTML — same
sections, same tables (which paginate, with searchable text), same SVG plots — from one template, instead of a
second layout to keep in step. Cost: ~1 s per report and a Chromium on the station (``./setup.sh`` installs
it). The page loads nothing from outside (CSP in the template) and Chromium runs with networking features off
and a throwaway profile.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from rig.errors import RigError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PDF_TIMEOUT_S = 120.0

HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",  # the bench runs as root in containers; the page is our own, with every fetch forbidden
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--force-color-profile=srgb",
)


class ReportToolError(RigError):
    """A tool the report needs (Chromium) is missing or failed."""


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise ReportToolError(f"Chromium not found on PATH (tried {', '.join(CHROMIUM_NAMES)}): run ./setup.sh")


def run_chromium(args: list[str], *, timeout_s: float = PDF_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a throwaway profile and ``args``; raises on timeout (not on exit status)."""
    chromium = find_chromium()
    with tempfile.TemporaryDirectory(prefix="rig-chromium-") as profile:
        try:
            return subprocess.run(
                [chromium, *HEADLESS_FLAGS, f"--user-data-dir={profile}", *args],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ReportToolError(f"Chromium did not finish within {timeout_s:.0f} s") from None


def print_pdf(html_path: Path, pdf_path: Path, *, timeout_s: float = PDF_TIMEOUT_S) -> Path:
    """Print ``html_path`` to ``pdf_path`` (A4, no header/footer); atomic: a failure leaves no partial PDF."""
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pdf_path.with_name(f".{pdf_path.name}.tmp")
    tmp.unlink(missing_ok=True)
    out = run_chromium(
        ["--no-pdf-header-footer", f"--print-to-pdf={tmp}", html_path.resolve().as_uri()], timeout_s=timeout_s
    )
    if out.returncode != 0 or not tmp.is_file() or tmp.read_bytes()[:5] != b"%PDF-":
        tmp.unlink(missing_ok=True)
        tail = " | ".join(out.stderr.strip().splitlines()[-3:])
        raise ReportToolError(f"Chromium could not print {html_path} to PDF (exit {out.returncode}): {tail}")
    tmp.replace(pdf_path)
    return pdf_path
