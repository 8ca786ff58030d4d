"""ECG recordings as DICOM waveform objects and back."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from rekam.dicom import (
    AMBULATORY_ECG_STORAGE,
    GENERAL_ECG_STORAGE,
    STANDARD_12_LEADS,
    TWELVE_LEAD_ECG_STORAGE,
    FilterSettings,
    InvalidAttributeValue,
    PatientInfo,
    StudyInfo,
    WaveformError,
    dataset_to_bytes,
    dicom_to_recording,
    read_dicom,
    recording_to_dicom,
    write_dicom,
)
from rekam.ecg import Recording

from .conftest import PATIENT, STUDY, UID_ROOT, dciodvfy_errors, peer, ten_seconds


def _sensitivities_mv(ds: Dataset) -> np.ndarray:
    group = ds.WaveformSequence[0]
    return np.array([float(c.ChannelSensitivity) for c in group.ChannelDefinitionSequence]) / 1000


def test_twelve_lead_object_has_the_modules_and_codes(ecg_dataset: Dataset) -> None:
    ds = ecg_dataset
    assert ds.SOPClassUID == TWELVE_LEAD_ECG_STORAGE
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert ds.Modality == "ECG"
    assert ds.PatientID == "PTB-0010" and str(ds.PatientName) == "Muster^Hans"
    assert ds.PatientBirthDate == "19510304" and ds.PatientSex == "M"
    assert ds.AccessionNumber == "ACC-42" and str(ds.ReferringPhysicianName) == "Gp^Greta"
    assert ds.TimezoneOffsetFromUTC == "+0000"
    assert ds.AcquisitionDateTime.endswith("+0000")
    assert "AcquisitionContextSequence" in ds
    for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID):
        assert uid.startswith(UID_ROOT + ".") and len(uid) <= 64
    group = ds.WaveformSequence[0]
    assert group.WaveformOriginality == "ORIGINAL"
    assert group.NumberOfWaveformChannels == 12
    assert group.NumberOfWaveformSamples == 10000
    assert float(group.SamplingFrequency) == 1000.0
    assert group.WaveformBitsAllocated == 16 and group.WaveformSampleInterpretation == "SS"
    assert group["WaveformData"].VR == "OW"
    assert len(group.WaveformData) == 12 * 10000 * 2
    assert "MultiplexGroupTimeOffset" not in group
    codes = [c.ChannelSourceSequence[0] for c in group.ChannelDefinitionSequence]
    assert [c.CodeValue for c in codes] == [
        "5.6.3-9-1", "5.6.3-9-2", "5.6.3-9-61", "5.6.3-9-62", "5.6.3-9-63", "5.6.3-9-64",
        "5.6.3-9-3", "5.6.3-9-4", "5.6.3-9-5", "5.6.3-9-6", "5.6.3-9-7", "5.6.3-9-8",
    ]  # fmt: skip
    assert {c.CodingSchemeDesignator for c in codes} == {"SCPECG"}
    for channel in group.ChannelDefinitionSequence:
        unit = channel.ChannelSensitivityUnitsSequence[0]
        assert (unit.CodeValue, unit.CodingSchemeDesignator) == ("uV", "UCUM")
        assert float(channel.ChannelSensitivityCorrectionFactor) == 1.0
        assert float(channel.ChannelBaseline) == 0.0
        assert channel.WaveformBitsStored == 16
        assert float(channel.ChannelSensitivity) > 0


def test_round_trip_is_exact_within_quantisation(
    ptb_recording: Recording, ecg_dataset: Dataset
) -> None:
    original = ten_seconds(ptb_recording)
    back = dicom_to_recording(read_dicom(dataset_to_bytes(ecg_dataset)))
    assert back.lead_names == STANDARD_12_LEADS
    assert back.fs == original.fs and back.n_samples == original.n_samples
    error = np.abs(back.samples - original.samples[:, :12])
    assert np.all(error <= _sensitivities_mv(ecg_dataset) / 2 + 1e-12)
    # The PTB record is quantised at 0.5 µV, which is the finest step used: nothing is lost.
    assert error.max() < 1e-9


def test_fifteen_leads_make_a_general_ecg(ptb_recording: Recording) -> None:
    recording = ten_seconds(ptb_recording)
    ds = recording_to_dicom(recording, PATIENT, STUDY, UID_ROOT)
    assert ds.SOPClassUID == GENERAL_ECG_STORAGE
    back = dicom_to_recording(ds)
    assert back.lead_names[12:] == ("X", "Y", "Z")
    assert np.allclose(back.samples, recording.samples, atol=0.0005)


def test_long_twelve_lead_recording_falls_back_to_general(ptb_recording: Recording) -> None:
    ds = recording_to_dicom(ptb_recording, PATIENT, STUDY, UID_ROOT, leads=STANDARD_12_LEADS)
    assert ds.SOPClassUID == GENERAL_ECG_STORAGE
    with pytest.raises(WaveformError, match="16384 samples"):
        recording_to_dicom(
            ptb_recording, PATIENT, STUDY, UID_ROOT, leads=STANDARD_12_LEADS, kind="12-lead"
        )


def test_low_rate_single_lead_is_ambulatory() -> None:
    t = np.arange(0, 20, 1 / 125)
    recording = Recording(np.sin(2 * np.pi * t)[:, None], 125, ("MLII",))
    ds = recording_to_dicom(recording, PATIENT, STUDY, UID_ROOT)
    assert ds.SOPClassUID == AMBULATORY_ECG_STORAGE
    channel = ds.WaveformSequence[0].ChannelDefinitionSequence[0]
    assert channel.ChannelSourceSequence[0].CodeValue == "5.6.3-9-0"
    assert channel.ChannelLabel == "MLII"
    assert dicom_to_recording(ds).lead_names == ("MLII",)


def test_large_amplitudes_get_a_coarser_step_and_fixed_steps_refuse_them() -> None:
    t = np.arange(0, 5, 1 / 500)
    big = Recording((40.0 * np.sin(2 * np.pi * t))[:, None], 500, ("II",))
    ds = recording_to_dicom(big, PATIENT, STUDY, UID_ROOT)
    step_uv = float(ds.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelSensitivity)
    assert step_uv == 1.25
    assert np.allclose(dicom_to_recording(ds).samples, big.samples, atol=step_uv / 2000 + 1e-12)
    with pytest.raises(WaveformError, match="coarser resolution"):
        recording_to_dicom(big, PATIENT, STUDY, UID_ROOT, resolution_uv=0.5)


def test_filters_and_fixed_resolution_are_written(ptb_recording: Recording) -> None:
    ds = recording_to_dicom(
        ten_seconds(ptb_recording), PATIENT, STUDY, UID_ROOT, leads=["ii", "v1"],
        resolution_uv=2.5, filters=FilterSettings(0.05, 150, 50),
    )  # fmt: skip
    channel = ds.WaveformSequence[0].ChannelDefinitionSequence[1]
    assert channel.ChannelLabel == "V1"
    assert float(channel.ChannelSensitivity) == 2.5
    assert (float(channel.FilterLowFrequency), float(channel.FilterHighFrequency)) == (0.05, 150)
    assert float(channel.NotchFilterFrequency) == 50


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"leads": ["I", "Q"]}, "no lead 'Q'"),
        ({"leads": ["I", "i"]}, "twice"),
        ({"leads": []}, "No lead"),
        ({"kind": "12-lead", "leads": ["I", "II"]}, "12-lead"),
        ({"resolution_uv": 0.0}, "resolution"),
    ],
)
def test_bad_requests_are_refused(ptb_recording: Recording, kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(WaveformError, match=match):
        recording_to_dicom(ten_seconds(ptb_recording), PATIENT, STUDY, UID_ROOT, **kwargs)


@pytest.mark.parametrize(
    "make",
    [
        lambda: PatientInfo("", "Doe^Jane"),
        lambda: PatientInfo("X" * 65, "Doe^Jane"),
        lambda: PatientInfo("P1", "A^B^C^D^E^F"),
        lambda: PatientInfo("P1", "Doe\\Jane"),
        lambda: PatientInfo("P1", "Doe", sex="Q"),  # type: ignore[arg-type]
        lambda: StudyInfo(accession_number="A" * 17),
        lambda: StudyInfo(study_instance_uid="1.2.x"),
    ],
)
def test_patient_and_study_values_are_checked(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidAttributeValue):
        make()


def test_non_ascii_names_survive(ptb_recording: Recording) -> None:
    patient = PatientInfo("P-2", "Šimůnek^Jiří")
    ds = recording_to_dicom(ten_seconds(ptb_recording), patient, STUDY, UID_ROOT, leads=["I"])
    again = read_dicom(dataset_to_bytes(ds))
    assert again.SpecificCharacterSet == "ISO_IR 192"
    assert str(again.PatientName) == "Šimůnek^Jiří"


def test_reads_a_vendor_twelve_lead_object() -> None:
    """pydicom's Mortara ELI 250 sample: two multiplex groups, 'Lead I (Einthoven)' codes."""
    ds = pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))
    recording = dicom_to_recording(ds)
    assert recording.lead_names == STANDARD_12_LEADS
    assert recording.fs == float(ds.WaveformSequence[0].SamplingFrequency)
    reference = ds.waveform_array(0)  # pydicom applies the same sensitivity
    assert np.allclose(recording.samples * 1000, reference, atol=1e-6)


