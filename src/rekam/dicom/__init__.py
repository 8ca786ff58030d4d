"""DICOM for Rekam: ECG waveform objects and DICOM digital signatures (PS3.15 Annex C).

Build a 12-lead (or General ECG) object from a recording, sign it as a doctor, verify it::

    >>> from rekam.dicom import (PatientInfo, StudyInfo, recording_to_dicom, sign_dataset,
    ...                          verify_dataset, write_dicom)
    >>> ds = recording_to_dicom(recording, PatientInfo("P-1", "Doe^Jane"), StudyInfo(),
    ...                         uid_root="1.2.826.0.1.3680043.10.999")  # doctest: +SKIP
    >>> sign_dataset(ds, doctor, mac_algorithm="SHA256")  # doctest: +SKIP
    >>> write_dicom(ds, "ecg.dcm")  # doctest: +SKIP
    >>> [v.summary() for v in verify_dataset("ecg.dcm", [root_certificate])]  # doctest: +SKIP

Signatures are byte-compatible with DCMTK's ``dcmsign`` in both directions. This package knows
nothing of the web layer or the database.
"""

from rekam.dicom.coverage import DEFAULT_REQUIRED_TAGS, describe_tag, tags_from_names
from rekam.dicom.errors import (
    DicomError,
    DicomFileTooLarge,
    InvalidAttributeValue,
    InvalidUidRoot,
    NotDicom,
    SignatureInvalid,
    SigningError,
    TruncatedDicom,
    UnsupportedCertificate,
    UnsupportedTransferSyntax,
    WaveformError,
)
from rekam.dicom.files import DEFAULT_MAX_FILE_BYTES, dataset_to_bytes, read_dicom, write_dicom
from rekam.dicom.lead_codes import STANDARD_12_LEADS, LeadCode, lead_for_code, lead_for_name
from rekam.dicom.mac_algorithms import ACCEPTED_MAC_ALGORITHMS, MacAlgorithm
from rekam.dicom.patient_study import EquipmentInfo, PatientInfo, StudyInfo
from rekam.dicom.profiles import SignatureProfile
from rekam.dicom.signature_purposes import SIGNATURE_PURPOSES
from rekam.dicom.signed_files import sign_file
from rekam.dicom.signer_files import KeyPassphraseNeeded, load_pem_signer, load_pkcs12_signer
from rekam.dicom.signers import CallbackSigner, DicomSigner, KeySigner
from rekam.dicom.signing import sign_dataset
from rekam.dicom.sop_classes import (
    AMBULATORY_ECG_STORAGE,
    ECG_SOP_CLASSES,
    GENERAL_ECG_STORAGE,
    TWELVE_LEAD_ECG_STORAGE,
)
from rekam.dicom.uids import generate_uid
from rekam.dicom.verdicts import SignatureStatus, SignatureVerdict
from rekam.dicom.verification import require_valid_signatures, verify_dataset
from rekam.dicom.waveform import (
    DEFAULT_RESOLUTION_UV,
    EcgObjectKind,
    FilterSettings,
    dicom_to_recording,
    recording_to_dicom,
)

__all__ = [
    "ACCEPTED_MAC_ALGORITHMS",
    "AMBULATORY_ECG_STORAGE",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_REQUIRED_TAGS",
    "DEFAULT_RESOLUTION_UV",
    "ECG_SOP_CLASSES",
    "GENERAL_ECG_STORAGE",
    "SIGNATURE_PURPOSES",
    "STANDARD_12_LEADS",
    "TWELVE_LEAD_ECG_STORAGE",
    "CallbackSigner",
    "DicomError",
    "DicomFileTooLarge",
    "DicomSigner",
    "EcgObjectKind",
    "EquipmentInfo",
    "FilterSettings",
    "InvalidAttributeValue",
    "InvalidUidRoot",
    "KeyPassphraseNeeded",
    "KeySigner",
    "LeadCode",
    "MacAlgorithm",
    "NotDicom",
    "PatientInfo",
    "SignatureInvalid",
    "SignatureProfile",
    "SignatureStatus",
    "SignatureVerdict",
    "SigningError",
    "StudyInfo",
    "TruncatedDicom",
    "UnsupportedCertificate",
    "UnsupportedTransferSyntax",
    "WaveformError",
    "dataset_to_bytes",
    "describe_tag",
    "dicom_to_recording",
    "generate_uid",
    "lead_for_code",
    "lead_for_name",
    "load_pem_signer",
    "load_pkcs12_signer",
    "read_dicom",
    "recording_to_dicom",
    "require_valid_signatures",
    "sign_dataset",
    "sign_file",
    "tags_from_names",
    "verify_dataset",
    "write_dicom",
]
