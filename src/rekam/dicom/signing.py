"""Adding a DICOM digital signature (PS3.15 C.12.1) to a data set.

One call adds one MAC Parameters Sequence item and one Digital Signatures Sequence item; calling
again stacks another, independent signature. The signed bytes are those of
:mod:`rekam.dicom.signature_stream`, hashed with ``cryptography``; RSA keys sign with PKCS#1
v1.5, elliptic-curve keys with ECDSA (DER), exactly what ``dcmsign`` makes and verifies.

    >>> uid = sign_dataset(ds, doctor_identity, mac_algorithm="SHA256")  # doctest: +SKIP
    >>> write_dicom(ds, "signed.dcm")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from rekam.dicom.coverage import describe_tag, tags_from_names
from rekam.dicom.errors import DicomError, SigningError
from rekam.dicom.mac_algorithms import digest, hash_for, mac_algorithm_name
from rekam.dicom.patient_study import as_utc
from rekam.dicom.profiles import (
    CREATOR_REQUIRED_IF_PRESENT,
    CREATOR_REQUIRED_TAGS,
    SignatureProfile,
    signature_profile,
)
from rekam.dicom.signature_purposes import purpose_code_item
from rekam.dicom.signature_stream import (
    DIGITAL_SIGNATURES_SEQUENCE,
    MAC_PARAMETERS_SEQUENCE,
    NotHashable,
    is_signable_tag,
    signable_top_level_elements,
    signable_top_level_tags,
    signature_item_stream,
    signed_elements_stream,
)
from rekam.dicom.signers import (
    DicomSigner,
    as_signer,
    check_signing_key,
    verify_digest_signature,
)
from rekam.dicom.sop_classes import EXPLICIT_VR_LITTLE_ENDIAN
from rekam.dicom.uids import UUID_UID_ROOT, generate_uid
from rekam.pki import Identity

__all__ = ["CERTIFICATE_TYPE_X509", "sign_dataset"]

CERTIFICATE_TYPE_X509 = "X509_1993_SIG"


def sign_dataset(
    dataset: Dataset,
    signer: Identity | DicomSigner,
    *,
    mac_algorithm: str = "SHA256",
    profile: str | SignatureProfile = SignatureProfile.BASE,
    data_elements: Iterable[str | int] | None = None,
    purpose: int | None = None,
    signed_at: datetime.datetime | None = None,
    uid_root: str = UUID_UID_ROOT,
) -> str:
    """Sign ``dataset`` in place and return the new Digital Signature UID.

    ``data_elements`` lists the top-level attributes to sign (keywords or tags); by default every
    signable standard attribute present (private attributes only when listed). ``profile`` is
    ``"base"`` or ``"creator"`` (RSA keys) or ``"none"`` (any key, e.g. ECDSA). ``purpose`` adds
    a Digital Signature Purpose Code (1–18, e.g. 1 Author, 14 Source). ``signed_at`` is the
    signature date-time (now by default), written in UTC. Raises :class:`SigningError` or
    :class:`UnsupportedCertificate`.
    """
    actual_signer = as_signer(signer)
    certificate = actual_signer.certificate
    public_key = check_signing_key(certificate.public_key())
    chosen_profile = signature_profile(profile)
    if chosen_profile.requires_rsa and not isinstance(public_key, rsa.RSAPublicKey):
        raise SigningError(
            f"The {chosen_profile.standard_name} needs an RSA key, but this certificate holds an "
            "elliptic-curve key; sign with profile 'none' (dcmsign: --profile-none)."
        )
    term = mac_algorithm_name(mac_algorithm)
    # The default set is encoded once: finding what is signable already yields the bytes.
    try:
        encoded = signable_top_level_elements(dataset) if data_elements is None else None
    except NotHashable as exc:
        raise SigningError(f"The object cannot be signed: {exc}") from exc
    if encoded is not None and not encoded:
        raise SigningError("The object has no attribute that can be signed.")
    tags = [tag for tag, _ in encoded] if encoded else _tags_to_sign(dataset, data_elements)
    if chosen_profile is SignatureProfile.CREATOR:
        _check_creator_coverage(dataset, tags)

    moment = as_utc(signed_at) if signed_at is not None else datetime.datetime.now(datetime.UTC)
    mac_id = _next_mac_id(dataset)
    signature_uid = generate_uid(uid_root)

    item = Dataset()
    item.MACIDNumber = mac_id
    item.DigitalSignatureUID = signature_uid
    item.DigitalSignatureDateTime = moment.strftime("%Y%m%d%H%M%S.%f") + "+0000"
    item.CertificateType = CERTIFICATE_TYPE_X509
    if purpose is not None:
        item.DigitalSignaturePurposeCodeSequence = Sequence([purpose_code_item(purpose)])

    try:
        elements = (
            b"".join(part for _, part in encoded)
            if encoded
            else signed_elements_stream(dataset, tags)
        )
        stream = elements + signature_item_stream(item)
    except NotHashable as exc:
        raise SigningError(f"The object cannot be signed: {exc}") from exc
    mac = digest(stream, term)
    try:
        signature = actual_signer.sign_digest(mac, hash_for(term))
    except DicomError:
        raise
    except Exception as exc:  # a token or callback may fail in any way
        raise SigningError(f"The signing key could not make the signature: {exc}") from exc
    if not verify_digest_signature(public_key, signature, mac, hash_for(term)):
        raise SigningError(
            "The signature made does not match the certificate: the private key does not "
            "belong to this certificate."
        )
    item.CertificateOfSigner = _even(certificate.public_bytes(serialization.Encoding.DER))
    item.Signature = _even(signature)

    parameters = Dataset()
    parameters.MACIDNumber = mac_id
    parameters.MACCalculationTransferSyntaxUID = EXPLICIT_VR_LITTLE_ENDIAN
    parameters.MACAlgorithm = term
    parameters.add(DataElement(0x04000020, "AT", list(tags)))

    _append(dataset, MAC_PARAMETERS_SEQUENCE, "MACParametersSequence", parameters)
    _append(dataset, DIGITAL_SIGNATURES_SEQUENCE, "DigitalSignaturesSequence", item)
    return signature_uid


def _tags_to_sign(dataset: Dataset, data_elements: Iterable[str | int] | None) -> list[BaseTag]:
    if data_elements is None:
        tags = signable_top_level_tags(dataset)
        if not tags:
            raise SigningError("The object has no attribute that can be signed.")
        return tags
    try:
        requested = sorted(set(tags_from_names(data_elements)))
    except DicomError as exc:
        raise SigningError(str(exc)) from exc
    if not requested:
        raise SigningError("No attribute was given to sign.")
    for tag in requested:
        if not is_signable_tag(tag):
            raise SigningError(f"{describe_tag(tag)} can never be covered by a signature.")
        if tag not in dataset:
            raise SigningError(f"{describe_tag(tag)} is not in the object, so it cannot be signed.")
    signable = set(signable_top_level_tags(dataset, include_private=True))
    for tag in requested:
        if tag not in signable:
            raise SigningError(
                f"{describe_tag(tag)} has an unknown value representation (UN) or contains one, "
                "so it cannot be signed reliably."
            )
    return requested


def _check_creator_coverage(dataset: Dataset, tags: list[BaseTag]) -> None:
    covered = set(tags)
    missing = [t for t in CREATOR_REQUIRED_TAGS if t not in covered]
    missing += [t for t in CREATOR_REQUIRED_IF_PRESENT if t in dataset and t not in covered]
    if missing:
        raise SigningError(
            "The Creator RSA Digital Signature Profile must also sign "
            + ", ".join(describe_tag(t) for t in missing)
            + "."
        )


def _next_mac_id(dataset: Dataset) -> int:
    used: list[int] = []
    for tag in (MAC_PARAMETERS_SEQUENCE, DIGITAL_SIGNATURES_SEQUENCE):
        if tag in dataset:
            for item in dataset[tag].value or []:
                if "MACIDNumber" in item:
                    used.append(int(item.MACIDNumber))
    next_id = max(used) + 1 if used else 0
    if next_id > 0xFFFF:
        raise SigningError("The object already carries the maximum number of signatures.")
    return next_id


def _append(dataset: Dataset, tag: int, keyword: str, item: Dataset) -> None:
    if tag in dataset:
        dataset[tag].value.append(item)
    else:
        setattr(dataset, keyword, Sequence([item]))


def _even(data: bytes) -> bytes:
    return data + b"\x00" if len(data) % 2 else data
