"""A 12-lead ECG as an SVG chart on the standard ECG paper grid.

The layout is the one printed by electrocardiographs: 25 mm/s, 10 mm/mV, a 3 × 4 grid of
2.5-second lead segments (I, II, III | aVR, aVL, aVF | V1, V2, V3 | V4, V5, V6, each column the
next 2.5 s of the recording) and a 10-second rhythm strip of lead II underneath, a 1 mV × 200 ms
calibration pulse at the start of every row, the lead names and a speed/gain legend.

The drawing is in true millimetres: the ``viewBox`` counts hundredths of a millimetre
(:data:`UNITS_PER_MM`) and ``width``/``height`` are given in ``mm``, so the chart prints at
scale and every coordinate is a small integer. Traces are one ``<polyline class="trace">`` each,
built with numpy; above 250 samples per 0.1 mm the samples are thinned to the lowest and highest
of each 0.1 mm column so spikes are kept. A lead the recording does not have is labelled as not
recorded rather than drawn as a flat line.

    >>> svg = ecg_chart_svg(recording)  # doctest: +SKIP
    >>> svg.startswith("<svg")  # doctest: +SKIP
    True
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import numpy.typing as npt

from rekam.ecg.recording import Recording

__all__ = [
    "CHART_LAYOUT",
    "GAIN_MM_PER_MV",
    "SPEED_MM_PER_S",
    "UNITS_PER_MM",
    "ChartTexts",
    "ecg_chart_svg",
]

SPEED_MM_PER_S = 25.0
GAIN_MM_PER_MV = 10.0
#: user units of the SVG per millimetre of paper (coordinates are integers in 10 µm)
UNITS_PER_MM = 100

#: the 3 × 4 layout: rows of (lead per column); column c shows seconds 2.5·c to 2.5·(c+1)
CHART_LAYOUT: tuple[tuple[str, str, str, str], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
RHYTHM_LEAD = "II"
SEGMENT_S = 2.5
RHYTHM_S = 10.0

CALIBRATION_MM = 10.0  # space before the traces holding the calibration pulse
PULSE_START_MM = 2.5
PULSE_WIDTH_MM = 0.2 * SPEED_MM_PER_S  # 200 ms
ROW_PITCH_MM = 35.0
BASELINE_MM = 20.0  # from the top of a row
LEGEND_MM = 10.0
GRID_WIDTH_MM = CALIBRATION_MM + 4 * SEGMENT_S * SPEED_MM_PER_S  # 260 mm
ROWS = len(CHART_LAYOUT) + 1
GRID_HEIGHT_MM = ROWS * ROW_PITCH_MM  # 140 mm
#: samples per 0.1 mm column above which a trace is thinned to each column's extremes
THIN_COLUMN_MM = 0.1

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ChartTexts:
    """The words on the chart, so the caller can translate them."""

    title: str = "12-lead ECG"
    not_recorded: str = "not recorded"
    rhythm: str = "rhythm"
    legend: str = "{speed:g} mm/s · {gain:g} mm/mV · {fs:g} Hz · {duration:.1f} s"
    calibration: str = "1 mV calibration pulse"


def _u(mm: float) -> int:
    return round(mm * UNITS_PER_MM)


def _lead_index(recording: Recording) -> dict[str, int]:
    """Lead name → column, matching names case-insensitively ('AVR', 'Lead aVR' are aVR)."""
    found: dict[str, int] = {}
    wanted = {name.lower(): name for row in CHART_LAYOUT for name in row}
    for index, name in enumerate(recording.lead_names):
        key = name.strip().lower().removeprefix("lead").strip()
        standard = wanted.get(key)
        if standard is not None and standard not in found:
            found[standard] = index
    return found


def _grid() -> str:
    """Thin 1 mm lines and thick 5 mm lines, each set as one path."""
    width, height = GRID_WIDTH_MM, GRID_HEIGHT_MM
    minor: list[str] = []
    major: list[str] = []
    for mm in range(int(width) + 1):
        (major if mm % 5 == 0 else minor).append(f"M{_u(mm)} 0V{_u(height)}")
    for mm in range(int(height) + 1):
        (major if mm % 5 == 0 else minor).append(f"M0 {_u(mm)}H{_u(width)}")
    return (
        f'<path class="grid-minor" d="{"".join(minor)}" stroke="#f4c7c3" stroke-width="4"/>'
        f'<path class="grid-major" d="{"".join(major)}" stroke="#e8908a" stroke-width="8"/>'
    )


def _calibration(row: int) -> str:
    baseline = row * ROW_PITCH_MM + BASELINE_MM
    x0, x1 = PULSE_START_MM, PULSE_START_MM + PULSE_WIDTH_MM
    top = baseline - 1.0 * GAIN_MM_PER_MV
    points = [
        (0.5, baseline),
        (x0, baseline),
        (x0, top),
        (x1, top),
        (x1, baseline),
        (CALIBRATION_MM - 0.5, baseline),
    ]
    text = " ".join(f"{_u(x)},{_u(y)}" for x, y in points)
    return f'<polyline class="calibration" data-row="{row}" points="{text}"/>'


def _thinned(values: FloatArray, fs: float) -> tuple[FloatArray, FloatArray]:
    """(sample positions, values), keeping each 0.1 mm column's lowest and highest sample when
    there are more than two samples per column."""
    per_column = int(fs * THIN_COLUMN_MM / SPEED_MM_PER_S)
    positions = np.arange(values.size, dtype=np.float64)
    if per_column < 3 or values.size < 2 * per_column:
        return positions, values
    whole = values.size // per_column * per_column
    blocks = values[:whole].reshape(-1, per_column)
    low = np.argmin(blocks, axis=1)
    high = np.argmax(blocks, axis=1)
    first = np.minimum(low, high)
    second = np.maximum(low, high)
    starts = np.arange(blocks.shape[0]) * per_column
    picked = np.stack([starts + first, starts + second], axis=1).ravel()
    picked = np.concatenate([picked, np.arange(whole, values.size)])
    return picked.astype(np.float64), values[picked]


def _points(values: FloatArray, fs: float, x0_mm: float, baseline_mm: float) -> str:
    """Polyline points in chart units for samples starting at ``x0_mm`` on ``baseline_mm``."""
    positions, shown = _thinned(values, fs)
    xs = np.rint((x0_mm + positions / fs * SPEED_MM_PER_S) * UNITS_PER_MM)
    ys = baseline_mm - shown * GAIN_MM_PER_MV
    ys = np.clip(ys, 0.0, GRID_HEIGHT_MM)  # very large deflections stay on the paper
    pairs = np.stack([xs, np.rint(ys * UNITS_PER_MM)], axis=1).astype(np.int64)
    out = io.StringIO()
    np.savetxt(out, pairs, fmt="%d,%d", newline=" ")
    return out.getvalue().rstrip()


def _trace(
    recording: Recording,
    column: int,
    start_s: float,
    seconds: float,
    x0_mm: float,
    baseline_mm: float,
    lead: str,
    offset: float,
) -> str | None:
    first = round(start_s * recording.fs)
    last = min(round((start_s + seconds) * recording.fs), recording.n_samples)
    if last - first < 2:
        return None
    values = recording.samples[first:last, column] - offset
    points = _points(values, recording.fs, x0_mm, baseline_mm)
    return f'<polyline class="trace" data-lead={quoteattr(lead)} points="{points}"/>'


def _label(x_mm: float, y_mm: float, text: str, css: str = "lead-label") -> str:
    return (
        f'<text class="{css}" x="{_u(x_mm)}" y="{_u(y_mm)}" font-size="{_u(3.5)}" '
        f'font-family="sans-serif" fill="#111">{escape(text)}</text>'
    )


def ecg_chart_svg(recording: Recording, texts: ChartTexts | None = None) -> str:
    """The recording as a 12-lead chart with rhythm strip (an ``<svg>`` element as text).

    Leads are found by name (I, II, III, aVR, aVL, aVF, V1–V6, any case); each is drawn about
    its median so a DC offset does not push it off its row. Any sampling rate is accepted;
    recordings shorter than 10 s leave the rest of their rows empty.
    """
    texts = texts or ChartTexts()
    index = _lead_index(recording)
    offsets = {lead: float(np.median(recording.samples[:, col])) for lead, col in index.items()}
    width_mm, height_mm = GRID_WIDTH_MM, GRID_HEIGHT_MM + LEGEND_MM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="ecg-chart" role="img" '
        f'viewBox="0 0 {_u(width_mm)} {_u(height_mm)}" width="{width_mm:g}mm" '
        f'height="{height_mm:g}mm" data-speed-mm-per-s="{SPEED_MM_PER_S:g}" '
        f'data-gain-mm-per-mv="{GAIN_MM_PER_MV:g}" data-units-per-mm="{UNITS_PER_MM}">',
        f"<title>{escape(texts.title)}</title>",
        f'<rect x="0" y="0" width="{_u(width_mm)}" height="{_u(GRID_HEIGHT_MM)}" fill="#fff"/>',
        _grid(),
        f'<g class="calibrations" fill="none" stroke="#111" stroke-width="15">'
        f"<title>{escape(texts.calibration)}</title>",
        *(_calibration(row) for row in range(ROWS)),
        "</g>",
        '<g class="traces" fill="none" stroke="#111" stroke-width="15" stroke-linejoin="round">',
    ]
    labels: list[str] = []
    for row, leads in enumerate(CHART_LAYOUT):
        top = row * ROW_PITCH_MM
        for column, lead in enumerate(leads):
            x0 = CALIBRATION_MM + column * SEGMENT_S * SPEED_MM_PER_S
            drawn = None
            if lead in index:
                drawn = _trace(
                    recording,
                    index[lead],
                    column * SEGMENT_S,
                    SEGMENT_S,
                    x0,
                    top + BASELINE_MM,
                    lead,
                    offsets[lead],
                )
                if drawn is not None:
                    parts.append(drawn)
            labels.append(_label(x0 + 1.0, top + 5.0, lead))
            if drawn is None:
                labels.append(
                    _label(x0 + 1.0, top + 10.0, f"{lead}: {texts.not_recorded}", "missing-lead")
                )
    rhythm_top = len(CHART_LAYOUT) * ROW_PITCH_MM
    rhythm_lead = RHYTHM_LEAD if RHYTHM_LEAD in index else next(iter(sorted(index)), None)
    rhythm = None
    if rhythm_lead is not None:
        rhythm = _trace(
            recording,
            index[rhythm_lead],
            0.0,
            RHYTHM_S,
            CALIBRATION_MM,
            rhythm_top + BASELINE_MM,
            rhythm_lead,
            offsets[rhythm_lead],
        )
    if rhythm is not None and rhythm_lead is not None:
        parts.append(rhythm.replace('class="trace"', 'class="trace rhythm"', 1))
        labels.append(
            _label(CALIBRATION_MM + 1.0, rhythm_top + 5.0, f"{rhythm_lead} ({texts.rhythm})")
        )
    else:
        labels.append(
            _label(
                CALIBRATION_MM + 1.0,
                rhythm_top + 5.0,
                f"{RHYTHM_LEAD} ({texts.rhythm}): {texts.not_recorded}",
                "missing-lead",
            )
        )
    parts.append("</g>")
    # column separators, as electrocardiographs print them
    for column in range(1, 4):
        x = _u(CALIBRATION_MM + column * SEGMENT_S * SPEED_MM_PER_S)
        for row in range(len(CHART_LAYOUT)):
            mid = row * ROW_PITCH_MM + BASELINE_MM
            parts.append(
                f'<line class="separator" x1="{x}" y1="{_u(mid - 3)}" x2="{x}" '
                f'y2="{_u(mid + 3)}" stroke="#111" stroke-width="15"/>'
            )
    parts.extend(labels)
    legend = texts.legend.format(
        speed=SPEED_MM_PER_S,
        gain=GAIN_MM_PER_MV,
        fs=recording.fs,
        duration=recording.duration_s,
    )
    parts.append(_label(1.0, GRID_HEIGHT_MM + 6.5, legend, "legend"))
    parts.append("</svg>")
    return "".join(parts)
