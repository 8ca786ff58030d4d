"""Reading ECG recordings: WFDB records, CSV files and raw sample arrays.

Every reader returns a :class:`~rekam.ecg.recording.Recording` in millivolts, or raises a subclass
of :class:`~rekam.ecg.errors.EcgError` that says what is wrong with the file.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rekam.ecg.annotations import ReferenceAnnotations
from rekam.ecg.errors import RecordFormatError, RecordNotFoundError, SignalValueError
from rekam.ecg.recording import Recording
from rekam.ecg.scp_ecg_reader import looks_like_scp_ecg, read_scp_ecg

__all__ = ["read_csv", "read_recording", "read_wfdb", "recording_from_samples"]

_TIME_COLUMNS_S = {"time", "t", "time_s", "seconds", "sec", "s"}
_TIME_COLUMNS_MS = {"time_ms", "ms", "milliseconds"}
_WFDB_SUFFIXES = {".hea", ".dat", ".atr"}


def recording_from_samples(
    samples: npt.ArrayLike,
    fs: float,
    lead_names: Sequence[str] | None = None,
    *,
    name: str = "",
    reference_beats: npt.ArrayLike | None = None,
) -> Recording:
    """Wrap raw samples (mV; 1-D, or 2-D samples × leads) taken at ``fs`` Hz as a recording."""
    try:
        array = np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SignalValueError("The ECG samples are not numbers.") from exc
    if array.ndim == 1:
        array = array[:, np.newaxis]
    if array.ndim != 2:
        raise SignalValueError("ECG samples must be 1-D or a 2-D table of samples × leads.")
    names = (
        tuple(lead_names)
        if lead_names is not None
        else tuple(f"lead {i + 1}" for i in range(array.shape[1]))
    )
    annotations = None
    if reference_beats is not None:
        beats = np.asarray(reference_beats, dtype=np.int64).reshape(-1)
        annotations = ReferenceAnnotations(beats, ("N",) * beats.size)
    return Recording(array, float(fs), names, annotations, name)


def read_wfdb(path: str | Path, *, annotator: str | None = "atr") -> Recording:
    """Read a WFDB record (``path`` without extension, e.g. ``mitdb/100``).

    The reference annotations are read from ``<path>.<annotator>`` when that file exists.
    """
    import wfdb

    base = _wfdb_base(Path(path))
    header = base.with_name(base.name + ".hea")
    if not header.is_file():
        raise RecordNotFoundError(f"No ECG record found at {base} (expected {header.name}).")
    try:
        record = wfdb.rdrecord(str(base), physical=True)
    except FileNotFoundError as exc:
        raise RecordNotFoundError(
            f"The ECG record {base.name} is incomplete: its signal file is missing."
        ) from exc
    except Exception as exc:  # wfdb raises bare exceptions of many kinds on bad files
        raise RecordFormatError(f"{base.name} is not a readable WFDB record: {exc}") from exc
    signal = record.p_signal
    if signal is None or np.size(signal) == 0:
        raise SignalValueError(f"The ECG record {base.name} contains no samples.")
    if record.fs is None:
        raise RecordFormatError(f"The header of {base.name} gives no sampling rate.")
    units = list(record.units or [])
    scale = np.array([_to_millivolts(u) for u in units] or [1.0] * signal.shape[1])
    annotations = None
    if annotator is not None and base.with_name(f"{base.name}.{annotator}").is_file():
        try:
            ann = wfdb.rdann(str(base), annotator)
        except Exception as exc:
            raise RecordFormatError(
                f"The annotation file {base.name}.{annotator} could not be read: {exc}"
            ) from exc
        annotations = ReferenceAnnotations(
            np.asarray(ann.sample, dtype=np.int64), tuple(ann.symbol)
        )
    names = tuple(record.sig_name or [f"lead {i + 1}" for i in range(signal.shape[1])])
    return Recording(signal * scale, float(record.fs), names, annotations, base.name)


def _wfdb_base(path: Path) -> Path:
    return path.with_suffix("") if path.suffix.lower() in _WFDB_SUFFIXES else path


def _to_millivolts(unit: str) -> float:
    unit = (unit or "mV").strip()
    factors = {"mv": 1.0, "v": 1000.0, "uv": 0.001, "µv": 0.001, "μv": 0.001}
    return factors.get(unit.lower(), 1.0)


def read_csv(path: str | Path, fs: float | None = None) -> Recording:
    """Read a CSV recording: a header row, an optional time column, one or more lead columns.

    Lead values are in millivolts. The time column (``time``/``t``/``seconds`` in seconds, or
    ``time_ms`` in milliseconds) gives the sampling rate; without one, pass ``fs``.
    """
    file = Path(path)
    if not file.is_file():
        raise RecordNotFoundError(f"No ECG file found at {file}.")
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as exc:
        raise RecordFormatError(f"{file.name} is not a text CSV file.") from exc
    if not header or not any(h.strip() for h in header):
        raise SignalValueError(f"{file.name} is empty.")
    columns = [h.strip() for h in header]
    if _is_number(columns[0]):
        raise RecordFormatError(
            f"{file.name} has no header row; the first line must name the columns (e.g. time,II)."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            body = np.loadtxt(file, delimiter=",", skiprows=1, ndmin=2, encoding="utf-8-sig")
    except ValueError as exc:
        raise RecordFormatError(
            f"{file.name} contains values that are not numbers ({exc})."
        ) from exc
    if body.size == 0:
        raise SignalValueError(f"{file.name} has a header but no samples.")
    if body.shape[1] != len(columns):
        raise RecordFormatError(
            f"{file.name} has {len(columns)} column names but {body.shape[1]} values per row."
        )
    time_col = next(
        (i for i, c in enumerate(columns) if c.lower() in _TIME_COLUMNS_S | _TIME_COLUMNS_MS),
        None,
    )
    if time_col is not None:
        scale = 1000.0 if columns[time_col].lower() in _TIME_COLUMNS_MS else 1.0
        fs = _rate_from_times(body[:, time_col] / scale, file.name, fs)
        leads = [i for i in range(len(columns)) if i != time_col]
    else:
        leads = list(range(len(columns)))
    if not leads:
        raise RecordFormatError(f"{file.name} has a time column but no ECG lead column.")
    if fs is None:
        raise RecordFormatError(
            f"{file.name} has no time column, so the sampling rate must be given."
        )
    return Recording(body[:, leads], fs, tuple(columns[i] for i in leads), None, file.stem)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _rate_from_times(times: npt.NDArray[np.float64], name: str, fs: float | None) -> float:
    if times.size < 2:
        raise SignalValueError(f"{name} has too few samples to work out the sampling rate.")
    steps = np.diff(times)
    if not np.all(np.isfinite(steps)) or np.any(steps <= 0):
        raise RecordFormatError(f"The time column of {name} is not strictly increasing.")
    step = float(np.median(steps))
    if np.max(np.abs(steps - step)) > 0.1 * step:
        raise RecordFormatError(f"The samples in {name} are not evenly spaced in time.")
    rate = 1.0 / step
    if fs is not None and abs(rate - fs) > 0.01 * fs:
        raise RecordFormatError(
            f"The time column of {name} implies {rate:.1f} Hz, not the {fs:g} Hz given."
        )
    return float(fs) if fs is not None else round(rate, 6)


def read_recording(path: str | Path, fs: float | None = None) -> Recording:
    """Read a recording, choosing the reader from the name and content: ``.csv``, SCP-ECG
    (``.scp``, or any file that starts like an SCP-ECG record) or a WFDB record."""
    file = Path(path)
    if file.suffix.lower() == ".scp" or (file.is_file() and looks_like_scp_ecg(file)):
        return read_scp_ecg(file).recording
    if file.suffix.lower() == ".csv":
        return read_csv(file, fs)
    if file.suffix.lower() in _WFDB_SUFFIXES or file.with_name(file.name + ".hea").is_file():
        return read_wfdb(file)
    if file.is_file():
        raise RecordFormatError(
            f"{file.name} is neither a CSV file, an SCP-ECG record nor a WFDB record (give "
            "a WFDB record path without extension)."
        )
    raise RecordNotFoundError(f"No ECG recording found at {file}.")
