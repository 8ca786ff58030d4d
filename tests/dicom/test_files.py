"""Reading DICOM files: bad input is refused with a clear error, never half-read."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from rekam.dicom import (
    DicomError,
    DicomFileTooLarge,
    NotDicom,
    TruncatedDicom,
    UnsupportedTransferSyntax,
    dataset_to_bytes,
    read_dicom,
    write_dicom,
)


def test_written_files_are_part_10_explicit_little_endian(
    ecg_dataset: Dataset, tmp_path: Path
) -> None:
    path = tmp_path / "ecg.dcm"
    write_dicom(ecg_dataset, path)
    data = path.read_bytes()
    assert data[128:132] == b"DICM"
    again = read_dicom(path)
    assert again.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert again.file_meta.MediaStorageSOPInstanceUID == ecg_dataset.SOPInstanceUID
    assert again.SOPInstanceUID == ecg_dataset.SOPInstanceUID


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world", b"\x00" * 200, b"\x00" * 128 + b"DICX" + b"\x00" * 100,
     b"%PDF-1.7\n" + b"x" * 400],
)  # fmt: skip
def test_non_dicom_is_refused(data: bytes) -> None:
    with pytest.raises(NotDicom):
        read_dicom(data)


def test_truncated_files_are_refused_at_every_cut(ecg_dataset: Dataset) -> None:
    data = dataset_to_bytes(ecg_dataset)
    cuts = [140, 200, 300, 600, 1000, 1500, len(data) // 2, len(data) - 1000, len(data) - 1]
    for cut in cuts:
        with pytest.raises((TruncatedDicom, NotDicom)):
            read_dicom(data[:cut])


def test_truncated_implicit_file_is_refused(ecg_dataset: Dataset) -> None:
    buffer = io.BytesIO()
    ecg_dataset.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    pydicom.dcmwrite(buffer, ecg_dataset, implicit_vr=True, little_endian=True,
                     enforce_file_format=True)  # fmt: skip
    data = buffer.getvalue()
    read_dicom(data)
    with pytest.raises(TruncatedDicom):
        read_dicom(data[: len(data) - 7])


def test_files_over_the_limit_are_not_read(ecg_dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "ecg.dcm"
    write_dicom(ecg_dataset, path)
    with pytest.raises(DicomFileTooLarge, match="MB"):
        read_dicom(path, max_bytes=100_000)
    with pytest.raises(DicomFileTooLarge):
        read_dicom(path.read_bytes(), max_bytes=100_000)


def test_big_endian_is_an_unsupported_transfer_syntax(ecg_dataset: Dataset) -> None:
    buffer = io.BytesIO()
    ecg_dataset.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.2"
    pydicom.dcmwrite(buffer, ecg_dataset, implicit_vr=False, little_endian=False,
                     enforce_file_format=True)  # fmt: skip
    with pytest.raises(UnsupportedTransferSyntax, match="Big Endian"):
        read_dicom(buffer.getvalue())


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DicomError, match="No file"):
        read_dicom(tmp_path / "absent.dcm")
