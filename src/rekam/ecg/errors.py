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
