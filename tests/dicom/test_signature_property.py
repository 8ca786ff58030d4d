"""Property: flipping any bit pattern of any byte inside a signed value is detected."""

from __future__ import annotations

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from rekam.dicom import (
    DicomError,
    SignatureStatus,
    dataset_to_bytes,
    read_dicom,
    sign_dataset,
    verify_dataset,
)

from .conftest import Pki


def _value_ranges(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) in the file of every signed leaf value, nested ones included."""
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
    signed = {int(t) for t in ds.MACParametersSequence[0].DataElementsSigned}
    ranges: list[tuple[int, int]] = []

    def collect(item: Dataset, base: int, top: bool) -> None:
        # Nested elements are parsed from their sequence's value: offsets are relative to it.
        for tag in list(item.keys()):
            if top and int(tag) not in signed:
                continue
            raw = item.get_item(tag)
            if not isinstance(raw, RawDataElement):
                continue  # (0008,0005) is decoded while reading; its offset is not kept
            start = base + raw.value_tell
            if item[tag].VR == "SQ":
                for child in item[tag].value:
                    collect(child, start, top=False)
            elif raw.length:
                assert data[start : start + raw.length] == raw.value
                ranges.append((start, raw.length))

    collect(ds, 0, top=True)
    return ranges


@pytest.fixture(scope="module")
def signed_bytes(pki: Pki, ptb_recording) -> bytes:  # type: ignore[no-untyped-def]
    from rekam.dicom import STANDARD_12_LEADS, recording_to_dicom
    from rekam.ecg import Recording

    from .conftest import PATIENT, STUDY, UID_ROOT

    short = Recording(ptb_recording.samples[:2000], ptb_recording.fs, ptb_recording.lead_names)
    ds = recording_to_dicom(short, PATIENT, STUDY, UID_ROOT, leads=STANDARD_12_LEADS)
    sign_dataset(ds, pki.ec_doctor, profile="none")
    return dataset_to_bytes(ds)


def test_value_ranges_cover_header_and_waveform(signed_bytes: bytes) -> None:
    ranges = _value_ranges(signed_bytes)
    total = sum(length for _, length in ranges)
    assert total > 12 * 2000 * 2  # the waveform samples are among them
    assert len(ranges) > 100


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    print_blob=False,
)
@given(choice=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_in_a_signed_value_is_detected(
    pki: Pki, signed_bytes: bytes, choice: int, mask: int
) -> None:
    ranges = _value_ranges(signed_bytes)
    sizes = [length for _, length in ranges]
    position = choice % sum(sizes)
    for offset, length in ranges:
        if position < length:
            target = offset + position
            break
        position -= length
    damaged = bytearray(signed_bytes)
    damaged[target] ^= mask
    try:
        verdicts = verify_dataset(bytes(damaged), pki.roots, pki.intermediates)
    except DicomError:
        return  # refused outright: also never a false "valid"
    assert len(verdicts) == 1
    assert verdicts[0].status is not SignatureStatus.VALID
    assert verify_dataset(signed_bytes, pki.roots, pki.intermediates)[0].valid
    assert read_dicom(signed_bytes) is not None
