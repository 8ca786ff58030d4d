"""The MAC (hash) algorithms of DICOM signatures and which of them Rekam accepts."""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.primitives import hashes

from rekam.dicom.errors import SigningError

MacAlgorithm = Literal["SHA256", "SHA384", "SHA512"]

#: The MAC algorithms Rekam signs and verifies with (PS3.15 Table C.1-1 defined terms).
ACCEPTED_MAC_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}

#: Defined terms that exist in DICOM but that Rekam refuses, with the reason shown to people.
REFUSED_MAC_ALGORITHMS: dict[str, str] = {
    "RIPEMD160": "RIPEMD-160 is no longer accepted (DCMTK's default; sign with --mac-sha256)",
    "SHA1": "SHA-1 is broken for signatures",
    "MD5": "MD5 is broken for signatures",
}


def mac_algorithm_name(name: str) -> MacAlgorithm:
    """Normalise ``sha256``, ``SHA-256`` … to the DICOM defined term; refuse anything else."""
    term = name.strip().upper().replace("-", "").replace("_", "") if isinstance(name, str) else ""
    if term == "SHA256":
        return "SHA256"
    if term == "SHA384":
        return "SHA384"
    if term == "SHA512":
        return "SHA512"
    raise SigningError(
        f"{name!r} is not a MAC algorithm Rekam signs with; use SHA256, SHA384 or SHA512."
    )


def hash_for(term: str) -> hashes.HashAlgorithm:
    """A fresh ``cryptography`` hash object for an accepted defined term."""
    return ACCEPTED_MAC_ALGORITHMS[term]()


def digest(data: bytes, term: str) -> bytes:
    """The hash of ``data`` with the MAC algorithm ``term`` (the DICOM "MAC")."""
    hasher = hashes.Hash(hash_for(term))
    hasher.update(data)
    return hasher.finalize()
