"""The one exception hierarchy of :mod:`rekam.ecg`.

Every message is written for the person looking at the screen (a clinician or a technician),
not for the programmer: it says what is wrong with the recording and, where possible, what to do.
"""

from __future__ import annotations

__all__ = [
    "EcgError",
    "InvalidParameterError",
    "RecordFormatError",
    "RecordNotFoundError",
    "SamplingRateError",
    "ScpEcgChecksumError",
    "ScpEcgError",
    "ScpEcgTruncatedError",
    "ScpEcgUnsupportedError",
    "SignalValueError",
]


class EcgError(Exception):
    """Base class of every error raised by :mod:`rekam.ecg`."""


class RecordNotFoundError(EcgError):
    """The ECG recording (or one of its files) does not exist."""


class RecordFormatError(EcgError):
    """The file exists but is not a readable ECG recording of the expected format."""


class SignalValueError(EcgError):
    """The samples themselves are unusable (empty, missing values, wrong shape)."""


class SamplingRateError(EcgError):
    """The sampling rate is outside the range the analysis supports."""


class InvalidParameterError(EcgError):
    """An analysis parameter (threshold, window, …) is out of its meaningful range."""


class ScpEcgError(RecordFormatError):
    """The file is not a well-formed SCP-ECG record (EN 1064 / ISO 11073-91064)."""


class ScpEcgTruncatedError(ScpEcgError):
    """The SCP-ECG record ends before the size its header or a section announces."""


class ScpEcgChecksumError(ScpEcgError):
    """A CRC of the SCP-ECG record or of one of its sections does not match: the file is damaged."""


class ScpEcgUnsupportedError(ScpEcgError):
    """The SCP-ECG record is valid but uses a part of the standard Rekam does not read."""
