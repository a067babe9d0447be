"""The command line's error contract (issue #20): one line, exit 2 for what a user caused, library noise summarised,
I/O failures of configuration files named, long messages capped, the plugin's pre-flight before any device."""

from __future__ import annotations

import errno
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import rig.cli.twin_capture as twin_capture
from rig.cli import main
from rig.config.loader import FIXTURES_DIR, read_toml
from rig.errors import MAX_MESSAGE_CHARS, ConfigError, ImageInputError, one_line

STATION = FIXTURES_DIR / "stations" / "twin.toml"


def _noisy(fail: bool):
    def command(_args: object) -> int:
        for i in range(355):
            logging.getLogger("tifffile").warning("TiffPage %d: invalid tag", i)
        for _ in range(10):
            warnings.warn("a deprecated thing", DeprecationWarning, stacklevel=1)
        if fail:
            raise ImageInputError("frame.dng: not a TIFF/DNG file")
        return 0

    return command


def test_library_warnings_join_the_error_line_as_a_count(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(twin_capture, "capture", _noisy(fail=True))
    code = main(["twin", "capture", "--unit", "golden", "--out", "x.dng"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err == [
        "rig: error: frame.dng: not a TIFF/DNG file [365 library warning(s) hidden (tifffile ×355, "
        "DeprecationWarning ×10)]"
    ]


def test_library_warnings_after_success_are_one_note(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(twin_capture, "capture", _noisy(fail=False))
    code = main(["twin", "capture", "--unit", "golden", "--out", "x.dng"])
    err = capsys.readouterr().err.splitlines()
    assert code == 0
    assert err == [
        "rig: note: 365 library warning(s) hidden (tifffile ×355, DeprecationWarning ×10); --debug shows them"
    ]


def test_an_unexpected_defect_is_still_one_line_and_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def broken(_args: object) -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(twin_capture, "capture", broken)
    assert main(["twin", "capture", "--unit", "golden", "--out", "x.dng"]) == 3
    err = capsys.readouterr().err.splitlines()
    assert err == ["rig: internal error: ZeroDivisionError: division by zero (--debug shows the traceback)"]
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "twin", "capture", "--unit", "golden", "--out", "x.dng"])


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
        (OSError(errno.ENXIO, "No such device or address"), "No such device"),
    ],
)
def test_a_station_file_that_cannot_be_read_is_one_config_error(
    error: OSError, shown: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "station.toml"
    path.write_text(STATION.read_text())
    real = Path.read_bytes

    def failing(self: Path) -> bytes:
        if self == path:
            raise error
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", failing)
    with pytest.raises(ConfigError) as exc:
        read_toml(path)
    assert str(exc.value).startswith(f"{path} = '(unreadable)': expected a readable TOML file")
    assert shown in str(exc.value)


def test_a_4155_character_message_is_capped_to_one_readable_line() -> None:
    text = "x" * 3000 + "\n" + "y" * 1154
    line = one_line(text)
    assert len(line) == MAX_MESSAGE_CHARS and "\n" not in line
    assert line.startswith("xxx") and line.endswith("yyy") and "…" in line
    assert one_line("short") == "short"


@pytest.mark.timeout(120)
def test_the_plugin_runs_the_preflight_before_any_device(tmp_path: Path) -> None:
    station = tmp_path / "station.toml"
    station.write_text(
        STATION.read_text().replace('reference_lens = "summilux-m-35-f1.4-asph-2022"', 'reference_lens = "gone"')
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "rig.plans.signoff", "-p", "no:cacheprovider", "-q",
         "--station", str(station), "--reports", str(tmp_path / "reports")],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 4, result.stdout + result.stderr  # pytest's usage error: nothing ran
    assert f"ERROR: {station}: reference_lens = 'gone': expected one of the catalog's lenses" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    reports = tmp_path / "reports"
    assert not reports.exists() or not [p for p in reports.iterdir() if not p.name.startswith(".")]


def test_the_json_of_every_command_is_strict_json_whatever_the_figures() -> None:
    import json
    import math

    from rig.cli.output import json_text

    summary = {"wall_s": math.nan, "steps": [{"seconds": math.inf}, {"seconds": 1.5}], "verdict": "PASS"}
    text = json_text(summary)  # json.dumps(allow_nan=False) inside: would raise on a NaN/Infinity token
    assert json.loads(text) == {"wall_s": None, "steps": [{"seconds": None}, {"seconds": 1.5}], "verdict": "PASS"}
    assert json_text((-math.inf, 2)) == "[null, 2]"


def _flat_bayer_dng(width: int = 256, height: int = 192) -> bytes:
    """A Bayer flat field with a known cos⁴-like falloff, as the bench's DNG writer encodes it."""
    import numpy as np

    from rig.spec.dng import write_dng

    y, x = np.mgrid[:height, :width]
    r2 = ((x - width / 2) ** 2 + (y - height / 2) ** 2) / (width / 2) ** 2
    raw = np.round(64 + 600 / (1 + 0.3 * r2) ** 2).astype(np.uint16)
    return write_dng(
        raw, black_level=64, white_level=1023, make="Leica", model="M-Phone", unique_camera_model="Leica M-Phone",
        serial=None, timestamp_ms=None, exposure_time_s=0.01, iso=100, f_number=None, focal_length_mm=None,
        lens_model=None,
    )  # fmt: skip


@pytest.mark.parametrize("renamed", ["frame.tif", "frame.TIFF", "frame.png"])
def test_a_dng_renamed_is_measured_as_the_dng_it_is(renamed: str, tmp_path: Path, capsys) -> None:
    import json

    data = _flat_bayer_dng()
    (tmp_path / "frame.dng").write_bytes(data)
    (tmp_path / renamed).write_bytes(data)
    results = []
    for name in ("frame.dng", renamed):
        assert main(["measure", "uniformity", str(tmp_path / name), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        results.append({k: v for k, v in out.items() if k != "image"})
    assert results[0] == results[1]  # the same figures whatever the name: the mosaic per CFA channel
    assert results[0]["channels"] == ["B", "Gb", "Gr", "R"]


def test_the_uniformity_json_of_a_gray_frame_has_null_not_nan(tmp_path: Path, capsys) -> None:
    import json

    import numpy as np
    import tifffile

    y, x = np.mgrid[:128, :128]
    tifffile.imwrite(
        tmp_path / "g.tif", np.round(30000 / (1 + 0.2 * ((x - 64) ** 2 + (y - 64) ** 2) / 4096)).astype("u2")
    )
    assert main(["measure", "uniformity", str(tmp_path / "g.tif"), "--json"]) == 0

    def refuse(token: str) -> None:
        raise AssertionError(f"non-JSON token {token}")

    out = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert out["colour_shading_pct"] is None  # one plane: no colour shading, said as null


@pytest.mark.parametrize("taken", ["--ptp-port", "--ptp-event-port"])
def test_a_ptp_port_in_use_is_one_line(taken: str, capsys) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = main(["twin", "serve", taken, str(port)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"{taken} {port}" in err[0] and "Address already in use" in err[0]
    assert "library warning" not in err[0], "no socket left open behind the error (a ResourceWarning)"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("record", [b"", b'{"run_id": 1, "plan": 2}', b"\x00\xff"])
def test_a_corrupt_record_resumed_through_plain_pytest_is_a_usage_error(record: bytes, tmp_path: Path) -> None:
    run = tmp_path / "reports" / "run"
    run.mkdir(parents=True)
    (run / "record.json").write_bytes(record)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "rig.plans.signoff", "-p", "no:cacheprovider", "-q",
         "--reports", str(tmp_path / "reports"), "--resume", "run"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 4, result.stdout + result.stderr  # pytest's usage error: nothing ran
    assert "INTERNALERROR" not in result.stdout + result.stderr and "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1 and f"{run / 'record.json'}" in errors[0], result.stderr
