"""The DICOM SOP classes and transfer syntaxes Rekam writes and reads."""

from __future__ import annotations

TWELVE_LEAD_ECG_STORAGE = "1.2.840.10008.5.1.4.1.1.9.1.1"
GENERAL_ECG_STORAGE = "1.2.840.10008.5.1.4.1.1.9.1.2"
AMBULATORY_ECG_STORAGE = "1.2.840.10008.5.1.4.1.1.9.1.3"

ECG_SOP_CLASSES: dict[str, str] = {
    TWELVE_LEAD_ECG_STORAGE: "12-Lead ECG Waveform Storage",
    GENERAL_ECG_STORAGE: "General ECG Waveform Storage",
    AMBULATORY_ECG_STORAGE: "Ambulatory ECG Waveform Storage",
}

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"

#: Transfer syntaxes whose raw element values Rekam reads (and therefore can verify).
READABLE_TRANSFER_SYNTAXES: dict[str, str] = {
    IMPLICIT_VR_LITTLE_ENDIAN: "Implicit VR Little Endian",
    EXPLICIT_VR_LITTLE_ENDIAN: "Explicit VR Little Endian",
}

#: 12-Lead ECG IOD limits (PS3.3 A.34.3.4): at most 16384 samples per channel, 200–1000 Hz.
TWELVE_LEAD_MAX_SAMPLES = 16384
TWELVE_LEAD_MIN_RATE_HZ = 200.0
TWELVE_LEAD_MAX_RATE_HZ = 1000.0
#: General ECG IOD limits (PS3.3 A.34.4.4): 1–24 channels per multiplex group, 200–1000 Hz.
GENERAL_ECG_MAX_CHANNELS = 24
GENERAL_ECG_MIN_RATE_HZ = 200.0
#: Ambulatory ECG IOD limits (PS3.3 A.34.5.4): 1–12 channels, 50–1000 Hz.
AMBULATORY_ECG_MAX_CHANNELS = 12
AMBULATORY_ECG_MIN_RATE_HZ = 50.0
