"""Rekam's certificate authority.

A root CA, an issuing CA below it, TLS server, client and doctor (document-signing)
certificates, revocation lists, chain validation with readable reasons, hardened TLS contexts,
and :class:`PkiStore`, the on-disk layout under ``<data_dir>/pki``.

    >>> from rekam.pki import KeyAlgorithm, create_root_ca, create_issuing_ca
    >>> from rekam.pki import issue_server_certificate, verify_chain
    >>> root = create_root_ca("Example Root", "Example Clinic", KeyAlgorithm.ECDSA_P256)
    >>> issuing = create_issuing_ca(root, "Example Issuing", "Example Clinic",
    ...                             KeyAlgorithm.ECDSA_P256)
    >>> server = issue_server_certificate(issuing, ["clinic.example", "10.0.0.5"],
    ...                                   KeyAlgorithm.ECDSA_P256)
    >>> verify_chain(server.certificate, server.chain, [root.certificate],
    ...              purpose="server", host="10.0.0.5")

Only ``cryptography`` and the standard library are used; nothing here knows of the web layer or
the database.
"""

from rekam.pki.authority import create_issuing_ca, create_root_ca
from rekam.pki.certificates import (
    DOCUMENT_SIGNING_OID,
    issue_client_certificate,
    issue_doctor_certificate,
    issue_doctor_certificate_for_key,
    issue_server_certificate,
)
from rekam.pki.errors import (
    CaAlreadyExists,
    CertificateExpired,
    CertificateNotFound,
    CertificateRevoked,
    ChainInvalid,
    InvalidCertificate,
    InvalidHostName,
    InvalidKey,
    InvalidSubject,
    KeyNotEncrypted,
    NotIssuedByAuthority,
    PkiError,
    TokenKeyError,
    WrongPassphrase,
)
from rekam.pki.hostnames import parse_host, parse_hosts
from rekam.pki.identity import (
    Identity,
    certificates_to_pem,
    load_certificate_pem,
    load_certificates_pem,
)
from rekam.pki.keys import (
    KeyAlgorithm,
    PrivateKey,
    encrypt_private_key_pem,
    generate_private_key,
    key_algorithm_of,
    load_private_key_pem,
)
from rekam.pki.revocation import CertificateRevocationList, RevocationReason, load_crl_pem
from rekam.pki.store import PkiStore
from rekam.pki.tls import TLS12_CIPHERS, client_tls_context, server_tls_context
from rekam.pki.verification import Purpose, verify_chain

__all__ = [
    "DOCUMENT_SIGNING_OID",
    "TLS12_CIPHERS",
    "CaAlreadyExists",
    "CertificateExpired",
    "CertificateNotFound",
    "CertificateRevocationList",
    "CertificateRevoked",
    "ChainInvalid",
    "Identity",
    "InvalidCertificate",
    "InvalidHostName",
    "InvalidKey",
    "InvalidSubject",
    "KeyAlgorithm",
    "KeyNotEncrypted",
    "NotIssuedByAuthority",
    "PkiError",
    "PkiStore",
    "PrivateKey",
    "Purpose",
    "RevocationReason",
    "TokenKeyError",
    "WrongPassphrase",
    "certificates_to_pem",
    "client_tls_context",
    "create_issuing_ca",
    "create_root_ca",
    "encrypt_private_key_pem",
    "generate_private_key",
    "issue_client_certificate",
    "issue_doctor_certificate",
    "issue_doctor_certificate_for_key",
    "issue_server_certificate",
    "key_algorithm_of",
    "load_certificate_pem",
    "load_certificates_pem",
    "load_crl_pem",
    "load_private_key_pem",
    "parse_host",
    "parse_hosts",
    "server_tls_context",
    "verify_chain",
]
