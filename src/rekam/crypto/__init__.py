"""Rekam's cryptography: passphrases, sealed secrets (envelope encryption lands here next)."""

from rekam.crypto.errors import CryptoError, PassphraseError, SealedSecretInvalid
from rekam.crypto.passphrase import create_passphrase_file, read_passphrase_file
from rekam.crypto.sealed_secrets import SecretSealer

__all__ = [
    "CryptoError",
    "PassphraseError",
    "SealedSecretInvalid",
    "SecretSealer",
    "create_passphrase_file",
    "read_passphrase_file",
]
