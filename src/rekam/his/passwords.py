"""Password hashing (Argon2id) and the password policy."""

from __future__ import annotations

import secrets
import string
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from rekam.his.errors import WeakPassword

MIN_LENGTH = 12
MAX_LENGTH = 128

# OWASP's Argon2id configuration (19 MiB, 2 passes, 1 lane).
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
# A hash of a random password: verifying against it costs the same as a real verification,
# so an unknown user name takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(24))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant-work verification; an absent hash still costs one Argon2id run."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    text = resources.files("rekam.his").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


def check_password_policy(password: str, username: str = "") -> None:
    """Raise WeakPassword with a readable reason when ``password`` is not acceptable."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(
            f"the password must have at least {MIN_LENGTH} characters",
            field="password",
            key="password.min_length",
            minimum=MIN_LENGTH,
        )
    if len(password) > MAX_LENGTH:
        raise WeakPassword(
            f"the password must have at most {MAX_LENGTH} characters",
            field="password",
            key="password.max_length",
            maximum=MAX_LENGTH,
        )
    lowered = password.lower()
    if username and username.lower() in lowered:
        raise WeakPassword(
            "the password must not contain the user name", field="password", key="password.username"
        )
    if len(set(password)) < 5:
        raise WeakPassword(
            "the password repeats too few different characters",
            field="password",
            key="password.variety",
        )
    stripped = lowered.rstrip(string.digits + string.punctuation)
    if lowered in _common_passwords() or stripped in _common_passwords():
        raise WeakPassword(
            "the password is too common; choose a less guessable one",
            field="password",
            key="password.common",
        )


def generate_password() -> str:
    """A random one-time password that passes the policy (about 95 bits)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))
        try:
            check_password_policy(candidate)
        except WeakPassword:
            continue
        return candidate
