"""The byte layout of an SCP-ECG record (EN 1064:2005 / ISO 11073-91064, protocol version 2.0).

An SCP-ECG record is little-endian throughout::

    record   = CRC (2) | record size (4) | section 0 | section 1 | ... | section N
    section  = CRC (2) | section ID (2) | section length (4) | section version (1)
               | protocol version (1) | reserved (6) | section data

Both CRCs are CRC-CCITT (polynomial 0x1021, initial value 0xFFFF, no reflection): the record CRC
covers every byte from the record size onward, a section CRC every byte of the section from its
ID onward. Section 0 holds one 10-byte pointer per section (ID (2), length (4), index (4)), where
the index is the 1-based byte position of the section in the record and 0 when it is absent.

This module holds the constants and the CRC; :mod:`rekam.ecg.scp_ecg_writer` and
:mod:`rekam.ecg.scp_ecg_reader` use them.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "DEFAULT_HUFFMAN_TABLE",
    "LEAD_CODES",
    "POINTER_LENGTH",
    "PROTOCOL_VERSION",
    "RECORD_HEADER_LENGTH",
    "REQUIRED_POINTERS",
    "SCPECG_MARKER",
    "SECTION_HEADER_LENGTH",
    "DifferenceEncoding",
    "Section",
    "Sex",
    "Tag",
    "crc_ccitt",
    "lead_code_for_name",
    "lead_name_for_code",
]

#: The record's own CRC (2 bytes) and size (4 bytes) before section 0.
RECORD_HEADER_LENGTH = 6
#: Every section starts with this 16-byte ID header.
SECTION_HEADER_LENGTH = 16
#: One pointer in section 0: section ID (2), length (4), index (4).
POINTER_LENGTH = 10
#: Section 0 must hold pointers for sections 0 to 11, present or not.
REQUIRED_POINTERS = 12
#: Section and protocol version written: 20 means version 2.0 (EN 1064:2005).
PROTOCOL_VERSION = 20
#: Section 0's reserved bytes carry this marker from version 2.0 on.
SCPECG_MARKER = b"SCPECG"
#: Section 2's table count that means "the default Huffman table of the standard".
DEFAULT_HUFFMAN_TABLE = 19999
#: The highest section ID the standard allows (128–1023 are manufacturer-specific).
LAST_SECTION_ID = 1023
FIRST_MANUFACTURER_SECTION = 128


class Section(IntEnum):
    """The sections of an SCP-ECG record that Rekam reads or writes."""

    POINTERS = 0
    HEADER = 1
    HUFFMAN_TABLES = 2
    LEAD_DEFINITION = 3
    QRS_LOCATIONS = 4
    REFERENCE_BEATS = 5
    RHYTHM_DATA = 6
    GLOBAL_MEASUREMENTS = 7
    INTERPRETATION = 8
    MANUFACTURER_INTERPRETATION = 9
    LEAD_MEASUREMENTS = 10
    UNIVERSAL_STATEMENTS = 11


class Tag(IntEnum):
    """Section 1 header tags (each one: tag (1), length (2), value)."""

    LAST_NAME = 0
    FIRST_NAME = 1
    PATIENT_ID = 2
    SECOND_LAST_NAME = 3
    AGE = 4
    DATE_OF_BIRTH = 5
    HEIGHT = 6
    WEIGHT = 7
    SEX = 8
    RACE = 9
    DRUGS = 10
    SYSTOLIC_BP = 11
    DIASTOLIC_BP = 12
    DIAGNOSIS_OR_REFERRAL = 13
    ACQUIRING_DEVICE = 14
    ANALYSING_DEVICE = 15
    ACQUIRING_INSTITUTION = 16
    ANALYSING_INSTITUTION = 17
    ACQUIRING_DEPARTMENT = 18
    ANALYSING_DEPARTMENT = 19
    REFERRING_PHYSICIAN = 20
    CONFIRMING_PHYSICIAN = 21
    TECHNICIAN = 22
    ROOM = 23
    STAT_CODE = 24
    DATE_OF_ACQUISITION = 25
    TIME_OF_ACQUISITION = 26
    BASELINE_FILTER = 27
    LOW_PASS_FILTER = 28
    FILTER_BIT_MAP = 29
    FREE_TEXT = 30
    SEQUENCE_NUMBER = 31
    MEDICAL_HISTORY_CODES = 32
    ELECTRODE_CONFIGURATION = 33
    DATE_TIME_ZONE = 34
    MEDICAL_HISTORY_TEXT = 35
    TERMINATOR = 255


class Sex(IntEnum):
    """Tag 8 values."""

    NOT_KNOWN = 0
    MALE = 1
    FEMALE = 2
    UNSPECIFIED = 9


class DifferenceEncoding(IntEnum):
    """Section 6 byte 5: how the stored values relate to the samples."""

    REAL = 0
    FIRST_DIFFERENCE = 1
    SECOND_DIFFERENCE = 2


#: Tag 14 (acquiring device): the fixed part before the analysing program revision string.
DEVICE_FIXED_LENGTH = 35
#: Tag 14 byte 8: device type 0 = cart (acquisition device).
DEVICE_TYPE_CART = 0
#: Tag 14 byte 9: manufacturer code 255 = other (named in the trade name string).
MANUFACTURER_OTHER = 255
#: Tag 14 compatibility level: 0xD0 = category IV (all sections may be present).
COMPATIBILITY_CATEGORY_IV = 0xD0
#: Tag 14 capabilities: bit 6 store (0x40) and bit 7 acquire (0x80).
CAPABILITIES_STORE_ACQUIRE = 0xC0
#: Tag 14 language support code: 0x00 ASCII only, 0x01 ISO 8859-1 (Latin-1).
LANGUAGE_ASCII = 0x00
LANGUAGE_LATIN_1 = 0x01
#: Tag 34 offset meaning "time zone not known".
TIME_ZONE_UNKNOWN = 0x7FFF

#: Section 3 flags byte: bit 0 reference beat subtraction, bit 2 all leads simultaneous,
#: bits 3–7 number of simultaneously recorded leads.
FLAG_REFERENCE_BEAT_SUBTRACTION = 0x01
FLAG_ALL_SIMULTANEOUS = 0x04
SIMULTANEOUS_SHIFT = 3
MAX_SIMULTANEOUS_IN_FLAGS = 31

#: Lead identification codes of section 3 (the standard's lead table; the same numbers as the
#: SCPECG coding scheme of DICOM's channel sources, ``5.6.3-9-<code>``).
LEAD_CODES: dict[int, str] = {
    0: "Unspecified",
    1: "I",
    2: "II",
    3: "V1",
    4: "V2",
    5: "V3",
    6: "V4",
    7: "V5",
    8: "V6",
    9: "V7",
    10: "V2R",
    11: "V3R",
    12: "V4R",
    13: "V5R",
    14: "V6R",
    15: "V7R",
    16: "X",
    17: "Y",
    18: "Z",
    19: "CC5",
    20: "CM5",
    21: "LA",
    22: "RA",
    23: "LL",
    61: "III",
    62: "aVR",
    63: "aVL",
    64: "aVF",
    65: "-aVR",
    66: "V8",
    67: "V9",
    68: "V8R",
    69: "V9R",
}

_BY_NAME = {name.lower(): code for code, name in LEAD_CODES.items() if code != 0}
_ALIASES = {"vx": "x", "vy": "y", "vz": "z"}


def lead_code_for_name(name: str) -> int:
    """The section 3 lead code of a lead name (``V1``, ``avr``, ``lead II``); 0 if unknown."""
    key = " ".join(name.strip().split()).lower().removeprefix("lead ")
    return _BY_NAME.get(_ALIASES.get(key, key), 0)


def lead_name_for_code(code: int) -> str:
    """The lead name of a section 3 lead code (``lead 42`` for codes without a name here)."""
    name = LEAD_CODES.get(code)
    return name if name is not None and code != 0 else f"lead {code}"


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc_ccitt(data: bytes | bytearray | memoryview) -> int:
    """CRC-CCITT of ``data`` as SCP-ECG uses it (polynomial 0x1021, initial value 0xFFFF)."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc
