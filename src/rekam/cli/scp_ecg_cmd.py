"""``rekam ecg to-scp``: write an ECG recording (WFDB or CSV) as an SCP-ECG file.

Exit codes: 0 ok, 1 invalid input (unreadable recording or values SCP-ECG cannot hold),
2 usage error.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

import typer

from rekam.cli.output import EXIT_INVALID, console, errors
from rekam.ecg import (
    EcgError,
    Recording,
    ScpEcgDemographics,
    read_recording,
    read_scp_ecg,
    write_scp_ecg,
)

__all__ = ["to_scp"]


class EncodingChoice(StrEnum):
    real = "real"
    first_difference = "first-difference"
    second_difference = "second-difference"


class SexChoice(StrEnum):
    M = "M"
    F = "F"
    O = "O"  # noqa: E741 - "other / unspecified", as in DICOM


@contextmanager
def _readable_errors() -> Iterator[None]:
    try:
        yield
    except EcgError as exc:
        errors.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_INVALID) from exc
    except OSError as exc:
        errors.print(f"[bold red]error:[/] {exc.filename or ''} {exc.strerror or exc}")
        raise typer.Exit(EXIT_INVALID) from exc


def to_scp(
    record: Path = typer.Argument(..., help="WFDB record path without extension, or a .csv"),
    out_file: Path = typer.Argument(..., help="SCP-ECG file to write", dir_okay=False),
    patient_id: str = typer.Option(..., "--patient-id", help="Patient ID (tag 2)"),
    last_name: str = typer.Option("", "--last-name", help="Patient's last name (tag 0)"),
    first_name: str = typer.Option("", "--first-name", help="Patient's first name (tag 1)"),
    birth_date: datetime.datetime | None = typer.Option(
        None, "--birth-date", formats=["%Y-%m-%d"], help="Birth date YYYY-MM-DD (tag 5)"
    ),
    sex: SexChoice | None = typer.Option(None, "--sex", help="M, F or O (tag 8)"),
    acquired_at: datetime.datetime | None = typer.Option(
        None,
        "--acquired-at",
        formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"],
        help="Acquisition date and time, local clock (tags 25, 26); default now",
    ),
    institution: str = typer.Option("", "--institution", help="Acquiring institution (tag 16)"),
    department: str = typer.Option("", "--department", help="Acquiring department (tag 18)"),
    device_id: int = typer.Option(0, "--device-id", min=0, max=65535, help="Device number"),
    device_serial: str = typer.Option("", "--device-serial", help="Device serial number"),
    encoding: EncodingChoice = typer.Option(
        EncodingChoice.real, "--encoding", help="Store samples or their differences"
    ),
    huffman: bool = typer.Option(
        False, "--huffman", help="Code the rhythm data with the standard's default Huffman table"
    ),
    step_nv: int | None = typer.Option(
        None, "--step-nv", min=1, max=65535, help="Amplitude of one stored step in nV"
    ),
    start: float = typer.Option(0.0, "--start", min=0.0, help="Start at this second"),
    duration: float | None = typer.Option(
        None, "--duration", min=0.1, help="Keep this many seconds"
    ),
    fs: float | None = typer.Option(None, "--fs", help="Sampling rate of a CSV without time"),
) -> None:
    """Write an ECG recording as an SCP-ECG file (EN 1064, sections 0, 1, 3, 6)."""
    with _readable_errors():
        recording = _crop(read_recording(record, fs), start, duration)
        demographics = ScpEcgDemographics(
            patient_id=patient_id,
            last_name=last_name,
            first_name=first_name,
            birth_date=birth_date.date() if birth_date else None,
            sex=sex.value if sex else None,
            acquired_at=acquired_at or datetime.datetime.now().replace(microsecond=0),
            institution=institution,
            department=department,
            device_id=device_id,
            device_serial_number=device_serial,
            device_software="Rekam",
            manufacturer="Rekam",
        )
        size = write_scp_ecg(
            recording,
            demographics,
            out_file,
            amplitude_step_nv=step_nv,
            encoding=encoding.value,
            huffman=huffman,
        )
        written = read_scp_ecg(out_file)  # read back: every CRC and value checked
    console.print(
        f"Wrote [bold]{out_file}[/]: SCP-ECG, {recording.n_leads} leads × "
        f"{recording.n_samples} samples at {recording.fs:g} Hz, "
        f"{written.amplitude_step_nv} nV per step, {encoding.value}"
        f"{' + Huffman' if huffman else ''}, {size} bytes"
    )


def _crop(recording: Recording, start: float, duration: float | None) -> Recording:
    first = round(start * recording.fs)
    last = recording.n_samples if duration is None else first + round(duration * recording.fs)
    if first >= recording.n_samples:
        raise EcgError(
            f"The recording lasts {recording.duration_s:.1f} s; it has nothing after {start:g} s."
        )
    if first == 0 and last >= recording.n_samples:
        return recording
    return Recording(
        recording.samples[first:last], recording.fs, recording.lead_names, None, recording.name
    )
