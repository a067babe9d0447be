"""calibration/<serial>/ files: each parses back to exactly what was written, by the readers other tools use."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rig.calibrate import outputs
from rig.calibrate.opencv_yaml import camera_from_fit, read_opencv_yaml
from rig.errors import ArgumentError, ConfigError
from rig.results.record import utcnow
from rig.spec.gainmap import GainMap, decode_opcode_list
from rig.spec.profile import BAYER_CHANNELS, CalibrationProfile, cfa_offsets
from tests.calibrate.test_opencv_yaml import _fit
from tests.calibrate.test_profile import make_profile

REPO = Path(__file__).resolve().parents[2]


def test_profile_files_parse_back_to_what_was_written(tmp_path: Path) -> None:
    profile = make_profile(seed=5)
    camera = camera_from_fit(
        _fit(0.001, -0.004, 0.002), focal_length_mm=35.0, pixel_pitch_um=6.4, unit_serial="XM12SU-000001"
    )
    folder = outputs.unit_dir(tmp_path / "calibration", profile.unit_serial)
    written = outputs.write_profile_files(folder, profile, camera)
    assert folder == tmp_path / "calibration" / "XM12SU-000001"
    readouts = [(8192, 6144), (4096, 3072), (2048, 1536)]  # the profile's sensor at binning 1, 2, 4
    assert set(written) == {"profile", "camera", *(f"gainmap-{w}x{h}" for w, h in readouts)}

    # profile.json: the exact bytes the phone gets, and the same profile parsed back
    data = (folder / outputs.PROFILE_FILE).read_bytes()
    assert data == profile.to_json()
    assert CalibrationProfile.from_json(data) == profile
    assert outputs.read_profile_file(folder / outputs.PROFILE_FILE) == profile

    # gainmap-WxH.opcodes: per read-out, four GainMaps over that whole frame at the channels' CFA offsets,
    # RowPitch = ColPitch = 2, the profile's gains
    offsets = cfa_offsets("RGGB")
    for width, height in readouts:
        name = outputs.gainmap_file(width, height)
        ops = decode_opcode_list((folder / name).read_bytes(), source=name)
        assert len(ops) == 4 and all(isinstance(op, GainMap) for op in ops)
        for op, channel, gains in zip(ops, BAYER_CHANNELS, profile.shading.gains_array(), strict=True):
            assert isinstance(op, GainMap)
            assert (op.top, op.left) == offsets[channel]
            assert (op.row_pitch, op.col_pitch) == (2, 2)
            assert (op.bottom, op.right) == (height, width)
            np.testing.assert_array_equal(op.gains[:, :, 0], gains.astype(np.float32))  # float32 in the DNG opcode

    # camera.yaml: OpenCV reads back the intrinsics and distortion exactly (FileStorage prints 17 digits)
    back = read_opencv_yaml(folder / outputs.CAMERA_FILE)
    np.testing.assert_array_equal(back.camera_matrix, camera.camera_matrix)
    np.testing.assert_array_equal(back.distortion, camera.distortion)
    assert not list(folder.glob(".*")), "no temporary files left behind"


def test_verification_round_trips_and_names_the_file_when_corrupt(tmp_path: Path) -> None:
    profile = make_profile()
    record = outputs.Verification(
        unit_serial=profile.unit_serial,
        run_id="run-1",
        profile_sha256=outputs.profile_sha256(profile),
        updated=utcnow(),
        readback_byte_identical=True,
        shading_residual_pct={"R": 0.2, "Gr": 0.1, "Gb": 0.1, "B": 0.3},
        shading_residual_worst_pct=0.3,
    )
    path = outputs.write_verification(tmp_path, record)
    assert outputs.read_verification(path) == record
    assert record.profile_sha256 == hashlib.sha256(profile.to_json()).hexdigest()
    assert record.flange_residual_um is None  # a check not done is null, not 0

    path.write_text(path.read_text().replace('"run_id"', '"run"'))
    with pytest.raises(ConfigError) as exc:
        outputs.read_verification(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("serial", ["../escape", "a/b", "..", ""])
def test_a_serial_that_is_not_a_folder_name_is_refused(tmp_path: Path, serial: str) -> None:
    with pytest.raises(ArgumentError, match="folder name"):
        outputs.unit_dir(tmp_path, serial)
    assert list(tmp_path.iterdir()) == []


def test_rig_calibrate_refuses_a_file_as_calibration_dir_in_one_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "calibration"
    not_a_dir.write_text("x")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rig",
            "calibrate",
            "--reports",
            str(tmp_path / "r"),
            "--calibration-dir",
            str(not_a_dir),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--calibration-dir" in lines[0] and "expected a folder" in lines[0], lines
    assert not (tmp_path / "r").exists(), "nothing ran: the bench never moved"
