"""ECG signal processing for Rekam: reading recordings, R-peak detection (offline and streaming),
heart rate, rhythm classification, signal quality and evaluation against reference annotations.

>>> from rekam.ecg import read_recording, analyze_recording
>>> analysis = analyze_recording(read_recording("mitdb/100"))  # doctest: +SKIP
>>> analysis.summary_bpm()  # doctest: +SKIP
"""

from rekam.ecg.analysis import EcgAnalysis, analyze_recording, reliable_heart_rate
from rekam.ecg.annotations import BEAT_SYMBOLS, ReferenceAnnotations
from rekam.ecg.errors import (
    EcgError,
    InvalidParameterError,
    RecordFormatError,
    RecordNotFoundError,
    SamplingRateError,
    ScpEcgChecksumError,
    ScpEcgError,
    ScpEcgTruncatedError,
    ScpEcgUnsupportedError,
    SignalValueError,
)
from rekam.ecg.evaluation import (
    MATCH_TOLERANCE_S,
    DetectionScore,
    HeartRateAgreement,
    RecordEvaluation,
    compare_heart_rates,
    evaluate_recording,
    match_beats,
    total_evaluation,
)
from rekam.ecg.filters import StreamingBandPass, bandpass_filter, design_bandpass
from rekam.ecg.heart_rate import (
    HeartRateSeries,
    heart_rate_on_grid,
    heart_rate_series,
    moving_average,
    rr_intervals_ms,
)
from rekam.ecg.quality import (
    QualityIssue,
    SignalQuality,
    UnreliableSegment,
    assess_signal_quality,
)
from rekam.ecg.readers import read_csv, read_recording, read_wfdb, recording_from_samples
from rekam.ecg.recording import Recording
from rekam.ecg.rhythm import (
    Irregularity,
    RhythmClass,
    RhythmEpisode,
    RhythmThresholds,
    assess_irregularity,
    classify_rhythm,
)
from rekam.ecg.rpeaks import (
    MAX_SAMPLING_RATE_HZ,
    MIN_SAMPLING_RATE_HZ,
    DetectorSettings,
    RPeakDetector,
    detect_r_peaks,
)
from rekam.ecg.scp_ecg_demographics import ScpEcgDemographics, ScpEcgRecord, ScpEncoding
from rekam.ecg.scp_ecg_reader import looks_like_scp_ecg, parse_scp_ecg, read_scp_ecg
from rekam.ecg.scp_ecg_writer import scp_ecg_bytes, write_scp_ecg

__all__ = [
    "BEAT_SYMBOLS",
    "MATCH_TOLERANCE_S",
    "MAX_SAMPLING_RATE_HZ",
    "MIN_SAMPLING_RATE_HZ",
    "DetectionScore",
    "DetectorSettings",
    "EcgAnalysis",
    "EcgError",
    "HeartRateAgreement",
    "HeartRateSeries",
    "InvalidParameterError",
    "Irregularity",
    "QualityIssue",
    "RPeakDetector",
    "RecordEvaluation",
    "RecordFormatError",
    "RecordNotFoundError",
    "Recording",
    "ReferenceAnnotations",
    "RhythmClass",
    "RhythmEpisode",
    "RhythmThresholds",
    "SamplingRateError",
    "ScpEcgChecksumError",
    "ScpEcgDemographics",
    "ScpEcgError",
    "ScpEcgRecord",
    "ScpEcgTruncatedError",
    "ScpEcgUnsupportedError",
    "ScpEncoding",
    "SignalQuality",
    "SignalValueError",
    "StreamingBandPass",
    "UnreliableSegment",
    "analyze_recording",
    "assess_irregularity",
    "assess_signal_quality",
    "bandpass_filter",
    "classify_rhythm",
    "compare_heart_rates",
    "design_bandpass",
    "detect_r_peaks",
    "evaluate_recording",
    "heart_rate_on_grid",
    "heart_rate_series",
    "looks_like_scp_ecg",
    "match_beats",
    "moving_average",
    "parse_scp_ecg",
    "read_csv",
    "read_recording",
    "read_scp_ecg",
    "read_wfdb",
    "recording_from_samples",
    "reliable_heart_rate",
    "rr_intervals_ms",
    "scp_ecg_bytes",
    "total_evaluation",
    "write_scp_ecg",
]
