"""A built wheel, installed (not editable) into a fresh virtualenv, signs off the twin from an empty folder.

The package must carry its fixtures (stations, lenses, charts, limits, units) and write only under the data home
(the current directory here), never beside the installed package. To keep the test offline and quick the fresh
venv borrows the third-party packages of the running interpreter through a plain path entry (no editable finder:
``.pth`` files there are not executed), so ``rig`` itself can only come from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_wheel_in_a_fresh_venv_signs_off_from_an_empty_folder(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("rig-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    installed = site / "rig"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "RIG_HOME"}}
    origin = subprocess.run(
        [str(python), "-c", "import rig; print(rig.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    ).stdout.strip()
    assert Path(origin).parent == installed, f"rig imported from {origin}, expected the wheel in {installed}"

    home = tmp_path / "empty"
    home.mkdir()
    result = subprocess.run(
        [str(python), "-m", "rig", "signoff", "--quiet"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("PASS "), last
    run_dirs = list((home / "reports").glob("*-signoff-*"))
    assert len(run_dirs) == 1 and (run_dirs[0] / "record.json").is_file() and (run_dirs[0] / "report.html").is_file()
    assert not (installed / "reports").exists() and not (installed.parent / "reports").exists()
