"""A station run lets go of the bench safe: light and knocker off, as the twin's GRBL peer itself says.

The bench is opened exactly as the plugin opens it (open_bench on the twin station); the light is set and the
knocker's coolant output left on (as a run cut short in the middle of a pulse would), then
:func:`rig.web.runplugin.leave_bench_safe` runs. Ground truth it does not read: the twin bench's light PWM and
the parser state GRBL prints for ``$G`` (``[GC:… M5 M9 …]``, gnea/grbl doc/markdown/commands.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from rig.bench.open import BenchDevices, open_bench
from rig.config.resolve import load_station_lenses
from rig.config.station import load_station
from rig.config.unit import UNITS_DIR, load_unit
from rig.devices.grbl import GrblStage
from rig.web.runplugin import leave_bench_safe

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def devices() -> Iterator[BenchDevices]:
    station = load_station()
    opened = open_bench(station, load_station_lenses(station), unit=load_unit(UNITS_DIR / "golden.toml"))
    try:
        opened.stage.home()  # GRBL starts in alarm and locks G-code out until homed, as a run begins
        yield opened
    finally:
        opened.close()


def parser_modes(devices: BenchDevices) -> set[str]:
    assert isinstance(devices.stage, GrblStage)
    lines = devices.stage.controller.command("$G")
    state = next(line for line in lines if line.startswith("[GC:"))
    return set(re.findall(r"M\d+", state))


def test_light_and_knocker_left_on_are_switched_off(devices: BenchDevices) -> None:
    assert devices.twin is not None and isinstance(devices.stage, GrblStage)
    devices.light.set_level(0.8)
    devices.stage.controller.command("M8")  # the knocker's output, on
    assert devices.twin.bench.state.light_pwm > 0 and {"M3", "M8"} <= parser_modes(devices)  # the test can fail

    outputs = leave_bench_safe(devices)

    assert outputs["light_off"] is True and outputs["knocker_off"] is True and outputs["errors"] == []
    assert "Ov:" in outputs["report"] and "A:" not in outputs["report"]
    assert devices.twin.bench.state.light_pwm == 0
    assert {"M5", "M9"} <= parser_modes(devices)


def test_an_output_still_on_is_reported_not_hidden(devices: BenchDevices) -> None:
    """What the report says decides: the same reading with the flood output on says the knocker is on."""
    assert isinstance(devices.stage, GrblStage)
    controller = devices.stage.controller
    controller.command("M8")
    status = controller.status()
    for _ in range(40):
        if status.report.overrides_pct is not None:
            break
        status = controller.status()
    assert "F" in status.report.accessories  # GRBL 1.1: flood coolant shows as A:F with the override values
