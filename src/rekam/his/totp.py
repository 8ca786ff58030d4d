"""Time-based one-time passwords (RFC 6238), the optional second factor."""

from __future__ import annotations

import base64
import os
import urllib.parse
from datetime import datetime

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP

DIGITS = 6
STEP_SECONDS = 30
ISSUER = "Rekam"


def new_totp_secret() -> bytes:
    return os.urandom(20)


def _totp(secret: bytes) -> TOTP:
    # SHA-1 is what every authenticator app implements for TOTP (RFC 6238 default).
    return TOTP(secret, DIGITS, SHA1(), STEP_SECONDS)  # noqa: S303


def totp_code(secret: bytes, at: datetime) -> str:
    return _totp(secret).generate(int(at.timestamp())).decode()


def matching_totp_step(secret: bytes, code: str, at: datetime) -> int | None:
    """The time step ``code`` belongs to (now, or one step either side), else None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    now = int(at.timestamp())
    totp = _totp(secret)
    for offset in (0, -1, 1):
        moment = now + offset * STEP_SECONDS
        try:
            totp.verify(code.encode(), moment)
        except InvalidToken:
            continue
        return moment // STEP_SECONDS
    return None


def provisioning_uri(secret: bytes, account_name: str) -> str:
    label = urllib.parse.quote(f"{ISSUER}:{account_name}")
    params = urllib.parse.urlencode(
        {
            "secret": base64.b32encode(secret).decode().rstrip("="),
            "issuer": ISSUER,
            "digits": DIGITS,
            "period": STEP_SECONDS,
        }
    )
    return f"otpauth://totp/{label}?{params}"
