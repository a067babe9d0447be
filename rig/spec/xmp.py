"""XMP packets of simple properties, embedded in (and read from) a TIFF/DNG file's IFD0.

An XMP packet is RDF/XML inside an ``x:xmpmeta`` element, wrapped in ``<?xpacket begin=… id=…?>`` /
``<?xpacket end="w"?>`` processing instructions (XMP Specification Part 1, 2012, §7.3 "XMP packet wrapper" and §7.9
"serialization of simple properties"). In TIFF (and so in DNG, which is TIFF) the packet is the value of tag 700
``XMLPacket`` in IFD0, type BYTE (XMP Specification Part 3, 2016, §1.1.4 "TIFF"; DNG 1.4 §"XMP", tag 700).

Adding a tag to a file another program wrote (the phone's DNG) must not move anything the file's offsets point
at, so :func:`embed_xmp` leaves every byte in place and appends: the XMP packet, then a copy of IFD0 with the
700 entry added (or replaced), and points the header at the new IFD0 (TIFF 6.0 §2: an IFD may sit anywhere in
the file; entries are sorted by tag; values longer than 4 bytes live at an offset on a word boundary). Entries
are copied verbatim, so their offsets (strips, SubIFDs, the Exif IFD, opcode lists) stay valid. tifffile can
overwrite an existing tag's value but not add one to a finished file, which is why this is done here.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from collections.abc import Mapping

XMP_TAG = 700
"""TIFF tag ``XMLPacket`` (XMP Specification Part 3 §1.1.4)."""
TIFF_BYTE = 1
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
X_NS = "adobe:ns:meta/"
MAX_PACKET_BYTES = 1 << 20
"""Largest packet read (1 MiB): a bench state is < 2 kB; a bigger one is refused rather than parsed."""

_PACKET_ID = "W5M0MpCehiHzreSzNTczkc9d"  # the fixed id of XMP Part 1 §7.3.2
_ENTRY = 12


class XmpError(ValueError):
    """A TIFF or XMP packet that cannot carry or give back the properties (the message says why)."""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def encode_packet(namespace: str, prefix: str, properties: Mapping[str, str]) -> bytes:
    """A UTF-8 XMP packet holding ``properties`` as simple properties of ``namespace`` (one ``rdf:Description``).

    Property names must be XML names (letters, digits, ``_``); values are text (escaped here).
    """
    lines = [
        f'<?xpacket begin="\ufeff" id="{_PACKET_ID}"?>',
        f'<x:xmpmeta xmlns:x="{X_NS}">',
        f' <rdf:RDF xmlns:rdf="{RDF_NS}">',
        f'  <rdf:Description rdf:about="" xmlns:{prefix}="{_escape(namespace)}">',
    ]
    for name, value in properties.items():
        if not name.replace("_", "a").isalnum() or not name[0].isalpha():
            raise XmpError(f"XMP property name {name!r}: expected letters, digits and _")
        lines.append(f"   <{prefix}:{name}>{_escape(value)}</{prefix}:{name}>")
    lines += ["  </rdf:Description>", " </rdf:RDF>", "</x:xmpmeta>", '<?xpacket end="w"?>']
    return "\n".join(lines).encode("utf-8")


def decode_packet(packet: bytes, namespace: str) -> dict[str, str]:
    """The simple properties of ``namespace`` in an XMP packet, name → text.

    Both serialisations XMP allows for a simple property are read: a child element of ``rdf:Description`` and an
    attribute on it (XMP Part 1 §7.9.2.2; exiftool and Adobe tools write either).
    """
    if len(packet) > MAX_PACKET_BYTES:
        raise XmpError(f"XMP packet of {len(packet)} bytes: expected at most {MAX_PACKET_BYTES}")
    text = packet.decode("utf-8", errors="strict").strip("\x00 \n\r\t")
    start = text.find("<x:xmpmeta")
    if start < 0:
        start = text.find("<rdf:RDF")
    end_tag = "</x:xmpmeta>" if text.startswith("<x:xmpmeta", start) else "</rdf:RDF>"
    end = text.rfind(end_tag)
    if start < 0 or end < 0:
        raise XmpError("XMP packet: no x:xmpmeta or rdf:RDF element")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise XmpError("XMP packet: a DOCTYPE or ENTITY declaration (XMP allows neither)")
    try:
        root = ET.fromstring(text[start : end + len(end_tag)])
    except ET.ParseError as exc:
        raise XmpError(f"XMP packet: not well-formed XML ({exc})") from None
    found: dict[str, str] = {}
    prefix = "{" + namespace + "}"
    for description in root.iter(f"{{{RDF_NS}}}Description"):
        for key, value in description.attrib.items():
            if key.startswith(prefix):
                found[key[len(prefix) :]] = value
        for child in description:
            if child.tag.startswith(prefix) and len(child) == 0:
                found[child.tag[len(prefix) :]] = (child.text or "").strip()
    return found


def _byte_order(tiff: bytes) -> str:
    if len(tiff) < 8:
        raise XmpError(f"{len(tiff)} bytes: too short for a TIFF header")
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    if order is None or struct.unpack_from(order + "H", tiff, 2)[0] != 42:
        raise XmpError("not a classic TIFF (II*/MM* header): cannot hold the XMP tag")
    return order


def _ifd0(tiff: bytes, order: str) -> tuple[int, list[bytes], int]:
    """(offset, raw 12-byte entries, next-IFD offset) of IFD0."""
    (offset,) = struct.unpack_from(order + "I", tiff, 4)
    if offset + 2 > len(tiff):
        raise XmpError(f"IFD0 at {offset}: beyond the file's {len(tiff)} bytes")
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    table_end = offset + 2 + _ENTRY * count + 4
    if table_end > len(tiff):
        raise XmpError(f"IFD0 at {offset} with {count} entries: beyond the file's {len(tiff)} bytes")
    entries = [bytes(tiff[offset + 2 + _ENTRY * i : offset + 2 + _ENTRY * (i + 1)]) for i in range(count)]
    (next_ifd,) = struct.unpack_from(order + "I", tiff, offset + 2 + _ENTRY * count)
    return offset, entries, next_ifd


def embed_xmp(tiff: bytes, packet: bytes) -> bytes:
    """``tiff`` with ``packet`` as IFD0's XMP (tag 700, BYTE), replacing any XMP it had; nothing else moves.

    The packet and a new IFD0 are appended and the header points at the new IFD0; the file's own bytes are copied
    once (a full-size DNG is 101 MB: building it in a bytearray and converting it copied them three times).
    """
    order = _byte_order(tiff)
    _, entries, next_ifd = _ifd0(tiff, order)
    packet_offset = len(tiff) + len(tiff) % 2
    packet_end = packet_offset + len(packet)
    ifd_offset = packet_end + packet_end % 2
    xmp_entry = struct.pack(order + "HHII", XMP_TAG, TIFF_BYTE, len(packet), packet_offset)
    kept = [e for e in entries if struct.unpack_from(order + "H", e)[0] != XMP_TAG]
    table = sorted([*kept, xmp_entry], key=lambda e: struct.unpack_from(order + "H", e)[0])
    body = memoryview(tiff)
    return b"".join(
        [
            body[:4],
            struct.pack(order + "I", ifd_offset),
            body[8:],
            b"\x00" * (len(tiff) % 2),
            packet,
            b"\x00" * (packet_end % 2),
            struct.pack(order + "H", len(table)),
            *table,
            struct.pack(order + "I", next_ifd),
        ]
    )


def tiff_xmp(tiff: bytes) -> bytes | None:
    """IFD0's XMP packet of a TIFF/DNG file (None when it has none)."""
    order = _byte_order(tiff)
    _, entries, _ = _ifd0(tiff, order)
    for entry in entries:
        tag, _type, count, value = struct.unpack(order + "HHII", entry)
        if tag != XMP_TAG:
            continue
        if count > MAX_PACKET_BYTES:
            raise XmpError(f"XMP tag of {count} bytes: expected at most {MAX_PACKET_BYTES}")
        if count <= 4:
            return entry[8 : 8 + count]
        if value + count > len(tiff):
            raise XmpError(f"XMP tag: {count} bytes at {value} run past the file's {len(tiff)} bytes")
        return bytes(tiff[value : value + count])
    return None
