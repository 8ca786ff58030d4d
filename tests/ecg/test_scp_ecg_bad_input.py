"""SCP-ECG bad input: every damaged or unsupported record gets a clear ``rekam.ecg`` error."""

from __future__ import annotations

import contextlib
import datetime
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rekam.ecg import (
    EcgError,
    Recording,
    RecordNotFoundError,
    ScpEcgChecksumError,
    ScpEcgDemographics,
    ScpEcgError,
    ScpEcgTruncatedError,
    ScpEcgUnsupportedError,
    parse_scp_ecg,
    read_recording,
    read_scp_ecg,
    scp_ecg_bytes,
)

from .scp_records import pointers, reseal, section, section_body

FS = 500.0


def _small_recording() -> Recording:
    t = np.arange(1000) / FS
    samples = np.column_stack([np.sin(2 * np.pi * 1.2 * t), 0.5 * np.cos(2 * np.pi * 2.0 * t)])
    return Recording(samples, FS, ("II", "V5"))


PATIENT = ScpEcgDemographics(
    "P-1", "Doe", "Jane", acquired_at=datetime.datetime(2024, 1, 2, 3, 4, 5)
)
GOOD = scp_ecg_bytes(_small_recording(), PATIENT)
GOOD_HUFFMAN = scp_ecg_bytes(
    _small_recording(), PATIENT, encoding="second-difference", huffman=True
)


def _replace_section_body(data: bytes, section_id: int, body: bytes) -> bytes:
    """Rewrite one section (same length) and reseal every CRC."""
    for sid, length, index in pointers(data):
        if sid == section_id:
            start = index - 1 + 16
            assert len(body) == length - 16
            return reseal(data[:start] + body + data[start + len(body) :])
    raise KeyError(section_id)


def test_good_records_read() -> None:
    assert parse_scp_ecg(GOOD).recording.n_samples == 1000
    assert parse_scp_ecg(GOOD_HUFFMAN).recording.n_samples == 1000


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_are_not_scp_ecg(seed: int) -> None:
    noise = np.random.default_rng(seed).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    with pytest.raises(ScpEcgError):
        parse_scp_ecg(noise)


def test_other_files_are_not_scp_ecg(tmp_path: Path) -> None:
    text = tmp_path / "notes.scp"
    text.write_text("time,II\n0,0.1\n" * 10)
    with pytest.raises(ScpEcgError, match="not an SCP-ECG record"):
        read_recording(text)
    with pytest.raises(RecordNotFoundError):
        read_scp_ecg(tmp_path / "missing.scp")
    with pytest.raises(ScpEcgTruncatedError, match="too short"):
        parse_scp_ecg(b"")


@pytest.mark.parametrize("data", [GOOD, GOOD_HUFFMAN], ids=["real", "huffman"])
def test_truncated_at_every_section_boundary(data: bytes) -> None:
    cuts = {6, 6 + 16}
    for _sid, length, index in pointers(data):
        if length:
            cuts |= {index - 1, index - 1 + 16, index - 1 + length - 1}
    cuts.discard(len(data))
    for cut in sorted(cuts):
        with pytest.raises(ScpEcgTruncatedError, match=r"truncated|too short"):
            parse_scp_ecg(data[:cut])


def test_truncated_section_with_a_patched_size_is_caught() -> None:
    # Drop section 6's last 100 bytes but fix the record size and CRC: the pointer still says
    # section 6 is longer than what is left.
    cut = GOOD[:-100]
    patched = cut[:2] + struct.pack("<I", len(cut)) + cut[6:]
    with pytest.raises(ScpEcgTruncatedError, match="outside the SCP-ECG record"):
        parse_scp_ecg(reseal_record_only(patched))


def reseal_record_only(data: bytes) -> bytes:
    from .scp_records import crc

    return struct.pack("<H", crc(data[2:])) + data[2:]


def test_flipped_record_crc() -> None:
    damaged = bytes([GOOD[0] ^ 0x01]) + GOOD[1:]
    with pytest.raises(ScpEcgChecksumError, match="damaged"):
        parse_scp_ecg(damaged)


@pytest.mark.parametrize("section_id", [0, 1, 3, 6])
def test_flipped_byte_in_a_section_fails_its_own_crc(section_id: int) -> None:
    index = next(i for sid, length, i in pointers(GOOD) if sid == section_id and length)
    position = index - 1 + 20
    damaged = bytearray(GOOD)
    damaged[position] ^= 0x40
    # the record CRC is made right again, so only the section's CRC can notice
    with pytest.raises(ScpEcgChecksumError, match=f"section {section_id}"):
        parse_scp_ecg(reseal_record_only(bytes(damaged)))


