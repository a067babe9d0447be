"""DNG OpcodeList encoding, decoding and application of GainMap opcodes (REFERENCE.md §6).

Layout (DNG 1.4 spec, "Opcode List Processing"; always big-endian whatever the TIFF byte order)::

    u32 count
    per opcode: u32 OpcodeID, u32 DNGVersion, u32 Flags, u32 ParamBytes, ParamBytes of parameters

GainMap (OpcodeID 9, DNG 1.3.0.0) parameters, 76 + 4·V·H·MapPlanes bytes::

    u32 Top, Left, Bottom, Right, Plane, Planes, RowPitch, ColPitch, MapPointsV, MapPointsH
    f64 MapSpacingV, MapSpacingH, MapOriginV, MapOriginH
    u32 MapPlanes
    f32 MapGain[V][H][MapPlanes]

Application (:func:`apply_opcode_list`) is our own, written from the DNG 1.4 spec chapter 6 (GainMap) and checked
line by line against the Adobe DNG SDK 1.4/1.5 (``dng_gain_map.cpp``: ``dng_opcode_GainMap::ProcessArea`` and
``dng_gain_map_interpolator``):

* the pixels touched are rows Top, Top + RowPitch … < Bottom and columns Left, Left + ColPitch … < Right of planes
  Plane … Plane + Planes − 1 (map plane ``min(plane, MapPlanes − 1)``);
* a pixel's relative position is ``(row + 0.5) / ImageHeight`` and ``(col + 0.5) / ImageWidth``. The spec calls
  MapSpacing/MapOrigin "relative coordinates"; the SDK makes them relative to the *image* bounds it passes to the
  interpolator (``imageBounds``, not the opcode's area), and so do we. For the maps we write (area = the whole
  frame minus the channel's CFA offset) the two readings differ by under one pixel;
* the map index ``(relative − MapOrigin) / MapSpacing`` is clamped to [0, MapPoints − 1] (edge gains extend
  outwards), the gain is interpolated bilinearly between the four surrounding points, and the pixel (linear,
  black-subtracted, DNG stage 2) is multiplied by it, clipped at the white level;
* an axis with one point has spacing 1 and origin 0 whatever the file says (``dng_gain_map::GetStream``).

Per-Bayer-channel shading uses four maps with Top/Left at the channel's CFA offset and RowPitch = ColPitch = 2
(Android DngCreator's layout). The area is in pixels of the frame the list is embedded in, so a list made for a
2048 × 1536 read-out corrects only the top-left quarter of an 8192 × 6144 frame: :func:`readout_opcode_lists` gives
one list per read-out of the sensor. Readers that apply GainMaps: the DNG SDK (Adobe Camera Raw, Lightroom) and
darktable (and RawTherapee with its flat-field "from metadata" option on); LibRaw (rawpy, dcraw-based tools) ignores
them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag

import numpy as np

from rig.errors import ImageInputError
from rig.spec.profile import ShadingMaps

DNG_VERSION_1_3 = 0x01030000
READOUT_BINNINGS = (1, 2, 4)
"""The phone's read-outs of the M-mount sensor: full size, 2×2 and 4×4 binned."""
_HEADER = struct.Struct(">IIII")  # OpcodeID, DNGVersion, Flags, ParamBytes
_GAIN_MAP_FIXED = struct.Struct(">10I4dI")
GAIN_MAP_FIXED_BYTES = _GAIN_MAP_FIXED.size  # 76


class OpcodeId(IntEnum):
    """DNG opcode ids (DNG 1.4 spec, table "Opcode List"); only GainMap is interpreted here."""

    WARP_RECTILINEAR = 1
    WARP_FISHEYE = 2
    FIX_VIGNETTE_RADIAL = 3
    FIX_BAD_PIXELS_CONSTANT = 4
    FIX_BAD_PIXELS_LIST = 5
    TRIM_BOUNDS = 6
    MAP_TABLE = 7
    MAP_POLYNOMIAL = 8
    GAIN_MAP = 9
    DELTA_PER_ROW = 10
    DELTA_PER_COLUMN = 11
    SCALE_PER_ROW = 12
    SCALE_PER_COLUMN = 13


