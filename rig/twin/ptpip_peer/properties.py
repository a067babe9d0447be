"""The phone's device-property table: standard exposure properties on the bench state, vendor properties
(lens, sensor switch, assists, burst, CRC-32, clock, read-out windows) on the phone's own settings (codes in
:mod:`rig.spec.ptp`).

Get, describe (DevicePropDesc, ISO 15740 §5.5.3) and set, with the set refused unless the value is one the
property's form offers, as a camera does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rig.spec.ptp import (
    NO_LENS_CODE,
    ActiveSensorCode,
    DataType,
    PropertyCode,
    ResponseCode,
    parse_readout_windows,
)
from rig.spec.types import ActiveSensor, LensState
from rig.twin.ptpip_peer.datasets import PropForm, device_prop_desc
from rig.twin.ptpip_peer.wire import ProtocolViolation, pack_value, unpack_value

if TYPE_CHECKING:
    from rig.twin.world import TwinBench

log = logging.getLogger(__name__)

# Shutter speeds the phone offers, in the ExposureTime unit of 1e-4 s (0.1 ms .. 30 s, about 1/3 stop apart).
EXPOSURE_TIME_CHOICES = (
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 125, 160, 200, 250, 300, 400, 500, 600, 800,
    1000, 1250, 1600, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000, 20000, 40000, 80000, 150000, 300000,
)  # fmt: skip
ISO_CHOICES = (50, 64, 80, 100, 125, 160, 200, 250, 320, 400, 500, 640, 800, 1000, 1250, 1600, 2000, 2500, 3200, 4000,
               5000, 6400)  # fmt: skip
ZEBRA_CHOICES = (50, 60, 70, 75, 80, 85, 90, 95, 100)
NATIVE_F_NUMBER_X100 = 190


@dataclass
class PhoneSettings:
    """The phone's own writable settings (the vendor properties that are not bench state)."""

    zebra_pct: int = 90
    peaking_milli: int = 100
    burst_count: int = 1
    burst_interval_us: int = 50_000
    checksum_target: str = ""
    burst_start: str = ""  # one-shot: a capture consumes it
    readout_windows: str = ""  # "": the normal read-out (rig.spec.ptp.parse_readout_windows)


@dataclass
class _Prop:
    datatype: DataType
    form: PropForm
    get: Callable[[], int | str]
    set: Callable[[int | str], None] | None = None
    default: int | str | None = None
    refuse: Callable[[int | str], str | None] | None = None
    """Why a value the form allows is still not one the phone takes (None: it takes it)."""


