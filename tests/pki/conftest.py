"""Shared certificate hierarchies for the pki tests.

RSA 3072 key generation is slow, so each hierarchy is built once per test session.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from rekam.pki import (
    Identity,
    KeyAlgorithm,
    PkiStore,
    certificates_to_pem,
    create_issuing_ca,
    create_root_ca,
    issue_client_certificate,
    issue_doctor_certificate,
    issue_server_certificate,
)

PASSPHRASE = b"correct horse battery staple"
SERVER_HOSTS = ["localhost", "rekam.clinic.example", "127.0.0.1", "::1"]


@dataclass(frozen=True)
class Hierarchy:
    algorithm: KeyAlgorithm
    root: Identity
    issuing: Identity
    server: Identity
    doctor: Identity
    client: Identity
    files: Path

    def path(self, name: str) -> Path:
        return self.files / name


def write_pem(path: Path, identity_or_pem: Identity | bytes) -> Path:
    if isinstance(identity_or_pem, Identity):
        path.write_bytes(certificates_to_pem([identity_or_pem.certificate]))
    else:
        path.write_bytes(identity_or_pem)
    return path


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the openssl command-line tool (a peer implementation, not our code)."""
    return subprocess.run(
        ["openssl", *(str(arg) for arg in args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def _build(algorithm: KeyAlgorithm, directory: Path) -> Hierarchy:
    root = create_root_ca("Test Root CA", "Test Clinic", algorithm)
    issuing = create_issuing_ca(root, "Test Issuing CA", "Test Clinic", algorithm)
    server = issue_server_certificate(issuing, SERVER_HOSTS, algorithm)
    doctor = issue_doctor_certificate(
        issuing, "Dr. Siti Rahma", "STR-12345", "siti.rahma@clinic.example", algorithm
    )
    client = issue_client_certificate(issuing, "ecg-gateway-01", algorithm)
    hierarchy = Hierarchy(algorithm, root, issuing, server, doctor, client, directory)
    for name in ("root", "issuing", "server", "doctor", "client"):
        write_pem(directory / f"{name}.pem", getattr(hierarchy, name))
    return hierarchy


@pytest.fixture(scope="session", params=list(KeyAlgorithm), ids=lambda a: str(a))
def hierarchy(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Hierarchy:
    algorithm: KeyAlgorithm = request.param
    return _build(algorithm, tmp_path_factory.mktemp(f"hierarchy-{algorithm}"))


@pytest.fixture(scope="session")
def ec_hierarchy(tmp_path_factory: pytest.TempPathFactory) -> Hierarchy:
    return _build(KeyAlgorithm.ECDSA_P256, tmp_path_factory.mktemp("ec-hierarchy"))


@pytest.fixture(scope="session")
def foreign_root() -> Identity:
    """Another CA that uses exactly the same names as ours (an impostor)."""
    return create_root_ca("Test Root CA", "Test Clinic", KeyAlgorithm.ECDSA_P256)


@pytest.fixture(scope="session", params=list(KeyAlgorithm), ids=lambda a: str(a))
def initialised_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> PkiStore:
    """A store initialised once per algorithm; tests must not modify it."""
    store = PkiStore(tmp_path_factory.mktemp("store") / "pki", PASSPHRASE)
    store.initialise("Klinik Sehat", ["localhost", "127.0.0.1"], request.param)
    return store


def private_pem(identity: Identity) -> bytes:
    """Plaintext PKCS#8, only for feeding test peers."""
    return identity.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
