"""ECG recordings as DICOM waveform objects (PS3.3 A.34) and back.

:func:`recording_to_dicom` builds a 12-Lead ECG Waveform Storage object when the recording holds
exactly the twelve standard leads within that IOD's limits, a General ECG (or, below 200 Hz, an
Ambulatory ECG) object otherwise. Samples are stored as 16-bit signed integers (SS) interleaved
across channels in ``WaveformData`` (OW); each channel's sensitivity says how many microvolts one
step is worth. :func:`dicom_to_recording` reads any ECG waveform object back into a
:class:`~rekam.ecg.Recording` in millivolts.

    >>> from rekam.dicom import PatientInfo, StudyInfo, recording_to_dicom, write_dicom
    >>> ds = recording_to_dicom(recording, PatientInfo("P-1", "Doe^Jane"), StudyInfo(),
    ...                         uid_root="1.2.826.0.1.3680043.10.999")  # doctest: +SKIP
    >>> write_dicom(ds, "ecg.dcm")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID

from rekam.dicom.errors import WaveformError
from rekam.dicom.lead_codes import (
    SCPECG_SCHEME,
    SCPECG_SCHEME_VERSION,
    UNSPECIFIED_LEAD,
    LeadCode,
    is_standard_12_lead,
    lead_for_code,
    lead_for_name,
)
from rekam.dicom.patient_study import EquipmentInfo, PatientInfo, StudyInfo, as_utc, short_string
from rekam.dicom.sop_classes import (
    AMBULATORY_ECG_MAX_CHANNELS,
    AMBULATORY_ECG_MIN_RATE_HZ,
    AMBULATORY_ECG_STORAGE,
    ECG_SOP_CLASSES,
    EXPLICIT_VR_LITTLE_ENDIAN,
    GENERAL_ECG_MAX_CHANNELS,
    GENERAL_ECG_MIN_RATE_HZ,
    GENERAL_ECG_STORAGE,
    TWELVE_LEAD_ECG_STORAGE,
    TWELVE_LEAD_MAX_RATE_HZ,
    TWELVE_LEAD_MAX_SAMPLES,
    TWELVE_LEAD_MIN_RATE_HZ,
)
from rekam.dicom.uids import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    check_uid_root,
    generate_uid,
)
from rekam.ecg import EcgError, Recording

__all__ = [
    "DEFAULT_RESOLUTION_UV",
    "EcgObjectKind",
    "FilterSettings",
    "dicom_to_recording",
    "recording_to_dicom",
]

EcgObjectKind = Literal["auto", "12-lead", "general", "ambulatory"]

#: Finest step (µV) used when the resolution is chosen automatically; coarser when a lead's
#: amplitude needs it to fit in 16 bits.
DEFAULT_RESOLUTION_UV = 0.5

_INT16_MAX = 32767
_NICE_STEPS = tuple(sorted(m * 10.0**e for e in range(-2, 5) for m in (1.0, 1.25, 2.0, 2.5, 5.0)))
_UNITS_TO_MV = {"nV": 1e-6, "uV": 1e-3, "mV": 1.0, "V": 1e3}
_SAMPLE_TYPES: dict[tuple[int, str], str] = {
    (8, "SB"): "i1",
    (8, "UB"): "u1",
    (16, "SS"): "<i2",
    (16, "US"): "<u2",
    (32, "SL"): "<i4",
    (32, "UL"): "<u4",
}


@dataclass(frozen=True)
class FilterSettings:
    """The acquisition filters (Hz) recorded for every channel; None when unknown."""

    low_hz: float | None = None
    high_hz: float | None = None
    notch_hz: float | None = None


def recording_to_dicom(
    recording: Recording,
    patient: PatientInfo,
    study: StudyInfo,
    uid_root: str,
    *,
    equipment: EquipmentInfo | None = None,
    filters: FilterSettings | None = None,
    resolution_uv: float | None = None,
    kind: EcgObjectKind = "auto",
    leads: Sequence[str] | None = None,
    series_number: int = 1,
    instance_number: int = 1,
    created_at: datetime.datetime | None = None,
) -> Dataset:
    """Build a DICOM ECG waveform object (with file meta information) from ``recording``.

    ``leads`` selects and orders the leads to store (by the recording's lead names; all by
    default). ``resolution_uv`` fixes the size of one sample step in microvolts for every
    channel; by default each channel gets the finest of 0.5, 1, 1.25, 2, 2.5, 5 … µV that holds
    its amplitude in 16 bits. ``kind`` forces the SOP class; ``"auto"`` picks 12-lead for exactly
    the twelve standard leads within 16384 samples at 200–1000 Hz. UIDs are generated under
    ``uid_root``. Raises :class:`WaveformError` when the recording cannot be stored faithfully.
    """
    root = check_uid_root(uid_root)
    equipment = equipment or EquipmentInfo()
    selected = _select_leads(recording, leads)
    codes = tuple(lead_for_name(recording.lead_names[i]) or UNSPECIFIED_LEAD for i in selected)
    labels = tuple(
        code.label if code is not UNSPECIFIED_LEAD else recording.lead_names[i]
        for code, i in zip(codes, selected, strict=True)
    )
    for label in labels:
        short_string(label, "lead label")
    samples_mv = np.asarray(recording.samples[:, selected], dtype=np.float64)
    sop_class = _choose_sop_class(kind, labels, samples_mv.shape[0], recording.fs)
    sensitivities = _sensitivities(samples_mv, labels, resolution_uv)
    stored = np.rint(samples_mv * 1000.0 / np.asarray(sensitivities)).astype("<i2")

    now = as_utc(created_at) if created_at is not None else datetime.datetime.now(datetime.UTC)
    acquired = as_utc(study.acquired_at) if study.acquired_at is not None else now
    started = as_utc(study.study_started_at) if study.study_started_at is not None else acquired
    sop_instance_uid = generate_uid(root)

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.InstanceCreationDate = _da(now)
    ds.InstanceCreationTime = _tm(now)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance_uid
    ds.StudyDate = _da(started)
    ds.ContentDate = _da(acquired)
    ds.AcquisitionDateTime = _dt(acquired)
    ds.StudyTime = _tm(started)
    ds.ContentTime = _tm(acquired)
    ds.AccessionNumber = study.accession_number
    ds.Modality = "ECG"
    ds.Manufacturer = equipment.manufacturer
    if equipment.institution_name:
        ds.InstitutionName = equipment.institution_name
    ds.ReferringPhysicianName = study.referring_physician
    ds.TimezoneOffsetFromUTC = "+0000"
    if equipment.station_name:
        ds.StationName = equipment.station_name
    if study.study_description:
        ds.StudyDescription = study.study_description
    ds.ManufacturerModelName = equipment.model_name
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    if patient.issuer_of_patient_id:
        ds.IssuerOfPatientID = patient.issuer_of_patient_id
    ds.PatientBirthDate = _da(patient.birth_date) if patient.birth_date else ""
    ds.PatientSex = patient.sex or ""
    if equipment.device_serial_number:
        ds.DeviceSerialNumber = equipment.device_serial_number
    if equipment.software_versions:
        ds.SoftwareVersions = equipment.software_versions
    ds.StudyInstanceUID = study.study_instance_uid or generate_uid(root)
    ds.SeriesInstanceUID = generate_uid(root)
    ds.StudyID = study.study_id
    ds.SeriesNumber = str(int(series_number))
    ds.InstanceNumber = str(int(instance_number))
    ds.AcquisitionContextSequence = DicomSequence([])
    ds.WaveformSequence = DicomSequence(
        [_multiplex_group(stored, recording.fs, codes, labels, sensitivities, filters)]
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(EXPLICIT_VR_LITTLE_ENDIAN)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    return ds


def _select_leads(recording: Recording, leads: Sequence[str] | None) -> list[int]:
    if leads is None:
        return list(range(recording.n_leads))
    by_name: dict[str, int] = {}
    for index, name in enumerate(recording.lead_names):
        code = lead_for_name(name)
        by_name.setdefault(name, index)
        if code is not None:
            by_name.setdefault(code.label, index)
    chosen = []
    for wanted in leads:
        code = lead_for_name(wanted)
        found = by_name.get(wanted)
        if found is None and code is not None:
            found = by_name.get(code.label)
        if found is None:
            raise WaveformError(
                f"The recording has no lead {wanted!r}; it has {', '.join(recording.lead_names)}."
            )
        chosen.append(found)
    if not chosen:
        raise WaveformError("No lead was selected for the DICOM object.")
    if len(set(chosen)) != len(chosen):
        raise WaveformError("The same lead was selected twice for the DICOM object.")
    return chosen


def _choose_sop_class(kind: EcgObjectKind, labels: tuple[str, ...], n: int, fs: float) -> str:
    fits_12_lead = (
        is_standard_12_lead(labels)
        and n <= TWELVE_LEAD_MAX_SAMPLES
        and TWELVE_LEAD_MIN_RATE_HZ <= fs <= TWELVE_LEAD_MAX_RATE_HZ
    )
    if kind == "12-lead":
        if not fits_12_lead:
            raise WaveformError(
                "A 12-lead ECG object needs exactly the leads I, II, III, aVR, aVL, aVF and "
                f"V1–V6, at most {TWELVE_LEAD_MAX_SAMPLES} samples per lead (≈16 s at 1000 Hz) "
                f"and 200–1000 Hz; this recording has {len(labels)} lead(s), {n} samples at "
                f"{fs:g} Hz."
            )
        return TWELVE_LEAD_ECG_STORAGE
    if kind == "auto" and fits_12_lead:
        return TWELVE_LEAD_ECG_STORAGE
    general_fits = len(labels) <= GENERAL_ECG_MAX_CHANNELS and fs >= GENERAL_ECG_MIN_RATE_HZ
    ambulatory_fits = (
        len(labels) <= AMBULATORY_ECG_MAX_CHANNELS and fs >= AMBULATORY_ECG_MIN_RATE_HZ
    )
    if kind in ("auto", "general") and general_fits:
        return GENERAL_ECG_STORAGE
    if kind in ("auto", "ambulatory") and ambulatory_fits:
        return AMBULATORY_ECG_STORAGE
    raise WaveformError(
        f"A recording with {len(labels)} lead(s) at {fs:g} Hz does not fit the "
        + (
            "General ECG"
            if kind == "general"
            else "Ambulatory ECG"
            if kind == "ambulatory"
            else "12-lead, General or Ambulatory ECG"
        )
        + " object (General ECG: up to 24 leads at 200 Hz or more; Ambulatory ECG: up to 12 "
        "leads at 50 Hz or more)."
    )


def _sensitivities(
    samples_mv: npt.NDArray[np.float64], labels: tuple[str, ...], resolution_uv: float | None
) -> list[float]:
    if resolution_uv is not None and not (
        math.isfinite(resolution_uv) and 0.001 <= resolution_uv <= 10000.0
    ):
        raise WaveformError("The resolution must be between 0.001 and 10000 µV per step.")
    peaks_uv = np.max(np.abs(samples_mv), axis=0) * 1000.0
    result = []
    for label, peak in zip(labels, peaks_uv, strict=True):
        needed = float(peak) / _INT16_MAX
        if resolution_uv is not None:
            if needed > resolution_uv:
                raise WaveformError(
                    f"Lead {label} reaches {peak / 1000.0:.1f} mV, more than 16-bit samples "
                    f"of {resolution_uv:g} µV can hold (±{_INT16_MAX * resolution_uv / 1000:.1f} "
                    "mV); choose a coarser resolution."
                )
            result.append(float(resolution_uv))
            continue
        step = next((s for s in _NICE_STEPS if s >= max(needed, DEFAULT_RESOLUTION_UV)), None)
        if step is None:
            raise WaveformError(
                f"Lead {label} reaches {peak / 1000.0:.0f} mV: that is not an ECG signal."
            )
        result.append(step)
    return result


def _multiplex_group(
    stored: npt.NDArray[np.int16],
    fs: float,
    codes: tuple[LeadCode, ...],
    labels: tuple[str, ...],
    sensitivities: list[float],
    filters: FilterSettings | None,
) -> Dataset:
    group = Dataset()
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = stored.shape[1]
    group.NumberOfWaveformSamples = stored.shape[0]
    group.SamplingFrequency = _ds(fs)
    group.MultiplexGroupLabel = "RHYTHM"
    group.ChannelDefinitionSequence = DicomSequence(
        [
            _channel(code, label, sensitivity, filters)
            for code, label, sensitivity in zip(codes, labels, sensitivities, strict=True)
        ]
    )
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    group.WaveformData = np.ascontiguousarray(stored, dtype="<i2").tobytes()
    group["WaveformData"].VR = "OW"
    return group


def _code_item(value: str, scheme: str, version: str | None, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    if version:
        item.CodingSchemeVersion = version
    item.CodeMeaning = meaning
    return item


def _channel(
    code: LeadCode, label: str, sensitivity: float, filters: FilterSettings | None
) -> Dataset:
    channel = Dataset()
    channel.ChannelLabel = label
    channel.ChannelSourceSequence = DicomSequence(
        [_code_item(code.code_value, SCPECG_SCHEME, SCPECG_SCHEME_VERSION, code.code_meaning)]
    )
    channel.ChannelSensitivity = _ds(sensitivity)
    channel.ChannelSensitivityUnitsSequence = DicomSequence(
        [_code_item("uV", "UCUM", "1.4", "microvolt")]
    )
    channel.ChannelSensitivityCorrectionFactor = "1"
    channel.ChannelBaseline = "0"
    channel.ChannelTimeSkew = "0"
    channel.WaveformBitsStored = 16
    if filters is not None:
        if filters.low_hz is not None:
            channel.FilterLowFrequency = _ds(filters.low_hz)
        if filters.high_hz is not None:
            channel.FilterHighFrequency = _ds(filters.high_hz)
        if filters.notch_hz is not None:
            channel.NotchFilterFrequency = _ds(filters.notch_hz)
    return channel


def _ds(value: float) -> str:
    if not math.isfinite(value):
        raise WaveformError(f"{value} cannot be stored as a decimal string.")
    for digits in range(12, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise WaveformError(f"{value} cannot be stored as a decimal string.")


def _da(moment: datetime.date) -> str:
    return moment.strftime("%Y%m%d")


def _tm(moment: datetime.datetime) -> str:
    return moment.strftime("%H%M%S.%f")


def _dt(moment: datetime.datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S.%f") + "+0000"


# --- DICOM → Recording -------------------------------------------------------------------------


def dicom_to_recording(dataset: Dataset, *, group: int | None = None) -> Recording:
    """Read the ECG samples of a DICOM waveform object into a :class:`Recording` (mV).

    ``group`` picks a multiplex group by position; by default the first one labelled RHYTHM,
    else the first. Raises :class:`WaveformError` when the object holds no usable ECG.
    """
    sequence = dataset.get("WaveformSequence")
    if not sequence:
        what = ECG_SOP_CLASSES.get(str(dataset.get("SOPClassUID", "")), "This DICOM object")
        raise WaveformError(f"{what} contains no waveform (no Waveform Sequence).")
    labels = [str(item.get("MultiplexGroupLabel", "")).upper() for item in sequence]
    chosen = group if group is not None else labels.index("RHYTHM") if "RHYTHM" in labels else 0
    if not 0 <= chosen < len(sequence):
        raise WaveformError(
            f"The object has {len(sequence)} waveform group(s); group {chosen} does not exist."
        )
    item = sequence[chosen]
    try:
        channels = int(item.NumberOfWaveformChannels)
        n_samples = int(item.NumberOfWaveformSamples)
        fs = float(item.SamplingFrequency)
        bits = int(item.WaveformBitsAllocated)
        interpretation = str(item.WaveformSampleInterpretation)
        data = bytes(item.WaveformData)
        definitions = list(item.ChannelDefinitionSequence)
    except (AttributeError, TypeError, ValueError) as exc:
        raise WaveformError(
            f"The waveform group is incomplete or malformed ({exc}); it cannot be read."
        ) from exc
    dtype = _SAMPLE_TYPES.get((bits, interpretation))
    if dtype is None:
        raise WaveformError(
            f"Waveform samples of {bits} bits interpreted as {interpretation!r} are not "
            "supported (Rekam reads 8, 16 and 32-bit integer samples)."
        )
    if channels < 1 or n_samples < 1 or len(definitions) != channels:
        raise WaveformError(
            f"The waveform group declares {channels} channel(s) and {n_samples} sample(s) but "
            f"defines {len(definitions)} channel(s)."
        )
    expected = channels * n_samples * (bits // 8)
    if len(data) not in (expected, expected + 1):
        raise WaveformError(
            f"The waveform data holds {len(data)} bytes, but {channels} channel(s) × "
            f"{n_samples} samples need {expected}: the object is damaged."
        )
    raw = np.frombuffer(data[:expected], dtype=dtype).reshape(n_samples, channels)
    samples = np.empty((n_samples, channels), dtype=np.float64)
    names = []
    for index, definition in enumerate(definitions):
        scale_mv, baseline_mv = _channel_scale(definition, index)
        samples[:, index] = raw[:, index].astype(np.float64) * scale_mv + baseline_mv
        names.append(_channel_name(definition, index))
    try:
        return Recording(samples, fs, tuple(names), None, str(dataset.get("SOPInstanceUID", "")))
    except EcgError as exc:
        raise WaveformError(f"The DICOM waveform is not a usable ECG recording: {exc}") from exc


def _channel_scale(definition: Dataset, index: int) -> tuple[float, float]:
    """(mV per stored step, baseline in mV) of one channel."""
    if "ChannelSensitivity" not in definition or definition.ChannelSensitivity in (None, ""):
        raise WaveformError(
            f"Channel {index + 1} has no sensitivity, so its values cannot be given in millivolts."
        )
    try:
        sensitivity = float(definition.ChannelSensitivity)
        correction = float(definition.get("ChannelSensitivityCorrectionFactor", 1) or 1)
        baseline = float(definition.get("ChannelBaseline", 0) or 0)
    except (TypeError, ValueError) as exc:
        raise WaveformError(f"Channel {index + 1} has an unreadable sensitivity.") from exc
    units = definition.get("ChannelSensitivityUnitsSequence") or []
    unit = str(units[0].get("CodeValue", "")) if units else ""
    to_mv = _UNITS_TO_MV.get(unit)
    if to_mv is None:
        raise WaveformError(
            f"Channel {index + 1} is measured in {unit or 'unstated units'!r}, not in volts; "
            "it cannot be read as an ECG lead."
        )
    # PS3.3 C.10.9.1.4.3: the baseline is the offset of sample value 0, in the sensitivity units.
    return sensitivity * correction * to_mv, baseline * to_mv


def _channel_name(definition: Dataset, index: int) -> str:
    sources = definition.get("ChannelSourceSequence") or []
    if sources:
        source = sources[0]
        lead = lead_for_code(
            str(source.get("CodeValue", "")), str(source.get("CodingSchemeDesignator", ""))
        )
        if lead is not None:
            return lead.label
    label = str(definition.get("ChannelLabel", "") or "").strip()
    if label:
        return label
    if sources and str(sources[0].get("CodeMeaning", "")).strip():
        return str(sources[0].CodeMeaning).strip()
    return f"channel {index + 1}"
