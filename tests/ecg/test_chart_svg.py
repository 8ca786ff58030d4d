"""The 12-lead SVG chart, measured from its own coordinates: 10 mm per mV, 25 mm per second,
lead placement in the 3 × 4 layout, rhythm strip, calibration pulse, grid, missing leads."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from rekam.ecg import Recording
from rekam.ecg.chart_svg import ChartTexts, ecg_chart_svg

SVG = "{http://www.w3.org/2000/svg}"
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
# where each lead must be: (row, column) of the 3 × 4 layout
PLACES = {
    "I": (0, 0), "II": (1, 0), "III": (2, 0),
    "aVR": (0, 1), "aVL": (1, 1), "aVF": (2, 1),
    "V1": (0, 2), "V2": (1, 2), "V3": (2, 2),
    "V4": (0, 3), "V5": (1, 3), "V6": (2, 3),
}  # fmt: skip
ROW_PITCH_MM = 35.0  # the layout as specified: rows 35 mm apart, baseline 20 mm below a row top
BASELINE_MM = 20.0
TRACE_START_MM = 10.0


def parse(svg: str) -> tuple[ET.Element, float]:
    """The root element and the SVG units per millimetre, from viewBox and width="...mm"."""
    root = ET.fromstring(svg)  # noqa: S314 -- the chart this test just rendered
    view = [float(v) for v in root.attrib["viewBox"].split()]
    width = root.attrib["width"]
    assert width.endswith("mm")
    return root, view[2] / float(width[:-2])


def traces(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}polyline") if "trace" in e.attrib.get("class", "")]


def coords(element: ET.Element, per_mm: float) -> tuple[np.ndarray, np.ndarray]:
    pairs = [p.split(",") for p in element.attrib["points"].split()]
    data = np.array(pairs, dtype=float) / per_mm
    return data[:, 0], data[:, 1]


def lead_trace(root: ET.Element, lead: str, rhythm: bool = False) -> ET.Element:
    found = [
        e
        for e in traces(root)
        if e.attrib["data-lead"] == lead and ("rhythm" in e.attrib["class"]) == rhythm
    ]
    assert len(found) == 1, f"{len(found)} traces for {lead}"
    return found[0]


def twelve(signal_of: dict[str, np.ndarray] | None, fs: float, seconds: float = 10.0) -> Recording:
    n = round(seconds * fs)
    columns = [
        (signal_of or {}).get(lead, np.zeros(n)) if signal_of is not None else np.zeros(n)
        for lead in LEADS
    ]
    return Recording(np.stack(columns, axis=1), fs, LEADS)


@pytest.mark.parametrize("fs", [250.0, 360.0, 500.0, 1000.0])
def test_one_millivolt_square_pulse_is_10_mm_high_and_one_second_is_25_mm(fs: float) -> None:
    n = int(10 * fs)
    t = np.arange(n) / fs
    pulse = np.where((t >= 0.5) & (t < 1.5), 1.0, 0.0)  # 1 mV for exactly one second
    root, per_mm = parse(ecg_chart_svg(twelve({"I": pulse, "II": pulse}, fs)))
    for element in (lead_trace(root, "I"), lead_trace(root, "II", rhythm=True)):
        x, y = coords(element, per_mm)
        assert y.max() - y.min() == pytest.approx(10.0, abs=0.02)
        top = x[y < y.min() + 0.05]
        step_mm = max(25.0 / fs, 0.1)  # a sample, or a 0.1 mm column once thinned
        assert top.max() - top.min() == pytest.approx(25.0, abs=step_mm + 0.02)
        # it starts 0.5 s = 12.5 mm after the trace origin
        assert top.min() - TRACE_START_MM == pytest.approx(12.5, abs=step_mm)


@pytest.mark.parametrize("fs", [250.0, 500.0, 1000.0])
def test_sine_period_on_the_rhythm_strip_is_25_mm_per_second(fs: float) -> None:
    t = np.arange(int(10 * fs)) / fs
    sine = 1.5 * np.sin(2 * np.pi * 2.0 * t)  # 2 Hz: one period every 12.5 mm
    root, per_mm = parse(ecg_chart_svg(twelve({"II": sine}, fs)))
    x, y = coords(lead_trace(root, "II", rhythm=True), per_mm)
    assert x.max() - x.min() == pytest.approx(250.0, abs=0.2)  # 10 s at 25 mm/s
    baseline = 3 * ROW_PITCH_MM + BASELINE_MM
    assert np.median(y) == pytest.approx(baseline, abs=0.1)
    assert y.max() - y.min() == pytest.approx(30.0, abs=0.1)  # 3 mV peak to peak
    above = y < baseline  # above the baseline on paper = positive voltage
    rising = np.flatnonzero(~above[:-1] & above[1:])
    periods = np.diff(x[rising])
    assert len(periods) == 19
    assert periods.mean() == pytest.approx(12.5, abs=0.05)


def test_each_lead_sits_in_its_row_and_column_and_shows_its_own_samples() -> None:
    fs = 500.0
    t = np.arange(int(10 * fs)) / fs
    # each lead gets its own amplitude, so a trace tells which lead's samples it draws
    amplitude = {lead: 0.1 * (k + 1) for k, lead in enumerate(LEADS)}
    signals = {lead: a * np.sin(2 * np.pi * 1.3 * t) for lead, a in amplitude.items()}
    root, per_mm = parse(ecg_chart_svg(twelve(signals, fs)))
    assert len(traces(root)) == 13
    for lead, (row, column) in PLACES.items():
        x, y = coords(lead_trace(root, lead), per_mm)
        start = TRACE_START_MM + column * 62.5
        assert x.min() == pytest.approx(start, abs=0.01)
        assert x.max() == pytest.approx(start + 62.5, abs=0.1)
        segment = signals[lead][int(column * 2.5 * fs) : int((column + 1) * 2.5 * fs)]
        expected_span = (segment.max() - segment.min()) * 10.0
        assert y.max() - y.min() == pytest.approx(expected_span, abs=0.03), lead
        baseline = row * ROW_PITCH_MM + BASELINE_MM
        assert abs(y - baseline).max() <= amplitude[lead] * 10.0 + 0.02
    labels = [e.text for e in root.iter(f"{SVG}text") if e.attrib.get("class") == "lead-label"]
    assert set(LEADS) <= set(labels)


def test_columns_show_consecutive_time_and_match_the_rhythm_strip() -> None:
    fs = 500.0
    t = np.arange(int(10 * fs)) / fs
    chirp = np.sin(2 * np.pi * (0.5 + 0.4 * t) * t)  # never repeats, so a time shift shows
    root, per_mm = parse(ecg_chart_svg(twelve(dict.fromkeys(LEADS, chirp), fs)))
    rx, ry = coords(lead_trace(root, "II", rhythm=True), per_mm)
    rhythm_baseline = 3 * ROW_PITCH_MM + BASELINE_MM
    for lead, (row, _column) in PLACES.items():
        x, y = coords(lead_trace(root, lead), per_mm)
        at = np.searchsorted(rx, x)
        assert np.array_equal(rx[at], x)  # same sample positions on the same time axis
        shifted = ry[at] - rhythm_baseline + row * ROW_PITCH_MM + BASELINE_MM
        assert np.abs(shifted - y).max() <= 0.011, lead


def test_calibration_pulse_is_one_millivolt_for_200_ms_in_every_row() -> None:
    root, per_mm = parse(ecg_chart_svg(twelve(None, 500.0)))
    pulses = [e for e in root.iter(f"{SVG}polyline") if e.attrib.get("class") == "calibration"]
    assert len(pulses) == 4
    for pulse in pulses:
        x, y = coords(pulse, per_mm)
        assert y.max() - y.min() == pytest.approx(10.0, abs=0.01)
        top = x[y == y.min()]
        assert top.max() - top.min() == pytest.approx(5.0, abs=0.01)


def test_grid_has_1_mm_and_5_mm_squares_and_legend_states_speed_and_gain() -> None:
    svg = ecg_chart_svg(twelve(None, 500.0))
    root, per_mm = parse(svg)
    paths = {e.attrib["class"]: e.attrib["d"] for e in root.iter(f"{SVG}path")}
    for css, spacing in (("grid-major", 5.0), ("grid-minor", 1.0)):
        xs = sorted({int(v) for v in re.findall(r"M(\d+) 0V", paths[css])})
        gaps = set(np.diff(xs) / per_mm)
        if css == "grid-major":
            assert gaps == {5.0}
        else:  # minor lines skip every fifth millimetre (drawn thick instead)
            assert gaps == {1.0, 2.0}
        assert xs[0] / per_mm == pytest.approx(0.0 if css == "grid-major" else 1.0)
        assert spacing
    legend = next(e.text for e in root.iter(f"{SVG}text") if e.attrib.get("class") == "legend")
    assert legend is not None and "25 mm/s" in legend and "10 mm/mV" in legend


def test_missing_lead_is_labelled_not_drawn_flat() -> None:
    fs = 500.0
    n = int(10 * fs)
    without_v3 = tuple(lead for lead in LEADS if lead != "V3")
    recording = Recording(np.zeros((n, 11)), fs, without_v3)
    texts = ChartTexts(not_recorded="tidak direkam")
    root, _ = parse(ecg_chart_svg(recording, texts))
    assert len(traces(root)) == 12
    assert not [e for e in traces(root) if e.attrib["data-lead"] == "V3"]
    missing = [e.text for e in root.iter(f"{SVG}text") if e.attrib.get("class") == "missing-lead"]
    assert missing == ["V3: tidak direkam"]


def test_short_single_lead_and_unnamed_leads_do_not_crash() -> None:
    fs = 250.0
    short = Recording(np.sin(np.arange(int(3 * fs)) / 10.0), fs, ("lead ii",))
    root, per_mm = parse(ecg_chart_svg(short))
    assert [e.attrib["data-lead"] for e in traces(root)] == ["II", "II"]
    x, _ = coords(lead_trace(root, "II", rhythm=True), per_mm)
    assert x.max() - x.min() == pytest.approx(75.0, abs=0.2)  # 3 s drawn, no more
    odd = Recording(np.zeros((1000, 2)), fs, ("X<&>", "Y"))
    root, _ = parse(ecg_chart_svg(odd))  # escapes and parses; nothing drawn, all labelled
    assert traces(root) == []
    missing = [e.text for e in root.iter(f"{SVG}text") if e.attrib.get("class") == "missing-lead"]
    assert len(missing) == 13


def test_output_is_compact_and_large_deflections_stay_on_the_paper() -> None:
    fs = 1000.0
    t = np.arange(int(10 * fs)) / fs
    rng = np.random.default_rng(7)
    signals = {lead: 0.5 * np.sin(2 * np.pi * 1.2 * t) + 0.05 * rng.normal(size=t.size)
               for lead in LEADS}  # fmt: skip
    signals["V1"] = signals["V1"] + np.where((t > 6.0) & (t < 6.004), 40.0, 0.0)  # 40 mV spike
    svg = ecg_chart_svg(twelve(signals, fs))
    root, per_mm = parse(svg)
    assert len(svg) < 400_000
    view_height = float(root.attrib["viewBox"].split()[3]) / per_mm
    for element in traces(root):
        _, y = coords(element, per_mm)
        assert y.min() >= 0.0 and y.max() <= view_height
    # thinning keeps the spike's peak (it is 4 ms wide; a plain decimation could drop it)
    _, y = coords(lead_trace(root, "V1"), per_mm)
    assert y.min() == 0.0
