"""High-level bench operations for the plans: put a chart in front of the lens and take a validated frame.

Every operation is idempotent (absolute moves, absolute settings), so it can be retried after a fault: a frame
that fails validation is recaptured, a lost phone is reconnected, a stage alarm is cleared with unlock + re-home
before the move is repeated. Moves that are already done are skipped (fewest moves).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from rig.bench.capture_state import bench_state, stamp
from rig.bench.pipeline import DEFAULT_PROCESSES, MeasurementPool, PipelineMode
from rig.bench.recording import CAPTURES_DIR, RunRecorder
from rig.config.station import StationConfig
from rig.devices.protocols import Light, Operator, Phone, Stage
from rig.devices.retry import RetryLog, with_retries
from rig.errors import (
    ArgumentError,
    DeviceAlarm,
    DeviceCommandError,
    DeviceError,
    DeviceLost,
    DeviceStateError,
    DeviceTimeout,
    FrameError,
    ImageInputError,
)
from rig.spec.capture_state import CaptureBenchState, ReadoutWindowState, read_readout_window
from rig.spec.dng import DngImage, read_dng
from rig.spec.ptp import ReadoutWindow
from rig.spec.shims import ShimPlan
from rig.spec.types import Capture

if TYPE_CHECKING:
    from rig.bench.open import BenchDevices

log = logging.getLogger(__name__)

RECONNECT_ATTEMPTS = 5


@dataclass(frozen=True)
class Frame:
    """One validated capture and the bench state it was taken at."""

    path: str  # relative to the run folder
    image: DngImage
    chart: str
    rail_mm: float  # relative to the station's focus position
    pitch_deg: float
    light_level: float
    exposure_time_s: float
    iso: int
    timestamp_ms: float | None
    window: ReadoutWindowState | None = None  # a window of a windowed read-out (native pitch); None: the frame

    @property
    def raw(self) -> np.ndarray:
        return self.image.raw


class WatchedOperator:
    """The operator as the plan sees it: every lens action it asks for is noted (before and after), so that a
    lens change nobody asked for (knocked off, pulled mid-test) can be told apart from the plan's own.

    Satisfies :class:`~rig.devices.protocols.Operator` by composition: each method calls the wrapped operator.
    """

    def __init__(self, operator: Operator, on_action: Callable[[], None]) -> None:
        self.wrapped = operator
        self._on_action = on_action

    def _noted(self, action: Callable[[], None]) -> None:
        self._on_action()
        try:
            action()
        finally:
            self._on_action()

    def mount_lens(self, lens_id: str) -> None:
        self._noted(lambda: self.wrapped.mount_lens(lens_id))

    def unmount_lens(self) -> None:
        self._noted(self.wrapped.unmount_lens)

    def remount_lens(self) -> None:
        self._noted(self.wrapped.remount_lens)

    def set_aperture(self, f_number: float) -> None:
        self._noted(lambda: self.wrapped.set_aperture(f_number))

    def apply_shims(self, plan: ShimPlan) -> None:
        self._noted(lambda: self.wrapped.apply_shims(plan))


class BenchOps:
    """The plan's view of the bench: stage, light, phone and operator behind retrying operations."""

    def __init__(
        self,
        station: StationConfig,
        *,
        stage: Stage,
        light: Light,
        phone: Phone,
        operator: Operator,
        recorder: RunRecorder | None,
        reconnect_phone: Callable[[], None],
        attempts: int = 3,
        pipeline: PipelineMode = PipelineMode.ON,
        retries: RetryLog | None = None,
        homing: Future[None] | None = None,
    ) -> None:
        self.station = station
        self.stage = stage
        self.light = light
        self.phone = phone
        self.operator = WatchedOperator(operator, self._forget_lens)
        self.recorder = recorder
        self._reconnect_phone = reconnect_phone
        self.attempts = attempts
        self.pool = MeasurementPool(mode=pipeline, processes=DEFAULT_PROCESSES)
        """Where procedures analyse a frame while the bench takes the next (:mod:`rig.bench.pipeline`)."""
        self.pool.warm_up()
        self.writes = MeasurementPool(mode=pipeline, workers=1)
        """Where captures are written to the run folder, in order, while the bench moves on (:meth:`settle_writes`)."""
        self._pending_writes: list[Future[str]] = []
        self._writes_lock = threading.Lock()
        self.retries = retries if retries is not None else RetryLog()
        """Every retry of a step, the bench's and the drivers' own (shared with them by :func:`rig.bench.open`)."""
        self._position: tuple[str, float, float] | None = None  # (chart, rail_mm, pitch_deg) when known
        self._exposure: tuple[float, int] | None = None
        self._frame_counter = 0
        self._lens_seen: tuple[str | None, bool, int | None] | None = None  # at the last capture
        self.homed = False
        self._homing = homing
        """A homing cycle begun ahead of the plan (:meth:`BenchDevices.start_homing`), until :meth:`home` waits."""

    @classmethod
    def on(
        cls,
        devices: BenchDevices,
        *,
        station: StationConfig | None = None,
        recorder: RunRecorder | None = None,
        pipeline: PipelineMode = PipelineMode.ON,
    ) -> BenchOps:
        """Bench operations on opened devices (:func:`rig.bench.open.open_bench`), as a plan gets them.

        ``station`` is what the bench believes when it differs from the devices' (a measurement-system study).
        ``pipeline``: whether frame analyses overlap the bench's next moves (the numbers are the same either way).
        """
        return cls(
            station or devices.station,
            stage=devices.stage,
            light=devices.light,
            phone=devices.phone,
            operator=devices.operator,
            recorder=recorder,
            reconnect_phone=devices.reconnect_phone,
            pipeline=pipeline,
            retries=devices.retries,
            homing=devices.homing,
        )

    # ------------------------------------------------------------------ motion
    def _recover_stage(self, exc: DeviceError) -> None:
        self._position = None
        if isinstance(exc, DeviceTimeout):
            # a move that never reported Idle: where the axes are is unknown. Ctrl-X stops the controller (GRBL
            # then alarms, as after any reset during motion); unlock + re-home below make the position known again
            self.stage.abort()
        if isinstance(exc, DeviceAlarm | DeviceTimeout):
            self.stage.recover()  # $X + $H: the only safe way out of an alarm
            self.homed = True

    def home(self) -> None:
        if self._homed_ahead():
            return
        with_retries(
            self.stage.home,
            what="home stage",
            log_to=self.retries,
            attempts=self.attempts,
            retry_on=(DeviceAlarm, DeviceCommandError, DeviceTimeout),
            before_retry=self._recover_stage,
        )
        self.homed = True
        self._position = None

    def _homed_ahead(self) -> bool:
        """Wait for the homing cycle begun ahead of the plan, if any: True when it homed the stage. Its failure is
        this step's first retry (the cycle ran for it) and :meth:`home` starts over; any other error (a lost port)
        is raised here, as :meth:`home` would have raised it."""
        homing, self._homing = self._homing, None
        if homing is None:
            return False
        try:
            homing.result()
        except (DeviceAlarm, DeviceCommandError, DeviceTimeout) as exc:  # what home()'s own retries take
            self.retries.events.append(
                f"home stage (begun ahead of the plan) failed ({type(exc).__name__}: {exc}); homing again"
            )
            if isinstance(exc, DeviceTimeout):
                self.stage.abort()  # where the axes are is unknown: stop the controller first (_recover_stage)
            return False
        self.homed = True
        self._position = None
        return True

    def place(self, *, chart: str, rail_mm: float = 0.0, pitch_deg: float = 0.0) -> None:
        """Put ``chart`` in front of the lens at ``rail_mm`` from the focus position, fixture at ``pitch_deg``."""
        if chart not in self.station.carousel.slots:
            raise ArgumentError(
                f"chart {chart!r}: expected one of the station's slots {sorted(self.station.carousel.slots)}"
            )
        target = (chart, rail_mm, pitch_deg)
        if self._position == target:
            return
        if not self.homed:
            self.home()

        def move() -> None:
            self.stage.move_to(
                rail_mm=self.station.rail.focus_mm + rail_mm,
                carousel_mm=self.station.carousel.slots[chart],
                pitch_deg=pitch_deg,
            )

        with_retries(
            move,
            what=f"move to {chart} rail {rail_mm:+.3f} mm pitch {pitch_deg:+.0f}°",
            log_to=self.retries,
            attempts=self.attempts,
            retry_on=(DeviceAlarm, DeviceCommandError, DeviceTimeout),
            before_retry=self._recover_stage,
        )
        self._position = target

    def set_light(self, level: float) -> None:
        if not self.homed:
            self.home()  # GRBL refuses even M3 while in its power-on alarm
        with_retries(
            lambda: self.light.set_level(level),
            what=f"light {level:.2f}",
            log_to=self.retries,
            attempts=self.attempts,
            retry_on=(DeviceCommandError, DeviceTimeout),
        )

    # ------------------------------------------------------------------ phone
    def ensure_phone(self) -> None:
        """Reconnect a phone an earlier step lost (bounded retries) before using it again."""
        if self.phone.is_open:
            return
        # a phone that lost its host may still be finishing the old session's work (or rebooting): give it
        # 1 + 2 + 4 + 8 s before the step gives up
        with_retries(
            self._reconnect_phone,
            what="reconnect phone",
            log_to=self.retries,
            attempts=RECONNECT_ATTEMPTS,
            backoff_s=1.0,
            retry_on=(DeviceLost, DeviceTimeout, DeviceCommandError),
        )
        self._exposure = None

    def exposure_choices(self) -> list[float]:
        """The exposure times (s) the phone offers; a phone lost since the last call is reconnected (as for a
        capture: this may be the first call to meet a phone that rebooted between steps)."""
        self.ensure_phone()
        return with_retries(
            self.phone.exposure_choices,
            what="exposure choices",
            log_to=self.retries,
            attempts=self.attempts,
            retry_on=(DeviceLost, DeviceTimeout),
            before_retry=self._reconnect,
        )

    def _reconnect(self, exc: DeviceError) -> None:
        self._exposure = None
        if isinstance(exc, DeviceLost | DeviceTimeout):
            # a phone that rebooted refuses connections for a while: bounded retries with backoff (0.5, 1, 2 s)
            with_retries(
                self._reconnect_phone,
                what="reconnect phone",
                log_to=self.retries,
                attempts=self.attempts + 1,
                backoff_s=0.5,
                retry_on=(DeviceLost, DeviceTimeout, DeviceCommandError),
            )

    # ------------------------------------------------------------------ lens watch
    def _forget_lens(self) -> None:
        self._lens_seen = None

    def _check_lens(self, image: DngImage) -> None:
        """The lens must be as it was at the previous capture unless the plan changed it through the operator: a
        frame taken after the lens came off unasked is not measured (the step ends as ERROR).

        Two witnesses: the lens the frame's own DNG names (LensModel, written by the phone for that exposure) and
        the phone's lens state (from its events, which libgphoto2 may hold back while a capture is running).
        """
        state = self.phone.lens_state()
        seen = (image.lens_model, state.attached, state.lens_code)
        before = self._lens_seen
        if before is not None and before != seen:
            # The expectation stays: every later frame is refused too until the plan mounts a lens itself. A new
            # session makes the phone's reported lens state current (an event lost during the capture would
            # otherwise let the plan believe the lens is still on).
            self._exposure = None
            self._reconnect_phone()
            raise DeviceStateError(
                f"lens changed mid-test without a lens change by the plan: frame lens {before[0]!r}, phone "
                f"{_lens_text(before[1], before[2])} before; frame lens {image.lens_model!r}, phone "
                f"{_lens_text(state.attached, state.lens_code)} now"
            )
        self._lens_seen = seen

    def set_exposure(self, exposure_time_s: float, iso: int) -> None:
        self.ensure_phone()
        if self._exposure == (exposure_time_s, iso):
            return

        def apply() -> None:
            self.phone.set_exposure(exposure_time_s=exposure_time_s, iso=iso)

        with_retries(
            apply,
            what=f"exposure {exposure_time_s * 1000:.2f} ms ISO {iso}",
            log_to=self.retries,
            attempts=self.attempts,
            retry_on=(DeviceLost, DeviceTimeout),
            before_retry=self._reconnect,
        )
        self._exposure = (exposure_time_s, iso)

    def _validated(self, capture: Capture, *, window: ReadoutWindow | None = None) -> DngImage:
        """The capture's DNG parsed once: the driver's parse when it made one (it validated the same bytes), else
        read here; then held to this station's sensor (size: the read-out's, or ``window``'s; levels) and pixel
        budget."""
        max_pixels = int(self.station.sensor.max_frame_megapixels * 1e6)
        image = capture.image
        if image is None:
            try:
                image = read_dng(capture.dng, max_pixels=max_pixels)
            except ImageInputError as exc:
                raise FrameError(f"{capture.filename}: {exc}") from None
        elif image.width * image.height > max_pixels:
            raise FrameError(
                f"{capture.filename}: {image.width}×{image.height} px exceeds the station's budget of "
                f"{max_pixels} pixels (sensor.max_frame_megapixels)"
            )
        sensor = self.station.sensor
        size = (sensor.width_px, sensor.height_px) if window is None else (window.width_px, window.height_px)
        if (image.width, image.height) != size:
            raise FrameError(f"{capture.filename}: {image.width}×{image.height} px, expected {size[0]}×{size[1]}")
        if image.white_level != sensor.white_level_dn or image.black_level != sensor.black_level_dn:
            raise FrameError(
                f"{capture.filename}: black/white {image.black_level}/{image.white_level}, expected "
                f"{sensor.black_level_dn}/{sensor.white_level_dn}"
            )
        return image

    def _store(self, capture: Capture, state: CaptureBenchState) -> str:
        """Keep the capture in the run with the bench state it was taken at as XMP (:mod:`rig.bench.capture_state`)."""
        self._frame_counter += 1
        name = f"{CAPTURES_DIR}/{self._frame_counter:04d}-{state.tag}.dng"
        recorder = self.recorder
        if recorder is not None:
            # stamping copies the DNG and the write fsyncs it: 10-60 ms a binned frame that the next move need not
            # wait for; the step's end waits for it (settle_writes), so a refused write still ends that step ERROR
            written = self.writes.submit(lambda: recorder.save_file(name, stamp(capture.dng, state)))
            with self._writes_lock:
                self._pending_writes.append(written)
        return name

    def settle_writes(self) -> None:
        """Wait until every capture kept so far is in the run folder; raise the first refused write's error
        (a :class:`~rig.errors.RunStorageError`). The plugin calls this as each step ends, before its verdict."""
        with self._writes_lock:
            pending, self._pending_writes = self._pending_writes, []
        errors = [error for error in (written.exception() for written in pending) if error is not None]
        if errors:
            raise errors[0]

    def close(self) -> None:
        """Write what is still pending and stop the analysis and writer threads."""
        try:
            self.settle_writes()
        finally:
            self.pool.close()
            self.writes.close()

    def capture_raw(self) -> tuple[Capture, DngImage]:
        """One validated capture at the current settings (recaptured on a bad frame, reconnect on loss)."""

        def shot() -> tuple[Capture, DngImage]:
            capture = self.phone.capture()
            image = self._validated(capture)
            self._check_lens(image)
            return capture, image

        return with_retries(
            shot,
            what="capture",
            log_to=self.retries,
            attempts=self.attempts,
            retry_on=(FrameError, DeviceLost, DeviceTimeout),
            before_retry=self._reconnect,
        )

    def shoot(
        self,
        *,
        chart: str,
        tag: str,
        rail_mm: float = 0.0,
        pitch_deg: float = 0.0,
        light: float = 0.8,
        exposure_time_s: float,
        iso: int = 100,
    ) -> Frame:
        """Place the chart, set light and exposure, capture and validate one frame, and keep it in the run."""
        self.place(chart=chart, rail_mm=rail_mm, pitch_deg=pitch_deg)
        self.set_light(light)
        self.set_exposure(exposure_time_s, iso)
        capture, image = self.capture_raw()
        return self._keep(
            capture, image, tag=tag, chart=chart, rail_mm=rail_mm, pitch_deg=pitch_deg, light=light,
            exposure_time_s=exposure_time_s, iso=iso,
        )  # fmt: skip

    def _keep(
        self, capture: Capture, image: DngImage, *, tag: str, chart: str, rail_mm: float, pitch_deg: float,
        light: float, exposure_time_s: float, iso: int, window: ReadoutWindowState | None = None,
    ) -> Frame:  # fmt: skip
        """Keep one validated capture in the run with the bench state it was taken at, and describe it as a Frame."""
        state = bench_state(
            self.station,
            tag=tag,
            chart=chart,
            rail_mm=rail_mm,
            pitch_deg=pitch_deg,
            light_level=light,
            exposure_time_s=exposure_time_s,
            iso=iso,
        )
        if window is not None:
            state = replace(state, pixel_pitch_um=window.pixel_pitch_um, window=window)
        return Frame(
            path=self._store(capture, state),
            image=image,
            chart=chart,
            rail_mm=rail_mm,
            pitch_deg=pitch_deg,
            light_level=light,
            exposure_time_s=exposure_time_s,
            iso=iso,
            timestamp_ms=capture.timestamp_ms if capture.timestamp_ms is not None else image.timestamp_ms,
            window=window,
        )

    def shoot_windows(
        self,
        windows: Sequence[ReadoutWindow],
        *,
        chart: str,
        tag: str,
        rail_mm: float = 0.0,
        pitch_deg: float = 0.0,
        light: float = 0.8,
        exposure_time_s: float,
        iso: int = 100,
    ) -> list[Frame]:
        """Place the chart, set light and exposure, and read one exposure out as ``windows`` at the sensor's native
        pitch (:meth:`rig.devices.protocols.Phone.capture_windows`): one validated frame per window, kept in the run
        as ``<tag>-wNN`` with its bench state and where it sits (``rig:Window…``, :mod:`rig.spec.capture_state`)."""
        self.place(chart=chart, rail_mm=rail_mm, pitch_deg=pitch_deg)
        self.set_light(light)
        self.set_exposure(exposure_time_s, iso)
        windows = tuple(windows)

        def shot() -> list[tuple[Capture, DngImage, ReadoutWindowState]]:
            captures = self.phone.capture_windows(windows)
            out = []
            for capture, window in zip(captures, windows, strict=True):
                image = self._validated(capture, window=window)
                try:
                    state = read_readout_window(capture.dng, source=capture.filename)
                except ImageInputError as exc:
                    raise FrameError(str(exc)) from None
                if state is None or state.window != window:
                    raise FrameError(f"{capture.filename}: not the window {window.text} asked for")
                out.append((capture, image, state))
            self._check_lens(out[0][1])
            return out

        taken = with_retries(
            shot,
            what=f"{len(windows)} read-out windows",
            log_to=self.retries,
            attempts=self.attempts,
            retry_on=(FrameError, DeviceLost, DeviceTimeout),
            before_retry=self._reconnect,
        )
        frames = []
        for i, (capture, image, window_state) in enumerate(taken):
            frame = self._keep(
                capture, image, tag=f"{tag}-w{i:02d}", chart=chart, rail_mm=rail_mm, pitch_deg=pitch_deg,
                light=light, exposure_time_s=exposure_time_s, iso=iso, window=window_state,
            )  # fmt: skip
            frames.append(frame)
        return frames

    def burst(
        self,
        count: int,
        *,
        tag: str,
        interval_s: float | None = None,
        start_ms: float | None = None,
        on_image: Callable[[int, DngImage], None] | None = None,
    ) -> list[Frame]:
        """``count`` frames ``interval_s`` apart, at the current placement and settings (from ``start_ms`` on the
        phone clock when given: the phone's ring buffer).

        ``on_image(index, image)`` gets each frame's validated image as soon as it is downloaded, while the rest
        still come in (to start its analysis). A burst the phone repeats after a bad frame hands its frames over
        again from index 0: each index's last image is the one of the frames returned.
        """
        self.ensure_phone()
        if self._position is None or self._exposure is None:
            raise ArgumentError("burst: place the chart and set the exposure first")
        chart, rail_mm, pitch_deg = self._position
        exposure_time_s, iso = self._exposure
        # Frames from the phone's ring buffer (start_ms) were exposed before the request: a session lost on the
        # way takes the buffer with it (a reboot clears it), so only a bad frame is retried then; the step ends as
        # ERROR and a resume repeats the whole knock.
        from_ring = start_ms is not None

        def handed_over(index: int, capture: Capture) -> None:
            assert on_image is not None
            on_image(index, self._validated(capture))

        try:
            captures = with_retries(
                lambda: self.phone.capture_burst(
                    count,
                    interval_s=interval_s,
                    start_ms=start_ms,
                    on_capture=handed_over if on_image is not None else None,
                ),
                what=f"burst of {count}",
                log_to=self.retries,
                attempts=self.attempts,
                retry_on=(FrameError,) if from_ring else (FrameError, DeviceLost, DeviceTimeout),
                before_retry=self._reconnect,
            )
        except (DeviceLost, DeviceTimeout) as exc:
            if not from_ring:
                raise
            raise type(exc)(f"{exc}; a burst from the ring buffer cannot be retried after losing the phone") from exc
        frames = []
        for i, capture in enumerate(captures):
            image = self._validated(capture)
            self._check_lens(image)
            state = bench_state(
                self.station,
                tag=f"{tag}-{i:02d}",
                chart=chart,
                rail_mm=rail_mm,
                pitch_deg=pitch_deg,
                light_level=self.light.level,
                exposure_time_s=exposure_time_s,
                iso=iso,
            )
            frames.append(
                Frame(
                    path=self._store(capture, state),
                    image=image,
                    chart=chart,
                    rail_mm=rail_mm,
                    pitch_deg=pitch_deg,
                    light_level=self.light.level,
                    exposure_time_s=exposure_time_s,
                    iso=iso,
                    timestamp_ms=capture.timestamp_ms if capture.timestamp_ms is not None else image.timestamp_ms,
                )
            )
        return frames

    def exposure_for(
        self, *, target_dn: float, t_stop: float, light: float, transmittance: float, iso: int = 100
    ) -> float:
        """Exposure time (s) that puts the chart's centre at ``target_dn`` above black, from the station's light
        calibration: signal = response · L · t · (ISO/100) · transmittance / T²."""
        lum = light * self.station.light.luminance_cd_m2_at_max
        per_second = self.station.light.response_dn_per_cd_m2_s * lum * (iso / 100) * transmittance / t_stop**2
        if per_second <= 0:
            raise ArgumentError(f"light {light}: expected a level > 0 for an exposure")
        return target_dn / per_second


def _lens_text(attached: bool, lens_code: int | None) -> str:
    return f"lens code {lens_code}" if attached else "no lens"
