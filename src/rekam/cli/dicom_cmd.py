"""``rekam dicom``: turn ECG recordings into DICOM objects, sign them, verify their signatures.

Exit codes: 0 ok (for ``verify``: every signature of every file is valid), 1 verification failed
or invalid input, 2 usage error.
"""

from __future__ import annotations

import datetime
import hashlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from cryptography import x509
from rich.table import Table

from rekam.cli.output import EXIT_INVALID, EXIT_USAGE, console, errors, print_json
from rekam.cli.settings_loader import settings_or_exit
from rekam.crypto import CryptoError
from rekam.crypto.passphrase import read_secret_file
from rekam.dicom import (
    DicomError,
    EquipmentInfo,
    KeyPassphraseNeeded,
    PatientInfo,
    SignatureVerdict,
    StudyInfo,
    load_pem_signer,
    load_pkcs12_signer,
    recording_to_dicom,
    sign_file,
    verify_dataset,
    write_dicom,
)
from rekam.dicom.signers import DicomSigner
from rekam.dicom.token_signer import open_token_signer
from rekam.dicom.uids import UUID_UID_ROOT
from rekam.ecg import (
    EcgError,
    Recording,
    ScpEcgDemographics,
    looks_like_scp_ecg,
    read_recording,
    read_scp_ecg,
)
from rekam.pki import PkiError, verify_chain

__all__ = ["app", "sign", "to_dicom", "verify"]

app = typer.Typer(
    help="DICOM ECG objects: convert recordings, sign them as a doctor, verify signatures.",
    no_args_is_help=True,
)


class MacChoice(StrEnum):
    sha256 = "sha256"
    sha384 = "sha384"
    sha512 = "sha512"


class ProfileChoice(StrEnum):
    base = "base"
    creator = "creator"
    none = "none"


class KindChoice(StrEnum):
    auto = "auto"
    twelve_lead = "12-lead"
    general = "general"
    ambulatory = "ambulatory"


class SexChoice(StrEnum):
    M = "M"
    F = "F"
    O = "O"  # noqa: E741 - the DICOM code for "other"


@contextmanager
def _readable_errors() -> Iterator[None]:
    try:
        yield
    except (DicomError, PkiError, EcgError) as exc:
        errors.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_INVALID) from exc
    except OSError as exc:
        errors.print(f"[bold red]error:[/] {exc.filename or ''} {exc.strerror or exc}")
        raise typer.Exit(EXIT_INVALID) from exc


def _read_passphrase(path: Path | None) -> bytes | None:
    if path is None:
        return None
    data = path.read_bytes()
    return data.rstrip(b"\r\n") or None


def _load_certificates(paths: list[Path]) -> list[x509.Certificate]:
    certificates: list[x509.Certificate] = []
    for path in paths:
        data = path.read_bytes()
        try:
            if b"-----BEGIN" in data:
                certificates.extend(x509.load_pem_x509_certificates(data))
            else:
                certificates.append(x509.load_der_x509_certificate(data))
        except ValueError as exc:
            raise DicomError(f"{path} holds no readable certificate.") from exc
    return certificates


def _load_crls(paths: list[Path]) -> list[x509.CertificateRevocationList]:
    crls = []
    for path in paths:
        data = path.read_bytes()
        try:
            crl = (
                x509.load_pem_x509_crl(data)
                if b"-----BEGIN" in data
                else x509.load_der_x509_crl(data)
            )
        except ValueError as exc:
            raise DicomError(f"{path} holds no readable certificate revocation list.") from exc
        crls.append(crl)
    return crls