class OpcodeFlags(IntFlag):
    NONE = 0
    OPTIONAL = 1  # a reader that does not know the opcode may skip it
    PREVIEW_SKIP = 2  # may be skipped for a quick preview


@dataclass(frozen=True, eq=False)
class GainMap:
    """One GainMap opcode. ``gains`` has shape (MapPointsV, MapPointsH, MapPlanes), float32."""

    top: int
    left: int
    bottom: int
    right: int
    plane: int
    planes: int
    row_pitch: int
    col_pitch: int
    map_spacing_v: float
    map_spacing_h: float
    map_origin_v: float
    map_origin_h: float
    gains: np.ndarray
    flags: OpcodeFlags = OpcodeFlags.NONE
    dng_version: int = DNG_VERSION_1_3

    @property
    def map_points_v(self) -> int:
        return int(self.gains.shape[0])

    @property
    def map_points_h(self) -> int:
        return int(self.gains.shape[1])

    @property
    def map_planes(self) -> int:
        return int(self.gains.shape[2])

    def params(self) -> bytes:
        fixed = _GAIN_MAP_FIXED.pack(
            self.top,
            self.left,
            self.bottom,
            self.right,
            self.plane,
            self.planes,
            self.row_pitch,
            self.col_pitch,
            self.map_points_v,
            self.map_points_h,
            self.map_spacing_v,
            self.map_spacing_h,
            self.map_origin_v,
            self.map_origin_h,
            self.map_planes,
        )
        return fixed + np.ascontiguousarray(self.gains, dtype=">f4").tobytes()


@dataclass(frozen=True)
class RawOpcode:
    """An opcode this module does not interpret, kept byte-exact so a list round-trips."""

    opcode_id: int
    dng_version: int
    flags: OpcodeFlags
    params: bytes


Opcode = GainMap | RawOpcode


# --------------------------------------------------------------------------------------------- encode
def encode_opcode_list(opcodes: Sequence[Opcode]) -> bytes:
    """Serialise opcodes as a DNG OpcodeList (the value of tag OpcodeList1/2/3), big-endian."""
    out = [struct.pack(">I", len(opcodes))]
    for op in opcodes:
        if isinstance(op, GainMap):
            params = op.params()
            out.append(_HEADER.pack(OpcodeId.GAIN_MAP, op.dng_version, int(op.flags), len(params)))
        else:
            params = op.params
            out.append(_HEADER.pack(op.opcode_id, op.dng_version, int(op.flags), len(params)))
        out.append(params)
    return b"".join(out)


def gain_maps_for_shading(shading: ShadingMaps, *, width_px: int, height_px: int) -> list[GainMap]:
    """Four GainMaps (R, Gr, Gb, B) covering a ``width_px`` × ``height_px`` CFA frame, RowPitch = ColPitch = 2.

    The maps are in relative coordinates, so a profile fitted at one read-out size applies to another.
    """
    maps: list[GainMap] = []
    for ch in shading.channels:
        maps.append(
            GainMap(
                top=ch.row_offset,
                left=ch.col_offset,
                bottom=height_px,
                right=width_px,
                plane=0,
                planes=1,
                row_pitch=2,
                col_pitch=2,
                map_spacing_v=shading.map_spacing_v,
                map_spacing_h=shading.map_spacing_h,
                map_origin_v=shading.map_origin_v,
                map_origin_h=shading.map_origin_h,
                gains=np.asarray(ch.gains, dtype=np.float32)[:, :, None],
            )
        )
    return maps


def shading_opcode_list(shading: ShadingMaps, *, width_px: int, height_px: int) -> bytes:
    """The OpcodeList2 bytes that apply ``shading`` to a frame of this size."""
    return encode_opcode_list(gain_maps_for_shading(shading, width_px=width_px, height_px=height_px))


