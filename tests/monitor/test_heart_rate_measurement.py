"""Vectors written by hand from the Heart Rate Service specification (characteristic 0x2A37)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rekam.monitor import (
    HeartRateMeasurement,
    MalformedPacket,
    MonitorError,
    SensorContact,
    parse_heart_rate_measurement,
)


def test_uint8_heart_rate_without_rr_intervals() -> None:
    # flags 0x06: u8 format, sensor contact supported and detected; 72 bpm.
    assert parse_heart_rate_measurement(bytes([0x06, 72])) == HeartRateMeasurement(
        heart_rate_bpm=72,
        sensor_contact=SensorContact.DETECTED,
        energy_expended_kj=None,
        rr_intervals_ms=(),
    )


def test_uint16_heart_rate_with_energy_and_two_rr_intervals() -> None:
    # flags 0x19: u16 format (bit 0), energy present (bit 3), RR present (bit 4), no contact bits.
    # HR 0x0136 = 310 bpm (u16 little-endian 36 01), energy 0x0102 = 258 kJ,
    # RR 0x0400 = 1024/1024 s = 1000 ms, RR 0x0300 = 768/1024 s = 750 ms.
    payload = bytes.fromhex("193601020100040003")
    measurement = parse_heart_rate_measurement(payload)
    assert measurement.heart_rate_bpm == 310
    assert measurement.sensor_contact is SensorContact.NOT_SUPPORTED
    assert measurement.energy_expended_kj == 258
    assert measurement.rr_intervals_ms == (1000.0, 750.0)


def test_rr_intervals_are_converted_from_1024ths_of_a_second() -> None:
    # flags 0x10: u8 HR 60, one RR of 0x0333 = 819/1024 s = 799.8046875 ms.
    measurement = parse_heart_rate_measurement(bytes([0x10, 60, 0x33, 0x03]))
    assert measurement.rr_intervals_ms == pytest.approx((799.8046875,))


@pytest.mark.parametrize(
    ("flags", "contact"),
    [
        (0x00, SensorContact.NOT_SUPPORTED),
        (0x02, SensorContact.NOT_SUPPORTED),
        (0x04, SensorContact.NOT_DETECTED),
        (0x06, SensorContact.DETECTED),
    ],
)
def test_sensor_contact_bits(flags: int, contact: SensorContact) -> None:
    assert parse_heart_rate_measurement(bytes([flags, 80])).sensor_contact is contact


def test_reserved_flag_bits_are_ignored() -> None:
    assert parse_heart_rate_measurement(bytes([0xE0, 65])).heart_rate_bpm == 65


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (bytes([0x00]), "8-bit heart rate"),
        (bytes([0x01, 0x36]), "16-bit heart rate"),
        (bytes([0x08, 72, 0x02]), "energy expended"),
        (bytes([0x19, 0x36, 0x01, 0x02, 0x01, 0x00, 0x04, 0x00]), "2 bytes each"),
        (bytes([0x10, 72]), "has none"),
        (bytes([0x10, 72, 0x00]), "2 bytes each"),
        (bytes([0x00, 72, 0x00]), "unexpected"),
    ],
)
def test_truncated_or_inconsistent_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason):
        parse_heart_rate_measurement(payload)


@given(st.binary(max_size=40))
def test_any_bytes_parse_or_raise_a_monitor_error(payload: bytes) -> None:
    try:
        measurement = parse_heart_rate_measurement(payload)
    except MonitorError:
        return
    assert 0 <= measurement.heart_rate_bpm <= 0xFFFF
    assert all(0 <= rr < 64_000 for rr in measurement.rr_intervals_ms)
