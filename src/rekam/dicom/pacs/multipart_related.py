"""``multipart/related`` bodies as DICOMweb uses them (STOW-RS requests, WADO-RS answers)."""

from __future__ import annotations

import re
import secrets

from rekam.dicom.pacs.errors import PacsResponseInvalid

__all__ = ["encode_multipart_related", "split_multipart_related"]

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def encode_multipart_related(parts: list[bytes], part_type: str) -> tuple[bytes, str]:
    """The body and its Content-Type header for ``parts`` of media type ``part_type``."""
    boundary = f"rekam-{secrets.token_hex(16)}"
    chunks: list[bytes] = []
    for part in parts:
        chunks.append(f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode())
        chunks.append(part)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return b"".join(chunks), content_type


def split_multipart_related(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart body as (headers, content); raises PacsResponseInvalid."""
    if not content_type.lower().startswith("multipart/related"):
        raise PacsResponseInvalid(
            f"The PACS answered {content_type or 'without a content type'} where "
            "multipart/related was expected."
        )
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise PacsResponseInvalid("The PACS's multipart answer names no boundary.")
    delimiter = b"--" + match.group(1).encode()
    pieces = body.split(delimiter)
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise PacsResponseInvalid("The PACS's multipart answer is incomplete.")
    parts: list[tuple[dict[str, str], bytes]] = []
    for piece in pieces[1:-1]:
        piece = piece.removeprefix(b"\r\n")
        head, separator, content = piece.partition(b"\r\n\r\n")
        if not separator:
            raise PacsResponseInvalid("A part of the PACS's multipart answer has no headers.")
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, content.removesuffix(b"\r\n")))
    return parts
