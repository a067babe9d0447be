"""8-bit and colour inputs: sRGB decoding by default, channel order of every decoder, clipping on source samples,
and refusal of headers beyond the pixel budget or beyond the file's data."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from rig.cli import main
from rig.errors import ImageInputError
from rig.measure.imageio import LINEAR, SRGB, Encoding, Transfer, load_image
from tests.measure.analytic import gaussian_edge


def _srgb_to_linear(code: float) -> float:
    c = code / 255.0  # IEC 61966-2-1 §5.2, inverted
    return 255.0 * (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)


def test_8_bit_is_decoded_as_srgb_unless_told(tmp_path: Path) -> None:
    gray = np.full((6, 8), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    assert load_image(tmp_path / "g.png").data == pytest.approx(np.full((6, 8), _srgb_to_linear(128)))
    assert str(load_image(tmp_path / "g.png").encoding) == "srgb"
    assert np.array_equal(load_image(tmp_path / "g.png", encoding=LINEAR).data, gray)
    power = load_image(tmp_path / "g.png", encoding=Encoding.parse("gamma=2.2")).data
    assert power == pytest.approx(np.full((6, 8), 255.0 * (128 / 255.0) ** 2.2))
    # 16-bit files are linear by default
    cv2.imwrite(str(tmp_path / "g16.png"), gray.astype(np.uint16) * 257)
    assert str(load_image(tmp_path / "g16.png").encoding) == "linear"


@pytest.mark.parametrize("text", ["srgb", "linear", "gamma=1.8", "GAMMA=2.4"])
def test_encoding_parse_round_trip(text: str) -> None:
    assert str(Encoding.parse(text)) == text.lower()


@pytest.mark.parametrize("text", ["gamma=0", "gamma=x", "rec709", ""])
def test_encoding_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected srgb, linear or gamma=G"):
        Encoding.parse(text)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_red_and_blue_keep_their_weights_in_every_format(tmp_path: Path, suffix: str) -> None:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200  # pure red: luma 0.2126·R (blue would give 0.0722·R)
    path = tmp_path / f"red{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, rgb)
    else:
        cv2.imwrite(str(path), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])  # OpenCV writes BGR
    value = float(np.median(load_image(path, encoding=LINEAR).data))
    assert value == pytest.approx(0.2126 * 200, abs=1.5)


def test_rgba_png_clipping_is_seen_on_the_source_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edge = gaussian_edge((80, 100), angle_deg=5.0, sigma_px=0.8, lo=0.0, hi=1.0)
    rgba = np.zeros((80, 100, 4), np.uint8)
    rgba[..., 0] = np.where(edge > 0.5, 255, 0)  # red hard-clipped at 0 and 255: luma mixes it to 0 … 54
    rgba[..., 1] = np.round(40 + 80 * edge)
    rgba[..., 2] = np.round(30 + 60 * edge)
    rgba[..., 3] = 255
    path = tmp_path / "rgba.png"
    cv2.imwrite(str(path), rgba[..., [2, 1, 0, 3]])
    image = load_image(path)
    assert image.clipped is not None and image.clipped.mean() > 0.95
    code = main(["measure", "sfr", str(path), "--roi", "0", "0", "100", "80", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and "clipped" in out["flags"] and out["encoding"] == "srgb"


def test_cli_encoding_option_is_echoed_and_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edge = gaussian_edge((80, 100), angle_deg=5.0, sigma_px=0.8, lo=40.0, hi=200.0)
    path = tmp_path / "e.png"
    cv2.imwrite(str(path), np.round(edge).astype(np.uint8))
    assert main(["measure", "sfr", str(path), "--encoding", "gamma=2.2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["encoding"] == "gamma=2.2"
    assert main(["measure", "sfr", str(path), "--encoding", "log"]) == 2
    assert "--encoding" in capsys.readouterr().err


def test_srgb_decoding_restores_the_linear_mtf(tmp_path: Path) -> None:
    # an edge written through the sRGB curve measures sharper than it is when taken as linear
    from rig.measure.sfr import slanted_edge_sfr

    linear = gaussian_edge((100, 100), angle_deg=5.0, sigma_px=1.2, lo=0.05, hi=0.8)
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    path = tmp_path / "s.png"
    cv2.imwrite(str(path), np.round(255 * encoded).astype(np.uint8))
    truth = slanted_edge_sfr(linear).mtf50_cy_px
    decoded = slanted_edge_sfr(load_image(path, encoding=SRGB).data).mtf50_cy_px
    as_linear = slanted_edge_sfr(load_image(path, encoding=LINEAR).data).mtf50_cy_px
    assert abs(decoded / truth - 1) < 0.01 < abs(as_linear / truth - 1)
    assert Encoding.parse("srgb").transfer is Transfer.SRGB


def _png_with_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = zlib.compress(b"\x00" * 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(body))
        + b"IDAT"
        + body
        + struct.pack(">I", zlib.crc32(b"IDAT" + body))
        + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )


def _idat_of_zeros(width: int, height: int) -> bytes:
    packer = zlib.compressobj(9)  # row by row: the 200+ MB of zeros never exist in memory at once
    row = b"\x00" * (width + 1)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (
        struct.pack(">I", len(body))
        + b"IDAT"
        + body
        + struct.pack(">I", zlib.crc32(b"IDAT" + body))
        + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )


def test_headers_beyond_the_budget_or_the_data_are_refused(tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(_png_with_header(20000, 20000))  # 400 MP claimed, 60 bytes of file
    with pytest.raises(ImageInputError, match="more than its 68 bytes can hold"):
        load_image(tmp_path / "bomb.png")
    # a real, highly compressible PNG within the data bound but beyond the pixel budget
    big = tmp_path / "big.png"
    big.write_bytes(_png_with_header(15000, 14000)[:33] + _idat_of_zeros(15000, 14000))
    with pytest.raises(ImageInputError, match="15000×14000 = 210 MP: expected at most 200 MP"):
        load_image(big)
    bomb_jpeg = tmp_path / "bomb.jpg"  # a JPEG whose SOF0 claims 20000 × 20000 (PIL reads the header)
    _, blob = cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))
    blob = bytearray(blob.tobytes())
    sof = blob.index(b"\xff\xc0")
    blob[sof + 5 : sof + 9] = struct.pack(">HH", 20000, 20000)
    bomb_jpeg.write_bytes(bytes(blob))
    with pytest.raises(ImageInputError, match="expected at most 200 MP"):
        load_image(bomb_jpeg)
    with tifffile.TiffWriter(tmp_path / "wide.tif") as tif:  # 210 MP claimed over a few bytes of tiles
        tif.write(
            shape=(14000, 15000),
            dtype=np.uint8,
            compression="zlib",
            tile=(4096, 4096),
            data=iter([b"x"] * (4 * 4)),
        )
    with pytest.raises(ImageInputError, match="15000×14000 = 210 MP: expected at most 200 MP"):
        load_image(tmp_path / "wide.tif")
    tifffile.imwrite(tmp_path / "t.tif", np.zeros((64, 64), np.uint16))
    blob = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ImageInputError, match="header claims image data up to byte"):
        load_image(tmp_path / "cut.tif")
