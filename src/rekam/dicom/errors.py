"""The one exception hierarchy of :mod:`rekam.dicom`.

Every error carries a sentence a clinician can read; none contains key material, passphrases or
patient data beyond what the person already gave the program.
"""

from __future__ import annotations


class DicomError(Exception):
    """Base class of every error raised by :mod:`rekam.dicom`."""


class NotDicom(DicomError):
    """The bytes are not a DICOM file (no DICM marker, or nothing DICOM can be read from them)."""


class TruncatedDicom(DicomError):
    """The DICOM file ends in the middle of an attribute: it was cut short in transfer."""


class DicomFileTooLarge(DicomError):
    """The file is larger than the limit set for reading DICOM objects."""


class UnsupportedTransferSyntax(DicomError):
    """The file is encoded in a transfer syntax Rekam does not read (e.g. big endian)."""


class WaveformError(DicomError):
    """An ECG recording cannot be turned into a DICOM waveform object, or back."""


class InvalidAttributeValue(DicomError):
    """A patient, study or equipment value cannot be stored in its DICOM attribute."""


class InvalidUidRoot(DicomError):
    """The organisation UID root is not a valid DICOM UID prefix."""


class SigningError(DicomError):
    """A signature could not be made (unsupported key, bad profile, nothing to sign, ...)."""


class UnsupportedCertificate(DicomError):
    """The signer's certificate or key is of a kind Rekam cannot use for DICOM signatures."""


class SignatureInvalid(DicomError):
    """A DICOM digital signature did not verify.

    ``verdicts`` holds the per-signature explanations when the error comes from a whole-object
    check such as :func:`rekam.dicom.require_valid_signatures`.
    """

    def __init__(self, reason: str, verdicts: tuple[object, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.verdicts = verdicts