def readout_opcode_lists(
    shading: ShadingMaps, binnings: Sequence[int] = READOUT_BINNINGS
) -> dict[tuple[int, int], bytes]:
    """The OpcodeList2 of ``shading`` for each read-out of its sensor, keyed by read-out (width, height) in px."""
    out: dict[tuple[int, int], bytes] = {}
    for binning in binnings:
        width, height = shading.readout_px(binning)
        out[(width, height)] = shading_opcode_list(shading, width_px=width, height_px=height)
    return out


# --------------------------------------------------------------------------------------------- decode
def _decode_gain_map(params: bytes, flags: OpcodeFlags, version: int, where: str) -> GainMap:
    if len(params) < GAIN_MAP_FIXED_BYTES:
        raise ImageInputError(f"{where}: GainMap has {len(params)} parameter bytes, expected ≥ {GAIN_MAP_FIXED_BYTES}")
    (top, left, bottom, right, plane, planes, row_pitch, col_pitch, pv, ph, sv, sh, ov, oh, mplanes) = (
        _GAIN_MAP_FIXED.unpack_from(params)
    )
    expected = GAIN_MAP_FIXED_BYTES + 4 * pv * ph * mplanes
    if len(params) != expected:
        raise ImageInputError(
            f"{where}: GainMap of {pv}×{ph}×{mplanes} points has {len(params)} parameter bytes, expected {expected}"
        )
    if pv < 1 or ph < 1 or mplanes < 1 or planes < 1 or row_pitch < 1 or col_pitch < 1:
        raise ImageInputError(
            f"{where}: GainMap MapPoints {pv}×{ph}, MapPlanes {mplanes}, Planes {planes}, pitch "
            f"{row_pitch}/{col_pitch}: expected all ≥ 1"
        )
    if bottom <= top or right <= left:
        raise ImageInputError(f"{where}: GainMap area top={top} left={left} bottom={bottom} right={right} is empty")
    # The SDK ignores spacing/origin along an axis with a single point (it uses spacing 1, origin 0).
    if pv == 1:
        sv, ov = 1.0, 0.0
    if ph == 1:
        sh, oh = 1.0, 0.0
    if not (sv > 0 and sh > 0 and np.isfinite([sv, sh, ov, oh]).all()):
        raise ImageInputError(f"{where}: GainMap spacing {sv}/{sh} origin {ov}/{oh}: expected finite, spacing > 0")
    gains = np.frombuffer(params, dtype=">f4", offset=GAIN_MAP_FIXED_BYTES).astype(np.float32)
    if not np.isfinite(gains).all():
        raise ImageInputError(f"{where}: GainMap gains contain NaN or infinity")
    return GainMap(
        top=top,
        left=left,
        bottom=bottom,
        right=right,
        plane=plane,
        planes=planes,
        row_pitch=row_pitch,
        col_pitch=col_pitch,
        map_spacing_v=sv,
        map_spacing_h=sh,
        map_origin_v=ov,
        map_origin_h=oh,
        gains=gains.reshape(pv, ph, mplanes),
        flags=flags,
        dng_version=version,
    )


def decode_opcode_list(data: bytes, *, source: str = "OpcodeList") -> tuple[Opcode, ...]:
    """Parse an OpcodeList; GainMaps become :class:`GainMap`, others :class:`RawOpcode`.

    Raises
    ------
    ImageInputError
        Truncated or over-long data, or a GainMap whose sizes disagree (one line naming ``source`` and the
        opcode index).
    """
    data = bytes(data)
    if len(data) < 4:
        raise ImageInputError(f"{source}: {len(data)} bytes, expected at least the 4-byte opcode count")
    (count,) = struct.unpack_from(">I", data)
    pos = 4
    out: list[Opcode] = []
    for index in range(count):
        where = f"{source}: opcode {index}"
        if pos + _HEADER.size > len(data):
            raise ImageInputError(f"{where}: header truncated at byte {pos} of {len(data)} (count says {count})")
        opcode_id, version, flags, nbytes = _HEADER.unpack_from(data, pos)
        pos += _HEADER.size
        if pos + nbytes > len(data):
            raise ImageInputError(f"{where}: {nbytes} parameter bytes announced, {len(data) - pos} left")
        params = data[pos : pos + nbytes]
        pos += nbytes
        if opcode_id == OpcodeId.GAIN_MAP:
            out.append(_decode_gain_map(params, OpcodeFlags(flags & 3), version, where))
        else:
            out.append(RawOpcode(opcode_id, version, OpcodeFlags(flags & 3), params))
    if pos != len(data):
        raise ImageInputError(f"{source}: {len(data) - pos} bytes after the {count} opcodes, expected none")
    return tuple(out)