def _with_extra_section(section_id: int) -> bytes:
    extra = section(section_id, b"\x00" * 8)
    table = pointers(GOOD)
    count = len(table) + 1
    body = bytearray(GOOD[6:])
    # section 0 grows by one pointer: every index moves by 10 bytes
    moved = [(sid, length, index + 10 if index else 0) for sid, length, index in table]
    moved.append((section_id, len(extra), len(GOOD) + 10 + 1))
    moved[0] = (0, 16 + 10 * count, 7)
    pointer_bytes = b"".join(struct.pack("<HII", *p) for p in moved)
    section_0 = section(0, pointer_bytes)
    rest = bytes(body[table[0][1] :]) + extra
    data = b"\x00\x00" + struct.pack("<I", 6 + len(section_0) + len(rest)) + section_0 + rest
    return reseal(data)


def test_manufacturer_section_is_skipped() -> None:
    data = _with_extra_section(200)
    assert parse_scp_ecg(data).recording.n_samples == 1000


@pytest.mark.parametrize(
    ("section_id", "error", "message"),
    [
        (2000, ScpEcgError, "does not define"),
        (40, ScpEcgUnsupportedError, "does not define"),
    ],
)
def test_unknown_section(section_id: int, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_scp_ecg(_with_extra_section(section_id))


def test_section_that_is_not_where_the_pointer_says() -> None:
    data = bytearray(GOOD)
    index = next(i for sid, length, i in pointers(GOOD) if sid == 3 and length)
    data[index - 1 + 2 : index - 1 + 4] = struct.pack("<H", 5)  # section 3 claims to be 5
    with pytest.raises(ScpEcgError, match="section 5 is there"):
        parse_scp_ecg(reseal_record_only(bytes(data)))


def test_bimodal_compression_is_unsupported() -> None:
    body = bytearray(section_body(GOOD, 6))
    body[5] = 1
    with pytest.raises(ScpEcgUnsupportedError, match="bimodal"):
        parse_scp_ecg(_replace_section_body(GOOD, 6, bytes(body)))


def test_unknown_difference_encoding_is_unsupported() -> None:
    body = bytearray(section_body(GOOD, 6))
    body[4] = 7
    with pytest.raises(ScpEcgUnsupportedError, match="difference encoding 7"):
        parse_scp_ecg(_replace_section_body(GOOD, 6, bytes(body)))


def test_reference_beat_subtraction_is_unsupported() -> None:
    body = bytearray(section_body(GOOD, 3))
    body[1] |= 0x01
    with pytest.raises(ScpEcgUnsupportedError, match="reference beat"):
        parse_scp_ecg(_replace_section_body(GOOD, 3, bytes(body)))


def test_custom_huffman_tables_are_unsupported() -> None:
    body = bytearray(section_body(GOOD_HUFFMAN, 2))
    body[0:2] = struct.pack("<H", 1)
    with pytest.raises(ScpEcgUnsupportedError, match="own Huffman tables"):
        parse_scp_ecg(_replace_section_body(GOOD_HUFFMAN, 2, bytes(body)))


def test_lead_length_that_disagrees_with_the_sample_count() -> None:
    body = bytearray(section_body(GOOD, 3))
    body[2 + 4 : 2 + 8] = struct.pack("<I", 999)  # first lead ends at sample 999, not 1000
    with pytest.raises(ScpEcgUnsupportedError, match="different stretches"):
        parse_scp_ecg(_replace_section_body(GOOD, 3, bytes(body)))


def test_huffman_data_that_run_out() -> None:
    body = bytearray(section_body(GOOD_HUFFMAN, 3))
    for lead in range(2):
        body[2 + 9 * lead + 4 : 2 + 9 * lead + 8] = struct.pack("<I", 5000)
    with pytest.raises(ScpEcgError, match=r"end after|too few"):
        parse_scp_ecg(_replace_section_body(GOOD_HUFFMAN, 3, bytes(body)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_scp_errors(data: bytes) -> None:
    with contextlib.suppress(EcgError):
        parse_scp_ecg(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([GOOD, GOOD_HUFFMAN]),
    st.integers(min_value=0, max_value=len(GOOD) - 1),
    st.binary(min_size=1, max_size=8),
    st.booleans(),
    st.integers(min_value=0, max_value=len(GOOD_HUFFMAN)),
)
def test_damaged_records_raise_only_ecg_errors(
    base: bytes, position: int, junk: bytes, fix_crcs: bool, cut: int
) -> None:
    """Overwrite bytes (optionally resealing every CRC so the parser goes deeper), then cut."""
    position %= len(base)
    damaged = base[:position] + junk + base[position + len(junk) :]
    damaged = damaged[: len(base)]
    if fix_crcs:
        # when the pointer table itself is too damaged to reseal, test it as it is
        with contextlib.suppress(struct.error, IndexError):
            damaged = reseal(damaged)
    for candidate in (damaged, damaged[:cut]):
        with contextlib.suppress(EcgError):
            parse_scp_ecg(candidate)
