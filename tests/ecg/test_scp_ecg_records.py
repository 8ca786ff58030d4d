"""SCP-ECG: round trip on the real PTB 12-lead record, byte layout against the standard, and a
record built by hand (second differences, default Huffman table) read by Rekam."""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

import numpy as np
import pytest

from rekam.ecg import (
    InvalidParameterError,
    Recording,
    ScpEcgDemographics,
    SignalValueError,
    parse_scp_ecg,
    read_recording,
    read_scp_ecg,
    scp_ecg_bytes,
    write_scp_ecg,
)

from .conftest import DATA_DIR
from .scp_records import crc, pointers, record, section_body, tags

PTB = DATA_DIR / "ptbdb/s0010_re"
# The standard's lead table (section 3), written out again for the PTB lead names.
LEAD_TABLE = {
    "i": 1, "ii": 2, "iii": 61, "avr": 62, "avl": 63, "avf": 64, "v1": 3, "v2": 4, "v3": 5,
    "v4": 6, "v5": 7, "v6": 8, "vx": 16, "vy": 17, "vz": 18,
}  # fmt: skip
PATIENT = ScpEcgDemographics(
    patient_id="PTB-0010",
    last_name="Muster",
    first_name="Hans",
    birth_date=datetime.date(1951, 3, 4),
    sex="M",
    acquired_at=datetime.datetime(2024, 5, 6, 7, 8, 9),
    institution="Klinik Rekam",
    department="Kardiologi",
    referring_physician="Dr Greta",
    institution_number=12,
    department_number=3,
    device_id=4242,
    device_model="RK-1",
    device_serial_number="SN-0001",
    device_software="Rekam 1",
    manufacturer="Rekam",
)


@pytest.fixture(scope="module")
def ptb() -> Recording:
    if not PTB.with_suffix(".hea").is_file():
        pytest.skip(f"PTB record not found at {PTB}")
    return read_recording(PTB)


@pytest.fixture(scope="module")
def ptb_10s(ptb: Recording) -> Recording:
    return Recording(ptb.samples[:10000], ptb.fs, ptb.lead_names, None, "s0010_re")


@pytest.mark.parametrize(
    ("encoding", "huffman"),
    [
        ("real", False),
        ("first-difference", False),
        ("second-difference", False),
        ("second-difference", True),
        ("first-difference", True),
    ],
)
def test_ptb_round_trip_is_exact(
    ptb_10s: Recording, tmp_path: Path, encoding: str, huffman: bool
) -> None:
    path = tmp_path / "ptb.scp"
    write_scp_ecg(ptb_10s, PATIENT, path, encoding=encoding, huffman=huffman)  # type: ignore[arg-type]
    back = read_scp_ecg(path)
    # PTB stores 2000 ADC units per mV: 500 nV steps hold every sample exactly.
    assert back.amplitude_step_nv == 500
    adc_original = np.rint(ptb_10s.samples * 2000).astype(np.int64)
    np.testing.assert_array_equal(np.rint(back.recording.samples * 2000), adc_original)
    assert np.max(np.abs(back.recording.samples - ptb_10s.samples)) <= 0.5 * 500e-6
    assert back.recording.fs == 1000.0
    assert back.recording.lead_names == (
        "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6", "X", "Y", "Z",
    )  # fmt: skip
    assert back.demographics == PATIENT
    assert back.encoding == encoding and back.huffman is huffman
    assert back.protocol_version == 20
    # and read_recording picks SCP-ECG by extension and by content
    assert read_recording(path).n_samples == 10000
    renamed = tmp_path / "no-extension"
    renamed.write_bytes(path.read_bytes())
    assert read_recording(renamed).lead_names == back.recording.lead_names


def test_coarser_step_rounds_to_the_nearest_step(ptb_10s: Recording) -> None:
    back = parse_scp_ecg(scp_ecg_bytes(ptb_10s, PATIENT, amplitude_step_nv=5000))
    error = np.abs(back.recording.samples - ptb_10s.samples)
    assert back.amplitude_step_nv == 5000
    assert np.max(error) <= 2.5e-3 + 1e-12
    assert np.max(error) > 0  # the 0.5 µV detail is really gone at 5 µV steps


