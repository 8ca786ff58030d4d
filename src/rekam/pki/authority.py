"""Creating Rekam's certificate authorities: the self-signed root and the issuing CA below it."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from rekam.pki.certificates import (
    BACKDATE,
    build_certificate,
    ca_key_usage,
    require_ca,
    subject_text,
    utc_now,
)
from rekam.pki.errors import PkiError
from rekam.pki.identity import Identity
from rekam.pki.keys import KeyAlgorithm, generate_private_key


def _ca_name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(
                NameOID.ORGANIZATION_NAME, subject_text(organization, "organisation name")
            ),
            x509.NameAttribute(NameOID.COMMON_NAME, subject_text(common_name, "CA name")),
        ]
    )


def create_root_ca(
    common_name: str,
    organization: str,
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA3072,
    valid_days: int = 3650 * 2,
) -> Identity:
    """Create a self-signed root CA (basicConstraints CA, no path length limit)."""
    if valid_days < 1:
        raise PkiError("A certificate must be valid for at least one day.")
    name = _ca_name(common_name, organization)
    key = generate_private_key(algorithm)
    now = utc_now()
    certificate = build_certificate(
        issuer=None,
        subject=name,
        public_key=key.public_key(),
        signing_key=key,
        issuer_name=name,
        not_before=now - BACKDATE,
        not_after=now + datetime.timedelta(days=valid_days),
        extensions=[
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (ca_key_usage(), True),
        ],
    )
    return Identity(certificate, key, ())


def create_issuing_ca(
    root: Identity,
    common_name: str,
    organization: str,
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA3072,
    valid_days: int = 3650,
) -> Identity:
    """Create an issuing CA signed by ``root``: pathlen 0, keyCertSign + cRLSign."""
    if valid_days < 1:
        raise PkiError("A certificate must be valid for at least one day.")
    require_ca(root)
    constraints = root.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    if constraints.path_length == 0:
        raise PkiError(f"{root.common_name!r} may not certify other certificate authorities.")
    name = _ca_name(common_name, organization)
    key = generate_private_key(algorithm)
    now = utc_now()
    not_after = min(now + datetime.timedelta(days=valid_days), root.certificate.not_valid_after_utc)
    if not_after <= now:
        raise PkiError("The root CA has expired; it cannot create an issuing CA.")
    certificate = build_certificate(
        issuer=root,
        subject=name,
        public_key=key.public_key(),
        signing_key=root.private_key,
        issuer_name=root.certificate.subject,
        not_before=now - BACKDATE,
        not_after=not_after,
        extensions=[
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (ca_key_usage(), True),
        ],
    )
    return Identity(certificate, key, root.chain_for_issued())
