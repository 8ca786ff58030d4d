"""The SHA-256 of a DICOM Part 10 object's data set, leaving out its File Meta Information.

The meta group (preamble, ``DICM``, group 0002) describes the file, not the object: every DICOM
network transfer rewrites it (a C-GET receiver writes its own Implementation Class UID), while the
data set after it travels unchanged. Comparing this digest tells whether a PACS returned the
object that was sent to it.
"""

from __future__ import annotations

import hashlib
import struct

from rekam.dicom.errors import DicomError

__all__ = ["dataset_sha256"]

_PREAMBLE = 128
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}


def _dataset_offset(data: bytes) -> int:
    """Where the data set starts: after the preamble, ``DICM`` and the group 0002 elements
    (always explicit VR little endian)."""
    if len(data) < _PREAMBLE + 4 or data[_PREAMBLE : _PREAMBLE + 4] != b"DICM":
        raise DicomError("This is not a DICOM Part 10 file (no DICM marker after the preamble).")
    at = _PREAMBLE + 4
    while at + 8 <= len(data):
        group = struct.unpack_from("<H", data, at)[0]
        if group != 0x0002:
            return at
        vr = data[at + 4 : at + 6]
        if vr in _LONG_VRS:
            if at + 12 > len(data):
                break
            length = struct.unpack_from("<I", data, at + 8)[0]
            at += 12 + length
        else:
            length = struct.unpack_from("<H", data, at + 6)[0]
            at += 8 + length
    raise DicomError("The DICOM file ends inside its File Meta Information.")


def dataset_sha256(data: bytes) -> str:
    """Hex SHA-256 of the data set of a Part 10 file (File Meta Information excluded)."""
    return hashlib.sha256(memoryview(data)[_dataset_offset(data) :]).hexdigest()
