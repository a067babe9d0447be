"""End to end on the twin: a profile fitted to a unit's flat field, written to the phone, corrects its captures."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from rig.calibrate.shading import fit_shading, residual_shading
from rig.config import load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.spec.dng import read_dng
from rig.spec.gainmap import apply_opcode_list, decode_opcode_list
from rig.spec.profile import CalibrationProfile, ReferenceLens
from rig.twin.world import TwinBench

RESIDUAL_LIMIT_PCT = 1.0  # brief: residual shading ≤ 1 % after the phone's own GainMaps are applied
TARGET_CENTRE_DN = 600.0  # ~60 % of the 10-bit range: unclipped corners, photon-noise SNR ≈ 60


class _Clock:
    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


@pytest.fixture(scope="module")
def bench() -> TwinBench:
    station = load_station()
    unit = load_unit(FIXTURES_DIR / "units" / "heavy-vignetting.toml")  # lens vignetting + CRA colour shading
    bench = TwinBench(station, unit, load_lens_catalog(), seed=4)
    clock = _Clock()
    bench.state.clock = clock
    bench.state.mount_lens(unit.lens.id)
    clock.now_ns = 5_000_000_000  # past the sensor switch
    bench.state.update(carousel_mm=station.carousel.slots["flat"], light_pwm=1000, exposure_time_s=0.01)
    # expose for a centre level the shading fit accepts, measured rather than assumed from the light model
    probe = bench.capture(noise=False).raw.astype(float) - station.sensor.black_level_dn
    h, w = probe.shape
    centre = float(probe[h // 2 - 32 : h // 2 + 32, w // 2 - 32 : w // 2 + 32].mean())
    bench.state.update(exposure_time_s=0.01 * TARGET_CENTRE_DN / centre)
    return bench


def _profile(bench: TwinBench, raw: np.ndarray) -> CalibrationProfile:
    sensor = bench.station.sensor
    fit = fit_shading(raw, black_level_dn=sensor.black_level_dn, white_level_dn=sensor.white_level_dn)
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
