"""The on-disk certificate authority under ``<data_dir>/pki``.

Layout (private keys are encrypted PKCS#8 PEM with mode 0600; everything else is public)::

    root.pem            root CA certificate, exported so browsers and clients can trust it
    root-key.pem        root CA key
    issuing.pem         issuing CA certificate
    issuing-key.pem     issuing CA key
    server.pem          TLS server certificate followed by the issuing CA certificate
    server-key.pem      TLS server key
    crl.pem             revocation list signed by the issuing CA
    issued/<serial>.pem every certificate issued by the issuing CA (public record)

Every file is written atomically (temporary file, then rename). ``server.pem`` and
``server-key.pem`` are two files, so a reader racing :meth:`PkiStore.reissue_server_certificate`
can see the new key with the old certificate for an instant; :meth:`PkiStore.load_server` and
:func:`rekam.pki.server_tls_context` detect the mismatch and raise, and a retry succeeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rekam.pki.authority import create_issuing_ca, create_root_ca
from rekam.pki.certificates import (
    issue_client_certificate,
    issue_doctor_certificate,
    issue_doctor_certificate_for_key,
    issue_server_certificate,
)
from rekam.pki.errors import (
    CaAlreadyExists,
    CertificateNotFound,
    InvalidCertificate,
    PkiError,
)
from rekam.pki.files import (
    PRIVATE_DIRECTORY_MODE,
    PRIVATE_FILE_MODE,
    PUBLIC_FILE_MODE,
    write_file_atomically,
)
from rekam.pki.hostnames import parse_hosts
from rekam.pki.identity import Identity, certificates_to_pem, load_certificates_pem
from rekam.pki.keys import (
    KeyAlgorithm,
    PrivateKey,
    PublicKey,
    encrypt_private_key_pem,
    key_algorithm_of,
    load_private_key_pem,
)
from rekam.pki.revocation import CertificateRevocationList, RevocationReason

ROOT_CA_NAME = "Rekam Root CA"
ISSUING_CA_NAME = "Rekam Issuing CA"


class PkiStore:
    """Rekam's CA on disk: create it once, then issue, reissue and revoke certificates."""

    def __init__(self, directory: Path, passphrase: bytes) -> None:
        if not isinstance(passphrase, bytes) or not passphrase:
            raise PkiError("The PKI passphrase must be non-empty bytes.")
        self.directory = Path(directory)
        self._passphrase = passphrase

    def __repr__(self) -> str:
        return f"PkiStore({str(self.directory)!r})"

    # -- paths -------------------------------------------------------------------------------

    @property
    def root_certificate_path(self) -> Path:
        return self.directory / "root.pem"

    @property
    def root_key_path(self) -> Path:
        return self.directory / "root-key.pem"

    @property
    def issuing_certificate_path(self) -> Path:
        return self.directory / "issuing.pem"

    @property
    def issuing_key_path(self) -> Path:
        return self.directory / "issuing-key.pem"

    @property
    def server_certificate_chain_path(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key_path(self) -> Path:
        return self.directory / "server-key.pem"

    @property
    def crl_path(self) -> Path:
        return self.directory / "crl.pem"

    @property
    def issued_directory(self) -> Path:
        return self.directory / "issued"

    def _ca_paths(self) -> tuple[Path, ...]:
        return (
            self.root_certificate_path,
            self.root_key_path,
            self.issuing_certificate_path,
            self.issuing_key_path,
        )

    # -- creation ----------------------------------------------------------------------------

    def exists(self) -> bool:
        """True when the root and issuing CA (certificates and keys) are all present."""
        return all(path.is_file() for path in self._ca_paths())

    def initialise(
        self,
        organization: str,
        hosts: Sequence[str],
        algorithm: KeyAlgorithm = KeyAlgorithm.RSA3072,
    ) -> None:
        """Create the root CA, the issuing CA, an empty CRL and a server certificate for ``hosts``.

        Refuses with :class:`CaAlreadyExists` when any CA file is already there: replacing a CA
        would silently invalidate every certificate it issued.
        """
        self._refuse_existing_ca()
        parse_hosts(hosts)  # fail on bad host names before the slow key generation
        root = create_root_ca(ROOT_CA_NAME, organization, algorithm)
        issuing = create_issuing_ca(root, ISSUING_CA_NAME, organization, algorithm)
        server = issue_server_certificate(issuing, hosts, algorithm)
        crl = CertificateRevocationList.create(issuing)
        self.directory.mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)
        self._refuse_existing_ca()
        try:
            self._write_key(self.root_key_path, root.private_key, overwrite=False)
            self._write_public(self.root_certificate_path, root.certificate, overwrite=False)
            self._write_key(self.issuing_key_path, issuing.private_key, overwrite=False)
            self._write_public(self.issuing_certificate_path, issuing.certificate, overwrite=False)
        except FileExistsError as error:
            raise CaAlreadyExists(
                f"Another process created a certificate authority in {self.directory} at the "
                "same time; remove the partial files before trying again."
            ) from error
        write_file_atomically(self.crl_path, crl.to_pem(), mode=PUBLIC_FILE_MODE)
        self._save_server(server)

    def _refuse_existing_ca(self) -> None:
        present = [path.name for path in self._ca_paths() if path.exists()]
        if present:
            raise CaAlreadyExists(
                f"A certificate authority already exists in {self.directory} "
                f"({', '.join(present)}); it will not be overwritten."
            )

    # -- loading -----------------------------------------------------------------------------

    def load_root(self) -> Identity:
        """The root CA certificate and its (decrypted) key."""
        certificate = self._read_single_certificate(self.root_certificate_path, "root CA")
        return self._identity(certificate, self.root_key_path, ())

    def load_root_certificate(self) -> x509.Certificate:
        """Only the public root certificate (no passphrase needed)."""
        return self._read_single_certificate(self.root_certificate_path, "root CA")

    def load_issuing_ca(self) -> Identity:
        """The issuing CA certificate and its key."""
        certificate = self._read_single_certificate(self.issuing_certificate_path, "issuing CA")
        return self._identity(certificate, self.issuing_key_path, ())

    def load_server(self) -> Identity:
        """The TLS server certificate, its key and the issuing CA certificate."""
        certificates = self._read_certificates(self.server_certificate_chain_path, "server")
        return self._identity(certificates[0], self.server_key_path, tuple(certificates[1:]))

    # -- issuing -----------------------------------------------------------------------------

    def reissue_server_certificate(
        self, hosts: Sequence[str], algorithm: KeyAlgorithm | None = None
    ) -> Identity:
        """Issue a new server certificate and key for ``hosts`` and replace the current pair.

        The CA is kept. ``algorithm`` defaults to the algorithm of the current server key
        (RSA 3072 when there is none).
        """
        parse_hosts(hosts)
        if algorithm is None:
            algorithm = self._current_server_algorithm()
        server = issue_server_certificate(self.load_issuing_ca(), hosts, algorithm)
        self._save_server(server)
        return server

    def issue_doctor(
        self,
        full_name: str,
        licence_number: str,
        email: str | None = None,
        algorithm: KeyAlgorithm = KeyAlgorithm.RSA3072,
        valid_days: int = 730,
    ) -> Identity:
        """Issue a doctor's document-signing certificate from the issuing CA.

        The certificate is recorded under ``issued/``; the private key is only returned (the
        caller keeps it in the keyring or on a token).
        """
        doctor = issue_doctor_certificate(
            self.load_issuing_ca(), full_name, licence_number, email, algorithm, valid_days
        )
        self._record_issued(doctor.certificate)
        return doctor

    def issue_doctor_for_key(
        self,
        public_key: PublicKey,
        full_name: str,
        licence_number: str,
        email: str | None = None,
        valid_days: int = 730,
    ) -> x509.Certificate:
        """Issue a doctor's certificate for a key kept elsewhere (e.g. generated in a token)."""
        certificate = issue_doctor_certificate_for_key(
            self.load_issuing_ca(), public_key, full_name, licence_number, email, valid_days
        )
        self._record_issued(certificate)
        return certificate

    def issued_certificate(self, serial_number: int) -> x509.Certificate:
        """The certificate with this serial number recorded under ``issued/``."""
        path = self.issued_directory / f"{serial_number:040x}.pem"
        if serial_number <= 0 or not path.is_file():
            raise CertificateNotFound(
                f"No certificate with serial number {serial_number:x} was issued by this CA."
            )
        return self._read_single_certificate(path, "issued")

    def issue_client(
        self,
        common_name: str,
        algorithm: KeyAlgorithm = KeyAlgorithm.RSA3072,
        valid_days: int = 730,
    ) -> Identity:
        """Issue a TLS client certificate (device, broker) from the issuing CA."""
        client = issue_client_certificate(
            self.load_issuing_ca(), common_name, algorithm, valid_days
        )
        self._record_issued(client.certificate)
        return client

    def issued_certificates(self) -> list[x509.Certificate]:
        """Every certificate recorded under ``issued/``, oldest first."""
        if not self.issued_directory.is_dir():
            return []
        certificates = [
            self._read_single_certificate(path, "issued")
            for path in self.issued_directory.glob("*.pem")
        ]
        return sorted(certificates, key=lambda cert: cert.not_valid_before_utc)

    # -- revocation --------------------------------------------------------------------------

    def load_crl(self) -> CertificateRevocationList:
        """The current revocation list (checked against the issuing CA's signature)."""
        issuing = self.load_issuing_ca()
        if not self.crl_path.exists():
            return CertificateRevocationList.create(issuing)
        return CertificateRevocationList.from_pem(issuing, self.crl_path.read_bytes())

    def revoke(
        self,
        certificate: x509.Certificate,
        reason: RevocationReason = RevocationReason.unspecified,
    ) -> CertificateRevocationList:
        """Revoke a certificate issued by the issuing CA and write the re-signed ``crl.pem``."""
        crl = self.load_crl()
        crl.revoke(certificate, reason)
        write_file_atomically(self.crl_path, crl.to_pem(), mode=PUBLIC_FILE_MODE)
        return crl

    def renew_crl(self) -> CertificateRevocationList:
        """Re-sign ``crl.pem`` with a fresh next-update time (run before it goes stale)."""
        crl = self.load_crl()
        crl.renew()
        write_file_atomically(self.crl_path, crl.to_pem(), mode=PUBLIC_FILE_MODE)
        return crl

    # -- internals ---------------------------------------------------------------------------

    def _current_server_algorithm(self) -> KeyAlgorithm:
        if not self.server_certificate_chain_path.exists():
            return KeyAlgorithm.RSA3072
        certificate = self._read_certificates(self.server_certificate_chain_path, "server")[0]
        public_key = certificate.public_key()
        if isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            return key_algorithm_of(public_key)
        return KeyAlgorithm.RSA3072

    def _save_server(self, server: Identity) -> None:
        self._write_key(self.server_key_path, server.private_key)
        write_file_atomically(
            self.server_certificate_chain_path,
            server.certificate_chain_pem(),
            mode=PUBLIC_FILE_MODE,
        )
        self._record_issued(server.certificate)

    def _record_issued(self, certificate: x509.Certificate) -> None:
        self.issued_directory.mkdir(mode=PRIVATE_DIRECTORY_MODE, exist_ok=True)
        write_file_atomically(
            self.issued_directory / f"{certificate.serial_number:040x}.pem",
            certificates_to_pem([certificate]),
            mode=PUBLIC_FILE_MODE,
        )

    def _write_key(self, path: Path, key: PrivateKey, *, overwrite: bool = True) -> None:
        write_file_atomically(
            path,
            encrypt_private_key_pem(key, self._passphrase),
            mode=PRIVATE_FILE_MODE,
            overwrite=overwrite,
        )

    def _write_public(
        self, path: Path, certificate: x509.Certificate, *, overwrite: bool = True
    ) -> None:
        write_file_atomically(
            path,
            certificate.public_bytes(serialization.Encoding.PEM),
            mode=PUBLIC_FILE_MODE,
            overwrite=overwrite,
        )

    def _read_certificates(self, path: Path, what: str) -> list[x509.Certificate]:
        try:
            data = path.read_bytes()
        except FileNotFoundError as error:
            raise CertificateNotFound(
                f"The {what} certificate is missing from the PKI store ({path})."
            ) from error
        try:
            return load_certificates_pem(data)
        except InvalidCertificate as error:
            raise InvalidCertificate(f"The {what} certificate file {path} is damaged.") from error

    def _read_single_certificate(self, path: Path, what: str) -> x509.Certificate:
        certificates = self._read_certificates(path, what)
        if len(certificates) != 1:
            raise InvalidCertificate(
                f"The {what} certificate file {path} should hold one certificate, "
                f"not {len(certificates)}."
            )
        return certificates[0]

    def _identity(
        self, certificate: x509.Certificate, key_path: Path, chain: tuple[x509.Certificate, ...]
    ) -> Identity:
        try:
            data = key_path.read_bytes()
        except FileNotFoundError as error:
            raise CertificateNotFound(
                f"The private key {key_path.name} is missing from the PKI store ({key_path})."
            ) from error
        key = load_private_key_pem(data, self._passphrase)
        if key.public_key() != certificate.public_key():
            raise PkiError(
                f"The private key {key_path.name} does not belong to its certificate "
                "(a reissue may be in progress; try again)."
            )
        return Identity(certificate, key, chain)
