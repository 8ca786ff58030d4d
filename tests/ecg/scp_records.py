"""SCP-ECG records built by hand for the tests, straight from the standard's layout.

Nothing here uses Rekam's writer or its constants: the layout is spelled out again (little-endian
throughout; CRC-CCITT computed with the standard library's ``binascii.crc_hqx`` from 0xFFFF), so
that the tests compare Rekam against the standard, not against itself.
"""

from __future__ import annotations

import binascii
import struct


def crc(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)


def section(section_id: int, body: bytes, *, version: int = 20) -> bytes:
    """One section: CRC (2), ID (2), length (4), version (1), protocol (1), reserved (6), body."""
    if len(body) % 2:
        body += b"\x00"
    reserved = b"SCPECG" if section_id == 0 else bytes(6)
    rest = struct.pack("<HIBB", section_id, 16 + len(body), version, version) + reserved + body
    return struct.pack("<H", crc(rest)) + rest


def record(bodies: dict[int, bytes]) -> bytes:
    """A record with section 0 pointing at sections 1–11 (absent ones: length 0, index 0)."""
    built = {sid: section(sid, body) for sid, body in bodies.items()}
    count = max(12, max(built, default=0) + 1)
    section_0_length = 16 + 10 * count
    position = 6 + section_0_length + 1  # 1-based
    pointers = [struct.pack("<HII", 0, section_0_length, 7)]
    for sid in range(1, count):
        if sid in built:
            pointers.append(struct.pack("<HII", sid, len(built[sid]), position))
            position += len(built[sid])
        else:
            pointers.append(struct.pack("<HII", sid, 0, 0))
    body = section(0, b"".join(pointers)) + b"".join(built[k] for k in sorted(built))
    rest = struct.pack("<I", 6 + len(body)) + body
    return struct.pack("<H", crc(rest)) + rest


def pointers(data: bytes) -> list[tuple[int, int, int]]:
    """Section 0's pointer table: (section ID, length, 1-based index) per entry."""
    length = struct.unpack_from("<I", data, 6 + 4)[0]
    return [struct.unpack_from("<HII", data, 6 + 16 + i) for i in range(0, length - 16, 10)]


def reseal(data: bytes) -> bytes:
    """Recompute every section CRC and the record CRC (after a deliberate edit)."""
    out = bytearray(data)
    for _sid, length, index in pointers(data):
        if length and index:
            start = index - 1
            out[start : start + 2] = struct.pack("<H", crc(bytes(out[start + 2 : start + length])))
    out[0:2] = struct.pack("<H", crc(bytes(out[2:])))
    return bytes(out)


def tags(body: bytes) -> dict[int, bytes]:
    """Section 1's tags (tag (1), length (2), value) up to tag 255."""
    found: dict[int, bytes] = {}
    position = 0
    while body[position] != 255:
        tag, length = struct.unpack_from("<BH", body, position)
        found[tag] = body[position + 3 : position + 3 + length]
        position += 3 + length
    assert struct.unpack_from("<BH", body, position) == (255, 0)
    return found


def section_body(data: bytes, section_id: int) -> bytes:
    for sid, length, index in pointers(data):
        if sid == section_id and length:
            return data[index - 1 + 16 : index - 1 + length]
    raise KeyError(section_id)
