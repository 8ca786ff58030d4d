"""The byte stream a DICOM digital signature covers (PS3.15 C.1, as DCMTK computes it).

For the top-level attributes listed in Data Elements Signed, in ascending tag order, each element
is encoded in Explicit VR Little Endian whatever the object's transfer syntax: tag, VR, reserved
bytes where the VR has them, length and value padded to even length. Sequences are hashed
without lengths: tag, ``SQ``, ``00 00``, then each item as the item tag followed by its elements,
then the sequence delimitation tag; no lengths and no item delimiters, so explicit and undefined
lengths hash alike. Group lengths, (0008,0001), groups below 0008, group FFFA, (4FFE,0001),
(FFFC,FFFC), elements with VR UN and sequences containing a UN element are never hashed. The
signature item's own attributes, except the certificate, signature and timestamp, come last.

Values are taken raw, exactly as stored, whenever the data set was read from a file; only
elements created in memory are encoded by pydicom.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import cast

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr_element, write_data_element
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from rekam.dicom.errors import DicomError

__all__ = [
    "DIGITAL_SIGNATURES_SEQUENCE",
    "MAC_PARAMETERS_SEQUENCE",
    "NotHashable",
    "is_signable_tag",
    "signable_top_level_elements",
    "signable_top_level_tags",
    "signature_item_stream",
    "signed_elements_stream",
]

MAC_PARAMETERS_SEQUENCE = 0x4FFE0001
DIGITAL_SIGNATURES_SEQUENCE = 0xFFFAFFFA
_LENGTH_TO_END = 0x00080001
_ENCRYPTED_ATTRIBUTES = 0xFFFCFFFC
#: Signature item attributes left out of the hash (PS3.15 C.1, steps c–d).
_UNHASHED_SIGNATURE_TAGS = frozenset({0x04000115, 0x04000120, 0x04000305, 0x04000310})

_ITEM_TAG = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0"
_LONG_LENGTH_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
_BINARY_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SL", "SS", "SV", "UL", "US", "UV", "FL", "FD", "AT"}
)


class NotHashable(DicomError):
    """An element cannot be put in the signature stream (e.g. a raw value pydicom cannot parse)."""


def is_signable_tag(tag: int) -> bool:
    """False for the tags a DICOM signature never covers, at any nesting level."""
    group, element = tag >> 16, tag & 0xFFFF
    return not (
        element == 0x0000
        or group < 0x0008
        or group in (0xFFFA, 0xFFFE)
        or tag in (_LENGTH_TO_END, MAC_PARAMETERS_SEQUENCE, _ENCRYPTED_ATTRIBUTES)
    )


def signable_top_level_tags(dataset: Dataset, *, include_private: bool = False) -> list[BaseTag]:
    """The top-level tags of ``dataset`` a new signature covers by default.

    Every signable standard attribute, excluding UN elements and sequences that contain one.
    Private attributes are left out unless asked for: they become UN after an Implicit VR hop,
    which would break the signature.
    """
    return [tag for tag, _ in signable_top_level_elements(dataset, include_private=include_private)]


def signable_top_level_elements(
    dataset: Dataset, *, include_private: bool = False
) -> list[tuple[BaseTag, bytes]]:
    """Like :func:`signable_top_level_tags`, with each element's hashed bytes.

    Joined in order they are exactly :func:`signed_elements_stream` for those tags, so a signer
    that covers the default set encodes every element once.
    """
    elements = []
    for tag in sorted(dataset.keys()):
        if not is_signable_tag(tag) or (tag.is_private and not include_private):
            continue
        encoded = _encode(dataset, tag, strict=False)
        if encoded is not None:
            elements.append((tag, encoded))
    return elements


def signed_elements_stream(dataset: Dataset, tags: Iterable[int]) -> bytes:
    """The hashed bytes for the top-level ``tags`` (those absent from ``dataset`` add nothing)."""
    parts = []
    for tag in sorted({int(t) for t in tags}):
        if not is_signable_tag(tag) or tag not in dataset:
            continue
        encoded = _encode(dataset, BaseTag(tag), strict=True)
        if encoded is not None:
            parts.append(encoded)
    return b"".join(parts)


def signature_item_stream(item: Dataset) -> bytes:
    """The hashed bytes of a Digital Signatures Sequence item (all but certificate/signature)."""
    parts = []
    for tag in sorted(item.keys()):
        if tag in _UNHASHED_SIGNATURE_TAGS or not is_signable_tag(tag):
            continue
        encoded = _encode(item, tag, strict=True)
        if encoded is not None:
            parts.append(encoded)
    return b"".join(parts)


def _resolve(dataset: Dataset, tag: BaseTag) -> tuple[str, RawDataElement | DataElement]:
    """The element at ``tag`` and its explicit VR, without converting the stored raw value."""
    # pydicom's annotations promise a converted DataElement; read from a file it is raw.
    element = cast("RawDataElement | DataElement | None", dataset.get_item(tag))
    if element is None:
        raise NotHashable(f"Attribute {Tag(tag)} is missing.")
    if isinstance(element, RawDataElement):
        if element.VR is not None:  # None when read from an Implicit VR source
            return str(element.VR), element
        # Implicit VR source: the data dictionary gives the VR; private attributes are UN.
        if tag.is_private:
            return "UN", element
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return "UN", element
        if " or " in vr:
            try:
                converted = convert_raw_data_element(element, ds=dataset)
                vr = str(correct_ambiguous_vr_element(converted, dataset, True).VR)
            except Exception as exc:  # pydicom raises many kinds on unparseable values
                raise NotHashable(
                    f"The value representation of attribute {Tag(tag)} cannot be resolved."
                ) from exc
        return vr, element
    if isinstance(element, DataElement):
        vr = str(element.VR)
        if " or " in vr:
            vr = str(correct_ambiguous_vr_element(element, dataset, True).VR)
        return vr, element
    raise NotHashable(f"Attribute {Tag(tag)} is not a data element.")


def _encode(dataset: Dataset, tag: BaseTag, *, strict: bool) -> bytes | None:
    """Explicit VR LE bytes of one element as hashed, or None when it is not signable (UN)."""
    vr, element = _resolve(dataset, tag)
    if vr == "UN":
        return None
    if vr == "SQ":
        return _encode_sequence(dataset, tag, element, strict=strict)
    value = _raw_value(element, vr, dataset)
    if len(value) % 2:
        value += b"\x00" if vr in _BINARY_VRS or vr == "UI" else b" "
    header = struct.pack("<HH", tag.group, tag.element) + vr.encode("ascii")
    if vr in _LONG_LENGTH_VRS:
        header += struct.pack("<HI", 0, len(value))
    else:
        if len(value) > 0xFFFF:
            raise NotHashable(f"Attribute {Tag(tag)} is too long for its VR {vr}.")
        header += struct.pack("<H", len(value))
    return header + value


def _raw_value(element: RawDataElement | DataElement, vr: str, dataset: Dataset) -> bytes:
    if isinstance(element, RawDataElement):
        if not element.is_little_endian:
            raise NotHashable("Big endian data cannot be verified.")
        return bytes(element.value or b"")
    # Created in memory: let pydicom encode it exactly as an Explicit VR LE file would.
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = False
    if vr != element.VR:
        element = DataElement(element.tag, vr, element.value)
    encodings = dataset.get("SpecificCharacterSet") or dataset._character_set
    write_data_element(buffer, element, encodings)
    encoded = buffer.getvalue()
    header = 12 if vr in _LONG_LENGTH_VRS else 8
    return encoded[header:]


def _encode_sequence(
    dataset: Dataset, tag: BaseTag, element: RawDataElement | DataElement, *, strict: bool
) -> bytes | None:
    if isinstance(element, RawDataElement):
        if element.is_little_endian and not element.is_implicit_VR and element.value is not None:
            try:
                return _raw_sequence_stream(tag, bytes(element.value), 0)
            except _NeedsParsing:
                pass  # unusual layout: let pydicom parse it below
        try:
            items = convert_raw_data_element(element, ds=dataset).value
        except Exception as exc:  # pydicom raises many kinds on damaged sequences
            raise NotHashable(f"The sequence {Tag(tag)} cannot be read: it is damaged.") from exc
    else:
        items = element.value
    if not isinstance(items, Sequence | list):
        raise NotHashable(f"Attribute {Tag(tag)} is not a sequence.")
    parts = [struct.pack("<HH", tag.group, tag.element), b"SQ\x00\x00"]
    for item in items:
        parts.append(_ITEM_TAG)
        for child in sorted(item.keys()):
            if not is_signable_tag(child):
                continue
            encoded = _encode(item, child, strict=strict)
            if encoded is None:
                # A UN element anywhere inside makes the whole sequence unsignable.
                return None
            parts.append(encoded)
    parts.append(_SEQUENCE_DELIMITER)
    return b"".join(parts)


class _NeedsParsing(Exception):
    """The raw bytes hold something the direct walk does not handle; pydicom parses them."""


_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_KNOWN_VRS = frozenset(
    {
        "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD",
        "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI",
        "UL", "UN", "UR", "US", "UT", "UV",
    }
)  # fmt: skip
_MAX_NESTING = 16


def _raw_sequence_stream(tag: int, value: bytes, depth: int) -> bytes | None:
    """The hashed bytes of an Explicit VR Little Endian sequence value, walked directly.

    Produces exactly what :func:`_encode_sequence` makes through pydicom's parser (items without
    lengths, children in tag order, no delimiters, None when a UN element is inside), without
    building data sets. Raises :class:`_NeedsParsing` on anything but the plain layout of
    defined-length items and elements, so that the general path decides.
    """
    if depth > _MAX_NESTING:
        raise _NeedsParsing
    parts = [struct.pack("<HH", tag >> 16, tag & 0xFFFF), b"SQ\x00\x00"]
    position, end = 0, len(value)
    unpack_from = struct.unpack_from
    while position < end:
        if end - position < 8:
            raise _NeedsParsing
        group, element, length = unpack_from("<HHI", value, position)
        if (group << 16 | element) != _ITEM or length == _UNDEFINED_LENGTH:
            raise _NeedsParsing
        position += 8
        item_end = position + length
        if item_end > end:
            raise _NeedsParsing
        children: list[tuple[int, bytes]] = []
        while position < item_end:
            if item_end - position < 8:
                raise _NeedsParsing
            group, element = unpack_from("<HH", value, position)
            child = group << 16 | element
            vr = value[position + 4 : position + 6].decode("latin-1")
            if vr not in _KNOWN_VRS or group == 0xFFFE:
                raise _NeedsParsing
            if vr in _LONG_LENGTH_VRS:
                if item_end - position < 12:
                    raise _NeedsParsing
                (length,) = unpack_from("<I", value, position + 8)
                position += 12
            else:
                (length,) = unpack_from("<H", value, position + 6)
                position += 8
            if length == _UNDEFINED_LENGTH or position + length > item_end:
                raise _NeedsParsing
            raw = value[position : position + length]
            position += length
            if not is_signable_tag(child):
                continue
            if vr == "UN":
                return None  # a UN element anywhere inside makes the sequence unsignable
            if vr == "SQ":
                nested = _raw_sequence_stream(child, raw, depth + 1)
                if nested is None:
                    return None
                children.append((child, nested))
                continue
            if length % 2:
                raw += b"\x00" if vr in _BINARY_VRS or vr == "UI" else b" "
            header = struct.pack("<HH", group, element) + vr.encode("ascii")
            if vr in _LONG_LENGTH_VRS:
                header += struct.pack("<HI", 0, len(raw))
            else:
                header += struct.pack("<H", len(raw))
            children.append((child, header + raw))
        if len({child for child, _ in children}) != len(children):
            raise _NeedsParsing  # a repeated tag: pydicom decides which one counts
        parts.append(_ITEM_TAG)
        parts.extend(encoded for _, encoded in sorted(children, key=lambda pair: pair[0]))
    parts.append(_SEQUENCE_DELIMITER)
    return b"".join(parts)
