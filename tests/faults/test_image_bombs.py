"""Image bombs through the measure commands (issue #20, "bounded readers"): each file declares far more pixels
than it holds, and ``rig measure`` must refuse it as one line, exit 2, in a process whose address space is capped
at 1 GiB (``resource.setrlimit(RLIMIT_AS)``): an attempt to allocate the declared frame would end there in a
MemoryError instead.

The files: the issue's own 20000×20000 PNG of under 0.5 MB (a real deflate stream, W3C PNG 3rd ed. §10), the DNG
bombs of :mod:`tests.faults.dng_mutants` (read here by the measure commands' tolerant raw reader, not the bench's
strict one), a tiled TIFF claiming 210 MP over a few bytes, and a JPEG whose SOF0 claims 20000×20000.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tests.faults.dng_mutants import bombs

pytestmark = pytest.mark.timeout(300)

MEMORY_CAP_BYTES = 1 << 30
PNG_SIDE = 20000
EXIT_INPUT = 2
COMMANDS = (("uniformity",), ("sfr",), ("chart",))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_of_zeros(side: int) -> bytes:
    """A valid 8-bit gray PNG of ``side``² black pixels, compressed row by row (never in memory at once)."""
    packer = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0 + the row
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_claiming(side: int) -> bytes:
    import cv2

    _, blob = cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))
    data = bytearray(blob.tobytes())
    sof = data.index(b"\xff\xc0")  # SOF0: length (2), precision (1), height (2), width (2) (ITU-T T.81 B.2.2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    return bytes(data)


def _write_files(folder: Path) -> list[Path]:
    files = {"png-20000-squared.png": png_of_zeros(PNG_SIDE), "jpeg-20000-squared.jpg": jpeg_claiming(PNG_SIDE)}
    files |= {f"{name}.dng": data for name, data in bombs().items()}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with tifffile.TiffWriter(folder / "tiff-210-MP-tiled.tif") as tif:
        tif.write(shape=(14000, 15000), dtype=np.uint8, compression="zlib", tile=(4096, 4096), data=iter([b"x"] * 16))
    return sorted(folder.iterdir())


def test_the_png_is_the_issues_bomb(tmp_path: Path) -> None:
    data = png_of_zeros(PNG_SIDE)
    assert len(data) < 0.5e6  # "a 0.48 MB 20000×20000 PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (PNG_SIDE, PNG_SIDE)


def test_every_bomb_is_refused_by_every_measure_command_under_a_1_gib_cap(tmp_path: Path) -> None:
    files = _write_files(tmp_path)
    script = textwrap.dedent(
        f"""
        import contextlib, io, json, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP_BYTES}, {MEMORY_CAP_BYTES}))
        from rig.cli import main
        out = []
        for command in {COMMANDS!r}:
            for path in sys.argv[1:]:
                err = io.StringIO()
                with contextlib.redirect_stderr(err):
                    try:
                        code = main(["measure", *command, path])
                    except SystemExit as exc:
                        code = exc.code
                out.append([command[0], path, code, err.getvalue()])
        print(json.dumps(out))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, files)], capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert len(results) == len(files) * len(COMMANDS)
    wrong = [
        (command, Path(path).name, code, err)
        for command, path, code, err in results
        if code != EXIT_INPUT or len(err.strip().splitlines()) != 1 or not err.startswith(f"rig: error: {path}: ")
    ]
    assert not wrong, wrong
