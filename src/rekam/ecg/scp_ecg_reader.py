"""Reading SCP-ECG records (EN 1064 / ISO 11073-91064) into a Recording and its demographics.

Every CRC is checked (the record's and each section's). Section 6 rhythm data are read when
stored as real values, first or second differences, uncoded or coded with the standard's default
Huffman table, without bimodal compression or reference beat subtraction. Anything else raises a
:class:`~rekam.ecg.errors.ScpEcgError` that says what is wrong; see docs/scp-ecg.md.

    >>> from rekam.ecg import read_scp_ecg
    >>> record = read_scp_ecg("ecg.scp")  # doctest: +SKIP
    >>> record.recording.lead_names, record.demographics.patient_id  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rekam.ecg.errors import (
    RecordNotFoundError,
    ScpEcgChecksumError,
    ScpEcgError,
    ScpEcgTruncatedError,
    ScpEcgUnsupportedError,
)
from rekam.ecg.recording import Recording
from rekam.ecg.scp_ecg_demographics import ScpEcgDemographics, ScpEcgRecord, ScpEncoding
from rekam.ecg.scp_ecg_format import (
    DEFAULT_HUFFMAN_TABLE,
    DEVICE_FIXED_LENGTH,
    FIRST_MANUFACTURER_SECTION,
    FLAG_REFERENCE_BEAT_SUBTRACTION,
    LANGUAGE_LATIN_1,
    LAST_SECTION_ID,
    POINTER_LENGTH,
    RECORD_HEADER_LENGTH,
    SECTION_HEADER_LENGTH,
    TIME_ZONE_UNKNOWN,
    DifferenceEncoding,
    Section,
    Sex,
    Tag,
    crc_ccitt,
    lead_name_for_code,
)
from rekam.ecg.scp_ecg_huffman import decode_default_huffman

__all__ = ["looks_like_scp_ecg", "parse_scp_ecg", "read_scp_ecg"]

_MINIMUM_RECORD = RECORD_HEADER_LENGTH + SECTION_HEADER_LENGTH
_ENCODING_NAMES: dict[int, ScpEncoding] = {
    DifferenceEncoding.REAL: "real",
    DifferenceEncoding.FIRST_DIFFERENCE: "first-difference",
    DifferenceEncoding.SECOND_DIFFERENCE: "second-difference",
}
_SEX_LETTERS = {Sex.MALE: "M", Sex.FEMALE: "F", Sex.UNSPECIFIED: "O"}


@dataclass(frozen=True)
class _Section:
    section_id: int
    body: bytes
    version: int
    protocol_version: int


def read_scp_ecg(path: str | Path) -> ScpEcgRecord:
    """Read the SCP-ECG file at ``path``."""
    file = Path(path)
    if not file.is_file():
        raise RecordNotFoundError(f"No SCP-ECG file found at {file}.")
    return parse_scp_ecg(file.read_bytes(), name=file.stem)


def looks_like_scp_ecg(path: str | Path) -> bool:
    """True when the file starts like an SCP-ECG record (its size, then section 0's header)."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            head = handle.read(_MINIMUM_RECORD)
        size = file.stat().st_size
    except OSError:
        return False
    if len(head) < _MINIMUM_RECORD:
        return False
    declared, section_id, length = struct.unpack_from("<I2xHI", head, 2)
    return bool(
        declared == size
        and section_id == Section.POINTERS
        and length >= SECTION_HEADER_LENGTH
        and (length - SECTION_HEADER_LENGTH) % POINTER_LENGTH == 0
    )


def parse_scp_ecg(data: bytes, *, name: str = "") -> ScpEcgRecord:
    """Parse an SCP-ECG record held in memory."""
    data = bytes(data)
    sections = _sections(data)
    header = sections.get(Section.HEADER)
    demographics = _demographics(header.body if header else b"")
    leads, count = _lead_definition(sections)
    rhythm = sections.get(Section.RHYTHM_DATA)
    if rhythm is None:
        raise ScpEcgUnsupportedError(
            "The SCP-ECG record holds no rhythm data (section 6); Rekam cannot show its ECG."
        )
    huffman = _huffman(sections.get(Section.HUFFMAN_TABLES))
    step, interval, encoding, values = _rhythm(rhythm.body, leads, count, huffman)
    recording = Recording(
        values.astype(np.float64) * (step * 1e-6),
        1e6 / interval,
        tuple(lead_name_for_code(code) for code in leads),
        None,
        name,
    )
    return ScpEcgRecord(
        recording,
        demographics,
        amplitude_step_nv=step,
        sample_interval_us=interval,
        encoding=encoding,
        huffman=huffman,
        protocol_version=sections[Section.POINTERS].protocol_version,
    )


# --- record and sections -----------------------------------------------------------------------


def _sections(data: bytes) -> dict[int, _Section]:
    if len(data) < _MINIMUM_RECORD:
        raise ScpEcgTruncatedError(
            f"The file is {len(data)} bytes long: too short to be an SCP-ECG record."
        )
    size, section_id, length = struct.unpack_from("<I2xHI", data, 2)
    if section_id != Section.POINTERS or length < SECTION_HEADER_LENGTH or size < _MINIMUM_RECORD:
        raise ScpEcgError(
            "This file is not an SCP-ECG record (it does not start with a record size and the "
            "pointer section)."
        )
    if size > len(data):
        raise ScpEcgTruncatedError(
            f"The SCP-ECG record announces {size} bytes but the file holds only {len(data)}: "
            "it is truncated."
        )
    record = data[:size]
    stored_crc = struct.unpack_from("<H", record, 0)[0]
    if crc_ccitt(record[2:]) != stored_crc:
        raise ScpEcgChecksumError(
            "The SCP-ECG record's checksum (CRC) does not match its contents: the file is damaged."
        )
    pointer_section = _section_at(record, RECORD_HEADER_LENGTH, Section.POINTERS)
    sections = {Section.POINTERS.value: pointer_section}
    body = pointer_section.body
    for start in range(0, len(body) - POINTER_LENGTH + 1, POINTER_LENGTH):
        pointed_id, pointed_length, index = struct.unpack_from("<HII", body, start)
        if pointed_id == Section.POINTERS or pointed_length == 0 or index == 0:
            continue
        _check_known(pointed_id)
        if index - 1 < RECORD_HEADER_LENGTH or index - 1 + pointed_length > len(record):
            raise ScpEcgTruncatedError(
                f"Section {pointed_id} lies outside the SCP-ECG record (bytes {index} to "
                f"{index - 1 + pointed_length} of {len(record)}): the file is truncated or "
                "damaged."
            )
        section = _section_at(record, index - 1, pointed_id)
        if len(section.body) + SECTION_HEADER_LENGTH != pointed_length:
            raise ScpEcgError(
                f"Section {pointed_id} is {len(section.body) + SECTION_HEADER_LENGTH} bytes long "
                f"but the pointer section says {pointed_length}: the record is damaged."
            )
        sections[pointed_id] = section
    return sections


def _check_known(section_id: int) -> None:
    if section_id > LAST_SECTION_ID:
        raise ScpEcgError(
            f"The record points to section {section_id}, which SCP-ECG does not define: this is "
            "not a valid SCP-ECG record."
        )
    if Section.UNIVERSAL_STATEMENTS < section_id < FIRST_MANUFACTURER_SECTION:
        raise ScpEcgUnsupportedError(
            f"The record holds section {section_id}, which SCP-ECG 2.x does not define (it may "
            "be a later version of the standard); Rekam reads SCP-ECG up to version 2.x."
        )


def _section_at(record: bytes, offset: int, expected_id: int) -> _Section:
    if offset + SECTION_HEADER_LENGTH > len(record):
        raise ScpEcgTruncatedError(
            f"Section {expected_id} starts at byte {offset + 1} but the record ends at byte "
            f"{len(record)}: the file is truncated."
        )
    crc, section_id, length, version, protocol = struct.unpack_from("<HHIBB", record, offset)
    if section_id != expected_id:
        raise ScpEcgError(
            f"The record says section {expected_id} is at byte {offset + 1}, but section "
            f"{section_id} is there: the record is damaged or not SCP-ECG."
        )
    if length < SECTION_HEADER_LENGTH or offset + length > len(record):
        raise ScpEcgTruncatedError(
            f"Section {section_id} announces {length} bytes, more than the record holds: the file "
            "is truncated or damaged."
        )
    if crc_ccitt(record[offset + 2 : offset + length]) != crc:
        raise ScpEcgChecksumError(
            f"The checksum (CRC) of section {section_id} does not match its contents: the "
            "SCP-ECG file is damaged."
        )
    return _Section(
        section_id, record[offset + SECTION_HEADER_LENGTH : offset + length], version, protocol
    )


# --- section 1: demographics -------------------------------------------------------------------


def _tags(body: bytes) -> dict[int, bytes]:
    tags: dict[int, bytes] = {}
    position = 0
    while position < len(body):
        tag = body[position]
        if tag == Tag.TERMINATOR:
            return tags
        if position + 3 > len(body):
            break
        length = struct.unpack_from("<H", body, position + 1)[0]
        value = body[position + 3 : position + 3 + length]
        if len(value) != length:
            raise ScpEcgError(
                f"Header tag {tag} of section 1 runs past the end of the section: the patient "
                "data are damaged."
            )
        tags.setdefault(tag, value)
        position += 3 + length
    return tags


def _demographics(body: bytes) -> ScpEcgDemographics:
    tags = _tags(body)
    device = tags.get(Tag.ACQUIRING_DEVICE, b"")
    language = device[16] if len(device) > 16 else 0

    def text(value: bytes) -> str:
        raw = value.split(b"\x00", 1)[0]
        if language != LANGUAGE_LATIN_1:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return raw.decode("latin-1")

    def tag_text(tag: Tag) -> str:
        return text(tags.get(tag, b""))

    numbers = struct.unpack_from("<HHH", device) if len(device) >= 6 else (0, 0, 0)
    strings = _device_strings(device)
    sex_value = tags.get(Tag.SEX, b"")
    sex = _SEX_LETTERS.get(Sex(sex_value[0])) if sex_value and sex_value[0] in {1, 2, 9} else None
    return ScpEcgDemographics(
        patient_id=tag_text(Tag.PATIENT_ID),
        last_name=tag_text(Tag.LAST_NAME),
        first_name=tag_text(Tag.FIRST_NAME),
        birth_date=_date(tags.get(Tag.DATE_OF_BIRTH)),
        sex=sex,  # type: ignore[arg-type]
        acquired_at=_acquired_at(tags),
        institution=tag_text(Tag.ACQUIRING_INSTITUTION),
        department=tag_text(Tag.ACQUIRING_DEPARTMENT),
        referring_physician=tag_text(Tag.REFERRING_PHYSICIAN),
        institution_number=numbers[0],
        department_number=numbers[1],
        device_id=numbers[2],
        device_model=text(device[8:14])[:5],
        device_serial_number=text(strings[0]),
        device_software=text(strings[1]),
        manufacturer=text(strings[3]),
    )


def _device_strings(device: bytes) -> list[bytes]:
    """Tag 14's strings: serial number, system software, SCP software, manufacturer name."""
    if len(device) <= DEVICE_FIXED_LENGTH:
        return [b""] * 4
    revision_length = device[DEVICE_FIXED_LENGTH]
    rest = device[DEVICE_FIXED_LENGTH + 1 + revision_length :]
    strings = rest.split(b"\x00")[:4]
    return strings + [b""] * (4 - len(strings))


def _date(value: bytes | None) -> datetime.date | None:
    if value is None or len(value) < 4:
        return None
    year, month, day = struct.unpack_from("<HBB", value)
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None  # not filled in (zeros) or not a real date


def _acquired_at(tags: dict[int, bytes]) -> datetime.datetime | None:
    day = _date(tags.get(Tag.DATE_OF_ACQUISITION))
    clock = tags.get(Tag.TIME_OF_ACQUISITION, b"")
    if day is None:
        return None
    try:
        moment = (
            datetime.datetime(day.year, day.month, day.day, clock[0], clock[1], clock[2])
            if len(clock) >= 3
            else datetime.datetime(day.year, day.month, day.day)
        )
    except ValueError:
        return None
    zone = tags.get(Tag.DATE_TIME_ZONE, b"")
    if len(zone) >= 2:
        minutes = struct.unpack_from("<h", zone)[0]
        if minutes != TIME_ZONE_UNKNOWN and -24 * 60 < minutes < 24 * 60:
            moment = moment.replace(tzinfo=datetime.timezone(datetime.timedelta(minutes=minutes)))
    return moment


# --- sections 2, 3 and 6: the samples ----------------------------------------------------------


def _huffman(section: _Section | None) -> bool:
    if section is None:
        return False
    if len(section.body) < 2:
        raise ScpEcgError("The Huffman table section (section 2) is empty: the record is damaged.")
    tables = struct.unpack_from("<H", section.body)[0]
    if tables != DEFAULT_HUFFMAN_TABLE:
        raise ScpEcgUnsupportedError(
            "The rhythm data are compressed with the recording device's own Huffman tables; "
            "Rekam reads only the standard's default table."
        )
    return True


def _lead_definition(sections: dict[int, _Section]) -> tuple[list[int], int]:
    section = sections.get(Section.LEAD_DEFINITION)
    if section is None:
        raise ScpEcgError("The SCP-ECG record has no lead definition (section 3).")
    body = section.body
    if len(body) < 2:
        raise ScpEcgError("The lead definition (section 3) is empty: the record is damaged.")
    n_leads, flags = body[0], body[1]
    if n_leads == 0:
        raise ScpEcgError("The SCP-ECG record defines no lead.")
    if len(body) < 2 + 9 * n_leads:
        raise ScpEcgError(
            f"The lead definition announces {n_leads} leads but holds fewer: the record is damaged."
        )
    if flags & FLAG_REFERENCE_BEAT_SUBTRACTION:
        raise ScpEcgUnsupportedError(
            "The rhythm data were compressed by subtracting a reference beat; Rekam does not "
            "read that form of SCP-ECG."
        )
    codes: list[int] = []
    ranges = set()
    for lead in range(n_leads):
        start, end, code = struct.unpack_from("<IIB", body, 2 + 9 * lead)
        ranges.add((start, end))
        codes.append(code)
    if len(ranges) != 1:
        raise ScpEcgUnsupportedError(
            "The leads of this record cover different stretches of time; Rekam reads records "
            "whose leads were all recorded together."
        )
    start, end = ranges.pop()
    if start < 1 or end < start:
        raise ScpEcgError(
            f"The lead definition gives samples {start} to {end}: the record is damaged."
        )
    return codes, end - start + 1


def _rhythm(
    body: bytes, leads: list[int], count: int, huffman: bool
) -> tuple[int, int, ScpEncoding, npt.NDArray[np.int64]]:
    head = 6 + 2 * len(leads)
    if len(body) < head:
        raise ScpEcgError("The rhythm data section (section 6) is too short: it is damaged.")
    step, interval, difference, bimodal = struct.unpack_from("<HHBB", body)
    if step == 0 or interval == 0:
        raise ScpEcgError(
            "The rhythm data give no amplitude step or no sampling interval: the record is damaged."
        )
    if difference not in _ENCODING_NAMES:
        raise ScpEcgUnsupportedError(
            f"The rhythm data use difference encoding {difference}, which SCP-ECG does not "
            "define (0, 1 or 2)."
        )
    if bimodal:
        raise ScpEcgUnsupportedError(
            "The rhythm data use bimodal compression; Rekam does not read that form of SCP-ECG."
        )
    lengths = struct.unpack_from(f"<{len(leads)}H", body, 6)
    if head + sum(lengths) > len(body):
        raise ScpEcgError(
            "The rhythm data section is shorter than its lead lengths announce: it is damaged."
        )
    columns = []
    position = head
    for lead, length in enumerate(lengths):
        chunk = body[position : position + length]
        position += length
        if huffman:
            if count > 8 * len(chunk):  # every coded value takes at least one bit
                raise ScpEcgError(
                    f"Lead {lead_name_for_code(leads[lead])} holds {length} bytes of coded "
                    f"rhythm data, too few for {count} samples. The record is damaged."
                )
            stored = decode_default_huffman(chunk, count)
        else:
            if length != 2 * count:
                raise ScpEcgError(
                    f"Lead {lead_name_for_code(leads[lead])} holds {length} bytes of rhythm "
                    f"data; {count} samples need {2 * count}. The record is damaged."
                )
            stored = np.frombuffer(chunk, dtype="<i2").astype(np.int64)
        columns.append(_undo_differences(stored, difference))
    return step, interval, _ENCODING_NAMES[difference], np.column_stack(columns)


def _undo_differences(stored: npt.NDArray[np.int64], difference: int) -> npt.NDArray[np.int64]:
    if difference == DifferenceEncoding.REAL or stored.size < 2:
        return stored
    if difference == DifferenceEncoding.FIRST_DIFFERENCE:
        return np.cumsum(stored)
    # second differences: x0 and x1 are stored as they are
    steps = np.empty(stored.size - 1, dtype=np.int64)
    steps[0] = stored[1] - stored[0]
    steps[1:] = stored[2:]
    first = np.cumsum(steps)
    return np.concatenate(([stored[0]], stored[0] + np.cumsum(first)))