@app.command("sign")
def sign(
    in_file: Path = typer.Argument(..., help="DICOM file to sign", dir_okay=False),
    out_file: Path = typer.Argument(..., help="Where to write the signed file", dir_okay=False),
    key: Path | None = typer.Option(None, "--key", help="Private key (PEM, may be encrypted)"),
    cert: Path | None = typer.Option(None, "--cert", help="Signer's certificate (PEM)"),
    pkcs12: Path | None = typer.Option(
        None, "--pkcs12", help="Key and certificate in one PKCS#12 file, instead of --key/--cert"
    ),
    chain: Path | None = typer.Option(
        None,
        "--chain",
        help="Issuer certificates (PEM); when a root is included the signer's certificate is "
        "checked for document signing before signing",
    ),
    passphrase_file: Path | None = typer.Option(
        None, "--passphrase-file", help="File holding the key's passphrase"
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        help="Sign with a key on this PKCS#11 token (label); module from REKAM_PKCS11_MODULE",
    ),
    key_label: str | None = typer.Option(
        None, "--key-label", help="Label of the key on the token (needed when it holds several)"
    ),
    pin_file: Path | None = typer.Option(
        None, "--pin-file", help="File holding the token's user PIN (else it is asked for)"
    ),
    mac: MacChoice = typer.Option(MacChoice.sha256, "--mac", help="MAC (hash) algorithm"),
    profile: ProfileChoice = typer.Option(
        ProfileChoice.base,
        "--profile",
        help="Signature profile: base/creator (RSA keys) or none (any key, e.g. ECDSA)",
    ),
    purpose: int | None = typer.Option(
        None, "--purpose", min=1, max=18, help="Signature purpose code (1 author … 14 source)"
    ),
    uid_root: str = typer.Option(
        UUID_UID_ROOT, "--uid-root", envvar="REKAM_DICOM_UID_ROOT", help="Org root for UIDs"
    ),
) -> None:
    """Add a doctor's digital signature (PS3.15) to a DICOM file."""
    if token is not None:
        if key is not None or pkcs12 is not None:
            raise typer.BadParameter("--token replaces --key and --pkcs12; give one or the other")
    elif pkcs12 is None and (key is None or cert is None):
        raise typer.BadParameter("give --key and --cert, --pkcs12, or --token")
    elif pkcs12 is not None and (key is not None or cert is not None):
        raise typer.BadParameter("--pkcs12 replaces --key and --cert; give one or the other")
    if token is None and (key_label is not None or pin_file is not None):
        raise typer.BadParameter("--key-label and --pin-file go with --token")
    module = _pkcs11_module() if token is not None else None
    with _readable_errors():
        signer: DicomSigner
        if token is not None:
            assert module is not None
            certificate = _load_certificates([cert])[0] if cert is not None else None
            signer = open_token_signer(module, token, _read_pin(pin_file), key_label, certificate)
            bundled: list[x509.Certificate] = []
        else:
            passphrase = _read_passphrase(passphrase_file)
            signer, bundled = _load_signer(key, cert, pkcs12, passphrase)
        issuers = [*bundled, *(_load_certificates([chain]) if chain else [])]
        _preflight(signer.certificate, issuers)
        uid = sign_file(
            in_file,
            out_file,
            signer,
            mac_algorithm=mac.value,
            profile=profile.value,
            purpose=purpose,
            uid_root=uid_root,
        )
    names = signer.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    name = str(names[0].value) if names else signer.certificate.subject.rfc4514_string()
    console.print(f"Signed [bold]{in_file}[/] → [bold]{out_file}[/]")
    console.print(f"  signer: {name}\n  MAC: {mac.value.upper()}, profile: {profile.value}")
    console.print(f"  signature UID: {uid}")


def _pkcs11_module() -> str:
    module = settings_or_exit().pkcs11_module
    if module is None:
        errors.print(
            "[bold red]error:[/] no PKCS#11 module is configured: set REKAM_PKCS11_MODULE "
            "(or pkcs11_module in rekam.toml) to the token's library, e.g. "
            "/usr/lib/softhsm/libsofthsm2.so"
        )
        raise typer.Exit(EXIT_USAGE)
    return str(module)


def _read_pin(path: Path | None) -> str:
    """The token PIN from a file, else asked for on the terminal; never from the command line."""
    if path is not None:
        try:
            return read_secret_file(path, "PIN").decode("utf-8")
        except (CryptoError, UnicodeDecodeError) as exc:
            raise DicomError(f"The PIN cannot be read: {exc}.") from exc
    if not sys.stdin.isatty():
        raise DicomError("The token's PIN is needed: give --pin-file or run in a terminal.")
    return str(typer.prompt("PIN of the token", hide_input=True))


def _load_signer(
    key: Path | None, cert: Path | None, pkcs12: Path | None, passphrase: bytes | None
) -> tuple[Any, list[x509.Certificate]]:
    def load(secret: bytes | None) -> tuple[Any, list[x509.Certificate]]:
        if pkcs12 is not None:
            return load_pkcs12_signer(pkcs12.read_bytes(), secret)
        assert key is not None and cert is not None
        return load_pem_signer(key.read_bytes(), cert.read_bytes(), secret)

    try:
        return load(passphrase)
    except KeyPassphraseNeeded:
        if passphrase is not None or not sys.stdin.isatty():
            raise
    entered = typer.prompt("Passphrase for the private key", hide_input=True)
    return load(entered.encode("utf-8"))