# --------------------------------------------------------------------------------------------- apply
def _map_weights(positions: np.ndarray, origin: float, spacing: float, points: int) -> tuple[np.ndarray, ...]:
    """Lower index, upper index and fraction along one map axis (clamped at the edges as the DNG SDK does)."""
    index = np.clip((positions - origin) / spacing, 0.0, points - 1)
    lower = np.minimum(np.floor(index).astype(np.intp), max(points - 2, 0))
    frac = index - lower
    upper = np.minimum(lower + 1, points - 1)
    return lower, upper, frac


def gain_field(op: GainMap, *, image_height: int, image_width: int, map_plane: int = 0) -> np.ndarray:
    """Gains the opcode multiplies into its area: rows top:bottom:row_pitch × cols left:right:col_pitch."""
    rows = np.arange(op.top, min(op.bottom, image_height), op.row_pitch)
    cols = np.arange(op.left, min(op.right, image_width), op.col_pitch)
    g = op.gains[:, :, map_plane].astype(np.float64)
    r0, r1, fr = _map_weights((rows + 0.5) / image_height, op.map_origin_v, op.map_spacing_v, op.map_points_v)
    c0, c1, fc = _map_weights((cols + 0.5) / image_width, op.map_origin_h, op.map_spacing_h, op.map_points_h)
    # separable bilinear: along the columns on the small map first (V × cols), then whole rows, which are
    # contiguous copies (3× faster at full size than gathering columns of a rows × H array)
    along_h = g[:, c0] * (1.0 - fc) + g[:, c1] * fc
    out = along_h[r0] * (1.0 - fr)[:, None]
    out += along_h[r1] * fr[:, None]
    return out


def apply_opcode_list(
    image: np.ndarray,
    opcodes: Sequence[Opcode],
    *,
    white_level: float | None = None,
    source: str = "OpcodeList",
) -> np.ndarray:
    """Apply the GainMaps of an opcode list to linear, black-subtracted data (DNG processing stage 2).

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, planes)
        Linear values above black (any unit, e.g. DN). Not modified.
    opcodes : sequence of Opcode
        From :func:`decode_opcode_list`.
    white_level : float, optional
        Clip results at this value, as the DNG SDK clips at 1.0 of normalised data. None: no clipping.
    source : str
        Named in errors.

    Returns
    -------
    ndarray, float64, same shape as ``image``.

    Raises
    ------
    ImageInputError
        A non-optional opcode other than GainMap (the DNG spec requires a reader to refuse what it cannot do).
    """
    out = np.array(image, dtype=np.float64, copy=True)
    planar = out if out.ndim == 3 else out[:, :, None]
    height, width, nplanes = planar.shape
    for index, op in enumerate(opcodes):
        if isinstance(op, RawOpcode):
            if op.flags & OpcodeFlags.OPTIONAL:
                continue
            raise ImageInputError(
                f"{source}: opcode {index} has id {op.opcode_id} and is not optional: expected only GainMap (9)"
            )
        for plane in range(op.plane, min(op.plane + op.planes, nplanes)):
            gains = gain_field(op, image_height=height, image_width=width, map_plane=min(plane, op.map_planes - 1))
            view = planar[op.top : op.bottom : op.row_pitch, op.left : op.right : op.col_pitch, plane]
            view *= gains
            if white_level is not None:
                np.minimum(view, white_level, out=view)
    return out