def test_time_zone_and_latin_1_names_round_trip(ptb_10s: Recording) -> None:
    wib = datetime.timezone(datetime.timedelta(hours=7))
    patient = ScpEcgDemographics(
        "RM-77",
        "Sütterlin",
        "José",
        sex="F",
        acquired_at=datetime.datetime(2023, 1, 2, 3, 4, 5, tzinfo=wib),
    )
    data = scp_ecg_bytes(ptb_10s, patient)
    back = parse_scp_ecg(data).demographics
    assert back == patient
    assert back.acquired_at is not None and back.acquired_at.utcoffset() == datetime.timedelta(
        hours=7
    )
    section_1 = tags(section_body(data, 1))
    assert section_1[0] == "Sütterlin".encode("latin-1") + b"\x00"
    assert section_1[34][:2] == struct.pack("<h", 7 * 60)
    assert section_1[14][16] == 0x01  # language support code: ISO 8859-1


def test_every_crc_matches_an_independent_crc_ccitt(ptb_10s: Recording) -> None:
    data = scp_ecg_bytes(ptb_10s, PATIENT, encoding="second-difference", huffman=True)
    assert struct.unpack_from("<H", data, 0)[0] == crc(data[2:])
    present = [(sid, length, index) for sid, length, index in pointers(data) if length]
    assert [sid for sid, _, _ in present] == [0, 1, 2, 3, 6]
    for _sid, length, index in present:
        start = index - 1
        assert struct.unpack_from("<H", data, start)[0] == crc(data[start + 2 : start + length])


def test_byte_layout_follows_the_standard(ptb_10s: Recording) -> None:
    data = scp_ecg_bytes(ptb_10s, PATIENT)
    n, leads = 10000, 15
    # record: CRC (2), size (4)
    assert struct.unpack_from("<I", data, 2)[0] == len(data)
    # section 0's ID header at byte 7 (1-based): ID 0, length 16 + 12 pointers × 10 bytes
    assert struct.unpack_from("<HIBB6s", data, 8) == (0, 136, 20, 20, b"SCPECG")
    table = pointers(data)
    assert [p[0] for p in table] == list(range(12))
    section_1_at = 7 + 136
    assert table[0] == (0, 136, 7)
    assert table[1][2] == section_1_at
    section_3_at = section_1_at + table[1][1]
    assert table[2] == (2, 0, 0)  # no Huffman table: uncompressed
    assert table[3][2] == section_3_at
    assert table[4] == (4, 0, 0) and table[5] == (5, 0, 0)  # no reference beat
    section_6_at = section_3_at + table[3][1]
    assert table[6] == (6, 16 + 6 + 2 * leads + 2 * n * leads, section_6_at)
    assert all(p[1:] == (0, 0) for p in table[7:])
    assert section_6_at - 1 + table[6][1] == len(data)
    for sid, length, index in table:
        if length:
            header = struct.unpack_from("<HIBB", data, index - 1 + 2)
            assert header == (sid, length, 20, 20)

    # section 1: tags
    section_1 = tags(section_body(data, 1))
    assert section_1[2] == b"PTB-0010\x00"
    assert section_1[0] == b"Muster\x00" and section_1[1] == b"Hans\x00"
    assert section_1[5] == bytes([1951 & 0xFF, 1951 >> 8, 3, 4])
    assert section_1[8] == b"\x01"
    assert section_1[25] == bytes([2024 & 0xFF, 2024 >> 8, 5, 6])
    assert section_1[26] == bytes([7, 8, 9])
    assert section_1[16] == b"Klinik Rekam\x00"
    device = section_1[14]
    assert struct.unpack_from("<HHHBB6s", device) == (12, 3, 4242, 0, 255, b"RK-1\x00\x00")
    assert device[14] == 20  # protocol revision 2.0
    assert device[35:38] == b"\x01\x00S"  # empty program revision string, then the serial
    assert b"SN-0001\x00Rekam 1\x00" in device

    # section 3: lead count, flags (all simultaneous, 15 of them, no reference beat), leads
    section_3 = section_body(data, 3)
    assert section_3[0] == leads
    assert section_3[1] == 0b0111_1100
    for number, name in enumerate(ptb_10s.lead_names):
        assert struct.unpack_from("<IIB", section_3, 2 + 9 * number) == (1, n, LEAD_TABLE[name])

    # section 6: AVM 500 nV, 1000 µs, real values, no bimodal compression, 2 bytes per sample
    section_6 = section_body(data, 6)
    assert struct.unpack_from("<HHBB", section_6) == (500, 1000, 0, 0)
    assert struct.unpack_from(f"<{leads}H", section_6, 6) == (2 * n,) * leads
    first_lead = np.frombuffer(section_6, "<i2", count=n, offset=6 + 2 * leads)
    np.testing.assert_array_equal(first_lead, np.rint(ptb_10s.samples[:, 0] * 2000))