def test_implicit_vr_copy_reads_the_same(ecg_dataset: Dataset, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    ecg_dataset.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    pydicom.dcmwrite(buffer, ecg_dataset, implicit_vr=True, little_endian=True,
                     enforce_file_format=True)  # fmt: skip
    implicit = read_dicom(buffer.getvalue())
    assert np.array_equal(
        dicom_to_recording(implicit).samples, dicom_to_recording(ecg_dataset).samples
    )


def test_objects_without_a_usable_waveform_are_refused(ecg_dataset: Dataset) -> None:
    empty = Dataset()
    with pytest.raises(WaveformError, match="no waveform"):
        dicom_to_recording(empty)
    group = ecg_dataset.WaveformSequence[0]
    group.WaveformData = group.WaveformData[:-100]
    with pytest.raises(WaveformError, match="damaged"):
        dicom_to_recording(ecg_dataset)
    group.WaveformSampleInterpretation = "MB"
    with pytest.raises(WaveformError, match="not supported"):
        dicom_to_recording(ecg_dataset)


@pytest.mark.interop
@pytest.mark.parametrize("kind", ["12-lead", "general", "ambulatory", "general-15", "mortara"])
def test_dciodvfy_finds_no_errors(ptb_recording: Recording, tmp_path: Path, kind: str) -> None:
    recording = ten_seconds(ptb_recording)
    if kind == "mortara":
        ds = pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))
        recording = dicom_to_recording(ds)
        ds = recording_to_dicom(recording, PATIENT, STUDY, UID_ROOT)
        expected = "TwelveLeadECG"
    elif kind == "12-lead":
        ds = recording_to_dicom(recording, PATIENT, STUDY, UID_ROOT, leads=STANDARD_12_LEADS)
        expected = "TwelveLeadECG"
    elif kind == "general-15":
        ds = recording_to_dicom(recording, PATIENT, STUDY, UID_ROOT)
        expected = "GeneralECG"
    else:
        ds = recording_to_dicom(recording, PATIENT, STUDY, UID_ROOT, leads=["ii", "v5"],
                                kind=kind)  # type: ignore[arg-type]  # fmt: skip
        expected = "GeneralECG" if kind == "general" else "AmbulatoryECG"
    path = tmp_path / "ecg.dcm"
    write_dicom(ds, path)
    assert dciodvfy_errors(path) == []
    assert expected in peer("dciodvfy", path).stdout + peer("dciodvfy", path).stderr
