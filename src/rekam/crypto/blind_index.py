"""Blind indexes: find a patient by NIK or BPJS number without decrypting anything.

The index value is HMAC-SHA256 under the keyring's blind-index key of the normalised value,
with the kind of identifier as a domain separator, truncated to 16 bytes. Without the key the
value reveals nothing; clinics with different keys get different values for the same NIK.
"""

from __future__ import annotations

import re

from rekam.crypto.keyring import Keyring

_NOISE = re.compile(r"[\s.\-/]")


def normalise_identifier(value: str) -> str:
    """Drop spaces, dots, dashes and slashes; upper-case letters."""
    return _NOISE.sub("", value).upper()


class BlindIndexer:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def index(self, kind: str, value: str) -> bytes:
        return self.keyring.blind_index(kind, normalise_identifier(value).encode())
