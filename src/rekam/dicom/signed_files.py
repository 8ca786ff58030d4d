"""Signing a DICOM file into a new file, re-encoding nothing that was already in it.

A signature adds two top-level attributes, the MAC Parameters Sequence (4FFE,0001) and the
Digital Signatures Sequence (FFFA,FFFA). When the source is Explicit VR Little Endian and carries
no signature yet, the signed file is the source's bytes with those two elements inserted at their
places in tag order: every other byte, file meta information included, stays exactly as it was
(which is also what keeps earlier signatures and private attributes intact). In any other case the
signed data set is written in full by :func:`rekam.dicom.write_dicom`.

    >>> uid = sign_file("ecg.dcm", "ecg-signed.dcm", doctor)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, cast

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element

from rekam.dicom.errors import DicomError
from rekam.dicom.files import DEFAULT_MAX_FILE_BYTES, read_dicom, write_dicom
from rekam.dicom.signature_stream import DIGITAL_SIGNATURES_SEQUENCE, MAC_PARAMETERS_SEQUENCE
from rekam.dicom.signers import DicomSigner
from rekam.dicom.signing import sign_dataset
from rekam.dicom.sop_classes import EXPLICIT_VR_LITTLE_ENDIAN
from rekam.pki import Identity

__all__ = ["sign_file"]

_SIGNATURE_TAGS = (MAC_PARAMETERS_SEQUENCE, DIGITAL_SIGNATURES_SEQUENCE)
_LONG_HEADER_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)


def sign_file(
    source: str | os.PathLike[str] | bytes,
    target: str | os.PathLike[str],
    signer: Identity | DicomSigner,
    *,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    **options: Any,
) -> str:
    """Read ``source``, add one signature (``options`` as for :func:`sign_dataset`), write
    ``target``; return the new Digital Signature UID. The source is never modified."""
    original = source if isinstance(source, bytes) else _read(Path(source), max_bytes)
    dataset = read_dicom(original, max_bytes=max_bytes)
    first_signature = all(tag not in dataset for tag in _SIGNATURE_TAGS)
    uid = sign_dataset(dataset, signer, **options)
    spliced = _spliced(original, dataset) if first_signature else None
    if spliced is None:
        write_dicom(dataset, target)
    else:
        Path(target).write_bytes(spliced)  # as write_dicom writes: in place, no fsync
    return uid


def _read(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, read once; read_dicom explains whatever is wrong with the path."""
    try:
        if path.stat().st_size <= max_bytes and path.is_file():
            return path.read_bytes()
    except OSError:
        pass
    read_dicom(path, max_bytes=max_bytes)  # raises the readable error (missing, too large ...)
    raise DicomError(f"{path} cannot be read.")


def _spliced(original: bytes, dataset: Dataset) -> bytes | None:
    """The source bytes with the two new signature elements inserted; None when not possible."""
    meta = getattr(dataset, "file_meta", None)
    if meta is None or str(meta.get("TransferSyntaxUID", "")) != EXPLICIT_VR_LITTLE_ENDIAN:
        return None
    pieces: list[tuple[int, bytes]] = []
    for tag in _SIGNATURE_TAGS:
        offset = _insertion_offset(original, dataset, tag)
        if offset is None:
            return None
        pieces.append((offset, _encoded(dataset, tag)))
    parts, position = [], 0
    for offset, encoded in sorted(pieces, key=lambda piece: piece[0]):
        parts += [original[position:offset], encoded]
        position = offset
    parts.append(original[position:])
    return b"".join(parts)


def _insertion_offset(original: bytes, dataset: Dataset, tag: int) -> int | None:
    """Where the element ``tag`` goes: before the first later top-level element, else the end."""
    later = [t for t in sorted(dataset.keys()) if t > tag and t not in _SIGNATURE_TAGS]
    if not later:
        return len(original)
    anchor = later[0]
    element = cast("RawDataElement | DataElement", dataset.get_item(anchor))
    if not isinstance(element, RawDataElement) or element.VR is None:
        return None  # parsed while reading (undefined length): its offset is not known
    header = 12 if str(element.VR) in _LONG_HEADER_VRS else 8
    offset = element.value_tell - header
    if offset < 0 or original[offset : offset + 4] != struct.pack(
        "<HH", anchor >> 16, anchor & 0xFFFF
    ):
        return None
    return offset


def _encoded(dataset: Dataset, tag: int) -> bytes:
    """The element as :func:`rekam.dicom.write_dicom` would write it (Explicit VR LE)."""
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = False
    write_data_element(buffer, dataset[tag], dataset._character_set)
    return buffer.getvalue()
