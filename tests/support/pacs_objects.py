"""Signed and unsigned 12-lead ECG objects for the PACS tests and benchmark.

The waveform is synthetic (a sum of sines per lead, different per object) so each object's
samples are known and searchable in raw files; the patient name is a distinctive marker.
"""

from __future__ import annotations

import datetime

import numpy as np

from rekam.dicom import (
    STANDARD_12_LEADS,
    PatientInfo,
    StudyInfo,
    dataset_to_bytes,
    recording_to_dicom,
    sign_dataset,
)
from rekam.ecg import Recording
from rekam.pki import Identity

UID_ROOT = "1.2.826.0.1.3680043.10.1045"
PATIENT_NAME = "Sulistyowati^Kartika"


def ecg_recording(seed: int, seconds: float = 10.0, fs: float = 500.0) -> Recording:
    """Twelve leads of a deterministic, object-specific signal in millivolts."""
    t = np.arange(int(seconds * fs)) / fs
    leads = [
        0.8 * np.sin(2 * np.pi * (1.1 + 0.01 * seed) * t + lead)
        + 0.2 * np.sin(2 * np.pi * (7.0 + lead) * t + seed)
        for lead in range(12)
    ]
    return Recording(np.stack(leads, axis=1), fs, STANDARD_12_LEADS)


def ecg_object(
    seed: int,
    signer: Identity | None = None,
    *,
    patient_id: str = "PAC-0001",
    patient_name: str = PATIENT_NAME,
    accession: str = "ACC-1",
    study_date: datetime.date = datetime.date(2025, 3, 14),
) -> bytes:
    """A Part 10 12-lead ECG object, signed by ``signer`` (SHA256, base profile) if given."""
    dataset = recording_to_dicom(
        ecg_recording(seed),
        PatientInfo(patient_id, patient_name, datetime.date(1970, 5, 17), "F"),
        StudyInfo(
            accession_number=accession,
            study_description="Resting 12-lead ECG",
            study_id="1",
            acquired_at=datetime.datetime.combine(study_date, datetime.time(9, 30), datetime.UTC),
        ),
        UID_ROOT,
        leads=STANDARD_12_LEADS,
    )
    if signer is not None:
        sign_dataset(dataset, signer, mac_algorithm="SHA256")
    return dataset_to_bytes(dataset)