def _preflight(certificate: x509.Certificate, issuers: list[x509.Certificate]) -> None:
    """Refuse to sign with a certificate that is already unusable."""
    now = datetime.datetime.now(datetime.UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise DicomError(
            "The signer's certificate is not valid now (valid "
            f"{certificate.not_valid_before_utc:%Y-%m-%d} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}); it cannot sign."
        )
    roots = [c for c in issuers if c.subject == c.issuer]
    if roots:
        intermediates = [c for c in issuers if c.subject != c.issuer]
        verify_chain(certificate, intermediates, roots, purpose="document")


@app.command("verify")
def verify(
    files: list[Path] = typer.Argument(..., help="Signed DICOM files", dir_okay=False),
    trust: list[Path] = typer.Option(
        [],
        "--trust",
        help="Trusted CA certificate(s) (PEM or DER); repeat as needed. Default: this "
        "installation's Rekam root, with its issuing CA and revocation list",
    ),
    intermediate: list[Path] = typer.Option(
        [], "--intermediate", help="Untrusted intermediate CA certificate(s)"
    ),
    crl: list[Path] = typer.Option([], "--crl", help="Certificate revocation list(s)"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output"),
) -> None:
    """Verify every signature of every file; exit 0 only when all are valid."""
    with _readable_errors():
        roots = _load_certificates(trust)
        intermediates = _load_certificates(intermediate)
        crls = _load_crls(crl)
        if not trust:
            rekam_roots, rekam_intermediates, rekam_crls = _installation_trust()
            roots += rekam_roots
            intermediates += rekam_intermediates
            crls += rekam_crls
    reports = [_verify_file(path, roots, intermediates, crls) for path in files]
    all_valid = all(r["valid"] for r in reports)
    if as_json:
        print_json({"valid": all_valid, "files": reports})
    else:
        for report, path in zip(reports, files, strict=True):
            _print_report(path, report)
    if not all_valid:
        raise typer.Exit(EXIT_INVALID)


def _installation_trust() -> tuple[
    list[x509.Certificate], list[x509.Certificate], list[x509.CertificateRevocationList]
]:
    """Rekam's root, issuing CA and CRL from this installation's ``<data_dir>/pki``."""
    pki_dir = settings_or_exit().pki_dir
    root = pki_dir / "root.pem"
    if not root.is_file():
        errors.print(
            f"[bold red]error:[/] no Rekam root certificate in {pki_dir} (run 'rekam init', set "
            "REKAM_DATA_DIR, or give --trust ROOT.pem)"
        )
        raise typer.Exit(EXIT_USAGE)
    issuing = pki_dir / "issuing.pem"
    crl = pki_dir / "crl.pem"
    return (
        _load_certificates([root]),
        _load_certificates([issuing]) if issuing.is_file() else [],
        _load_crls([crl]) if crl.is_file() else [],
    )


def _verify_file(
    path: Path,
    roots: list[x509.Certificate],
    intermediates: list[x509.Certificate],
    crls: list[x509.CertificateRevocationList],
) -> dict[str, Any]:
    report: dict[str, Any] = {"file": str(path), "sha256": None, "valid": False, "error": None}
    verdicts: list[SignatureVerdict] = []
    try:
        report["sha256"] = _sha256(path)
        verdicts = verify_dataset(path, roots, intermediates, crls)
    except DicomError as exc:
        report["error"] = str(exc)
    except OSError as exc:
        report["error"] = f"{path} cannot be read: {exc.strerror or exc}."
    if report["error"] is None and not verdicts:
        report["error"] = "The file carries no digital signature."
    report["signatures"] = [v.to_dict() for v in verdicts]
    report["valid"] = report["error"] is None and all(v.valid for v in verdicts)
    return report


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _print_report(path: Path, report: dict[str, Any]) -> None:
    mark = "[green]VALID[/]" if report["valid"] else "[bold red]NOT VALID[/]"
    console.print(f"{mark}  [bold]{path}[/]  sha256 {report['sha256'] or '-'}")
    if report["error"]:
        console.print(f"  {report['error']}")
    if not report["signatures"]:
        return
    table = Table(show_lines=False)
    for column in ("#", "signer", "signed (UTC)", "MAC", "status", "reason"):
        table.add_column(column, overflow="fold")
    for number, item in enumerate(report["signatures"], start=1):
        signer = item["signer"] or "?"
        if item["licence_number"]:
            signer += f" ({item['licence_number']})"
        colour = "green" if item["valid"] else "red"
        table.add_row(
            str(number),
            signer,
            (item["signed_at"] or "-").replace("T", " ")[:19],
            item["mac_algorithm"] or "-",
            f"[{colour}]{item['status']}[/]",
            item["reason"],
        )
    console.print(table)


@app.command("to-dicom")
def to_dicom(
    record: Path = typer.Argument(
        ..., help="WFDB record path without extension, a .csv or an SCP-ECG file"
    ),
    out_file: Path = typer.Argument(..., help="DICOM file to write", dir_okay=False),
    patient_id: str | None = typer.Option(
        None, "--patient-id", help="Patient ID (required unless an SCP-ECG file gives one)"
    ),
    patient_name: str = typer.Option("", "--patient-name", help="Patient name (Family^Given)"),
    birth_date: datetime.datetime | None = typer.Option(
        None, "--birth-date", formats=["%Y-%m-%d"], help="Birth date YYYY-MM-DD"
    ),
    sex: SexChoice | None = typer.Option(None, "--sex", help="M, F or O"),
    accession: str = typer.Option("", "--accession", help="Accession number"),
    description: str = typer.Option("", "--description", help="Study description"),
    kind: KindChoice = typer.Option(KindChoice.auto, "--kind", help="SOP class to write"),
    leads: str | None = typer.Option(
        None, "--leads", help="Comma-separated leads to store, e.g. I,II,III,aVR,aVL,aVF,V1,V2"
    ),
    start: float = typer.Option(0.0, "--start", min=0.0, help="Start at this second"),
    duration: float | None = typer.Option(
        None, "--duration", min=0.1, help="Keep this many seconds"
    ),
    fs: float | None = typer.Option(None, "--fs", help="Sampling rate of a CSV without time"),
    uid_root: str = typer.Option(
        UUID_UID_ROOT, "--uid-root", envvar="REKAM_DICOM_UID_ROOT", help="Org root for UIDs"
    ),
) -> None:
    """Write an ECG recording as a DICOM 12-lead / General ECG waveform object.

    From an SCP-ECG file the patient, acquisition time and institution come from its header;
    the options given here take precedence.
    """
    with _readable_errors():
        scp = read_scp_ecg(record) if _is_scp_ecg(record) else None
        recording = _crop(scp.recording if scp else read_recording(record, fs), start, duration)
        known = scp.demographics if scp else None
        patient_id = patient_id or (known.patient_id if known else None)
        if not patient_id:
            raise typer.BadParameter("give --patient-id", param_hint="--patient-id")
        patient = PatientInfo(
            patient_id,
            patient_name or (_scp_person_name(known) if known else ""),
            birth_date.date() if birth_date else (known.birth_date if known else None),
            sex.value if sex else (known.sex if known else None),
        )
        study = StudyInfo(
            accession_number=accession,
            study_description=description,
            acquired_at=known.acquired_at if known else None,
        )
        equipment = (
            EquipmentInfo(
                institution_name=known.institution,
                device_serial_number=known.device_serial_number,
            )
            if known
            else None
        )
        lead_list = [name.strip() for name in leads.split(",")] if leads else None
        dataset = recording_to_dicom(
            recording,
            patient,
            study,
            uid_root,
            equipment=equipment,
            kind=kind.value,
            leads=lead_list,
        )
        write_dicom(dataset, out_file)
    group = dataset.WaveformSequence[0]
    console.print(
        f"Wrote [bold]{out_file}[/]: {dataset.SOPClassUID.name}, "
        f"{group.NumberOfWaveformChannels} leads × {group.NumberOfWaveformSamples} samples at "
        f"{group.SamplingFrequency} Hz"
    )


def _is_scp_ecg(record: Path) -> bool:
    return record.suffix.lower() == ".scp" or (record.is_file() and looks_like_scp_ecg(record))


def _scp_person_name(known: ScpEcgDemographics) -> str:
    """DICOM's ``Family^Given`` from the SCP-ECG last and first names."""
    if not known.first_name:
        return known.last_name
    return f"{known.last_name}^{known.first_name}"


def _crop(recording: Recording, start: float, duration: float | None) -> Recording:
    first = round(start * recording.fs)
    last = recording.n_samples if duration is None else first + round(duration * recording.fs)
    if first >= recording.n_samples:
        raise DicomError(
            f"The recording lasts {recording.duration_s:.1f} s; it has nothing after {start:g} s."
        )
    if first == 0 and last >= recording.n_samples:
        return recording
    return Recording(
        recording.samples[first:last], recording.fs, recording.lead_names, None, recording.name
    )
