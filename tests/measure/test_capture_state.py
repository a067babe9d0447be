"""Captures that carry their bench state (issue #15 scope 7): the ``rig:`` XMP in the DNG, checked with exiftool
and LibRaw (the real consumers), written by the bench where it keeps a capture, and read back by
``rig measure focus`` — on a run folder it reproduces the flange figure the run recorded.

One rail convention: mm from the station's focus position, in ``rig twin capture --rail-mm``, the bench's frames,
``rig:RailFromFocusMm`` and ``rig measure focus``; a position given in another convention for a bench capture is
refused with both numbers.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rawpy
import tifffile

from rig.bench import procedures as proc
from rig.bench.capture_state import bench_state
from rig.bench.open import open_bench
from rig.bench.ops import BenchOps
from rig.bench.recording import RunRecorder
from rig.cli import main
from rig.config.limits import load_limits
from rig.config.resolve import load_station_lenses
from rig.config.station import StationConfig, load_station
from rig.config.unit import UNITS_DIR, load_unit
from rig.errors import ImageInputError
from rig.measure.capture_meta import read_capture_meta
from rig.spec.capture_state import RIG_NAMESPACE, CaptureBenchState, read_capture_state, stamp
from rig.spec.dng import read_dng, write_dng
from rig.spec.xmp import XMP_TAG, embed_xmp, encode_packet, tiff_xmp
from tests.twin.test_dng import exiftool_warnings

REPRODUCE_TOL_UM = 0.01
"""`rig measure focus RUN` runs the same frames through the same code with the same focal length, collimator and
pitch as the run: the figure agrees to rounding (0.01 µm allows the JSON round trip, nothing else)."""

STATE = CaptureBenchState(
    station="twin-01",
    tag="focus-03",
    chart="sfr",
    carousel_mm=0.0,
    rail_from_focus_mm=-1.2345678901234,
    rail_focus_mm=50.0,
    collimator_focal_length_mm=200.0,
    pitch_deg=-12.5,
    light_level=0.8,
    light_luminance_cd_m2=400.0,
    exposure_time_s=0.0123,
    iso=200,
    pixel_pitch_um=6.4,
)


def _dng(seed: int = 1) -> bytes:
    raw = np.random.default_rng(seed).integers(64, 1000, (96, 128)).astype(np.uint16)
    return write_dng(
        raw, black_level=64, white_level=1023, make="Xiaomi", model="12S Ultra Concept", unique_camera_model="X U",
        serial="1", timestamp_ms=1.7e12, exposure_time_s=0.0123, iso=200, f_number=1.4, focal_length_mm=35.0,
        lens_model="Summilux-M 1:1.4/35 ASPH", lens_make="Leica",
    )  # fmt: skip


def _ifd0_tags(data: bytes) -> dict[int, Any]:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        return {t.code: t.value for t in tif.pages.first.tags.values()}


def test_the_state_round_trips_exactly_and_nothing_else_in_the_dng_changes() -> None:
    original = _dng()
    stamped = stamp(original, STATE)
    assert stamped[: len(original)][8:] == original[8:]  # only appended: every byte the file's offsets point at stays
    assert read_capture_state(stamped, source="frame.dng") == STATE
    assert read_capture_state(original, source="frame.dng") is None
    before, after = _ifd0_tags(original), _ifd0_tags(stamped)
    assert set(after) - set(before) == {XMP_TAG}
    for code, value in before.items():
        assert np.array_equal(np.asarray(after[code], dtype=object), np.asarray(value, dtype=object)), code
    a, b = read_dng(original), read_dng(stamped)
    assert np.array_equal(a.raw, b.raw) and (a.exposure_time_s, a.iso, a.lens_model) == (
        b.exposure_time_s,
        b.iso,
        b.lens_model,
    )
    # stamping again replaces the state (one XMP tag, the new values)
    moved = CaptureBenchState(**{**STATE.__dict__, "rail_from_focus_mm": 2.5})
    again = stamp(stamped, moved)
    assert read_capture_state(again, source="x") == moved
    assert list(_ifd0_tags(again)).count(XMP_TAG) == 1


def test_a_big_endian_tiff_takes_the_packet_too() -> None:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.arange(64, dtype=np.uint16).reshape(8, 8), byteorder=">", metadata=None)
    packet = encode_packet(RIG_NAMESPACE, "rig", {"SchemaVersion": "1"})
    data = embed_xmp(buffer.getvalue(), packet)
    assert tiff_xmp(data) == packet
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        assert bytes(tif.pages.first.tags[XMP_TAG].value) == packet
        assert np.array_equal(tif.asarray(), np.arange(64).reshape(8, 8))


def test_exiftool_validates_the_stamped_dng_and_reads_every_rig_property(tmp_path: Path) -> None:
    path = tmp_path / "frame.dng"
    path.write_bytes(stamp(_dng(), STATE))
    assert exiftool_warnings(path) == []
    exe = shutil.which("exiftool")
    assert exe is not None
    out = subprocess.run(
        [exe, "-j", "-n", "-XMP-rig:all", str(path)], capture_output=True, text=True, check=True, timeout=120
    )
    (tags,) = json.loads(out.stdout)
    assert tags["Station"] == "twin-01" and tags["CaptureTag"] == "focus-03" and tags["Chart"] == "sfr"
    assert tags["RailFromFocusMm"] == pytest.approx(STATE.rail_from_focus_mm, abs=1e-12)
    assert tags["RailFocusMm"] == 50.0 and tags["CollimatorFocalLengthMm"] == 200.0
    assert tags["FixturePitchDeg"] == -12.5 and tags["LightLevel"] == 0.8 and tags["LightLuminanceCdM2"] == 400.0
    assert tags["ExposureTimeS"] == 0.0123 and tags["Iso"] == 200 and tags["PixelPitchUm"] == 6.4


def test_libraw_still_reads_the_stamped_capture() -> None:
    original, stamped = _dng(2), stamp(_dng(2), STATE)
    with rawpy.imread(io.BytesIO(original)) as a, rawpy.imread(io.BytesIO(stamped)) as b:
        assert np.array_equal(a.raw_image, b.raw_image)
        assert (a.other.iso_speed, a.lens.model) == (b.other.iso_speed, b.lens.model)


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (STATE.to_xmp().replace(b"<rig:RailFromFocusMm>", b"<rig:Other>").replace(b"</rig:RailFromFocusMm>",
                                                                               b"</rig:Other>"),
         "XMP rig:RailFromFocusMm missing"),
        (STATE.to_xmp().replace(b">200.0<", b">two hundred<"), "rig:CollimatorFocalLengthMm = 'two hundred'"),
        (STATE.to_xmp().replace(b">1</rig:SchemaVersion>", b">2</rig:SchemaVersion>"), "rig:SchemaVersion '2'"),
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + STATE.to_xmp(), "DOCTYPE or ENTITY"),
        (STATE.to_xmp().replace(b"</rig:Chart>", b"</rig:Chart2>"), "not well-formed"),
        (STATE.to_xmp()[:-60], "no x:xmpmeta or rdf:RDF element"),
    ],
)  # fmt: skip
def test_a_broken_state_is_one_line_naming_the_property(packet: bytes, expected: str) -> None:
    with pytest.raises(ImageInputError, match=r"^frame\.dng: ") as info:
        read_capture_state(embed_xmp(_dng(), packet), source="frame.dng")
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_an_xmp_packet_of_another_namespace_is_no_bench_state() -> None:
    packet = encode_packet("http://ns.adobe.com/xap/1.0/", "xmp", {"CreatorTool": "darktable"})
    assert read_capture_state(embed_xmp(_dng(), packet), source="x") is None


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_twin_capture_frames_measure_from_their_own_state_and_another_convention_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    station = load_station()
    offsets = np.linspace(-2.4, 2.4, 9)  # mm from the focus position, as `rig twin capture --rail-mm` takes them
    files = []
    for i, dz in enumerate(offsets):
        path = tmp_path / f"frame{i}.dng"
        argv = ["twin", "capture", "--unit", "golden", "--rail-mm", f"{dz:.3f}", "--seed", str(i)]
        code, _, err = _run([*argv, "--exposure-ms", "20", "--out", str(path)], capsys)
        assert code == 0, err
        meta = read_capture_meta(path)
        assert meta.bench is not None and meta.bench.rail_from_focus_mm == pytest.approx(dz, abs=5e-4)
        assert meta.bench.rail_absolute_mm == pytest.approx(station.rail.focus_mm + dz, abs=5e-4)
        files.append(str(path))

    code, out, err = _run(["measure", "focus", *files, "--json"], capsys)
    assert code == 0, err
    own = json.loads(out)
    assert own["rails_from"].startswith("captures") and own["focal_length_mm"] == 35.0
    # golden unit: flange 0.8 µm, tilt x 0.3′, tilt y −0.2′ (fixtures/units/golden.toml, nominal cover)
    assert own["flange_offset_um"] == pytest.approx(0.8, abs=1.0)
    assert own["tilt_x_arcmin"] == pytest.approx(0.3, abs=0.5)

    # the same positions typed as `rig twin capture` took them: the same figure
    rails = [f"{dz:.3f}" for dz in offsets]
    code, out, err = _run(["measure", "focus", *files, "--rail-mm", *rails, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["flange_offset_um"] == pytest.approx(own["flange_offset_um"], abs=1e-9)

    # absolute GRBL Z positions (the old `rig measure focus` convention) for the same files: refused, both numbers
    absolute = [f"{station.rail.focus_mm + dz:.3f}" for dz in offsets]
    code, out, err = _run(["measure", "focus", *files, "--rail-mm", *absolute], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "frame0.dng: --rail-mm gives rail 47.6 mm, but the capture records rig:RailFromFocusMm -2.4 mm" in err
    assert "mm from the station's focus position" in err


@pytest.fixture(scope="module")
def station() -> StationConfig:
    return load_station()


@pytest.fixture(scope="module")
def recorded_sweep(tmp_path_factory: pytest.TempPathFactory, station: StationConfig) -> Iterator[tuple[Path, float]]:
    """A run folder with a through-focus sweep taken through the bench (BenchOps on the twin) and its flange figure
    recorded with the captures, as the sign-off plan records it."""
    reports = tmp_path_factory.mktemp("reports")
    lenses = load_station_lenses(station)
    lens = lenses.get(station.reference_lens)
    recorder = RunRecorder.start(
        plan="signoff", limits=load_limits("signoff"), station=station.name, station_file=None,
        unit_serial="XM12SU-000001", lens=lens.id, reports_dir=reports, run_id="sweep",
    )  # fmt: skip
    devices = open_bench(station, lenses, unit=load_unit(UNITS_DIR / "golden.toml"))
    try:
        bench = BenchOps.on(devices, recorder=recorder)
        proc.ensure_lens(bench, lens)
        sweep = proc.through_focus(bench, lens, t_stop=lens.t_stop, with_assists=False)
        recorder.measure(
            "flange_alignment", "flange_offset_um", sweep.flange.flange_offset_um,
            captures=[f.path for f in sweep.frames],
        )  # fmt: skip
        recorder.flush()  # the record is written per step; this sweep is not inside one
        bench.settle_writes()  # the captures are written behind the bench; a step's end waits for them
        for frame in sweep.frames:
            expected = bench_state(
                station, tag=frame.path.split("-", 1)[1].removesuffix(".dng"), chart="sfr", rail_mm=frame.rail_mm,
                pitch_deg=0.0, light_level=proc.LIGHT_LEVEL, exposure_time_s=frame.exposure_time_s, iso=frame.iso,
            )  # fmt: skip
            assert read_capture_meta(recorder.run_dir / frame.path).bench == expected, frame.path
        # a burst (the knock test's) stamps every frame with the placement and settings it was taken at
        last = sweep.frames[-1]
        burst = bench.burst(2, tag="burst")
        bench.settle_writes()
        for i, frame in enumerate(burst):
            state = read_capture_meta(recorder.run_dir / frame.path).bench
            assert state is not None and state.tag == f"burst-{i:02d}"
            assert (state.rail_from_focus_mm, state.chart, state.exposure_time_s) == (
                last.rail_mm,
                "sfr",
                last.exposure_time_s,
            )
            assert state.light_level == pytest.approx(proc.LIGHT_LEVEL, abs=1e-3)
    finally:
        devices.close()
    yield recorder.run_dir, sweep.flange.flange_offset_um


@pytest.mark.slow
def test_rig_measure_focus_on_a_run_folder_reproduces_the_recorded_flange(
    recorded_sweep: tuple[Path, float], capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, recorded = recorded_sweep
    code, out, err = _run(["measure", "focus", str(run_dir), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["recorded_flange_offset_um"] == pytest.approx(recorded, abs=1e-9)
    assert result["flange_offset_um"] == pytest.approx(recorded, abs=REPRODUCE_TOL_UM)
    assert result["rails_from"].startswith("captures") and result["frames"] >= 6


@pytest.mark.slow
def test_a_run_folder_whose_captures_were_dropped_says_so(
    recorded_sweep: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rig.results.record import RunRecord
    from rig.spec.types import CaptureRetention

    run_dir, _ = recorded_sweep
    copy = tmp_path / "dropped"
    shutil.copytree(run_dir, copy)
    record = RunRecord.load(copy / "record.json")
    first = record.measurements[0].captures[0]
    (copy / first).unlink()
    record.capture_retention = CaptureRetention.FAILED
    record.captures_dropped = [first]
    record.save(copy / "record.json")
    code, out, err = _run(["measure", "focus", str(copy)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "captures of flange_offset_um are missing" in err and "--keep-captures all" in err
