"""``rekam ecg``: analyse ECG recordings and evaluate the R-peak detector.

RECORD is a WFDB record path without extension (``data/mitdb/100``) or a ``.csv`` file.
Exit codes: 0 ok, 1 invalid input (unreadable or unusable recording), 2 usage error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from rekam.cli.lazy_group import LazyCommand, lazy_group
from rekam.ecg import (
    EcgAnalysis,
    EcgError,
    RecordEvaluation,
    RhythmThresholds,
    analyze_recording,
    evaluate_recording,
    read_recording,
    total_evaluation,
)

app = typer.Typer(
    # ``to-dicom`` and ``to-scp`` live with their formats' commands, loaded when they run
    cls=lazy_group(
        {
            "to-dicom": LazyCommand("rekam.cli.dicom_cmd:to_dicom"),
            "to-scp": LazyCommand("rekam.cli.scp_ecg_cmd:to_scp"),
        }
    ),
    help="Analyse ECG recordings: R peaks, heart rate, rhythm episodes, detector evaluation.",
    no_args_is_help=True,
)

EXIT_INVALID = 1
console = Console()
errors = Console(stderr=True)


@contextmanager
def _readable_errors() -> Iterator[None]:
    try:
        yield
    except EcgError as exc:
        errors.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_INVALID) from exc


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _round(value: float | None, digits: int = 2) -> float | None:
    if value is None or value != value:  # None or NaN
        return None
    return round(float(value), digits)


@app.command()
def analyze(
    record: Path = typer.Argument(..., help="WFDB record path without extension, or a .csv file"),
    window: int = typer.Option(5, "--window", min=1, help="Moving average over this many beats"),
    lead: int = typer.Option(0, "--lead", min=0, help="Lead (column) number to analyse"),
    fs: float | None = typer.Option(None, "--fs", help="Sampling rate of a CSV without time"),
    brady: float = typer.Option(50.0, "--brady", help="Bradycardia below this rate (bpm)"),
    tachy: float = typer.Option(100.0, "--tachy", help="Tachycardia above this rate (bpm)"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output"),
) -> None:
    """Detect beats and print the heart-rate summary and rhythm episodes of one recording."""
    with _readable_errors():
        recording = read_recording(record, fs)
        thresholds = RhythmThresholds(brady_bpm=brady, tachy_bpm=tachy)
        analysis = analyze_recording(recording, lead=lead, window=window, thresholds=thresholds)
    if as_json:
        _echo_json(_analysis_json(analysis))
    else:
        _print_analysis(analysis)


def _analysis_json(a: EcgAnalysis) -> dict[str, Any]:
    summary = a.summary_bpm()
    return {
        "record": a.name,
        "lead": a.lead,
        "sampling_rate_hz": a.fs,
        "duration_s": _round(a.duration_s, 3),
        "beats": int(a.beats.size),
        "heart_rate_bpm": None
        if summary is None
        else {
            "window_beats": a.heart_rate.window,
            "mean": _round(summary[0]),
            "min": _round(summary[1]),
            "max": _round(summary[2]),
        },
        "reliable_fraction": _round(a.quality.reliable_fraction, 4),
        "unreliable": [
            {"start_s": _round(s.start_s), "end_s": _round(s.end_s), "issue": s.issue.value}
            for s in a.quality.segments
        ],
        "irregular_rhythm": a.irregularity.is_irregular,
        "episodes": [
            {
                "kind": e.kind.value,
                "start_s": _round(e.start_s),
                "end_s": _round(e.end_s),
                "mean_bpm": _round(e.mean_bpm),
                "min_bpm": _round(e.min_bpm),
                "max_bpm": _round(e.max_bpm),
            }
            for e in a.episodes
        ],
    }


def _print_analysis(a: EcgAnalysis) -> None:
    summary = a.summary_bpm()
    head = Table(title=f"ECG {a.name} — lead {a.lead}", show_header=False)
    head.add_row("duration", f"{a.duration_s:.1f} s at {a.fs:g} Hz")
    head.add_row("beats detected", str(a.beats.size))
    if summary is None:
        head.add_row("heart rate", "no reliable reading")
    else:
        head.add_row(
            f"heart rate ({a.heart_rate.window}-beat average)",
            f"mean {summary[0]:.0f} bpm, min {summary[1]:.0f}, max {summary[2]:.0f}",
        )
    head.add_row("reliable signal", f"{100 * a.quality.reliable_fraction:.1f} %")
    head.add_row("irregular rhythm", "yes" if a.irregularity.is_irregular else "no")
    console.print(head)
    episodes = Table(title="Rhythm episodes")
    for column in ("kind", "start", "end", "mean bpm", "min", "max"):
        episodes.add_column(column, justify="left" if column == "kind" else "right")
    for e in a.episodes:
        episodes.add_row(
            e.kind.value,
            _clock(e.start_s),
            _clock(e.end_s),
            *(f"{v:.0f}" if v is not None else "—" for v in (e.mean_bpm, e.min_bpm, e.max_bpm)),
        )
    console.print(episodes)


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes):d}:{rest:04.1f}"


@app.command()
def evaluate(
    records: list[Path] = typer.Argument(..., help="Annotated WFDB records (without extension)"),
    window: int = typer.Option(5, "--window", min=1, help="Moving average over this many beats"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output"),
) -> None:
    """Score the R-peak detector against reference annotations (±150 ms), per record and total."""
    results: list[RecordEvaluation] = []
    with _readable_errors():
        for path in records:
            results.append(evaluate_recording(read_recording(path), window=window))
        total = total_evaluation(results)
    if as_json:
        _echo_json(
            {
                "tolerance_ms": 150,
                "window_beats": window,
                "records": [_evaluation_json(r) for r in results],
                "total": _evaluation_json(total),
            }
        )
        return
    table = Table(
        title=f"R-peak detection, ±150 ms (RMSE: bpm, {window}-beat average on a 1 Hz grid)",
        caption="acc% = 100 − RMSE; agree% = seconds with the same brady/normal/tachy class",
    )
    columns = ("record", "beats", "TP", "FN", "FP", "Se%", "+P%", "F1%", "RMSE", "acc%", "agree%")
    for column in columns:
        table.add_column(column, justify="left" if column == "record" else "right", no_wrap=True)
    for r in [*results, total]:
        row = _evaluation_json(r)
        table.add_row(
            r.name,
            str(row["reference_beats"]),
            str(row["true_positives"]),
            str(row["false_negatives"]),
            str(row["false_positives"]),
            *(
                _fmt(row[k])
                for k in (
                    "sensitivity",
                    "positive_predictivity",
                    "f1",
                    "heart_rate_rmse_bpm",
                    "accuracy_percent",
                    "rhythm_agreement_percent",
                )
            ),
            end_section=r is results[-1],
        )
    console.print(table)


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.2f}"


def _evaluation_json(r: RecordEvaluation) -> dict[str, Any]:
    s, h = r.score, r.heart_rate
    return {
        "record": r.name,
        "reference_beats": s.reference_beats,
        "detected_beats": s.detected_beats,
        "true_positives": s.true_positives,
        "false_negatives": s.false_negatives,
        "false_positives": s.false_positives,
        "sensitivity": _round(s.sensitivity, 4),
        "positive_predictivity": _round(s.positive_predictivity, 4),
        "f1": _round(s.f1, 4),
        "heart_rate_rmse_bpm": _round(h.rmse_bpm, 4),
        "accuracy_percent": _round(h.accuracy_percent, 4),
        "rhythm_agreement_percent": _round(h.rhythm_agreement_percent, 4),
        "seconds_compared": h.seconds,
        "reference_bradycardia_s": h.reference_brady_s,
        "reference_tachycardia_s": h.reference_tachy_s,
        "detected_bradycardia_s": h.detected_brady_s,
        "detected_tachycardia_s": h.detected_tachy_s,
    }
