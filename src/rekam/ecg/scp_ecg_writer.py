"""Writing a :class:`~rekam.ecg.Recording` as an SCP-ECG record (EN 1064 / ISO 11073-91064).

The record holds section 0 (pointers to sections 0–11), section 1 (patient, acquisition and
device tags), section 2 only when the rhythm data are Huffman-coded (the default table), section 3
(lead definitions: all leads simultaneous, no reference beat subtraction) and section 6 (rhythm
data, 16-bit values in steps of ``amplitude_step_nv``). Sections 4 and 5 are absent: there is no
reference beat. See docs/scp-ecg.md for what is covered.

    >>> from rekam.ecg import ScpEcgDemographics, write_scp_ecg
    >>> write_scp_ecg(recording, ScpEcgDemographics("P-1"), "ecg.scp")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rekam.ecg.errors import InvalidParameterError, SignalValueError
from rekam.ecg.recording import Recording
from rekam.ecg.scp_ecg_demographics import ScpEcgDemographics, ScpEncoding
from rekam.ecg.scp_ecg_format import (
    CAPABILITIES_STORE_ACQUIRE,
    COMPATIBILITY_CATEGORY_IV,
    DEFAULT_HUFFMAN_TABLE,
    DEVICE_TYPE_CART,
    FLAG_ALL_SIMULTANEOUS,
    LANGUAGE_ASCII,
    LANGUAGE_LATIN_1,
    MANUFACTURER_OTHER,
    MAX_SIMULTANEOUS_IN_FLAGS,
    PROTOCOL_VERSION,
    RECORD_HEADER_LENGTH,
    REQUIRED_POINTERS,
    SCPECG_MARKER,
    SECTION_HEADER_LENGTH,
    SIMULTANEOUS_SHIFT,
    DifferenceEncoding,
    Section,
    Sex,
    Tag,
    crc_ccitt,
    lead_code_for_name,
)
from rekam.ecg.scp_ecg_huffman import encode_default_huffman

__all__ = ["AMPLITUDE_STEPS_NV", "scp_ecg_bytes", "write_scp_ecg"]

#: Amplitude steps (nV) tried, finest first, when none is given: the finest that holds the
#: recording in 16 bits is used.
AMPLITUDE_STEPS_NV = (500, 1000, 1250, 2000, 2500, 5000, 10000, 12500, 20000, 25000, 50000)

_INT16 = 32767
_MAX_LEAD_BYTES = 0xFFFF
_ENCODINGS: dict[str, DifferenceEncoding] = {
    "real": DifferenceEncoding.REAL,
    "first-difference": DifferenceEncoding.FIRST_DIFFERENCE,
    "second-difference": DifferenceEncoding.SECOND_DIFFERENCE,
}
_SEX = {"M": Sex.MALE, "F": Sex.FEMALE, "O": Sex.UNSPECIFIED, None: Sex.NOT_KNOWN}


def write_scp_ecg(
    recording: Recording,
    demographics: ScpEcgDemographics,
    path: str | Path,
    *,
    amplitude_step_nv: int | None = None,
    encoding: ScpEncoding = "real",
    huffman: bool = False,
) -> int:
    """Write ``recording`` as an SCP-ECG file at ``path``; return the number of bytes written."""
    data = scp_ecg_bytes(
        recording,
        demographics,
        amplitude_step_nv=amplitude_step_nv,
        encoding=encoding,
        huffman=huffman,
    )
    Path(path).write_bytes(data)
    return len(data)


def scp_ecg_bytes(
    recording: Recording,
    demographics: ScpEcgDemographics,
    *,
    amplitude_step_nv: int | None = None,
    encoding: ScpEncoding = "real",
    huffman: bool = False,
) -> bytes:
    """The SCP-ECG record of ``recording`` as bytes.

    ``amplitude_step_nv`` is the value of one stored step (section 6 AVM); by default the finest
    of :data:`AMPLITUDE_STEPS_NV` that holds every lead in 16 bits. ``encoding`` stores the
    samples themselves (``real``) or their first or second differences; ``huffman`` codes them
    with the standard's default Huffman table (and writes section 2).
    """
    if encoding not in _ENCODINGS:
        raise InvalidParameterError(
            f"Unknown SCP-ECG encoding {encoding!r}; use real, first-difference or "
            "second-difference."
        )
    demographics.check_writable()
    step = _amplitude_step(recording, amplitude_step_nv)
    interval = _sample_interval_us(recording.fs)
    values = np.rint(recording.samples * 1e6 / step).astype(np.int64)
    language = _language(demographics)

    sections: dict[int, bytes] = {Section.HEADER: _section_1(demographics, language)}
    if huffman:
        sections[Section.HUFFMAN_TABLES] = struct.pack("<H", DEFAULT_HUFFMAN_TABLE)
    sections[Section.LEAD_DEFINITION] = _section_3(recording)
    sections[Section.RHYTHM_DATA] = _section_6(
        values, recording.lead_names, step, interval, _ENCODINGS[encoding], huffman
    )
    return _assemble(sections)


def _amplitude_step(recording: Recording, wanted: int | None) -> int:
    peak_nv = float(np.max(np.abs(recording.samples))) * 1e6
    if wanted is not None:
        if not 1 <= wanted <= 0xFFFF:
            raise InvalidParameterError(
                "The SCP-ECG amplitude step must be between 1 and 65535 nV."
            )
        if peak_nv / wanted > _INT16:
            raise SignalValueError(
                f"The recording reaches {peak_nv / 1e6:.2f} mV, more than 16-bit values of "
                f"{wanted} nV can hold; choose a coarser amplitude step."
            )
        return int(wanted)
    for step in AMPLITUDE_STEPS_NV:
        if peak_nv / step <= _INT16:
            return step
    raise SignalValueError(
        f"The recording reaches {peak_nv / 1e6:.0f} mV: that is not an ECG signal."
    )


def _sample_interval_us(fs: float) -> int:
    interval = round(1e6 / fs)
    if not 1 <= interval <= 0xFFFF or abs(1e6 / interval - fs) > 0.001 * fs:
        raise InvalidParameterError(
            f"A sampling rate of {fs:g} Hz cannot be written as a whole number of microseconds "
            "between samples."
        )
    return int(interval)


def _language(demographics: ScpEcgDemographics) -> int:
    texts = [
        demographics.patient_id,
        demographics.last_name,
        demographics.first_name,
        demographics.institution,
        demographics.department,
        demographics.referring_physician,
        demographics.device_model,
        demographics.device_serial_number,
        demographics.device_software,
        demographics.manufacturer,
    ]
    if all(text.isascii() for text in texts):
        return LANGUAGE_ASCII
    try:
        for text in texts:
            text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise InvalidParameterError(
            "SCP-ECG text is written in ISO 8859-1 (Latin-1); "
            f"{exc.object[exc.start : exc.end]!r} has no place in it."
        ) from exc
    return LANGUAGE_LATIN_1


def _text(value: str) -> bytes:
    return value.encode("latin-1") + b"\x00"


def _tag(tag: Tag, value: bytes) -> bytes:
    return struct.pack("<BH", int(tag), len(value)) + value


def _date(day: datetime.date) -> bytes:
    return struct.pack("<HBB", day.year, day.month, day.day)


def _section_1(d: ScpEcgDemographics, language: int) -> bytes:
    acquired = d.acquired_at or datetime.datetime.now().replace(microsecond=0)
    parts = []
    if d.last_name:
        parts.append(_tag(Tag.LAST_NAME, _text(d.last_name)))
    if d.first_name:
        parts.append(_tag(Tag.FIRST_NAME, _text(d.first_name)))
    parts.append(_tag(Tag.PATIENT_ID, _text(d.patient_id)))
    if d.birth_date is not None:
        parts.append(_tag(Tag.DATE_OF_BIRTH, _date(d.birth_date)))
    parts.append(_tag(Tag.SEX, bytes([_SEX[d.sex]])))
    parts.append(_tag(Tag.ACQUIRING_DEVICE, _device(d, language)))
    if d.institution:
        parts.append(_tag(Tag.ACQUIRING_INSTITUTION, _text(d.institution)))
    if d.department:
        parts.append(_tag(Tag.ACQUIRING_DEPARTMENT, _text(d.department)))
    if d.referring_physician:
        parts.append(_tag(Tag.REFERRING_PHYSICIAN, _text(d.referring_physician)))
    parts.append(_tag(Tag.DATE_OF_ACQUISITION, _date(acquired.date())))
    parts.append(
        _tag(Tag.TIME_OF_ACQUISITION, bytes([acquired.hour, acquired.minute, acquired.second]))
    )
    offset = acquired.utcoffset()
    if offset is not None:
        minutes = int(offset.total_seconds() // 60)
        parts.append(_tag(Tag.DATE_TIME_ZONE, struct.pack("<hH", minutes, 0) + b"\x00"))
    parts.append(_tag(Tag.TERMINATOR, b""))
    return b"".join(parts)


def _device(d: ScpEcgDemographics, language: int) -> bytes:
    """Tag 14: the acquiring device (fixed part of 35 bytes, then its strings)."""
    model = d.device_model.encode("latin-1", "replace")[:5].ljust(6, b"\x00")
    fixed = (
        struct.pack(
            "<HHHBB",
            d.institution_number,
            d.department_number,
            d.device_id,
            DEVICE_TYPE_CART,
            MANUFACTURER_OTHER,
        )
        + model
        + bytes(
            [
                PROTOCOL_VERSION,
                COMPATIBILITY_CATEGORY_IV,
                language,
                CAPABILITIES_STORE_ACQUIRE,
                0,  # mains frequency not specified
            ]
        )
        + bytes(16)  # reserved
    )
    program_revision = b"\x00"
    return (
        fixed
        + bytes([len(program_revision)])
        + program_revision
        + _text(d.device_serial_number)
        + _text(d.device_software)
        + _text("Rekam")  # SCP implementation software
        + _text(d.manufacturer)
    )


def _section_3(recording: Recording) -> bytes:
    n_leads = recording.n_leads
    if n_leads > 255:
        raise InvalidParameterError("An SCP-ECG record holds at most 255 leads.")
    simultaneous = min(n_leads, MAX_SIMULTANEOUS_IN_FLAGS)
    flags = FLAG_ALL_SIMULTANEOUS | (simultaneous << SIMULTANEOUS_SHIFT)
    parts = [bytes([n_leads, flags])]
    for name in recording.lead_names:
        parts.append(struct.pack("<IIB", 1, recording.n_samples, lead_code_for_name(name)))
    return b"".join(parts)


def _differences(
    values: npt.NDArray[np.int64], encoding: DifferenceEncoding
) -> npt.NDArray[np.int64]:
    if encoding is DifferenceEncoding.REAL:
        return values
    out = values.copy()
    if encoding is DifferenceEncoding.FIRST_DIFFERENCE:
        out[1:] = values[1:] - values[:-1]  # the first value as it is
    else:
        out[2:] = values[2:] - 2 * values[1:-1] + values[:-2]  # the first two as they are
    return out


def _section_6(
    values: npt.NDArray[np.int64],
    lead_names: tuple[str, ...],
    step_nv: int,
    interval_us: int,
    encoding: DifferenceEncoding,
    huffman: bool,
) -> bytes:
    encoded: list[bytes] = []
    for column, name in enumerate(lead_names):
        stored = _differences(values[:, column], encoding)
        if np.any(stored > _INT16) or np.any(stored < -_INT16 - 1):
            raise SignalValueError(
                f"Lead {name} changes too fast for 16-bit {encoding.name.lower()} values at "
                f"{step_nv} nV per step; store it as real values or with a coarser step."
            )
        data = (
            encode_default_huffman(stored.tolist()) if huffman else stored.astype("<i2").tobytes()
        )
        if len(data) > _MAX_LEAD_BYTES:
            raise SignalValueError(
                f"Lead {name} needs {len(data)} bytes; an SCP-ECG lead holds at most "
                f"{_MAX_LEAD_BYTES} (about {_MAX_LEAD_BYTES // 2} uncompressed samples). Store a "
                "shorter stretch, or use Huffman coding with second differences or a coarser "
                "amplitude step."
            )
        encoded.append(data)
    head = struct.pack("<HHBB", step_nv, interval_us, int(encoding), 0)  # 0: no bimodal
    lengths = b"".join(struct.pack("<H", len(data)) for data in encoded)
    return head + lengths + b"".join(encoded)


def _section(section_id: int, body: bytes) -> bytes:
    if len(body) % 2:
        body += b"\x00"  # sections have an even length
    reserved = SCPECG_MARKER if section_id == Section.POINTERS else bytes(6)
    rest = (
        struct.pack(
            "<HIBB",
            section_id,
            SECTION_HEADER_LENGTH + len(body),
            PROTOCOL_VERSION,
            PROTOCOL_VERSION,
        )
        + reserved
        + body
    )
    return struct.pack("<H", crc_ccitt(rest)) + rest


def _assemble(bodies: dict[int, bytes]) -> bytes:
    built = {section_id: _section(section_id, body) for section_id, body in bodies.items()}
    pointer_count = max(REQUIRED_POINTERS, max(built) + 1)
    section_0_length = SECTION_HEADER_LENGTH + 10 * pointer_count
    # 1-based byte positions: section 0 starts right after the record's CRC and size.
    position = RECORD_HEADER_LENGTH + section_0_length + 1
    pointers = [struct.pack("<HII", 0, section_0_length, RECORD_HEADER_LENGTH + 1)]
    for section_id in range(1, pointer_count):
        section = built.get(section_id)
        if section is None:
            pointers.append(struct.pack("<HII", section_id, 0, 0))
            continue
        pointers.append(struct.pack("<HII", section_id, len(section), position))
        position += len(section)
    section_0 = _section(Section.POINTERS, b"".join(pointers))
    body = section_0 + b"".join(built[k] for k in sorted(built))
    size = RECORD_HEADER_LENGTH + len(body)
    if size > 0xFFFFFFFF:
        raise SignalValueError("The recording is too large for one SCP-ECG record.")
    rest = struct.pack("<I", size) + body
    return struct.pack("<H", crc_ccitt(rest)) + rest
