"""The exceptions of rekam.crypto."""


class CryptoError(Exception):
    """Something went wrong protecting or opening data."""


class PassphraseError(CryptoError):
    """The passphrase that seals Rekam's keys is missing, unreadable or wrong."""


class SealedSecretInvalid(CryptoError):
    """A sealed secret could not be opened: wrong key, wrong context, or altered bytes."""
