from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rekam.monitor import DeviceKey, DevicePairing, GatewayPairing, PairingFailed

DEVICE_ID = UUID("5b0e4a8c-3f7d-4a36-9a51-0c6f1f2d9e11")


def paired(device_id: UUID = DEVICE_ID) -> tuple[DeviceKey, DeviceKey]:
    gateway, device = GatewayPairing.new(), DevicePairing.new(device_id)
    return (
        gateway.derive(device.public_bytes(), device_id),
        device.derive(gateway.public_bytes()),
    )


def test_both_sides_derive_the_same_key_and_code() -> None:
    on_gateway, on_device = paired()
    assert on_gateway.same_key_as(on_device)
    assert on_gateway.export_for_storage() == on_device.export_for_storage()
    assert len(on_gateway.export_for_storage()) == 32
    assert on_gateway.confirmation_code == on_device.confirmation_code
    assert len(on_gateway.confirmation_code) == 6
    assert on_gateway.confirmation_code.isdigit()
    assert on_gateway.device_id == on_device.device_id == DEVICE_ID


def test_a_third_party_gets_a_different_key_and_code() -> None:
    gateway, device = GatewayPairing.new(), DevicePairing.new(DEVICE_ID)
    intruder = DevicePairing.new(DEVICE_ID)
    genuine = device.derive(gateway.public_bytes())
    # The intruder answers the gateway with its own key (a man in the middle).
    on_gateway = gateway.derive(intruder.public_bytes(), DEVICE_ID)
    assert not on_gateway.same_key_as(genuine)
    assert on_gateway.export_for_storage() != genuine.export_for_storage()


def test_every_pairing_gives_a_new_key_never_one_static_key() -> None:
    keys = [paired(uuid4())[0].export_for_storage() for _ in range(5)]
    assert len(set(keys)) == 5


def test_derivation_follows_the_documented_formula() -> None:
    device_private = X25519PrivateKey.from_private_bytes(bytes(range(32)))
    gateway_private = X25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
    device = DevicePairing(DEVICE_ID, device_private)
    gateway = GatewayPairing(gateway_private)
    key = device.derive(gateway.public_bytes())

    secret = device_private.exchange(gateway_private.public_key())
    salt = device.public_bytes() + gateway.public_bytes()
    expected_key = HKDF(hashes.SHA256(), 32, salt, b"rekam-device-v1|" + DEVICE_ID.bytes).derive(
        secret
    )
    code_bytes = HKDF(
        hashes.SHA256(), 8, salt, b"rekam-device-v1-confirm|" + DEVICE_ID.bytes
    ).derive(secret)
    assert key.export_for_storage() == expected_key
    assert key.confirmation_code == f"{int.from_bytes(code_bytes, 'big') % 1_000_000:06d}"


def test_the_device_id_is_bound_into_the_key() -> None:
    gateway, device = GatewayPairing.new(), DevicePairing.new(DEVICE_ID)
    honest = gateway.derive(device.public_bytes(), DEVICE_ID)
    claimed_other = gateway.derive(device.public_bytes(), uuid4())
    assert honest.export_for_storage() != claimed_other.export_for_storage()


def test_repr_never_shows_key_bytes() -> None:
    key, _ = paired()
    assert key.export_for_storage().hex() not in repr(key)
    assert str(DEVICE_ID) in repr(key)


def test_storage_round_trip() -> None:
    key, _ = paired()
    restored = DeviceKey.from_storage(DEVICE_ID, key.export_for_storage())
    assert restored.same_key_as(key)
    with pytest.raises(ValueError):
        DeviceKey.from_storage(DEVICE_ID, b"short")


@pytest.mark.parametrize("public", [b"", b"\x01" * 31, b"\x01" * 33])
def test_wrong_length_public_key_is_refused(public: bytes) -> None:
    with pytest.raises(PairingFailed, match="32 bytes"):
        GatewayPairing.new().derive(public, DEVICE_ID)
    with pytest.raises(PairingFailed):
        DevicePairing.new(DEVICE_ID).derive(public)


def test_low_order_public_key_is_refused() -> None:
    with pytest.raises(PairingFailed, match="low-order"):
        GatewayPairing.new().derive(b"\x00" * 32, DEVICE_ID)
