"""CalibrationProfile: deterministic bytes, exact round trip, one-line errors, read-back comparison."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from rig.errors import ConfigError
from rig.spec.profile import (
    SCHEMA_VERSION,
    CalibrationProfile,
    ReferenceLens,
    ShadingMaps,
    cfa_offsets,
    compare_profiles,
)


def make_profile(seed: int = 3, **changes: object) -> CalibrationProfile:
    rng = np.random.default_rng(seed)
    fields: dict[str, object] = dict(
        unit_serial="XM12SU-000001",
        station="twin-01",
        reference_lens=ReferenceLens(id="summilux-m-35-f1.4-asph-2022", f_number=1.4),
        created=datetime(2026, 11, 23, 21, 40, 1, 123456, tzinfo=UTC),
        software_version="0.1.0",
        flange_offset_um=0.8123456789,
        tilt_x_arcmin=0.3,
        tilt_y_arcmin=-0.2,
        optical_center_px=(1024.93, 766.41),
        decentre_um=(6.0, -4.0),
        black_level_dn=64,
        shading=ShadingMaps.from_array(
            1 + rng.uniform(0, 0.4, (4, 13, 17)), image_width_px=2048, image_height_px=1536, binning=4
        ),
    )
    fields.update(changes)
    return CalibrationProfile(**fields)  # type: ignore[arg-type]


def test_bytes_are_deterministic_and_round_trip_exactly() -> None:
    profile = make_profile()
    data = profile.to_json()
    assert data == make_profile().to_json()  # same content → same bytes
    back = CalibrationProfile.from_json(data)
    assert back == profile
    assert back.to_json() == data  # byte-identical after a parse (floats keep their shortest repr)
    # the same instant in another zone is stored as UTC
    local = make_profile(created=datetime(2026, 11, 23, 22, 40, 1, 123456, tzinfo=timezone(timedelta(hours=1))))
    assert local.to_json() == data
    assert json.loads(data)["schema_version"] == SCHEMA_VERSION


def test_json_schema_is_exported_with_the_version() -> None:
    schema = CalibrationProfile.json_schema()
    assert schema["$id"].endswith(SCHEMA_VERSION)
    for name in ("unit_serial", "flange_offset_um", "shading", "optical_center_px", "black_level_dn"):
        assert name in schema["properties"]
    assert "shading" in schema["required"] and "geometry" not in schema["required"]


def _corrupt(obj_change) -> bytes:  # type: ignore[no-untyped-def]
    obj = json.loads(make_profile().to_json())
    obj_change(obj)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("data", "field", "expected"),
    [
        (b"\x89PNG\r\n", "", "a JSON calibration profile"),
        (b"[1, 2]", "", "a JSON object"),
        (_corrupt(lambda o: o.pop("schema_version")), "schema_version", "(missing)"),
        (_corrupt(lambda o: o.update(schema_version="2.0")), "schema_version", "schema versions 1.0, 1.1"),
        (_corrupt(lambda o: o.update(schema_version="1.2")), "schema_version", "schema versions 1.0, 1.1"),
        (_corrupt(lambda o: o["shading"].update(sensor_width_px=8000)), "shading", "binned by a whole factor"),
        (_corrupt(lambda o: o.update(flange_offset_um="thin")), "flange_offset_um", "a valid number"),
        (_corrupt(lambda o: o["shading"]["channels"][2]["gains"][3].pop()), "shading", "13×17 points"),
        (_corrupt(lambda o: o["shading"]["channels"][1].update(gains=[[-1.0]])), "shading.channels[1].gains", ""),
        (_corrupt(lambda o: o.update(created="2026-11-23T21:40:01")), "created", "timezone-aware"),
        (_corrupt(lambda o: o.update(colour="red")), "colour", "no such field"),
    ],
)
def test_corrupt_profiles_raise_one_line_naming_the_field(data: bytes, field: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        CalibrationProfile.from_json(data, source="phone:profile")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"phone:profile: {field}" if field else "phone:profile")
    assert expected in message


def test_comparison_names_each_differing_field() -> None:
    written = make_profile()
    same = compare_profiles(written, written.to_json())
    assert same.byte_identical and same.equal
    gains = written.shading.gains_array()
    gains[3, 12, 16] += 1e-3
    changed = written.model_copy(
        update={
            "tilt_x_arcmin": 0.31,
            "shading": ShadingMaps.from_array(gains, image_width_px=2048, image_height_px=1536, binning=4),
        }
    )
    result = compare_profiles(written, changed.to_json())
    assert not result.byte_identical
    assert [d.split(":")[0] for d in result.differences] == ["shading.channels[3].gains[12][16]", "tilt_x_arcmin"]
    # a tolerance forgives float noise (e.g. a phone that stores gains as float32) but not a real change
    assert compare_profiles(written, changed, abs_tol=2e-3).differences == ("tilt_x_arcmin: 0.3 != 0.31",)
    assert len(compare_profiles(written, changed, abs_tol=1e-6).differences) == 2


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("RGGB", {"R": (0, 0), "Gr": (0, 1), "Gb": (1, 0), "B": (1, 1)}),
        ("BGGR", {"R": (1, 1), "Gr": (1, 0), "Gb": (0, 1), "B": (0, 0)}),
        ("GRBG", {"R": (0, 1), "Gr": (0, 0), "Gb": (1, 1), "B": (1, 0)}),
    ],
)
def test_cfa_offsets(pattern: str, expected: dict[str, tuple[int, int]]) -> None:
    assert cfa_offsets(pattern) == expected


def test_a_schema_1_0_profile_is_read_and_migrated() -> None:
    # a 1.0 document as the previous software wrote it: no sensor size, coordinates of the fitted read-out
    current = make_profile()
    old = json.loads(current.to_json())
    old["schema_version"] = "1.0"
    for key in ("sensor_width_px", "sensor_height_px"):
        del old["shading"][key]
    migrated = CalibrationProfile.from_json(json.dumps(old).encode(), source="old profile.json")
    assert migrated.schema_version == SCHEMA_VERSION == "1.1"
    assert (migrated.shading.sensor_width_px, migrated.shading.sensor_height_px) == (2048, 1536)
    assert migrated.shading.fitted_binning == 1
    np.testing.assert_array_equal(migrated.shading.gains_array(), current.shading.gains_array())  # maps unchanged
    assert migrated.model_copy(update={"shading": current.shading}) == current


def test_readouts_of_the_sensor() -> None:
    shading = make_profile().shading
    assert shading.fitted_binning == 4
    assert [shading.readout_px(b) for b in (1, 2, 4)] == [(8192, 6144), (4096, 3072), (2048, 1536)]
    with pytest.raises(ValueError, match="does not divide"):
        shading.readout_px(3)
