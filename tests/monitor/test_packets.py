from uuid import UUID, uuid4

import numpy as np
import numpy.typing as npt
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from rekam.monitor import (
    DeviceKey,
    DevicePairing,
    GatewayPairing,
    MalformedPacket,
    MonitorError,
    PacketAuthenticationFailed,
    UnknownDevice,
    decode_packet,
    encode_packet,
)

DEVICE_ID = UUID("5b0e4a8c-3f7d-4a36-9a51-0c6f1f2d9e11")
NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
KEY = DevicePairing(DEVICE_ID, X25519PrivateKey.from_private_bytes(bytes(range(32)))).derive(
    GatewayPairing(X25519PrivateKey.from_private_bytes(bytes(range(32, 64)))).public_bytes()
)
LOOKUP = {DEVICE_ID: KEY}.get
SAMPLES = np.array([0, 512, -512, 1200], dtype=np.int16)

# The worked example of docs/device-protocol.md.
WORKED_EXAMPLE = bytes.fromhex(
    "524b4431"
    "5b0e4a8c3f7d4a369a510c6f1f2d9e11"
    "00000001"
    "0000019b76daa800"
    "00fa"
    "0004"
    "470ebf37e153d2bc"
    "ee71b49322fee2413df82d5239829416"
)


def any_key(_: UUID) -> DeviceKey:
    """A lookup that gives the key for any id: then the header alone must make packets fail."""
    return KEY


def valid_packet(sequence: int = 1, samples: npt.NDArray[np.int16] | None = None) -> bytes:
    return encode_packet(
        KEY, DEVICE_ID, sequence, NOW_MS, 250, SAMPLES if samples is None else samples
    )


def test_round_trip() -> None:
    samples = np.array([-32768, -1, 0, 1, 32767] * 20, dtype=np.int16)
    packet = decode_packet(valid_packet(7, samples), LOOKUP, now_ms=NOW_MS)
    assert packet.device_id == DEVICE_ID
    assert packet.sequence == 7
    assert packet.timestamp_ms == NOW_MS
    assert packet.rate == 250
    assert packet.samples.dtype == np.int16
    np.testing.assert_array_equal(packet.samples, samples)


def test_packets_of_one_device_name_it_with_one_object_and_others_their_own() -> None:
    first = decode_packet(valid_packet(1), LOOKUP, now_ms=NOW_MS)
    second = decode_packet(valid_packet(2), LOOKUP, now_ms=NOW_MS)
    assert first.device_id == DEVICE_ID
    assert second.device_id is first.device_id  # dictionaries keyed by device find it at once
    other_id = uuid4()
    other_key = DevicePairing(other_id, X25519PrivateKey.generate()).derive(
        GatewayPairing(X25519PrivateKey.generate()).public_bytes()
    )
    other = encode_packet(other_key, other_id, 1, NOW_MS, 250, SAMPLES)
    assert decode_packet(other, {other_id: other_key}.get, now_ms=NOW_MS).device_id == other_id


def test_worked_example_of_the_documentation() -> None:
    assert valid_packet(1) == WORKED_EXAMPLE
    assert KEY.export_for_storage().hex() == (
        "281cba563f6cd9eda6f59074bb8a2181397696ddd52992768564bdb8b0633a0b"
    )
    assert KEY.confirmation_code == "856495"
    packet = decode_packet(WORKED_EXAMPLE, LOOKUP, now_ms=NOW_MS)
    np.testing.assert_array_equal(packet.samples, SAMPLES)


def test_layout_is_as_documented() -> None:
    raw = valid_packet(0x01020304)
    assert raw[:4] == b"RKD1"
    assert raw[4:20] == DEVICE_ID.bytes
    assert raw[20:24] == bytes([1, 2, 3, 4])
    assert int.from_bytes(raw[24:32], "big") == NOW_MS
    assert int.from_bytes(raw[32:34], "big") == 250
    assert int.from_bytes(raw[34:36], "big") == len(SAMPLES)
    assert len(raw) == 36 + 2 * len(SAMPLES) + 16
    # Ciphertext, not the samples in clear.
    assert SAMPLES.astype(">i2").tobytes() not in raw


def test_every_single_byte_flip_is_rejected() -> None:
    raw = valid_packet()
    for position in range(len(raw)):
        for flip in (0x01, 0x80, 0xFF):
            tampered = bytearray(raw)
            tampered[position] ^= flip
            with pytest.raises((PacketAuthenticationFailed, MalformedPacket)):
                decode_packet(bytes(tampered), any_key, now_ms=NOW_MS)


def test_flipping_the_device_id_with_a_real_registry_names_an_unknown_device() -> None:
    tampered = bytearray(valid_packet())
    tampered[10] ^= 0x01
    with pytest.raises(UnknownDevice, match="pair it first"):
        decode_packet(bytes(tampered), LOOKUP, now_ms=NOW_MS)


