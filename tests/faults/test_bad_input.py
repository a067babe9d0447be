"""Bad input everywhere a user types or edits (issue #8): one line naming file, field, value and expectation; exit 2.

Every case runs the real command line in a subprocess (``python -m rig``) and stops before any device is opened,
so each costs an interpreter start. One case per input family.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rig.cli import main
from rig.config import limits as limits_module
from rig.config.limits import LIMITS_DIR, load_limits
from rig.config.loader import FIXTURES_DIR
from rig.errors import ConfigError

pytestmark = pytest.mark.timeout(60)

STATION = FIXTURES_DIR / "stations" / "twin.toml"
EXIT_INPUT = 2


def _rig(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rig", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The run exited 2 with exactly one line on stderr, no traceback, containing every needle."""
    assert result.returncode == EXIT_INPUT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _station_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = STATION.read_text()
    assert text.count(old) == 1, old
    path = tmp_path / "station.toml"
    path.write_text(text.replace(old, new))
    return path


# ------------------------------------------------------------------------------------------- TOML files
def test_station_with_a_missing_field(tmp_path: Path) -> None:
    station = _station_copy(tmp_path, "reference_f_number = 1.4\n", "")
    result = _rig("signoff", "--station", station, "--reports", tmp_path)
    _one_line_error(result, str(station), "reference_f_number", "(missing)", "required")


def test_station_with_a_wrong_type(tmp_path: Path) -> None:
    station = _station_copy(tmp_path, "max_mm = 100.0", 'max_mm = "far"')
    result = _rig("signoff", "--station", station, "--reports", tmp_path)
    _one_line_error(result, str(station), "rail.max_mm", "'far'", "expected")


def test_lens_catalog_with_a_missing_field(tmp_path: Path) -> None:
    catalog = (FIXTURES_DIR / "lenses.toml").read_text()
    first = catalog.index("[[lens]]")
    line_start = catalog.index("focal_length_mm", first)
    line_end = catalog.index("\n", line_start) + 1
    lenses = tmp_path / "lenses.toml"
    lenses.write_text(catalog[:line_start] + catalog[line_end:])
    station = _station_copy(tmp_path, 'lenses = "fixtures/lenses.toml"', f'lenses = "{lenses}"')
    result = _rig("signoff", "--station", station, "--reports", tmp_path)
    _one_line_error(result, str(lenses), "focal_length_mm", "(missing)")


def test_unit_with_a_wrong_type(tmp_path: Path) -> None:
    unit = tmp_path / "unit.toml"
    unit.write_text(
        'serial = "XM12SU-000001"\n[mount]\nflange_offset_um = "eight"\n[lens]\nid = "summilux-m-35-f1.4-asph-2022"\n'
    )
    result = _rig("signoff", "--unit", unit, "--reports", tmp_path)
    _one_line_error(result, str(unit), "mount.flange_offset_um", "'eight'", "expected")


def test_limit_whose_unit_disagrees_with_the_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    # The limits file of a plan lives at a fixed place: run the CLI in-process with the limits folder moved.
    text = (LIMITS_DIR / "signoff.toml").read_text()
    block = text.index("[sensor_switch_latency_ms]")
    unit_at = text.index('unit = "ms"', block)
    (tmp_path / "signoff.toml").write_text(text[:unit_at] + 'unit = "s"' + text[unit_at + len('unit = "ms"') :])
    with pytest.raises(ConfigError, match=r'sensor_switch_latency_ms\.unit = \'s\': expected "ms"'):
        load_limits(tmp_path / "signoff.toml")
    monkeypatch.setattr(limits_module, "LIMITS_DIR", tmp_path)
    code = main(["signoff", "--reports", str(tmp_path / "reports")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_INPUT and len(err) == 1
    assert str(tmp_path / "signoff.toml") in err[0] and "sensor_switch_latency_ms.unit" in err[0]
    assert "'s'" in err[0] and '"ms"' in err[0]


# ------------------------------------------------------------------------------------------- typed on the command line
def test_unknown_lens(tmp_path: Path) -> None:
    result = _rig("signoff", "--lens", "noctilux-xyz", "--reports", tmp_path)
    _one_line_error(result, "--lens", "'noctilux-xyz'", "expected one of", "summilux-m-35-f1.4-asph-2022")


def test_serial_failing_the_station_pattern(tmp_path: Path) -> None:
    result = _rig("signoff", "--unit-serial", "XM12-1", "--reports", tmp_path)
    _one_line_error(result, "--unit-serial", "'XM12-1'", "^XM12SU-[0-9]{6}$")


def test_non_dng_passed_as_dng(tmp_path: Path) -> None:
    fake = tmp_path / "notadng.dng"
    fake.write_text("a text file, not a raw image\n")
    result = _rig("measure", "sfr", fake)
    _one_line_error(result, str(fake), "not a TIFF/DNG file")


def test_argument_out_of_range(tmp_path: Path) -> None:
    fake = tmp_path / "edge.dng"
    fake.write_bytes(b"II*\x00")
    _one_line_error(_rig("measure", "sfr", fake, "--npol", "9"), "--npol", "9", "expected 1..5")
    _one_line_error(_rig("soak", "--minutes", "0", "--reports", tmp_path), "--minutes", "0", "expected")


def test_resume_of_a_run_that_does_not_exist(tmp_path: Path) -> None:
    result = _rig("signoff", "--resume", "no-such-run", "--reports", tmp_path)
    _one_line_error(result, "--resume", "no-such-run", "no run record")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = _rig("--debug", "signoff", "--lens", "noctilux-xyz", "--reports", tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr and "noctilux-xyz" in result.stderr