def _bits(*codes: str) -> bytes:
    bits = "".join(codes)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def test_reads_a_hand_built_huffman_second_difference_record() -> None:
    # lead I:  x = 10 12 15 17 17 16 → stored 10 12 1 -1 -2 -1
    lead_1 = _bits(
        "1111111110" "00001010", "1111111110" "00001100", "100", "101", "1101", "101"
    )  # fmt: skip
    # lead II: x = 300 -5 0 0 0 0 → stored 300 -5 310 -5 0 0
    lead_2 = _bits(
        "1111111111" "0000000100101100", "1111101", "1111111111" "0000000100110110",
        "1111101", "0", "0",
    )  # fmt: skip
    header = (
        b"\x00" + struct.pack("<H", 4) + b"Doe\x00"
        + b"\x02" + struct.pack("<H", 7) + b"HAND-1\x00"
        + b"\x08" + struct.pack("<H", 1) + b"\x02"
        + b"\x19" + struct.pack("<H", 4) + struct.pack("<HBB", 2019, 12, 31)
        + b"\x1a" + struct.pack("<H", 3) + bytes([23, 59, 58])
        + b"\xff\x00\x00"
    )  # fmt: skip
    leads = bytes([2, 0x04 | (2 << 3)]) + struct.pack("<IIBIIB", 1, 6, 1, 1, 6, 2)
    rhythm = (
        struct.pack("<HHBB", 2500, 2000, 2, 0)
        + struct.pack("<HH", len(lead_1), len(lead_2))
        + lead_1
        + lead_2
    )
    data = record({1: header, 2: struct.pack("<H", 19999), 3: leads, 6: rhythm})
    back = parse_scp_ecg(data)
    assert back.huffman and back.encoding == "second-difference"
    assert back.recording.fs == 500.0
    assert back.recording.lead_names == ("I", "II")
    expected = np.array([[10, 300], [12, -5], [15, 0], [17, 0], [17, 0], [16, 0]]) * 2.5e-3
    np.testing.assert_allclose(back.recording.samples, expected, rtol=0, atol=1e-12)
    d = back.demographics
    assert (d.patient_id, d.last_name, d.sex) == ("HAND-1", "Doe", "F")
    assert d.acquired_at == datetime.datetime(2019, 12, 31, 23, 59, 58)


def test_writer_refuses_what_scp_ecg_cannot_hold(ptb: Recording, ptb_10s: Recording) -> None:
    with pytest.raises(SignalValueError, match="at most 65535"):
        scp_ecg_bytes(ptb, PATIENT)  # 38 400 samples × 2 bytes per lead
    with pytest.raises(InvalidParameterError, match="patient ID"):
        scp_ecg_bytes(ptb_10s, ScpEcgDemographics(" "))
    with pytest.raises(InvalidParameterError, match="Latin-1"):
        scp_ecg_bytes(ptb_10s, ScpEcgDemographics("P-1", "王"))
    with pytest.raises(SignalValueError, match="coarser"):
        scp_ecg_bytes(ptb_10s, PATIENT, amplitude_step_nv=10)
