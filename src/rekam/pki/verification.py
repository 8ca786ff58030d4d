"""Certificate chain validation with reasons a person can read.

Two layers run for every call to :func:`verify_chain`:

1. Rekam's own walk from the certificate up to a trusted root, which checks each link with
   ``cryptography``'s ``verify_directly_issued_by`` (issuer name and signature), the validity
   period at the validation time, basicConstraints/pathLen and keyCertSign on every CA, the
   end-entity key usage for the purpose, and any revocation lists given. It produces the
   plain-language reasons.
2. ``cryptography.x509.verification`` (the WebPKI path builder): server certificates through its
   server verifier, client and document-signing certificates through its client verifier with an
   end-entity extension policy for the purpose (the stock client policy only accepts clientAuth).
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import re
from collections.abc import Sequence
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from rekam.pki.certificates import DOCUMENT_SIGNING_OID, utc_now
from rekam.pki.errors import CertificateExpired, CertificateRevoked, ChainInvalid
from rekam.pki.identity import describe_subject

Purpose = Literal["server", "document", "client"]

#: Longest chain accepted (leaf, intermediates and root).
MAX_CHAIN_LENGTH = 8

_PURPOSE_EKU: dict[str, x509.ObjectIdentifier] = {
    "server": ExtendedKeyUsageOID.SERVER_AUTH,
    "client": ExtendedKeyUsageOID.CLIENT_AUTH,
    "document": DOCUMENT_SIGNING_OID,
}
_PURPOSE_WORDS = {
    "server": "TLS server authentication",
    "client": "TLS client authentication",
    "document": "document signing",
}


def verify_chain(
    certificate: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trusted_roots: Sequence[x509.Certificate],
    at: datetime.datetime | None = None,
    purpose: Purpose | None = None,
    *,
    host: str | None = None,
    crls: Sequence[x509.CertificateRevocationList] = (),
) -> None:
    """Check that ``certificate`` chains to one of ``trusted_roots``; raise :class:`ChainInvalid`.

    ``at`` is the validation time (now by default, naive values are taken as UTC). ``purpose``
    also requires the matching extended key usage: ``"server"`` (serverAuth; with ``host``, the
    certificate must also name that host), ``"client"`` (clientAuth) or ``"document"``
    (documentSigning with digitalSignature or nonRepudiation). Every certificate below the root
    is looked up in ``crls``; a CRL must be signed by the certificate's issuer and current at
    ``at``. Subclasses :class:`CertificateExpired` and :class:`CertificateRevoked` single out
    those two reasons.
    """
    when = _as_utc(at) if at is not None else utc_now()
    if purpose is not None and purpose not in _PURPOSE_EKU:
        raise ValueError(f"Unknown purpose {purpose!r}; use 'server', 'client' or 'document'.")
    if host is not None and purpose != "server":
        raise ValueError("A host name can only be checked for the 'server' purpose.")
    if not trusted_roots:
        raise ChainInvalid("No trusted root certificate was given, so nothing can be trusted.")
    path = _build_path(certificate, list(intermediates), list(trusted_roots))
    for position, link in enumerate(path):
        _check_validity(link, when)
        if position > 0:
            _check_ca(link, issued_below=position - 1)
    _check_end_entity(certificate, purpose)
    for link, issuer in itertools.pairwise(path):
        _check_revocation(link, issuer, crls, when)
    _verify_with_cryptography(
        certificate, list(intermediates), list(trusted_roots), when, purpose, host
    )


def _as_utc(moment: datetime.datetime) -> datetime.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def _name(certificate: x509.Certificate) -> str:
    return repr(describe_subject(certificate))


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _build_path(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: list[x509.Certificate],
) -> list[x509.Certificate]:
    """Walk issuer links from ``leaf`` to a trusted root, explaining where the walk stops."""
    path = [leaf]
    current = leaf
    while len(path) <= MAX_CHAIN_LENGTH:
        for root in roots:
            if _issued_by(current, root):
                return [*path, root] if current != root else path
        if current in roots:
            return path
        same_name = [c for c in (*intermediates, *roots) if c.subject == current.issuer]
        issuer = next((c for c in same_name if c not in path and _issued_by(current, c)), None)
        if issuer is None:
            if same_name:
                raise ChainInvalid(
                    f"Certificate {_name(current)} names {current.issuer.rfc4514_string()!r} as "
                    "its issuer, but its signature does not match that certificate authority's "
                    "key: it comes from a different CA that uses the same name."
                )
            if current.issuer == current.subject:
                raise ChainInvalid(
                    f"Certificate {_name(current)} is a self-signed root that is not trusted here."
                )
            raise ChainInvalid(
                f"Certificate {_name(current)} was issued by "
                f"{current.issuer.rfc4514_string()!r}, which is neither a trusted root nor one of "
                "the intermediate certificates given: it does not come from a trusted authority."
            )
        path.append(issuer)
        current = issuer
    raise ChainInvalid(f"The chain is longer than {MAX_CHAIN_LENGTH} certificates.")


def _check_validity(certificate: x509.Certificate, when: datetime.datetime) -> None:
    not_before = certificate.not_valid_before_utc
    not_after = certificate.not_valid_after_utc
    if when < not_before:
        raise CertificateExpired(
            f"Certificate {_name(certificate)} is not valid yet: it becomes valid on "
            f"{not_before:%Y-%m-%d %H:%M} UTC."
        )
    if when > not_after:
        raise CertificateExpired(
            f"Certificate {_name(certificate)} expired on {not_after:%Y-%m-%d %H:%M} UTC."
        )


def _extension(
    certificate: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.ExtensionType | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_ca(certificate: x509.Certificate, issued_below: int) -> None:
    """``issued_below`` counts the non-leaf CA certificates between this CA and the leaf."""
    constraints = _extension(certificate, x509.BasicConstraints)
    if not isinstance(constraints, x509.BasicConstraints) or not constraints.ca:
        raise ChainInvalid(
            f"Certificate {_name(certificate)} signed another certificate but is not a "
            "certificate authority (basicConstraints does not allow it)."
        )
    if constraints.path_length is not None and issued_below > constraints.path_length:
        raise ChainInvalid(
            f"Certificate authority {_name(certificate)} may only have {constraints.path_length} "
            f"CA(s) below it, but the chain has {issued_below}."
        )
    usage = _extension(certificate, x509.KeyUsage)
    if isinstance(usage, x509.KeyUsage) and not usage.key_cert_sign:
        raise ChainInvalid(
            f"Certificate authority {_name(certificate)} is not allowed to sign certificates "
            "(its key usage lacks keyCertSign)."
        )


def _check_end_entity(certificate: x509.Certificate, purpose: Purpose | None) -> None:
    constraints = _extension(certificate, x509.BasicConstraints)
    if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
        raise ChainInvalid(
            f"Certificate {_name(certificate)} is a certificate authority, not an end-entity "
            "certificate."
        )
    if purpose is None:
        return
    usages = _extension(certificate, x509.ExtendedKeyUsage)
    if not isinstance(usages, x509.ExtendedKeyUsage) or _PURPOSE_EKU[purpose] not in usages:
        raise ChainInvalid(
            f"Certificate {_name(certificate)} is not meant for {_PURPOSE_WORDS[purpose]} "
            "(its extended key usage does not allow it)."
        )
    key_usage = _extension(certificate, x509.KeyUsage)
    if purpose == "document" and not (
        isinstance(key_usage, x509.KeyUsage)
        and (key_usage.digital_signature or key_usage.content_commitment)
    ):
        raise ChainInvalid(
            f"Certificate {_name(certificate)} may not make signatures (its key usage has "
            "neither digitalSignature nor nonRepudiation)."
        )


def _check_revocation(
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    crls: Sequence[x509.CertificateRevocationList],
    when: datetime.datetime,
) -> None:
    issuer_key = issuer.public_key()
    if not isinstance(issuer_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ChainInvalid(f"Certificate authority {_name(issuer)} uses an unsupported key type.")
    for crl in crls:
        if crl.issuer != certificate.issuer or not crl.is_signature_valid(issuer_key):
            continue
        next_update = crl.next_update_utc
        if next_update is not None and when > next_update:
            raise ChainInvalid(
                f"The revocation list of {_name(issuer)} is out of date (it should have been "
                f"renewed by {next_update:%Y-%m-%d %H:%M} UTC), so revocation cannot be checked."
            )
        entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        if entry is not None and entry.revocation_date_utc <= when:
            reason = _revocation_reason(entry)
            raise CertificateRevoked(
                f"Certificate {_name(certificate)} was revoked by {_name(issuer)} on "
                f"{entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC"
                + (f" (reason: {reason})." if reason else ".")
            )


def _revocation_reason(entry: x509.RevokedCertificate) -> str | None:
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None
    return re.sub(r"(?<!^)(?=[A-Z])", " ", reason.value).lower()


def _server_subject(
    certificate: x509.Certificate, host: str | None
) -> x509.DNSName | x509.IPAddress:
    if host is None:
        # No host to match: check the chain and serverAuth against the certificate's first name.
        alt_names = _extension(certificate, x509.SubjectAlternativeName)
        if not isinstance(alt_names, x509.SubjectAlternativeName) or not len(alt_names):
            raise ChainInvalid(
                f"Server certificate {_name(certificate)} names no host (no subjectAltName)."
            )
        host = str(next(iter(alt_names)).value)
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return x509.DNSName(host)
    except ValueError as error:
        raise ChainInvalid(f"{host!r} is not a host name that can be checked.") from error


def _document_eku(
    policy: verification.Policy, certificate: x509.Certificate, usages: x509.ExtendedKeyUsage
) -> None:
    if DOCUMENT_SIGNING_OID not in usages:
        raise ValueError("extended key usage lacks documentSigning")


def _not_a_ca(
    policy: verification.Policy,
    certificate: x509.Certificate,
    constraints: x509.BasicConstraints | None,
) -> None:
    if constraints is not None and constraints.ca:
        raise ValueError("basicConstraints.cA must not be asserted in an end-entity certificate")


def _end_entity_policy(purpose: Purpose | None) -> verification.ExtensionPolicy:
    criticality = verification.Criticality.AGNOSTIC
    if purpose == "client":
        # The stock policy insists on a subjectAltName; devices are named by their CN instead.
        return verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, criticality, None
        )
    policy = verification.ExtensionPolicy.permit_all().may_be_present(
        x509.BasicConstraints, criticality, _not_a_ca
    )
    if purpose == "document":
        policy = policy.require_present(x509.ExtendedKeyUsage, criticality, _document_eku)
    return policy


def _verify_with_cryptography(
    certificate: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: list[x509.Certificate],
    when: datetime.datetime,
    purpose: Purpose | None,
    host: str | None,
) -> None:
    builder = verification.PolicyBuilder().store(verification.Store(roots)).time(when)
    try:
        if purpose == "server":
            verifier = builder.build_server_verifier(_server_subject(certificate, host))
            verifier.verify(certificate, intermediates)
        else:
            client_verifier = builder.extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=_end_entity_policy(purpose),
            ).build_client_verifier()
            client_verifier.verify(certificate, intermediates)
    except verification.VerificationError as error:
        raise ChainInvalid(_explain(certificate, str(error), host)) from error


def _explain(certificate: x509.Certificate, detail: str, host: str | None) -> str:
    if "no matching subjectAltName" in detail and host is not None:
        return f"Certificate {_name(certificate)} is not valid for the host {host!r}."
    detail = re.sub(r"^validation failed: ", "", detail)
    detail = re.sub(r" \(encountered processing <Certificate\(.*\)>\)$", "", detail)
    return f"Certificate {_name(certificate)} did not pass chain validation: {detail}."
