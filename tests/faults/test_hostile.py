"""Hostile inputs (issue #20): every case of :mod:`tests.faults.hostile_cases` ends with exit 2 and one stderr line
that names the input, no traceback, nothing written but an empty reports folder, and no hang (per-case timeout).

The cases run in-process (``rig.cli.main(argv)``) so 350 of them stay fast; :func:`test_in_a_real_process` runs a
few through ``python -m rig`` to show the same contract holds for the installed entry point.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from rig.cli import main
from rig.config import limits as limits_module
from rig.config.limits import LIMITS_DIR
from rig.errors import MAX_MESSAGE_CHARS
from tests.faults.hostile_cases import ALL_CASES, TWIN_STATION, Case

EXIT_INPUT = 2


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def _dump(data: dict[str, Any]) -> str:
    """TOML text of a station-shaped mapping: scalars first, then one table per top-level mapping."""
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines.append(f"\n[{json.dumps(key)}]")
            lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _station_text(case: Case, tmp: str) -> str:
    data = tomllib.loads(TWIN_STATION.read_text())
    for path, value in case.station:
        *parents, leaf = path.split(".")
        node = data
        for parent in parents:
            node = node.setdefault(parent, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = tomllib.loads(f"v = {value.replace('{tmp}', tmp)}")["v"]
    return _dump(data)


def _prepare(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    tmp = str(tmp_path)
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content.replace("{tmp}", tmp), encoding="utf-8")
        else:
            path.write_bytes(content)
    station = tmp_path / "station.toml"
    station.write_text(_station_text(case, tmp), encoding="utf-8")
    if case.limits is not None:
        limits_dir = tmp_path / "limits"
        limits_dir.mkdir()
        for shipped in LIMITS_DIR.glob("*.toml"):
            (limits_dir / shipped.name).write_text(shipped.read_text())
        for plan, text in case.limits.items():
            (limits_dir / f"{plan}.toml").write_text(text)
        monkeypatch.setattr(limits_module, "LIMITS_DIR", limits_dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RIG_HOME", str(tmp_path / "home"))
    return [a.replace("{tmp}", tmp).replace("{station}", str(station)) for a in case.argv]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _check_one_line(case: Case, code: int, err: str, tmp: str) -> str:
    assert code == case.exit_code, (case.id, code, err)
    assert "Traceback" not in err and "INTERNALERROR" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, (case.id, err)
    line = lines[0]
    assert len(line) <= MAX_MESSAGE_CHARS + 120, (case.id, len(line))
    for needle in case.needles:
        needle = needle.replace("{tmp}", tmp).replace("{station}", str(Path(tmp) / "station.toml"))
        assert needle in line, (case.id, needle, line)
    return line


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_hostile_input(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _prepare(case, tmp_path, monkeypatch)
    before = _tree(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own one-line errors
        code = int(exc.code or 0)
    _, err = capsys.readouterr()
    _check_one_line(case, code, err, str(tmp_path))
    written = _tree(tmp_path) - before
    # nothing but (empty) folders the run would have written into: no run folder, no store, no lock
    assert all((tmp_path / p).is_dir() and not any((tmp_path / p).iterdir()) for p in written), (case.id, written)


def test_there_are_at_least_250_cases_across_every_family() -> None:
    assert len(ALL_CASES) >= 250
    families = {c.id.split("-")[0] for c in ALL_CASES}
    assert {"station", "report", "resume", "capture", "serve", "spc", "limits", "unit", "measure"} <= families


SUBPROCESS_CASES = ("station-file-deep-array", "resume-empty", "capture-iso-1e9", "spc-store-not-sqlite",
                    "serial-pattern-backtracking", "report-record-wrong-types", "station-file-eio",
                    "measure-shift-sizes", "measure-uniformity-pitch-nan-json")  # fmt: skip


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_in_a_real_process(case_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = next(c for c in ALL_CASES if c.id == case_id)
    argv = _prepare(case, tmp_path, monkeypatch)
    result = subprocess.run(
        [sys.executable, "-m", "rig", *argv], capture_output=True, text=True, timeout=120, check=False
    )
    _check_one_line(case, result.returncode, result.stderr, str(tmp_path))
