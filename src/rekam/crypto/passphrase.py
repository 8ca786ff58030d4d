"""The installation passphrase that seals Rekam's keys at rest.

In the embedded default, ``rekam init`` generates a random passphrase into a file readable only by
its owner (``<data_dir>/secrets/passphrase``). Sites that keep the passphrase elsewhere set
``REKAM_PASSPHRASE`` or ``REKAM_PASSPHRASE_FILE`` (for example a file on a separate volume or a
service-manager credential) instead; a PKCS#11 token replaces it for key-encryption keys.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from rekam.crypto.errors import PassphraseError
from rekam.crypto.private_files import write_private_file

MINIMUM_LENGTH = 16


def create_passphrase_file(path: Path) -> bytes:
    """Generate a random passphrase (256 bits) into ``path`` and return it."""
    if path.exists():
        raise PassphraseError(f"refusing to overwrite the existing passphrase file {path}")
    passphrase = secrets.token_urlsafe(32).encode()
    write_private_file(path, passphrase + b"\n")
    return passphrase


def read_passphrase_file(path: Path) -> bytes:
    """Read a passphrase file, refusing ones others can read."""
    try:
        return check_passphrase(read_secret_file(path, "passphrase"))
    except FileNotFoundError as exc:
        raise PassphraseError(
            f"the passphrase file {path} is missing: run 'rekam init' or set REKAM_PASSPHRASE"
        ) from exc


def read_secret_file(path: Path, what: str) -> bytes:
    """Read a file holding a secret (passphrase, token PIN, Vault token), refusing files other
    users can read. Raises FileNotFoundError when absent."""
    mode = path.stat().st_mode
    if mode & 0o077:
        raise PassphraseError(
            f"the {what} file {path} is readable by other users; run: chmod 600 {path}"
        )
    secret = path.read_bytes().strip()
    if not secret:
        raise PassphraseError(f"the {what} file {path} is empty")
    return secret


def check_passphrase(passphrase: bytes) -> bytes:
    if len(passphrase) < MINIMUM_LENGTH:
        raise PassphraseError(f"the passphrase must be at least {MINIMUM_LENGTH} characters long")
    return passphrase