def test_every_truncation_and_extension_is_malformed() -> None:
    raw = valid_packet()
    for length in range(len(raw)):
        with pytest.raises(MalformedPacket):
            decode_packet(raw[:length], LOOKUP, now_ms=NOW_MS)
    with pytest.raises(MalformedPacket, match="announces 4 samples"):
        decode_packet(raw + b"\x00", LOOKUP, now_ms=NOW_MS)


def test_wrong_key_fails_authentication() -> None:
    other = GatewayPairing.new().derive(DevicePairing.new(DEVICE_ID).public_bytes(), DEVICE_ID)
    with pytest.raises(PacketAuthenticationFailed, match="failed authentication"):
        decode_packet(valid_packet(), {DEVICE_ID: other}.get, now_ms=NOW_MS)


def test_unknown_device() -> None:
    with pytest.raises(UnknownDevice) as caught:
        decode_packet(valid_packet(), {uuid4(): KEY}.get, now_ms=NOW_MS)
    assert caught.value.device_id == DEVICE_ID


def test_wrong_magic() -> None:
    raw = b"RKD2" + valid_packet()[4:]
    with pytest.raises(MalformedPacket, match="magic"):
        decode_packet(raw, LOOKUP, now_ms=NOW_MS)


@pytest.mark.parametrize(("rate", "count"), [(49, 4), (1001, 4), (0, 4), (250, 0), (250, 501)])
def test_limits_are_checked_on_the_header(rate: int, count: int) -> None:
    raw = bytearray(valid_packet())
    raw[32:34] = rate.to_bytes(2, "big")
    raw[34:36] = count.to_bytes(2, "big")
    with pytest.raises(MalformedPacket, match="outside"):
        decode_packet(bytes(raw), LOOKUP, now_ms=NOW_MS)


@pytest.mark.parametrize(("rate", "count"), [(49, 4), (1001, 4), (250, 0), (250, 501)])
def test_limits_are_checked_when_encoding(rate: int, count: int) -> None:
    with pytest.raises(MalformedPacket):
        encode_packet(KEY, DEVICE_ID, 1, NOW_MS, rate, np.zeros(count, dtype=np.int16))


def test_limits_at_the_edges_are_accepted() -> None:
    for rate, count in [(50, 1), (1000, 500)]:
        raw = encode_packet(KEY, DEVICE_ID, 1, NOW_MS, rate, np.ones(count, dtype=np.int16))
        assert decode_packet(raw, LOOKUP, now_ms=NOW_MS).rate == rate


def test_timestamp_far_from_the_gateway_clock_is_rejected() -> None:
    day = 24 * 3600 * 1000
    raw = valid_packet()
    assert decode_packet(raw, LOOKUP, now_ms=NOW_MS + day).sequence == 1
    assert decode_packet(raw, LOOKUP, now_ms=NOW_MS - day).sequence == 1
    with pytest.raises(MalformedPacket, match="gateway clock"):
        decode_packet(raw, LOOKUP, now_ms=NOW_MS + day + 1)
    with pytest.raises(MalformedPacket, match="gateway clock"):
        decode_packet(raw, LOOKUP, now_ms=NOW_MS - day - 1)


def test_encoder_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="another device"):
        encode_packet(KEY, uuid4(), 1, NOW_MS, 250, SAMPLES)
    with pytest.raises(ValueError, match="u32"):
        encode_packet(KEY, DEVICE_ID, 2**32, NOW_MS, 250, SAMPLES)
    with pytest.raises(ValueError, match="int16"):
        encode_packet(KEY, DEVICE_ID, 1, NOW_MS, 250, np.array([40000], dtype=np.int32))
    with pytest.raises(ValueError, match="integer"):
        encode_packet(KEY, DEVICE_ID, 1, NOW_MS, 250, np.array([0.5]))


def test_error_messages_do_not_leak_key_or_samples() -> None:
    tampered = bytearray(valid_packet())
    tampered[-1] ^= 1
    with pytest.raises(PacketAuthenticationFailed) as caught:
        decode_packet(bytes(tampered), LOOKUP, now_ms=NOW_MS)
    assert KEY.export_for_storage().hex() not in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200))
def test_random_bytes_only_raise_monitor_errors(data: bytes) -> None:
    with pytest.raises(MonitorError):
        decode_packet(data, any_key, now_ms=NOW_MS)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=36, max_size=36), st.binary(max_size=1100))
def test_random_bytes_behind_a_plausible_magic_only_raise_monitor_errors(
    header: bytes, rest: bytes
) -> None:
    with pytest.raises(MonitorError):
        decode_packet(b"RKD1" + header[4:] + rest, any_key, now_ms=NOW_MS)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 80),
    st.binary(max_size=8),
)
def test_random_mutations_of_a_valid_packet_only_raise_monitor_errors(
    edits: list[tuple[int, int]], cut: int, appended: bytes
) -> None:
    raw = bytearray(valid_packet())
    for position, value in edits:
        raw[position % len(raw)] = value
    mutated = bytes(raw[: len(raw) - cut]) + appended
    if mutated == valid_packet():
        return
    with pytest.raises(MonitorError):
        decode_packet(mutated, LOOKUP, now_ms=NOW_MS)
