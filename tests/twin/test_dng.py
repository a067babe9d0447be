"""rig.spec.dng: a DNG we write reads back byte-exact, LibRaw agrees on its layout, and bad files fail in one line."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rawpy
import tifffile

from rig.errors import ImageInputError
from rig.spec.dng import read_dng, write_dng

BLACK = 64
WHITE = 1023


def _raw(rng: np.random.Generator, height: int = 96, width: int = 128) -> np.ndarray:
    return rng.integers(0, WHITE + 1, size=(height, width), dtype=np.uint16)


def _dng(raw: np.ndarray, **overrides: Any) -> bytes:
    kwargs: dict[str, Any] = {
        "black_level": BLACK,
        "white_level": WHITE,
        "make": "Xiaomi",
        "model": "12S Ultra Concept",
        "unique_camera_model": "Xiaomi 12S Ultra Concept",
        "serial": "XM12SU-000001",
        "timestamp_ms": 1_700_000_000_123.456,
        "exposure_time_s": 0.01,
        "iso": 200,
        "f_number": 1.4,
        "focal_length_mm": 35.0,
        "lens_model": "Summilux-M 1:1.4/35 ASPH",
    }
    kwargs.update(overrides)
    return write_dng(raw, **kwargs)


def test_round_trip_is_byte_exact_with_all_tags() -> None:
    rng = np.random.default_rng(20240601)
    raw = _raw(rng)
    opcodes = bytes(rng.integers(0, 256, 92, dtype=np.uint8))
    image = read_dng(_dng(raw, opcode_list2=opcodes))
    assert image.raw.dtype == np.uint16
    assert np.array_equal(image.raw, raw)
    assert (image.width, image.height) == (128, 96)
    assert (image.black_level, image.white_level, image.cfa_pattern) == (BLACK, WHITE, "RGGB")
    assert (image.make, image.model, image.serial) == ("Xiaomi", "12S Ultra Concept", "XM12SU-000001")
    assert image.unique_camera_model == "Xiaomi 12S Ultra Concept"
    assert image.exposure_time_s == pytest.approx(0.01, rel=1e-12)
    assert image.iso == 200
    assert image.f_number == pytest.approx(1.4, rel=1e-12)
    assert image.focal_length_mm == pytest.approx(35.0)
    assert image.lens_model == "Summilux-M 1:1.4/35 ASPH"
    # stored to 1 µs: a burst's 1 ms frame spacing survives with room to spare
    assert image.timestamp_ms == pytest.approx(1_700_000_000_123.456, abs=1e-3)
    assert image.opcode_list2 == opcodes
    assert image.tags["DNGVersion"] == b"\x01\x04\x00\x00"


def test_optional_fields_can_be_absent() -> None:
    raw = _raw(np.random.default_rng(1), 8, 8)
    image = read_dng(_dng(raw, serial=None, timestamp_ms=None, f_number=None, focal_length_mm=None, lens_model=None))
    assert image.serial is None and image.timestamp_ms is None and image.f_number is None
    assert image.focal_length_mm is None and image.lens_model is None and image.opcode_list2 is None


@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GRBG", "GBRG"])
def test_rawpy_agrees_on_size_pattern_and_levels(pattern: str) -> None:
    rng = np.random.default_rng(7)
    raw = _raw(rng)
    data = _dng(raw, cfa_pattern=pattern)
    assert read_dng(data).cfa_pattern == pattern
    with rawpy.imread(io.BytesIO(data)) as img:
        assert img.raw_image.shape == (96, 128)
        assert np.array_equal(img.raw_image, raw)
        assert list(img.black_level_per_channel) == [BLACK] * 4
        assert img.white_level == WHITE
        # LibRaw numbers colours R=0, G=1, B=2, second G=3 in raw_pattern
        letters = img.color_desc.decode()
        seen = "".join(letters[i] for i in img.raw_pattern.ravel())
        assert seen == pattern
        assert int(img.raw_image.max()) <= WHITE


def test_same_inputs_give_identical_bytes() -> None:
    raw = _raw(np.random.default_rng(3))
    assert _dng(raw) == _dng(raw.copy())


def test_file_path_source_and_name_in_messages(tmp_path: Path) -> None:
    raw = _raw(np.random.default_rng(4), 16, 16)
    path = tmp_path / "frame.dng"
    path.write_bytes(_dng(raw))
    assert np.array_equal(read_dng(path).raw, raw)
    with pytest.raises(ImageInputError, match=r"missing\.dng: no such file"):
        read_dng(tmp_path / "missing.dng")


def _one_line(exc: pytest.ExceptionInfo[ImageInputError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_non_tiff_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "photo.dng"
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"JFIF" * 100)
    with pytest.raises(ImageInputError) as info:
        read_dng(path)
    message = _one_line(info)
    assert str(path) in message and "not a TIFF/DNG" in message
    with pytest.raises(ImageInputError, match="only 3 bytes"):
        read_dng(b"II*")


def test_truncated_file_is_rejected() -> None:
    data = _dng(_raw(np.random.default_rng(5)))
    for keep in (len(data) - 1, len(data) // 2, 40):
        with pytest.raises(ImageInputError) as info:
            read_dng(data[:keep], name="cut.dng")
        message = _one_line(info)
        assert message.startswith("cut.dng: ")
        assert "truncated" in message or "corrupt" in message


def test_corrupt_ifd_offset_is_rejected() -> None:
    data = bytearray(_dng(_raw(np.random.default_rng(6), 16, 16)))
    data[4:8] = struct.pack("<I", len(data) + 1000)  # IFD0 beyond the end of the file
    with pytest.raises(ImageInputError) as info:
        read_dng(bytes(data))
    assert "corrupt" in _one_line(info)


def _plain_tiff(raw: np.ndarray, extratags: list[tuple[int, str | int, int, Any, bool]]) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, raw, photometric=32803, metadata=None, extratags=extratags)
    return buffer.getvalue()


_CFA_TAGS = [(33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True)]
_DNG_TAGS = [(50706, "B", 4, (1, 4, 0, 0), True), (50708, "s", 0, "cam", True)]


@pytest.mark.parametrize(
    ("drop", "name"),
    [(50706, "DNGVersion"), (50708, "UniqueCameraModel"), (33421, "CFARepeatPatternDim"), (33422, "CFAPattern")],
)
def test_missing_required_tag_is_named(drop: int, name: str) -> None:
    raw = _raw(np.random.default_rng(8), 16, 16)
    tags = [t for t in _CFA_TAGS + _DNG_TAGS if t[0] != drop]
    with pytest.raises(ImageInputError) as info:
        read_dng(_plain_tiff(raw, tags), name="x.dng")
    assert f"missing required DNG tag {name}" in _one_line(info)


def test_plain_rgb_tiff_has_no_cfa_image() -> None:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    with pytest.raises(ImageInputError, match="no CFA raw image"):
        read_dng(buffer.getvalue())


def test_values_above_white_level_are_rejected() -> None:
    raw = _raw(np.random.default_rng(9), 16, 16)
    raw[3, 5] = 1500
    raw[7, 1] = 1100
    tags = [*_CFA_TAGS, *_DNG_TAGS, (50717, "I", 1, WHITE, True)]
    with pytest.raises(ImageInputError) as info:
        read_dng(_plain_tiff(raw, tags))
    message = _one_line(info)
    assert "2 raw values above WhiteLevel 1023 (max 1500)" in message


def test_writer_refuses_values_it_could_not_describe() -> None:
    raw = _raw(np.random.default_rng(10), 8, 8)
    raw[0, 0] = WHITE + 1
    with pytest.raises(ValueError, match="above white_level"):
        _dng(raw)
    with pytest.raises(ValueError, match="even"):
        _dng(np.zeros((7, 8), np.uint16))
    with pytest.raises(ValueError, match="uint16"):
        _dng(np.zeros((8, 8), np.float32))


# --------------------------------------------------------------------------------------------- what readers see
EXIF_CAPTURE_TAGS = {33434, 33437, 34855, 34864, 36867, 36881, 37386, 37521, 41989, 42035, 42036}
"""ExposureTime, FNumber, PhotographicSensitivity, SensitivityType, DateTimeOriginal, OffsetTimeOriginal,
FocalLength, SubSecTimeOriginal, FocalLengthIn35mmFilm, LensMake, LensModel: Exif IFD tags (Exif 2.32 §4.6.5)."""


def exiftool_warnings(path: Path) -> list[str]:
    """``exiftool -validate -warning -a`` on ``path``: its warning lines (an empty list: the file validates)."""
    exe = shutil.which("exiftool")
    if exe is None:
        pytest.skip("exiftool not installed (setup.sh installs libimage-exiftool-perl)")
    out = subprocess.run(
        [exe, "-validate", "-warning", "-a", "-s", str(path)], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    verdict = [line for line in lines if line.startswith("Validate")]
    assert verdict, f"exiftool printed no Validate line: {out!r}"
    warnings = [line for line in lines if line.startswith("Warning")]
    if verdict[0].split(":", 1)[1].strip() != "OK":
        assert warnings, f"exiftool says {verdict[0]!r} without warning lines"
    return warnings


def test_capture_tags_sit_in_the_exif_ifd_and_orientation_and_crop_in_ifd0() -> None:
    raw = _raw(np.random.default_rng(11))
    data = _dng(raw, lens_make="Leica", focal_length_35mm_mm=92.4)
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        ifd0 = tif.pages.first.tags
        assert not EXIF_CAPTURE_TAGS & {t.code for t in ifd0.values()}, "capture tags belong in the Exif IFD"
        exif = ifd0[34665].value
        assert isinstance(exif, dict)
        assert {"ExposureTime", "FNumber", "ISOSpeedRatings", "SensitivityType", "DateTimeOriginal",
                "OffsetTimeOriginal", "SubsecTimeOriginal", "FocalLength", "FocalLengthIn35mmFilm", "LensMake",
                "LensModel", "ExifVersion"} <= set(exif)  # fmt: skip
        assert exif["SensitivityType"] == 2 and exif["RecommendedExposureIndex"] == 200
        assert ifd0[274].value == 1  # Orientation: normal
        assert tuple(ifd0[50719].value) == (0, 0) and tuple(ifd0[50720].value) == (128, 96)
    image = read_dng(data)  # the strict reader finds them in the sub-IFD
    assert (image.iso, image.lens_make, image.focal_length_35mm_mm) == (200, "Leica", 92.0)


def test_exiftool_validates_a_dng_with_every_tag(tmp_path: Path) -> None:
    path = tmp_path / "frame.dng"
    path.write_bytes(_dng(_raw(np.random.default_rng(12)), lens_make="Leica", focal_length_35mm_mm=92.4,
                          opcode_list2=bytes(4), opcode_list3=bytes(4)))  # fmt: skip
    assert exiftool_warnings(path) == []


def test_rawpy_reads_iso_exposure_aperture_lens_and_capture_time() -> None:
    data = _dng(_raw(np.random.default_rng(13)), lens_make="Leica")
    with rawpy.imread(io.BytesIO(data)) as img:
        other, lens = img.other, img.lens
    assert other.iso_speed == 200
    assert other.shutter_speed == pytest.approx(0.01, rel=1e-6)
    assert other.aperture == pytest.approx(1.4, rel=1e-6)
    assert other.focal_length == pytest.approx(35.0)
    assert (lens.make, lens.model) == ("Leica", "Summilux-M 1:1.4/35 ASPH")
    # LibRaw reads DateTimeOriginal as local time and rawpy hands it back naive in local time: the wall reading
    # is the file's, 2023-11-14 22:13:20 (UTC), whatever the machine's zone
    assert other.timestamp == datetime(2023, 11, 14, 22, 13, 20)


def test_opcode_list3_round_trips_beside_list2() -> None:
    image = read_dng(_dng(_raw(np.random.default_rng(14), 8, 8), opcode_list2=b"\x00\x00\x00\x00",
                          opcode_list3=b"\x00\x00\x00\x01"))  # fmt: skip
    assert (image.opcode_list2, image.opcode_list3) == (b"\x00\x00\x00\x00", b"\x00\x00\x00\x01")


def test_a_cut_exif_ifd_is_refused() -> None:
    data = _dng(_raw(np.random.default_rng(15), 8, 8))
    with pytest.raises(ImageInputError, match="truncated: Exif IFD tag") as info:
        read_dng(data[:-3], name="cut.dng")
    assert _one_line(info).startswith("cut.dng: ")
