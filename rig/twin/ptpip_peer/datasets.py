"""PTP datasets the phone peer serves (ISO 15740 §5.5): DeviceInfo, StorageInfo, ObjectInfo, DevicePropDesc.

Field order and encodings as REFERENCE.md §5 records them from libgphoto2's ptp-pack.c.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rig.spec.ptp import (
    PTP_STANDARD_VERSION,
    AccessCapability,
    AssociationType,
    DataType,
    FilesystemType,
    FormFlag,
    ObjectFormat,
    StorageType,
)
from rig.twin.ptpip_peer.wire import (
    ProtocolViolation,
    pack_value,
    parse_ptp_string,
    ptp_string,
    u8,
    u16,
    u16_array,
    u32,
    u64,
)


@dataclass(frozen=True)
class DeviceInfo:
    manufacturer: str
    model: str
    device_version: str
    serial_number: str
    operations: Sequence[int]
    events: Sequence[int]
    properties: Sequence[int]
    capture_formats: Sequence[int] = (ObjectFormat.DNG,)
    image_formats: Sequence[int] = (
        ObjectFormat.DNG,
        ObjectFormat.UNDEFINED_IMAGE,
        ObjectFormat.TEXT,
        ObjectFormat.ASSOCIATION,
    )

    def pack(self) -> bytes:
        return b"".join(
            [
                u16(PTP_STANDARD_VERSION),
                u32(0),  # VendorExtensionID: generic PTP, so libgphoto2 takes no vendor-specific path
                u16(0),
                ptp_string(""),
                u16(0),  # FunctionalMode
                u16_array(self.operations),
                u16_array(self.events),
                u16_array(self.properties),
                u16_array(self.capture_formats),
                u16_array(self.image_formats),
                ptp_string(self.manufacturer),
                ptp_string(self.model),
                ptp_string(self.device_version),
                ptp_string(self.serial_number),
            ]
        )


@dataclass(frozen=True)
class StorageInfo:
    description: str
    volume_label: str
    max_capacity_bytes: int
    free_bytes: int
    free_images: int = 0xFFFFFFFF

    def pack(self) -> bytes:
        return b"".join(
            [
                u16(StorageType.FIXED_RAM),
                u16(FilesystemType.GENERIC_HIERARCHICAL),
                u16(AccessCapability.READ_WRITE),
                u64(self.max_capacity_bytes),
                u64(self.free_bytes),
                u32(self.free_images),
                ptp_string(self.description),
                ptp_string(self.volume_label),
            ]
        )


def ptp_datetime(time_s: float) -> str:
    """PTP DateTime string ``YYYYMMDDThhmmss`` (UTC) of a POSIX time."""
    return datetime.fromtimestamp(time_s, tz=UTC).strftime("%Y%m%dT%H%M%S")


@dataclass(frozen=True)
class ObjectInfo:
    storage_id: int
    object_format: int
    compressed_size: int
    parent: int
    filename: str
    image_width: int = 0
    image_height: int = 0
    bit_depth: int = 0
    association_type: int = 0
    capture_date: str = ""
    keywords: str = ""

    @classmethod
    def folder(cls, storage_id: int, name: str, *, parent: int = 0, date: str = "") -> ObjectInfo:
        return cls(
            storage_id=storage_id,
            object_format=ObjectFormat.ASSOCIATION,
            compressed_size=0,
            parent=parent,
            filename=name,
            association_type=AssociationType.GENERIC_FOLDER,
            capture_date=date,
        )

    def pack(self) -> bytes:
        return b"".join(
            [
                u32(self.storage_id),
                u16(self.object_format),
                u16(0),  # ProtectionStatus: none
                u32(min(self.compressed_size, 0xFFFFFFFF)),
                u16(0),  # ThumbFormat
                u32(0),
                u32(0),
                u32(0),  # ThumbCompressedSize, ThumbPixWidth, ThumbPixHeight
                u32(self.image_width),
                u32(self.image_height),
                u32(self.bit_depth),
                u32(self.parent),
                u16(self.association_type),
                u32(0),  # AssociationDesc
                u32(0),  # SequenceNumber
                ptp_string(self.filename),
                ptp_string(self.capture_date),
                ptp_string(self.capture_date),  # ModificationDate
                ptp_string(self.keywords),
            ]
        )

    @classmethod
    def unpack(cls, data: bytes) -> ObjectInfo:
        """Parse the ObjectInfo an initiator sends with SendObjectInfo."""
        fixed = struct.Struct("<IHHIHIIIIIIIHII")
        if len(data) < fixed.size + 1:
            raise ProtocolViolation(f"ObjectInfo of {len(data)} bytes")
        (storage, fmt, _prot, size, _tf, _tcs, _tw, _th, width, height, depth, parent, assoc, _ad, _seq) = (
            fixed.unpack_from(data)
        )
        filename, offset = parse_ptp_string(data, fixed.size)
        capture_date = ""
        if offset < len(data):
            capture_date, offset = parse_ptp_string(data, offset)
        return cls(
            storage_id=storage,
            object_format=fmt,
            compressed_size=size,
            parent=parent,
            filename=filename,
            image_width=width,
            image_height=height,
            bit_depth=depth,
            association_type=assoc,
            capture_date=capture_date,
        )


@dataclass(frozen=True)
class PropForm:
    """How a property's allowed values are described: no form, a range or an enumeration."""

    flag: FormFlag = FormFlag.NONE
    minimum: int = 0
    maximum: int = 0
    step: int = 1
    values: tuple[int, ...] = ()

    @classmethod
    def range(cls, minimum: int, maximum: int, step: int = 1) -> PropForm:
        return cls(FormFlag.RANGE, minimum, maximum, step)

    @classmethod
    def enum(cls, values: Sequence[int]) -> PropForm:
        return cls(FormFlag.ENUM, values=tuple(values))

    def allows(self, value: int | str) -> bool:
        if self.flag == FormFlag.RANGE:
            return (
                isinstance(value, int)
                and self.minimum <= value <= self.maximum
                and ((value - self.minimum) % self.step == 0)
            )
        if self.flag == FormFlag.ENUM:
            return value in self.values
        return True

    def pack(self, datatype: DataType) -> bytes:
        if self.flag == FormFlag.RANGE:
            return u8(self.flag) + b"".join(pack_value(datatype, v) for v in (self.minimum, self.maximum, self.step))
        if self.flag == FormFlag.ENUM:
            return u8(self.flag) + u16(len(self.values)) + b"".join(pack_value(datatype, v) for v in self.values)
        return u8(FormFlag.NONE)


def device_prop_desc(
    code: int, datatype: DataType, *, writable: bool, default: int | str, current: int | str, form: PropForm
) -> bytes:
    return b"".join(
        [
            u16(code),
            u16(datatype),
            u8(1 if writable else 0),
            pack_value(datatype, default),
            pack_value(datatype, current),
            form.pack(datatype),
        ]
    )
