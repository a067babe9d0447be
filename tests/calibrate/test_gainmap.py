"""DNG GainMap opcode lists: byte layout per the DNG 1.4 spec, round trip, corrupt input, application, DNG file."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from rig.errors import ImageInputError
from rig.spec.dng import read_dng, write_dng
from rig.spec.gainmap import (
    DNG_VERSION_1_3,
    GainMap,
    OpcodeFlags,
    RawOpcode,
    apply_opcode_list,
    decode_opcode_list,
    encode_opcode_list,
    gain_maps_for_shading,
    shading_opcode_list,
)
from rig.spec.profile import ShadingMaps


def _map(v: int = 3, h: int = 4, map_planes: int = 1, **kw: object) -> GainMap:
    gains = (1.0 + np.arange(v * h * map_planes, dtype=np.float32) / 100).reshape(v, h, map_planes)
    fields: dict[str, object] = dict(
        top=1, left=0, bottom=40, right=60, plane=0, planes=1, row_pitch=2, col_pitch=2,
        map_spacing_v=0.5, map_spacing_h=1 / 3, map_origin_v=0.0, map_origin_h=0.0, gains=gains,
    )  # fmt: skip
    fields.update(kw)
    return GainMap(**fields)  # type: ignore[arg-type]


def test_byte_layout_follows_the_spec_field_order_and_sizes() -> None:
    op = _map(v=3, h=4, flags=OpcodeFlags.OPTIONAL)
    data = encode_opcode_list([op])
    param_bytes = 76 + 4 * 3 * 4 * 1  # spec: 76 + 4·V·H·MapPlanes
    assert len(data) == 4 + 16 + param_bytes
    # list header and opcode header, big-endian
    assert struct.unpack(">I", data[0:4]) == (1,)
    assert struct.unpack(">IIII", data[4:20]) == (9, DNG_VERSION_1_3, 1, param_bytes)
    assert data[8:12] == bytes([1, 3, 0, 0])  # DNGVersion 1.3.0.0
    p = data[20:]
    # Top, Left, Bottom, Right, Plane, Planes, RowPitch, ColPitch, MapPointsV, MapPointsH (10 × u32)
    assert struct.unpack(">10I", p[0:40]) == (1, 0, 40, 60, 0, 1, 2, 2, 3, 4)
    # MapSpacingV, MapSpacingH, MapOriginV, MapOriginH (4 × f64)
    assert struct.unpack(">4d", p[40:72]) == (0.5, 1 / 3, 0.0, 0.0)
    assert struct.unpack(">I", p[72:76]) == (1,)  # MapPlanes
    gains = struct.unpack(">12f", p[76:])
    assert gains == tuple(np.float32(1.0 + i / 100) for i in range(12))  # row-major [V][H][planes]


def test_round_trip_keeps_every_field_and_unknown_opcodes_byte_exact() -> None:
    other = RawOpcode(opcode_id=4, dng_version=DNG_VERSION_1_3, flags=OpcodeFlags.OPTIONAL, params=b"\x00" * 8)
    ops = [_map(), _map(v=2, h=5, map_planes=3, plane=1, planes=3, top=0, left=1), other]
    data = encode_opcode_list(ops)
    back = decode_opcode_list(data)
    assert len(back) == 3 and back[2] == other
    for a, b in zip(ops[:2], back[:2], strict=True):
        assert isinstance(b, GainMap)
        for name in ("top", "left", "bottom", "right", "plane", "planes", "row_pitch", "col_pitch", "flags"):
            assert getattr(a, name) == getattr(b, name), name
        assert (a.map_spacing_v, a.map_spacing_h, a.map_origin_v, a.map_origin_h) == (
            b.map_spacing_v, b.map_spacing_h, b.map_origin_v, b.map_origin_h,
        )  # fmt: skip
        np.testing.assert_array_equal(a.gains, b.gains)
    assert encode_opcode_list(back) == data


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:3], "at least the 4-byte opcode count"),
        (lambda d: struct.pack(">I", 2) + d[4:], "header truncated"),
        (lambda d: d[:-4], "parameter bytes announced"),
        (lambda d: d + b"\x00", "bytes after the 1 opcodes"),
        # MapPointsV says 4 while the data holds 3 rows of gains
        (lambda d: d[: 20 + 32] + struct.pack(">I", 4) + d[20 + 36 :], "has 124 parameter bytes, expected 140"),
        # an empty area (Bottom ≤ Top)
        (lambda d: d[: 20 + 8] + struct.pack(">I", 0) + d[20 + 12 :], "is empty"),
    ],
)
def test_corrupt_lists_raise_one_line_naming_the_problem(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = encode_opcode_list([_map()])
    with pytest.raises(ImageInputError, match=message) as info:
        decode_opcode_list(mutate(data), source="frame.dng OpcodeList2")
    assert "\n" not in str(info.value) and "frame.dng OpcodeList2" in str(info.value)


def test_bilinear_application_matches_a_linear_gain_law_exactly() -> None:
    # Gains linear in the relative position: bilinear interpolation reproduces them exactly, so every pixel's
    # expected gain is known in closed form: 1 + 0.5·v + 0.25·h, v = (row + ½)/H, h = (col + ½)/W (DNG SDK).
    height, width = 30, 40
    v_pts, h_pts = np.linspace(0, 1, 5), np.linspace(0, 1, 6)
    law = 1 + 0.5 * v_pts[:, None] + 0.25 * h_pts[None, :]
    op = _map(top=1, left=0, bottom=height, right=width, map_spacing_v=0.25, map_spacing_h=0.2,
              gains=law[:, :, None].astype(np.float32))  # fmt: skip
    out = apply_opcode_list(np.ones((height, width)), [op])
    rows, cols = np.mgrid[0:height, 0:width]
    expected = 1 + 0.5 * (rows + 0.5) / height + 0.25 * (cols + 0.5) / width
    touched = (rows % 2 == 1) & (cols % 2 == 0)  # Top = 1, Left = 0, pitch 2: the Gb sites of RGGB
    np.testing.assert_allclose(out[touched], expected[touched], rtol=1e-6)
    assert np.all(out[~touched] == 1.0)


def test_positions_outside_the_map_take_the_edge_gain() -> None:
    # Map covers relative 0.25..0.75 only; the DNG SDK clamps the index, so outside pixels get the edge value.
    op = _map(top=0, left=0, bottom=8, right=8, row_pitch=1, col_pitch=1, map_origin_v=0.25, map_origin_h=0.25,
              map_spacing_v=0.25, map_spacing_h=0.25,
              gains=np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0]], np.float32)[:, :, None])  # fmt: skip
    out = apply_opcode_list(np.ones((8, 8)), [op])
    assert np.all(out[0] == 1.0) and np.all(out[1] == 1.0)  # v = 0.0625, 0.1875 < origin
    assert np.all(out[7] == 3.0)  # v = 0.9375 > last point 0.75
    assert out[4, 0] == pytest.approx(1 + (0.5625 - 0.25) / 0.25)  # between points 1 and 2 -> 2.25


def test_white_level_clips_and_unknown_mandatory_opcode_refuses() -> None:
    op = _map(row_pitch=1, col_pitch=1, top=0, gains=np.full((3, 4, 1), 3.0, np.float32))
    assert apply_opcode_list(np.full((40, 60), 100.0), [op], white_level=250.0).max() == 250.0
    skip = RawOpcode(opcode_id=4, dng_version=DNG_VERSION_1_3, flags=OpcodeFlags.OPTIONAL, params=b"")
    np.testing.assert_array_equal(apply_opcode_list(np.ones((4, 4)), [skip]), np.ones((4, 4)))
    with pytest.raises(ImageInputError, match="id 4 and is not optional"):
        apply_opcode_list(np.ones((4, 4)), [RawOpcode(4, DNG_VERSION_1_3, OpcodeFlags.NONE, b"")])


def _shading(v: int = 5, h: int = 7) -> ShadingMaps:
    rng = np.random.default_rng(7)
    return ShadingMaps.from_array(1 + rng.uniform(0, 0.5, (4, v, h)), image_width_px=64, image_height_px=48)


def test_per_channel_maps_sit_on_their_cfa_sites() -> None:
    maps = gain_maps_for_shading(_shading(), width_px=64, height_px=48)
    assert [(m.top, m.left, m.row_pitch, m.col_pitch, m.bottom, m.right) for m in maps] == [
        (0, 0, 2, 2, 48, 64), (0, 1, 2, 2, 48, 64), (1, 0, 2, 2, 48, 64), (1, 1, 2, 2, 48, 64),
    ]  # fmt: skip
    # Constant maps per channel (2, 3, 4, 5) land on R, Gr, Gb, B only.
    const = ShadingMaps.from_array(
        np.stack([np.full((3, 3), g) for g in (2.0, 3.0, 4.0, 5.0)]), image_width_px=8, image_height_px=8
    )
    out = apply_opcode_list(np.ones((8, 8)), decode_opcode_list(shading_opcode_list(const, width_px=8, height_px=8)))
    assert (out[0::2, 0::2] == 2).all() and (out[0::2, 1::2] == 3).all()
    assert (out[1::2, 0::2] == 4).all() and (out[1::2, 1::2] == 5).all()


def test_a_dng_written_with_the_list_carries_it_back() -> None:
    shading = _shading()
    blob = shading_opcode_list(shading, width_px=64, height_px=48)
    raw = np.full((48, 64), 564, np.uint16)
    dng = write_dng(
        raw, black_level=64, white_level=1023, make="Xiaomi", model="12S Ultra Concept",
        unique_camera_model="Xiaomi 12S Ultra Concept", serial="XM12SU-000001", timestamp_ms=None,
        exposure_time_s=0.01, iso=100, f_number=1.4, focal_length_mm=35.0, lens_model=None, opcode_list2=blob,
    )  # fmt: skip
    image = read_dng(dng, name="frame.dng")
    assert image.opcode_list2 == blob
    ops = decode_opcode_list(image.opcode_list2, source="frame.dng OpcodeList2")
    corrected = apply_opcode_list(image.raw.astype(float) - image.black_level, ops)
    # top-left R pixel sits at relative (0.5/48, 0.5/64): between map points 0 and 1 of the R map
    g = shading.gains_array()[0]
    fv, fh = (0.5 / 48) / 0.25, (0.5 / 64) / (1 / 6)
    top_left = (1 - fv) * ((1 - fh) * g[0, 0] + fh * g[0, 1]) + fv * ((1 - fh) * g[1, 0] + fh * g[1, 1])
    assert corrected[0, 0] == pytest.approx(500 * np.float32(top_left), rel=1e-6)
