"""End to end on the twin: a profile fitted to a unit's flat field, written to the phone, corrects its captures.

The profile is fitted on the 4×4-binned test read-out; the same profile on a full-size (8192 × 6144) phone must
make that phone embed GainMaps over its whole frame, flattening its flat field as well: checked through our own
DNG-SDK-faithful GainMap application (:func:`rig.spec.gainmap.apply_opcode_list`), and exiftool must validate
every DNG the calibrated phone writes without a warning.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rawpy

from rig.calibrate.shading import fit_shading, residual_shading
from rig.config import StationConfig, load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.spec.dng import read_dng
from rig.spec.gainmap import apply_opcode_list, decode_opcode_list
from rig.spec.profile import CalibrationProfile, ReferenceLens
from rig.twin.world import PhoneClock, TwinBench
from tests.twin.test_dng import exiftool_warnings

RESIDUAL_LIMIT_PCT = 1.0  # brief: residual shading ≤ 1 % after the phone's own GainMaps are applied
CORNER_CENTRE_TOL = 0.01  # issue #14: corner/centre of a corrected flat within ±1 %
TARGET_CENTRE_DN = 600.0  # ~60 % of the 10-bit range: unclipped corners, photon-noise SNR ≈ 60
EPOCH_2026_NS = 1_780_000_000 * 10**9  # an injected phone clock: 2026-05-28 20:26:40 UTC


class _Clock:
    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


def _flat_bench(station: StationConfig) -> TwinBench:
    unit = load_unit(FIXTURES_DIR / "units" / "heavy-vignetting.toml")  # lens vignetting + CRA colour shading
    bench = TwinBench(station, unit, load_lens_catalog(), seed=4)
    clock = _Clock()
    clock.now_ns = EPOCH_2026_NS
    bench.state.clock = clock
    bench.state.mount_lens(unit.lens.id)
    clock.now_ns += 5_000_000_000  # past the sensor switch
    bench.state.update(carousel_mm=station.carousel.slots["flat"], light_pwm=1000, exposure_time_s=0.01)
    # expose for a centre level the shading fit accepts, measured rather than assumed from the light model
    probe = bench.capture(noise=False).raw.astype(float) - station.sensor.black_level_dn
    h, w = probe.shape
    centre = float(probe[h // 2 - 32 : h // 2 + 32, w // 2 - 32 : w // 2 + 32].mean())
    bench.state.update(exposure_time_s=0.01 * TARGET_CENTRE_DN / centre)
    return bench


@pytest.fixture(scope="module")
def bench() -> TwinBench:
    return _flat_bench(load_station())  # the 4×4-binned test read-out, 2048 × 1536


@pytest.fixture(scope="module")
def full_size_bench() -> TwinBench:
    station = load_station()
    return _flat_bench(station.model_copy(update={"sensor": station.sensor.model_copy(update={"binning": 1})}))


def _profile(bench: TwinBench, raw: np.ndarray) -> CalibrationProfile:
    sensor = bench.station.sensor
    fit = fit_shading(
        raw, black_level_dn=sensor.black_level_dn, white_level_dn=sensor.white_level_dn, binning=sensor.binning
    )
    return CalibrationProfile(
        unit_serial=bench.unit.serial,
        station=bench.station.name,
        reference_lens=ReferenceLens(id=bench.unit.lens.id, f_number=1.4),
        created=datetime(2026, 11, 23, tzinfo=UTC),
        software_version="test",
        flange_offset_um=0.0,
        tilt_x_arcmin=0.0,
        tilt_y_arcmin=0.0,
        optical_center_px=((raw.shape[1] - 1) / 2, (raw.shape[0] - 1) / 2),
        decentre_um=(0.0, 0.0),
        black_level_dn=sensor.black_level_dn,
        shading=fit.maps,
    )


def test_a_written_profile_makes_the_phone_embed_gain_maps_that_flatten_its_flat_field(bench: TwinBench) -> None:
    black = bench.station.sensor.black_level_dn
    before = read_dng(bench.capture().dng, name="before.dng")
    assert before.opcode_list2 is None  # no profile on the phone yet
    shading_before = residual_shading(before.raw.astype(float) - black)
    assert shading_before.worst_pct > 20.0  # the unit really is strongly shaded

    bench.state.update(profile=_profile(bench, before.raw).to_json())
    after = read_dng(bench.capture().dng, name="after.dng")
    assert after.opcode_list2 is not None
    ops = decode_opcode_list(after.opcode_list2, source="after.dng OpcodeList2")
    assert len(ops) == 4
    corrected = apply_opcode_list(after.raw.astype(float) - after.black_level, ops)
    residual = residual_shading(corrected)
    for channel, pct in residual.max_abs_pct.items():
        assert pct <= RESIDUAL_LIMIT_PCT, f"{channel}: {pct:.2f} % residual (before: {shading_before.max_abs_pct})"


def test_an_unparsable_stored_profile_embeds_nothing(bench: TwinBench) -> None:
    bench.state.update(profile=b"not a profile")
    try:
        assert read_dng(bench.capture().dng).opcode_list2 is None
    finally:
        bench.state.update(profile=None)


def _corner_centre_ratios(linear: np.ndarray, *, size_frac: float = 0.04) -> dict[str, float]:
    """Mean of each corner patch over the centre patch, per Bayer channel site (patch: a square of ``size_frac``)."""
    h, w = linear.shape
    side = max(2 * round(size_frac * min(h, w) / 2), 4)
    out: dict[str, float] = {}
    for name, (r, c) in {"R": (0, 0), "Gr": (0, 1), "Gb": (1, 0), "B": (1, 1)}.items():
        plane = linear[r::2, c::2]
        ph, pw, s = plane.shape[0], plane.shape[1], side // 2
        centre = plane[ph // 2 - s // 2 : ph // 2 + s // 2, pw // 2 - s // 2 : pw // 2 + s // 2].mean()
        corners = [plane[:s, :s], plane[:s, -s:], plane[-s:, :s], plane[-s:, -s:]]
        for k, patch in enumerate(corners):
            out[f"{name}{k}"] = float(patch.mean() / centre)
    return out


@pytest.fixture(scope="module")
def calibrated(bench: TwinBench, full_size_bench: TwinBench) -> CalibrationProfile:
    """One profile fitted on the binned read-out, written to both phones."""
    profile = _profile(bench, bench.capture().raw)
    assert profile.shading.fitted_binning == 4
    for phone in (bench, full_size_bench):
        phone.state.update(profile=profile.to_json())
    return profile


@pytest.mark.parametrize("which", ["binned", "full size"])
def test_full_size_and_binned_flats_come_out_flat_through_the_embedded_gain_maps(
    which: str, bench: TwinBench, full_size_bench: TwinBench, calibrated: CalibrationProfile
) -> None:
    phone = bench if which == "binned" else full_size_bench
    sensor = phone.station.sensor
    image = read_dng(phone.capture().dng, name=f"{which}.dng")
    assert (image.width, image.height) == (sensor.width_px, sensor.height_px)
    assert image.opcode_list2 is not None
    ops = decode_opcode_list(image.opcode_list2, source=f"{which}.dng OpcodeList2")
    assert [(op.bottom, op.right) for op in ops] == [(sensor.height_px, sensor.width_px)] * 4  # the whole frame
    linear = image.raw.astype(float) - image.black_level
    before = _corner_centre_ratios(linear)
    assert min(before.values()) < 0.6  # heavily shaded: the correction has real work to do
    after = _corner_centre_ratios(apply_opcode_list(linear, ops))
    for key, ratio in after.items():
        message = f"{which} {key}: corner/centre {ratio:.4f} (before {before[key]:.3f})"
        assert abs(ratio - 1) <= CORNER_CENTRE_TOL, message


@pytest.mark.parametrize("which", ["binned", "full size", "binned, calibrated", "full size, calibrated"])
def test_exiftool_validates_the_twin_dngs_without_a_warning(
    which: str, bench: TwinBench, full_size_bench: TwinBench, calibrated: CalibrationProfile, tmp_path: Path
) -> None:
    phone = bench if which.startswith("binned") else full_size_bench
    phone.state.update(profile=calibrated.to_json() if which.endswith("calibrated") else None)
    try:
        frame = phone.capture(noise=False)
    finally:
        phone.state.update(profile=calibrated.to_json())
    assert (read_dng(frame.dng).opcode_list2 is not None) == which.endswith("calibrated")
    path = tmp_path / "frame.dng"
    path.write_bytes(frame.dng)
    assert exiftool_warnings(path) == []


def test_rawpy_reads_the_twin_capture_time_iso_and_exposure(bench: TwinBench) -> None:
    frame = bench.capture(noise=False)
    image = read_dng(frame.dng)
    assert image.timestamp_ms == pytest.approx(frame.time_ns / 1e6, abs=1e-3)  # to the µs, from the phone clock
    with rawpy.imread(io.BytesIO(frame.dng)) as img:
        other = img.other
    assert other.iso_speed == bench.state.iso
    assert other.shutter_speed == pytest.approx(bench.state.exposure_time_s, rel=1e-6)
    # LibRaw hands the DateTimeOriginal wall reading back as naive local time: compare the reading, whole seconds
    expected = datetime.fromtimestamp(frame.time_ns // 10**9, tz=UTC).replace(tzinfo=None)
    assert other.timestamp == expected and other.timestamp.year == 2026


def test_the_phone_clock_reads_epoch_time_unless_a_test_injects_one() -> None:
    bench = TwinBench(load_station(), load_unit(FIXTURES_DIR / "units" / "golden.toml"), load_lens_catalog())
    assert isinstance(bench.state.clock, PhoneClock)
    before = time.time_ns()
    anchored = PhoneClock(wall_ns=before)
    first, second = anchored(), anchored()
    assert before <= first <= second  # anchored at the given wall time, then monotonic
    assert datetime.fromtimestamp(bench.state.now_ns() / 1e9, tz=UTC).year >= 2024  # not 1970
