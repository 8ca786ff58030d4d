"""Reading and writing DICOM Part 10 files, with the checks that keep bad input out.

:func:`read_dicom` refuses what is not a DICOM file, files cut short, files over a size limit and
transfer syntaxes whose raw values Rekam does not read; it never guesses. :func:`write_dicom`
always writes a Part 10 file (preamble, file meta information) in Explicit VR Little Endian.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError

from rekam.dicom.errors import (
    DicomError,
    DicomFileTooLarge,
    NotDicom,
    TruncatedDicom,
    UnsupportedTransferSyntax,
)
from rekam.dicom.sop_classes import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    READABLE_TRANSFER_SYNTAXES,
)
from rekam.dicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__all__ = ["DEFAULT_MAX_FILE_BYTES", "dataset_to_bytes", "read_dicom", "write_dicom"]

#: Largest file :func:`read_dicom` accepts by default (a 12-lead ECG object is about 250 KB).
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024

_PREAMBLE = 128
_MAGIC = b"DICM"
_UNDEFINED = 0xFFFFFFFF
_LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                    b"UR", b"UT", b"UV"}  # fmt: skip
_ITEM = (0xFFFE, 0xE000)
_ITEM_END = (0xFFFE, 0xE00D)
_SEQUENCE_END = (0xFFFE, 0xE0DD)
_MAX_DEPTH = 32

Source = str | os.PathLike[str] | bytes | BinaryIO


def _load_bytes(source: Source, max_bytes: int) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        name = "The data"
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        name = path.name
        try:
            size = path.stat().st_size
        except FileNotFoundError as exc:
            raise DicomError(f"No file found at {path}.") from exc
        except OSError as exc:
            raise DicomError(f"{path} cannot be read: {exc.strerror}.") from exc
        if size > max_bytes:
            raise DicomFileTooLarge(_too_large(name, size, max_bytes))
        if not path.is_file():
            raise DicomError(f"{path} is not a file.")
        data = path.read_bytes()
    else:
        data = source.read(max_bytes + 1)
        name = "The data"
    if len(data) > max_bytes:
        raise DicomFileTooLarge(_too_large(name, len(data), max_bytes))
    return data, name


def _too_large(name: str, size: int, limit: int) -> str:
    return (
        f"{name} is {size / 1e6:.1f} MB, more than the {limit / 1e6:.0f} MB allowed for a DICOM "
        "object; it was not read."
    )


def read_dicom(source: Source, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Dataset:
    """Read a DICOM Part 10 file (path, bytes or binary stream) into a pydicom Dataset.

    Element values stay in their raw, as-stored form until used, which is what signature
    verification needs. Raises :class:`NotDicom`, :class:`TruncatedDicom`,
    :class:`DicomFileTooLarge` or :class:`UnsupportedTransferSyntax`.
    """
    data, name = _load_bytes(source, max_bytes)
    if len(data) < _PREAMBLE + 4 or data[_PREAMBLE : _PREAMBLE + 4] != _MAGIC:
        raise NotDicom(
            f"{name} is not a DICOM file (it lacks the 'DICM' marker of a DICOM Part 10 file)."
        )
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=False)
    except InvalidDicomError as exc:
        raise NotDicom(f"{name} is not a readable DICOM file: {exc}") from exc
    except (EOFError, OSError, struct.error) as exc:
        raise TruncatedDicom(f"{name} is incomplete: it ends in the middle of the data.") from exc
    except (ValueError, KeyError, NotImplementedError) as exc:
        raise NotDicom(f"{name} is not a readable DICOM file: {exc}") from exc
    meta = getattr(dataset, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if not syntax:
        raise NotDicom(f"{name} has no transfer syntax in its file meta information.")
    if syntax not in READABLE_TRANSFER_SYNTAXES:
        raise UnsupportedTransferSyntax(
            f"{name} is encoded as {_syntax_name(syntax)}; Rekam reads only "
            + " and ".join(READABLE_TRANSFER_SYNTAXES.values())
            + " objects. Convert it first (e.g. dcmconv +te)."
        )
    _check_complete(data, _dataset_offset(data, name), syntax == IMPLICIT_VR_LITTLE_ENDIAN, name)
    if len(dataset) == 0:
        raise NotDicom(f"{name} holds file meta information but no DICOM data set.")
    return dataset


def _syntax_name(uid: str) -> str:
    known = pydicom.uid.UID(uid)
    return f"{known.name} ({uid})" if known.is_transfer_syntax else repr(uid)


def _dataset_offset(data: bytes, name: str) -> int:
    """Offset of the data set: after the preamble, the marker and the (0002) group."""
    position = _PREAMBLE + 4
    while position + 8 <= len(data):
        group, _element = struct.unpack_from("<HH", data, position)
        if group != 0x0002:
            return position
        vr = data[position + 4 : position + 6]
        if vr in _LONG_LENGTH_VRS:
            if position + 12 > len(data):
                break
            (length,) = struct.unpack_from("<I", data, position + 8)
            position += 12 + length
        else:
            (length,) = struct.unpack_from("<H", data, position + 6)
            position += 8 + length
    if position > len(data):
        raise TruncatedDicom(f"{name} is incomplete: it ends inside its file meta information.")
    return position


def _check_complete(data: bytes, offset: int, implicit: bool, name: str) -> None:
    """Walk every element header and length: a value running past the end means truncation."""
    end = _walk(data, offset, len(data), implicit, name, depth=0, until=None)
    if end != len(data):
        raise TruncatedDicom(f"{name} is incomplete: it ends in the middle of an attribute.")


def _header(data: bytes, position: int, implicit: bool, name: str) -> tuple[int, int, bytes, int]:
    """(tag, value length, VR, header size) of the element at ``position``."""
    if position + 8 > len(data):
        raise TruncatedDicom(f"{name} is incomplete: it ends in the middle of an attribute.")
    group, element = struct.unpack_from("<HH", data, position)
    tag = (group << 16) | element
    if implicit or group == 0xFFFE:
        (length,) = struct.unpack_from("<I", data, position + 4)
        return tag, length, b"", 8
    vr = data[position + 4 : position + 6]
    if vr in _LONG_LENGTH_VRS:
        if position + 12 > len(data):
            raise TruncatedDicom(f"{name} is incomplete: it ends in the middle of an attribute.")
        (length,) = struct.unpack_from("<I", data, position + 8)
        return tag, length, vr, 12
    (length,) = struct.unpack_from("<H", data, position + 6)
    return tag, length, vr, 8


def _walk(
    data: bytes,
    position: int,
    end: int,
    implicit: bool,
    name: str,
    *,
    depth: int,
    until: int | None,
) -> int:
    if depth > _MAX_DEPTH:
        raise NotDicom(f"{name} nests sequences more than {_MAX_DEPTH} levels deep.")
    while position < end:
        tag, length, _vr, size = _header(data, position, implicit, name)
        position += size
        if until is not None and tag == until:
            return position
        if length != _UNDEFINED:
            position += length
            if position > end:
                raise TruncatedDicom(
                    f"{name} is incomplete: it ends in the middle of an attribute."
                )
            continue
        # Undefined length: a sequence, an item, or encapsulated data; walk to its delimiter.
        if tag == (_ITEM[0] << 16 | _ITEM[1]):
            position = _walk(
                data, position, end, implicit, name, depth=depth + 1,
                until=_ITEM_END[0] << 16 | _ITEM_END[1],
            )  # fmt: skip
        else:
            position = _walk(
                data, position, end, implicit, name, depth=depth + 1,
                until=_SEQUENCE_END[0] << 16 | _SEQUENCE_END[1],
            )  # fmt: skip
    if until is not None:
        raise TruncatedDicom(f"{name} is incomplete: a sequence is not closed.")
    return position


def write_dicom(dataset: Dataset, target: str | os.PathLike[str] | BinaryIO) -> None:
    """Write ``dataset`` as a DICOM Part 10 file in Explicit VR Little Endian."""
    meta = getattr(dataset, "file_meta", None) or FileMetaDataset()
    if "SOPClassUID" not in dataset or "SOPInstanceUID" not in dataset:
        raise DicomError("The object has no SOP Class or SOP Instance UID; it cannot be written.")
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = EXPLICIT_VR_LITTLE_ENDIAN
    meta.ImplementationClassUID = meta.get("ImplementationClassUID", IMPLEMENTATION_CLASS_UID)
    if "ImplementationVersionName" not in meta:
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    dataset.file_meta = meta
    pydicom.dcmwrite(
        target, dataset, implicit_vr=False, little_endian=True, enforce_file_format=True
    )


def dataset_to_bytes(dataset: Dataset) -> bytes:
    """The Part 10 file of ``dataset`` (Explicit VR Little Endian) as bytes."""
    buffer = io.BytesIO()
    write_dicom(dataset, buffer)
    return buffer.getvalue()
