"""The exceptions of rekam.crypto. Each says plainly what went wrong and, where it can, why."""


class CryptoError(Exception):
    """Something went wrong protecting or opening data."""


class PassphraseError(CryptoError):
    """The passphrase that seals Rekam's keys is missing, unreadable or wrong."""


class SealedSecretInvalid(CryptoError):
    """A sealed secret could not be opened: wrong key, wrong context, or altered bytes."""


class KeyringError(CryptoError):
    """The keyring (key-encryption keys) is missing, locked or inconsistent."""


class KeyringUnavailable(KeyringError):
    """The keyring cannot be reached or opened, so no protected data can be read."""


class KeyringEmpty(KeyringUnavailable):
    """The keyring's token or server holds no Rekam keys yet (``rekam init`` creates them)."""


class UnknownKeyVersion(KeyringError):
    """A key-encryption key version that the keyring does not hold (retired or never made)."""


class DecryptionFailed(CryptoError):
    """Protected data could not be opened; the subclass says why. Nothing is returned."""


class CiphertextMalformed(DecryptionFailed):
    """Not a Rekam ciphertext, an unsupported format version, or cut short."""


class CiphertextTampered(DecryptionFailed):
    """The ciphertext was altered (its authentication tag or key commitment does not match)."""


class WrongContext(DecryptionFailed):
    """The ciphertext belongs to another record, column or patient (it was moved or copied)."""


class KeyErased(DecryptionFailed):
    """The data key was destroyed (crypto-erasure); the data is permanently unreadable."""


class WrappedKeyInvalid(DecryptionFailed):
    """A wrapped data key does not open for its owner: swapped between owners or altered."""


class StreamTruncated(DecryptionFailed):
    """An encrypted file ended before its final chunk."""