class PropertyTable:
    """Every property the phone offers (DeviceInfo lists :attr:`codes`).

    Parameters
    ----------
    bench
        Its state holds exposure and ISO; its lenses give the f-number of the mounted lens.
    settings
        The phone's vendor settings, written by SetDevicePropValue.
    lens_state
        The phone's view of its bayonet.
    crc32_of
        CRC-32 of a stored file by name (0 when there is none).
    """

    def __init__(
        self,
        bench: TwinBench,
        settings: PhoneSettings,
        *,
        lens_state: Callable[[], LensState],
        crc32_of: Callable[[str], int],
        last_frame: Callable[[], str],
    ) -> None:
        self._bench = bench
        self.settings = settings
        self._lens_state = lens_state
        self._crc32_of = crc32_of
        self._last_frame = last_frame
        self._props = self._build()

    @property
    def codes(self) -> tuple[int, ...]:
        return tuple(self._props)

    def value(self, code: int) -> int | str:
        return self._props[code].get()

    def object_crc32(self) -> int:
        return self._crc32_of(self.settings.checksum_target or self._last_frame())

    def describe(self, code: int) -> bytes | None:
        """The DevicePropDesc dataset, or None for a property the phone does not have."""
        prop = self._props.get(code)
        if prop is None:
            return None
        current = prop.get()
        # the f-number is the mounted lens's: its only choice is the current one
        form = PropForm.enum((current,)) if code == PropertyCode.FNUMBER else prop.form
        default = current if prop.default is None else prop.default
        writable = prop.set is not None
        return device_prop_desc(code, prop.datatype, writable=writable, default=default, current=current, form=form)

    def packed_value(self, code: int) -> bytes | None:
        prop = self._props.get(code)
        return None if prop is None else pack_value(prop.datatype, prop.get())

    def set(self, code: int, data: bytes | None) -> ResponseCode:
        """Apply SetDevicePropValue's data; the response code says why not."""
        prop = self._props.get(code)
        if prop is None:
            return ResponseCode.DEVICE_PROP_NOT_SUPPORTED
        if prop.set is None:
            return ResponseCode.ACCESS_DENIED
        if data is None:
            return ResponseCode.INVALID_DEVICE_PROP_FORMAT
        try:
            value = unpack_value(prop.datatype, data)
        except (ProtocolViolation, UnicodeDecodeError, IndexError):
            return ResponseCode.INVALID_DEVICE_PROP_FORMAT
        if not prop.form.allows(value):
            log.info("refusing %s = %r: not an offered value", PropertyCode(code).name, value)
            return ResponseCode.INVALID_DEVICE_PROP_VALUE
        reason = prop.refuse(value) if prop.refuse is not None else None
        if reason is not None:
            log.info("refusing %s = %r: %s", PropertyCode(code).name, value, reason)
            return ResponseCode.INVALID_DEVICE_PROP_VALUE
        prop.set(value)
        return ResponseCode.OK

    # ------------------------------------------------------------------------------------------ the table
    def _build(self) -> dict[int, _Prop]:
        state = self._bench.state
        settings = self.settings

        def set_exposure(v: int | str) -> None:
            state.update(exposure_time_s=int(v) / 1e4)

        def set_iso(v: int | str) -> None:
            state.update(iso=int(v))

        def setting(name: str) -> tuple[Callable[[], int | str], Callable[[int | str], None]]:
            def set_(v: int | str) -> None:
                setattr(settings, name, v)

            return (lambda: getattr(settings, name)), set_

        def lens_code() -> int:
            ls = self._lens_state()
            return NO_LENS_CODE if ls.lens_code is None else ls.lens_code

        def f_number() -> int:
            if self._lens_state().active_sensor is not ActiveSensor.M_MOUNT:
                return NATIVE_F_NUMBER_X100
            snap = state.snapshot()
            spec = self._bench.lenses.get(snap.lens_id) if snap.lens_id else None
            n = snap.f_number or (spec.max_f_number if spec else 0.0)
            return round(n * 100)

        def sensor() -> int:
            return ActiveSensorCode.of(self._lens_state().active_sensor)

        sensor_size = self._bench.station.sensor

        def windows_refused(v: int | str) -> str | None:
            try:
                parse_readout_windows(
                    str(v), sensor_width_px=sensor_size.full_width_px, sensor_height_px=sensor_size.full_height_px
                )
            except ValueError as exc:
                return str(exc)
            return None

        u8, u16, u32, text = DataType.UINT8, DataType.UINT16, DataType.UINT32, DataType.STR
        return {
            PropertyCode.BATTERY_LEVEL: _Prop(u8, PropForm.range(0, 100), lambda: 100),
            PropertyCode.FNUMBER: _Prop(u16, PropForm.enum((f_number(),)), f_number),
            PropertyCode.EXPOSURE_TIME: _Prop(
                u32,
                PropForm.enum(EXPOSURE_TIME_CHOICES),
                lambda: round(state.exposure_time_s * 1e4),
                set_exposure,
                100,
            ),
            PropertyCode.EXPOSURE_INDEX: _Prop(u16, PropForm.enum(ISO_CHOICES), lambda: state.iso, set_iso, 100),
            PropertyCode.LENS_ATTACHED: _Prop(u8, PropForm.enum((0, 1)), lambda: int(self._lens_state().attached)),
            PropertyCode.LENS_CODE: _Prop(u8, PropForm(), lens_code),
            PropertyCode.ACTIVE_SENSOR: _Prop(u8, PropForm.enum(tuple(ActiveSensorCode)), sensor),
            PropertyCode.LENS_ATTACHED_TIME: _Prop(
                text, PropForm(), lambda: ms_text(self._lens_state().attached_at_ms)
            ),
            PropertyCode.SENSOR_SWITCH_TIME: _Prop(
                text, PropForm(), lambda: ms_text(self._lens_state().sensor_switched_at_ms)
            ),
            PropertyCode.ZEBRA_THRESHOLD: _Prop(u8, PropForm.enum(ZEBRA_CHOICES), *setting("zebra_pct"), 90),
            PropertyCode.PEAKING_THRESHOLD: _Prop(u16, PropForm.range(1, 1000), *setting("peaking_milli"), 100),
            PropertyCode.BURST_COUNT: _Prop(u16, PropForm.range(1, 64), *setting("burst_count"), 1),
            PropertyCode.BURST_INTERVAL: _Prop(
                u32, PropForm.range(1000, 2_000_000), *setting("burst_interval_us"), 50_000
            ),
            PropertyCode.OBJECT_CRC32: _Prop(u32, PropForm(), self.object_crc32),
            PropertyCode.CHECKSUM_TARGET: _Prop(text, PropForm(), *setting("checksum_target"), ""),
            PropertyCode.PHONE_CLOCK: _Prop(text, PropForm(), lambda: ms_text(state.now_ns() / 1e6)),
            PropertyCode.BURST_START: _Prop(text, PropForm(), *setting("burst_start"), ""),
            PropertyCode.READOUT_WINDOWS: _Prop(
                text, PropForm(), *setting("readout_windows"), "", refuse=windows_refused
            ),
        }


def ms_text(ms: float | None) -> str:
    return "" if ms is None else f"{ms:.3f}"
