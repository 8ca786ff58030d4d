"""Object names: opaque ids (canonical lowercase UUIDs), never patient data, never paths."""

from __future__ import annotations

import re
import uuid

from rekam.store.blobs.errors import InvalidBlobName

_NAME = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PREFIX = re.compile(r"[0-9a-f-]{0,36}")


def new_blob_name() -> str:
    """A fresh random object name."""
    return str(uuid.uuid4())


def is_blob_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def validate_blob_name(name: object) -> str:
    """Return ``name`` if it is a canonical lowercase UUID; raise InvalidBlobName otherwise."""
    if not is_blob_name(name):
        shown = repr(name)[:60]
        raise InvalidBlobName(
            f"refused object name {shown}: stored files are named by a lowercase UUID only"
        )
    assert isinstance(name, str)
    return name


def validate_name_prefix(prefix: object) -> str:
    """A prefix for listing: the beginning of a UUID (lowercase hex digits and hyphens)."""
    if not isinstance(prefix, str) or _PREFIX.fullmatch(prefix) is None:
        shown = repr(prefix)[:60]
        raise InvalidBlobName(f"refused name prefix {shown}: use the beginning of a lowercase UUID")
    return prefix
