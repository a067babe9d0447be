"""Mount stability from registered chart frames: sag across fixture pitch, remount repeatability, settling after
a knock.

All three take image shifts that :func:`rig.measure.registration.register` measured against a reference frame
(px), so they are pure arithmetic on numbers; units on the way out are µm on the sensor, arcmin and ms.

Tilt change from image shift: registration of a distant (collimated) chart sees a lateral image shift, not a
tilt. A lens that rocks rigidly about its flange by α moves the image by (f − 27.8 mm)·α (the lever from the
flange to the rear nodal point; derivation in :mod:`rig.twin.mount`'s documentation of the same physics), so the
tilt change is the shift over that lever arm. It is a *derived* figure and holds only for rigid rocking about the
flange; a remount's tilt change is not tied to its shift, so for remounts the caller passes tilts measured by
the through-focus plane fit instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.signal import lombscargle

from rig.errors import MeasurementError

_ARCMIN_PER_MRAD = 180.0 * 60.0 / math.pi / 1000.0


@dataclass(frozen=True)
class Sag:
    """Image shift and derived tilt change across fixture pitch.

    Attributes
    ----------
    pitch_deg
        The fixture pitches (degrees, −90 lens up … +90 lens down).
    shift_x_um, shift_y_um
        Image shift at each pitch relative to the first frame (µm on the sensor).
    sag_x_um, sag_y_um, sag_um
        Amplitude of the cos(pitch) term of the fit s(p) = c + A·cos p per axis, and its magnitude (µm): the shift
        between the lens hanging sideways (pitch 0) and the lens along gravity (±90°), where the bending moment
        m·g·d·cos p vanishes.
    sag_tilt_arcmin
        sag_um over the lever arm f − 27.8 mm (arcmin); see the module docstring.
    range_um
        Largest distance between the image positions at any two pitches (µm).
    fit_rms_um
        RMS residual of the cos fit (µm).
    """

    pitch_deg: np.ndarray
    shift_x_um: np.ndarray
    shift_y_um: np.ndarray
    sag_x_um: float
    sag_y_um: float
    sag_um: float
    sag_tilt_arcmin: float
    range_um: float
    fit_rms_um: float


@dataclass(frozen=True)
class Repeatability:
    """Scatter of the image position (and optionally tilt) over N remounts.

    ``sigma_um`` pools the per-axis sample σ (ddof 1) as √((σx² + σy²)/2), the σ per axis a seating error is
    specified with; ``range_um`` is the largest distance between any two remounts' image positions.
    """

    n: int
    sigma_x_um: float
    sigma_y_um: float
    sigma_um: float
    range_um: float
    sigma_arcmin: float | None
    range_arcmin: float | None


@dataclass(frozen=True)
class Settling:
    """Damped ringing after a knock, fitted to a timed burst of registered frames.

    Attributes
    ----------
    settle_time_ms
        Time after the knock (or after the fitted impulse when no knock time was given) until the envelope of
        the image motion stays within the tolerance (ms); 0 when it never left it.
    tolerance_px
        The tolerance band (px).
    amplitude_px
        Envelope of the image motion at the knock (px).
    decay_per_s
        Envelope decay rate ζ·ωn (1/s).
    frequency_hz
        Damped frequency of the fit; an alias of the true one when the burst samples slower than twice it (the
        decay rate, hence the settle time, is unaffected by aliasing).
    damping_ratio
        ζ from the decay rate and the fitted frequency (meaningful only without aliasing).
    knock_time_ms
        The knock time used (given, or fitted from the phase of an impulse response).
    fit_rms_px
        RMS residual of the fit (px).
    """

    settle_time_ms: float
    tolerance_px: float
    amplitude_px: float
    decay_per_s: float
    frequency_hz: float
    damping_ratio: float
    knock_time_ms: float
    fit_rms_px: float


def _shifts(shifts_px: np.ndarray | list, n: int | None, name: str) -> np.ndarray:
    arr = np.asarray(shifts_px, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise MeasurementError(f"{name}: (dx, dy) pairs, got an array of shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise MeasurementError(f"{name}: one (dx, dy) per frame ({n}), got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise MeasurementError(f"{name}: every shift finite, got {arr[~np.isfinite(arr).all(axis=1)][:3].tolist()}")
    return arr


def _max_distance(points: np.ndarray) -> float:
    diff = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((diff**2).sum(axis=-1)).max())


def sag_vs_pitch(
    pitch_deg: np.ndarray | list[float],
    shifts_px: np.ndarray | list,
    *,
    pixel_pitch_um: float,
    lever_arm_mm: float,
) -> Sag:
    """Sag of the lens on the mount from frames registered across fixture pitch.

    Parameters
    ----------
    pitch_deg
        Fixture pitch of each frame (degrees); at least three distinct values spanning ≥ 60°.
    shifts_px
        (dx, dy) of each frame against a reference frame (px), e.g. from ``register(first, frame)``.
    pixel_pitch_um
        Read-out pixel pitch (µm).
    lever_arm_mm
        f − 27.8 mm of the lens (mm) for the derived tilt; must not be ~0 (a lens whose nodal point sits at the
        flange shows no shift however it tilts).

    Returns
    -------
    Sag
    """
    pitch = np.asarray(pitch_deg, dtype=float)
    shifts = _shifts(shifts_px, pitch.size, "shifts_px")
    if np.unique(np.round(pitch, 3)).size < 3 or np.ptp(pitch) < 60:
        raise MeasurementError(f"at least three pitches spanning 60° for the sag fit, got {pitch.tolist()}")
    if abs(lever_arm_mm) < 0.5:
        raise MeasurementError(
            f"a lever arm f − 27.8 mm of at least 0.5 mm to derive tilt from shift, got {lever_arm_mm} mm"
        )
    um = (shifts - shifts[0]) * pixel_pitch_um
    design = np.column_stack([np.ones_like(pitch), np.cos(np.radians(pitch))])
    coef, *_ = np.linalg.lstsq(design, um, rcond=None)
    residual = um - design @ coef
    sag_x, sag_y = float(coef[1, 0]), float(coef[1, 1])
    sag = math.hypot(sag_x, sag_y)
    return Sag(
        pitch_deg=pitch,
        shift_x_um=um[:, 0],
        shift_y_um=um[:, 1],
        sag_x_um=sag_x,
        sag_y_um=sag_y,
        sag_um=sag,
        sag_tilt_arcmin=sag / abs(lever_arm_mm) * _ARCMIN_PER_MRAD,
        range_um=_max_distance(um),
        fit_rms_um=float(np.sqrt(np.mean(residual**2))),
    )


def remount_repeatability(
    shifts_px: np.ndarray | list,
    *,
    pixel_pitch_um: float,
    tilts_arcmin: np.ndarray | list | None = None,
) -> Repeatability:
    """σ and range of the image position over N remounts of the same lens.

    Parameters
    ----------
    shifts_px
        (dx, dy) of the chart frame after each remount against any one reference frame (px); N ≥ 3.
    pixel_pitch_um
        Read-out pixel pitch (µm).
    tilts_arcmin
        Optional (tilt_x, tilt_y) after each remount from the through-focus plane fit (arcmin).
    """
    shifts = _shifts(shifts_px, None, "shifts_px")
    n = shifts.shape[0]
    if n < 3:
        raise MeasurementError(f"at least 3 remounts for a repeatability, got {n}")
    um = shifts * pixel_pitch_um
    sx, sy = (float(v) for v in um.std(axis=0, ddof=1))
    sigma_arcmin = range_arcmin = None
    if tilts_arcmin is not None:
        tilts = _shifts(tilts_arcmin, n, "tilts_arcmin")
        tx, ty = tilts.std(axis=0, ddof=1)
        sigma_arcmin = float(math.sqrt((tx * tx + ty * ty) / 2))
        range_arcmin = _max_distance(tilts)
    return Repeatability(
        n=n,
        sigma_x_um=sx,
        sigma_y_um=sy,
        sigma_um=math.sqrt((sx * sx + sy * sy) / 2),
        range_um=_max_distance(um),
        sigma_arcmin=sigma_arcmin,
        range_arcmin=range_arcmin,
    )


def settling_time(
    timestamps_ms: np.ndarray | list[float | None],
    shifts_px: np.ndarray | list,
    *,
    tolerance_px: float = 0.25,
    knock_time_ms: float | None = None,
) -> Settling:
    """Settling time after a knock from a timed burst of frames registered against a settled reference.

    The image motion along its principal direction is fitted with a damped sinusoid
    y(t) = c + A·e^(−σ(t − t₀))·sin(ω(t − t₀) + φ) (least squares, started from the Lomb-Scargle periodogram's
    peak), rather than thresholding single frames: the envelope A·e^(−σ(t − t₀)) tells when the motion stays
    within ``tolerance_px`` even between frames. With ``knock_time_ms`` given, t₀ is the knock and φ is free;
    without it the motion is taken as the impulse response of the mount (φ = 0) and t₀ is fitted within the half
    period before the first frame (so the burst must start within half a ringing period of the knock).

    Parameters
    ----------
    timestamps_ms
        Phone timestamps of the frames (ms; any origin, same clock as ``knock_time_ms``).
    shifts_px
        (dx, dy) of each frame (px).
    tolerance_px
        The settling band (px).
    knock_time_ms
        When the knock happened, in the frames' clock (ms), if known.

    Raises
    ------
    MeasurementError
        A frame without a timestamp, fewer than 8 frames, or a burst in which the ringing cannot be fitted.

    References
    ----------
    Damped harmonic oscillator impulse response, e.g. Rao, *Mechanical Vibrations*, §2.6; N. R. Lomb (1976),
    J. D. Scargle (1982) for the unevenly sampled periodogram.
    """
    stamps = [
        None if t is None else float(t)
        for t in (timestamps_ms.tolist() if isinstance(timestamps_ms, np.ndarray) else timestamps_ms)
    ]
    missing = [i for i, t in enumerate(stamps) if t is None or not math.isfinite(t)]
    if missing:
        raise MeasurementError(
            f"a timestamp on every frame of the burst to time the settling; frames {missing} have none"
        )
    t_ms = np.array(stamps, dtype=float)
    shifts = _shifts(shifts_px, t_ms.size, "shifts_px")
    if t_ms.size < 8:
        raise MeasurementError(f"at least 8 frames in the burst to fit the ringing, got {t_ms.size}")
    order = np.argsort(t_ms)
    t_ms, shifts = t_ms[order], shifts[order]
    if np.any(np.diff(t_ms) <= 0):
        raise MeasurementError("distinct timestamps for every frame of the burst")
    centred = shifts - shifts.mean(axis=0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    y = shifts @ direction
    t = (t_ms - t_ms[0]) / 1000.0
    span = float(t[-1])
    rest = float(np.median(y[-max(2, y.size // 5) :]))
    dev = y - rest
    # frequency grid up to the (mean-rate) Nyquist: beyond it the periodogram only repeats aliases
    nyquist_hz = 0.5 * (t.size - 1) / span
    freqs_hz = np.linspace(0.5 / span, nyquist_hz, 2000)
    power = lombscargle(t, dev - dev.mean(), 2 * np.pi * freqs_hz)
    f0 = float(freqs_hz[int(np.argmax(power))])
    a0 = float(np.abs(dev).max())
    first = int(np.argmax(np.abs(dev) > 0.5 * a0))
    late = np.abs(dev[first:])
    decay0 = max(
        1.0 / span,
        float(
            np.log(a0 / max(float(np.median(late[-max(2, late.size // 4) :])), 1e-3 * a0)) / max(span - t[first], 1e-6)
        ),
    )
    known = knock_time_ms is not None
    t_knock = ((knock_time_ms - t_ms[0]) / 1000.0) if known else 0.0

    def model(p: np.ndarray) -> np.ndarray:
        c, amp, decay, freq, extra = p
        t0, phase = (t_knock, extra) if known else (extra, 0.0)
        tau = t - t0
        return c + np.where(tau >= 0, amp * np.exp(-decay * tau) * np.sin(2 * np.pi * freq * tau + phase), 0.0)

    best = None
    # without the knock time, the impulse response pins t₀ only modulo half a period (with the amplitude's sign):
    # we take the knock to lie within the half period before the first frame (start the burst with the knock)
    half_period = 0.5 / f0
    if known:
        lower = [-np.inf, -np.inf, 0.0, 0.0, -np.inf]
        upper = [np.inf, np.inf, np.inf, nyquist_hz * 1.5, np.inf]
        starts = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    else:
        lower = [-np.inf, -np.inf, 0.0, 0.0, -half_period]
        upper = [np.inf, np.inf, np.inf, nyquist_hz * 1.5, 1e-9]
        starts = -np.arange(8) * half_period / 8
    amp0 = a0 * math.exp(decay0 * (t[first] - t_knock)) if known else a0
    for phase_or_t0 in starts:
        start = np.array([rest, amp0, decay0, f0, phase_or_t0])
        try:
            fit = least_squares(lambda p: model(p) - y, start, bounds=(lower, upper))
        except ValueError:
            continue
        if best is None or fit.cost < best.cost:
            best = fit
    if best is None or not best.success:
        raise MeasurementError("the damped-ringing model could not be fitted to the burst")
    _, amp, decay, freq, extra = best.x
    amp = abs(amp)  # the principal direction's sign is arbitrary
    rms = float(np.sqrt(np.mean(best.fun**2)))
    if decay <= 0 or amp <= 3 * rms:
        raise MeasurementError(
            f"no decaying ringing in the burst (amplitude {amp:.3f} px, decay {decay:.3g}/s, residual {rms:.3f} px)"
        )
    t0 = t_knock if known else float(extra)
    settle_s = max(0.0, math.log(amp / tolerance_px) / decay) if amp > tolerance_px else 0.0
    omega_d = 2 * math.pi * freq
    zeta = decay / math.hypot(decay, omega_d) if omega_d > 0 or decay > 0 else float("nan")
    return Settling(
        settle_time_ms=1000.0 * settle_s,
        tolerance_px=tolerance_px,
        amplitude_px=float(amp),
        decay_per_s=float(decay),
        frequency_hz=float(freq),
        damping_ratio=float(zeta),
        knock_time_ms=float(t_ms[0] + 1000.0 * t0),
        fit_rms_px=rms,
    )
