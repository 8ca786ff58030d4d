"""Rekam's cryptography: envelope encryption of fields and files, data keys, keyrings,
blind indexes, sealed secrets. Callers never handle nonces or raw keys."""

from rekam.crypto.blind_index import BlindIndexer, normalise_identifier
from rekam.crypto.blob_stream import BlobCipher
from rekam.crypto.data_keys import DataKeyManager, DataKeyRecord, DataKeyStore
from rekam.crypto.envelope import FieldCipher, FieldContext, patient_owner
from rekam.crypto.errors import (
    CiphertextMalformed,
    CiphertextTampered,
    CryptoError,
    DecryptionFailed,
    KeyErased,
    KeyringEmpty,
    KeyringError,
    KeyringUnavailable,
    PassphraseError,
    SealedSecretInvalid,
    StreamTruncated,
    UnknownKeyVersion,
    WrappedKeyInvalid,
    WrongContext,
)
from rekam.crypto.keyring import KekVersion, Keyring
from rekam.crypto.local_keyring import LocalKeyring
from rekam.crypto.passphrase import create_passphrase_file, read_passphrase_file, read_secret_file
from rekam.crypto.pkcs11_keyring import Pkcs11Keyring
from rekam.crypto.sealed_secrets import SecretSealer
from rekam.crypto.vault_keyring import VaultTransitKeyring

__all__ = [
    "BlindIndexer",
    "BlobCipher",
    "CiphertextMalformed",
    "CiphertextTampered",
    "CryptoError",
    "DataKeyManager",
    "DataKeyRecord",
    "DataKeyStore",
    "DecryptionFailed",
    "FieldCipher",
    "FieldContext",
    "KekVersion",
    "KeyErased",
    "Keyring",
    "KeyringEmpty",
    "KeyringError",
    "KeyringUnavailable",
    "LocalKeyring",
    "PassphraseError",
    "Pkcs11Keyring",
    "SealedSecretInvalid",
    "SecretSealer",
    "StreamTruncated",
    "UnknownKeyVersion",
    "VaultTransitKeyring",
    "WrappedKeyInvalid",
    "WrongContext",
    "create_passphrase_file",
    "normalise_identifier",
    "patient_owner",
    "read_passphrase_file",
    "read_secret_file",
]
