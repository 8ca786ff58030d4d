"""DICOM unique identifiers under one organisation root.

A new UID is ``<root>.<decimal of a random UUID>``, the ``2.25.`` scheme of PS3.5 B.2 applied under
the organisation's own root: at most 64 characters, digits and dots only, no component with a
leading zero.
"""

from __future__ import annotations

import re
import uuid

from rekam.dicom.errors import InvalidUidRoot

#: The ISO/ITU root for UUID-derived UIDs (PS3.5 B.2); used when no organisation root is set.
UUID_UID_ROOT = "2.25"

#: Rekam's Implementation Class UID (file meta information), a fixed UUID-derived UID.
IMPLEMENTATION_CLASS_UID = "2.25.178049326545392305011634452346466025489"
IMPLEMENTATION_VERSION_NAME = "REKAM_0_1"

MAX_UID_LENGTH = 64
#: Fewest random decimal digits a generated UID may carry (about 66 bits).
_MIN_RANDOM_DIGITS = 20

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_valid_uid(value: str) -> bool:
    """True for a syntactically valid DICOM UID (digits and dots, ≤ 64 chars, no leading zeros)."""
    return len(value) <= MAX_UID_LENGTH and bool(_UID.fullmatch(value))


def check_uid_root(root: str) -> str:
    """Return ``root`` when it can prefix generated UIDs, else raise :class:`InvalidUidRoot`."""
    text = root.strip().rstrip(".") if isinstance(root, str) else ""
    if not text or not _UID.fullmatch(text):
        raise InvalidUidRoot(
            f"{root!r} is not a DICOM UID root: use digits separated by dots, such as "
            "'1.2.826.0.1.3680043.10.1234'."
        )
    if len(text) + 1 + _MIN_RANDOM_DIGITS > MAX_UID_LENGTH:
        raise InvalidUidRoot(
            f"The UID root {text!r} is too long ({len(text)} characters): at most "
            f"{MAX_UID_LENGTH - 1 - _MIN_RANDOM_DIGITS} characters leave room for unique suffixes."
        )
    return text


def generate_uid(root: str = UUID_UID_ROOT) -> str:
    """A new UID under ``root`` from a random UUID (``root`` + ``.`` + its integer value).

    When the root is longer than 24 characters the UUID's integer is reduced to the digits that
    still fit in 64 characters (never fewer than 20).
    """
    prefix = check_uid_root(root)
    room = MAX_UID_LENGTH - len(prefix) - 1
    value = uuid.uuid4().int % (10**room)
    return f"{prefix}.{value}"
