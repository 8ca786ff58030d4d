"""Pairing a wearable ECG device with the gateway: one key per device, never a shared one.

Both sides create an ephemeral X25519 key pair and exchange public keys (32 bytes each). Each side
then runs X25519 and HKDF-SHA256 over the shared secret::

    salt = device_public (32) || gateway_public (32)
    key  = HKDF-SHA256(secret, salt, info=b"rekam-device-v1|" + device_id.bytes, length=32)
    code = HKDF-SHA256(secret, salt, info=b"rekam-device-v1-confirm|" + device_id.bytes, length=8)
           read as a big-endian integer, modulo 1 000 000, shown as six digits

The six-digit confirmation code is shown on the device and on the gateway screen; a person compares
them before the key is stored, which defeats a man in the middle on the pairing channel.

>>> from uuid import UUID
>>> device_id = UUID("5b0e4a8c-3f7d-4a36-9a51-0c6f1f2d9e11")
>>> gateway, device = GatewayPairing.new(), DevicePairing.new(device_id)
>>> on_gateway = gateway.derive(device.public_bytes(), device_id)
>>> on_device = device.derive(gateway.public_bytes())
>>> on_gateway.confirmation_code == on_device.confirmation_code
True
"""

from __future__ import annotations

import hmac
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rekam.monitor.errors import PacketAuthenticationFailed, PairingFailed

PROTOCOL_LABEL = b"rekam-device-v1|"
CONFIRMATION_LABEL = b"rekam-device-v1-confirm|"
KEY_LENGTH = 32
PUBLIC_KEY_LENGTH = 32
CONFIRMATION_DIGITS = 6


def packet_nonce(sequence: int) -> bytes:
    """The 12-byte AES-GCM nonce of a packet: 4 zero bytes, then the sequence as u64 big-endian."""
    return b"\x00" * 4 + sequence.to_bytes(8, "big")


class DeviceKey:
    """The AES-256-GCM key one device shares with the gateway.

    Opaque: the key bytes are only reachable through :meth:`export_for_storage`, which the device
    registry uses to wrap the key under ``rekam.crypto`` before storing it. ``repr`` never shows
    them.
    """

    __slots__ = ("_aead", "_key", "confirmation_code", "device_id")

    def __init__(self, device_id: UUID, key: bytes, confirmation_code: str = "") -> None:
        if len(key) != KEY_LENGTH:
            raise ValueError(f"a device key is {KEY_LENGTH} bytes, got {len(key)}")
        self.device_id = device_id
        self.confirmation_code = confirmation_code
        self._key = bytes(key)
        self._aead = AESGCM(self._key)

    @classmethod
    def from_storage(cls, device_id: UUID, stored: bytes) -> DeviceKey:
        """Rebuild a key that :meth:`export_for_storage` produced (once unwrapped)."""
        return cls(device_id, stored)

    def export_for_storage(self) -> bytes:
        """The raw 32 key bytes, for the device registry to wrap and store. Never log them."""
        return self._key

    def same_key_as(self, other: DeviceKey) -> bool:
        """Constant-time comparison of two keys (for tests and key-rotation checks)."""
        return self.device_id == other.device_id and hmac.compare_digest(self._key, other._key)

    def seal(self, sequence: int, plaintext: bytes, associated_data: bytes) -> bytes:
        """Encrypt one packet body; returns ciphertext followed by the 16-byte tag."""
        return self._aead.encrypt(packet_nonce(sequence), plaintext, associated_data)

    def open(self, sequence: int, sealed: bytes, associated_data: bytes) -> bytes:
        """Decrypt one packet body or raise :class:`PacketAuthenticationFailed`."""
        try:
            return self._aead.decrypt(packet_nonce(sequence), sealed, associated_data)
        except InvalidTag:
            raise PacketAuthenticationFailed(
                f"packet {sequence} from device {self.device_id} failed authentication "
                "(wrong key, tampered or forged)",
                device_id=self.device_id,
            ) from None

    def __repr__(self) -> str:
        return (
            f"DeviceKey(device_id={self.device_id!s}, confirmation_code={self.confirmation_code!r})"
        )


def _load_peer(peer_public: bytes) -> X25519PublicKey:
    if len(peer_public) != PUBLIC_KEY_LENGTH:
        raise PairingFailed(
            f"a peer public key is {PUBLIC_KEY_LENGTH} bytes, got {len(peer_public)}"
        )
    return X25519PublicKey.from_public_bytes(bytes(peer_public))


def _derive(
    private: X25519PrivateKey,
    peer_public: bytes,
    device_public: bytes,
    gateway_public: bytes,
    device_id: UUID,
) -> DeviceKey:
    peer = _load_peer(peer_public)
    try:
        secret = private.exchange(peer)
    except ValueError:
        raise PairingFailed(
            "the peer public key gives no shared secret (low-order point); pairing refused",
            device_id=device_id,
        ) from None
    salt = device_public + gateway_public
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_LENGTH,
        salt=salt,
        info=PROTOCOL_LABEL + device_id.bytes,
    ).derive(secret)
    code_bytes = HKDF(
        algorithm=hashes.SHA256(), length=8, salt=salt, info=CONFIRMATION_LABEL + device_id.bytes
    ).derive(secret)
    code = int.from_bytes(code_bytes, "big") % 10**CONFIRMATION_DIGITS
    return DeviceKey(device_id, key, f"{code:0{CONFIRMATION_DIGITS}d}")


def _public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes_raw()


class GatewayPairing:
    """The gateway's side of one pairing session. Create a new one for every device."""

    def __init__(self, private: X25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def new(cls) -> GatewayPairing:
        return cls(X25519PrivateKey.generate())

    def public_bytes(self) -> bytes:
        """The 32-byte X25519 public key to send to the device."""
        return _public_bytes(self._private)

    def derive(self, device_public: bytes, device_id: UUID) -> DeviceKey:
        """The device key, from the device's public key and the device id it announced."""
        return _derive(
            self._private, device_public, bytes(device_public), self.public_bytes(), device_id
        )


class DevicePairing:
    """The device's side of pairing (used by the device simulator and by firmware test vectors)."""

    def __init__(self, device_id: UUID, private: X25519PrivateKey) -> None:
        self.device_id = device_id
        self._private = private

    @classmethod
    def new(cls, device_id: UUID) -> DevicePairing:
        return cls(device_id, X25519PrivateKey.generate())

    def public_bytes(self) -> bytes:
        """The 32-byte X25519 public key to send to the gateway."""
        return _public_bytes(self._private)

    def derive(self, gateway_public: bytes) -> DeviceKey:
        """The device key, from the gateway's public key."""
        return _derive(
            self._private,
            gateway_public,
            self.public_bytes(),
            bytes(gateway_public),
            self.device_id,
        )


__all__ = ["DeviceKey", "DevicePairing", "GatewayPairing", "packet_nonce"]
