"""``rekam ca``: Rekam's certificate authority."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

from rekam.cli.output import EXIT_USAGE, console, errors, readable_errors
from rekam.cli.settings_loader import clinic_or_exit, settings_or_exit
from rekam.crypto.passphrase import check_passphrase, read_secret_file
from rekam.pki import KeyAlgorithm, PkiError, RevocationReason, certificates_to_pem
from rekam.pki.files import PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, write_file_atomically
from rekam.pki.keys import encrypt_private_key_pem
from rekam.pki.token_keys import generate_token_key, store_token_certificate

app = typer.Typer(help="Rekam's certificate authority.", no_args_is_help=True)

#: PBKDF2 rounds of the PKCS#12 files written for doctors.
PKCS12_KDF_ROUNDS = 600_000


class ReasonChoice(StrEnum):
    """RFC 5280 revocation reasons, as typed on the command line."""

    unspecified = "unspecified"
    key_compromise = "key-compromise"
    ca_compromise = "ca-compromise"
    affiliation_changed = "affiliation-changed"
    superseded = "superseded"
    cessation_of_operation = "cessation-of-operation"
    certificate_hold = "certificate-hold"
    privilege_withdrawn = "privilege-withdrawn"

    @property
    def flag(self) -> RevocationReason:
        return {
            ReasonChoice.unspecified: RevocationReason.unspecified,
            ReasonChoice.key_compromise: RevocationReason.key_compromise,
            ReasonChoice.ca_compromise: RevocationReason.ca_compromise,
            ReasonChoice.affiliation_changed: RevocationReason.affiliation_changed,
            ReasonChoice.superseded: RevocationReason.superseded,
            ReasonChoice.cessation_of_operation: RevocationReason.cessation_of_operation,
            ReasonChoice.certificate_hold: RevocationReason.certificate_hold,
            ReasonChoice.privilege_withdrawn: RevocationReason.privilege_withdrawn,
        }[self]


@app.command("server-cert")
def server_cert(
    host: list[str] = typer.Option(..., "--host", help="Host name or IP address; repeatable"),
    algorithm: KeyAlgorithm | None = typer.Option(None, help="Key type; default: the current one"),
) -> None:
    """Re-issue the TLS server certificate for the given host names (the CA stays)."""
    clinic = clinic_or_exit()
    with readable_errors():
        identity = clinic.pki.reissue_server_certificate(host, algorithm)
    console.print(f"issued a server certificate for: {', '.join(host)}")
    console.print(f"valid until {identity.certificate.not_valid_after_utc:%Y-%m-%d} (UTC)")
    console.print("restart 'rekam serve' to use it")


@app.command("doctor-cert")
def doctor_cert(
    name: str = typer.Option(..., "--name", help="Doctor's full name (certificate CN)"),
    licence: str = typer.Option(..., "--licence", help="Licence number (STR/SIP)"),
    email: str | None = typer.Option(None, "--email", help="E-mail address for the certificate"),
    algorithm: KeyAlgorithm = typer.Option(KeyAlgorithm.RSA3072, "--algorithm", help="Key type"),
    valid_days: int = typer.Option(730, "--valid-days", min=1, max=3650),
    p12: Path | None = typer.Option(
        None, "--p12", help="Write key, certificate and chain to this PKCS#12 file (mode 0600)"
    ),
    key_out: Path | None = typer.Option(
        None, "--key-out", help="Write the key as encrypted PKCS#8 PEM here (mode 0600)"
    ),
    cert_out: Path | None = typer.Option(
        None, "--cert-out", help="Write the certificate and its issuing CA (PEM) here"
    ),
    passphrase_file: Path | None = typer.Option(
        None, "--passphrase-file", help="File holding the passphrase for the new key file"
    ),
    token: str | None = typer.Option(
        None, "--token", help="Generate the key inside this PKCS#11 token (label) instead"
    ),
    key_label: str | None = typer.Option(
        None, "--key-label", help="Label of the key on the token (default: the licence number)"
    ),
    pin_file: Path | None = typer.Option(None, "--pin-file", help="File holding the token PIN"),
) -> None:
    """Issue a doctor's document-signing certificate from Rekam's issuing CA.

    The new key goes to an encrypted PKCS#12 (--p12) or PKCS#8 PEM file (--key-out with
    --cert-out), or is generated inside a PKCS#11 token (--token), where the certificate is
    stored next to it. Passphrases and PINs come from files or the terminal, never the command
    line.
    """
    targets = [p12 is not None, key_out is not None, token is not None]
    if sum(targets) != 1:
        raise typer.BadParameter("give exactly one of --p12, --key-out or --token")
    if key_out is not None and cert_out is None:
        raise typer.BadParameter("--key-out needs --cert-out for the certificate")
    if token is None and (key_label is not None or pin_file is not None):
        raise typer.BadParameter("--key-label and --pin-file go with --token")
    if token is not None and passphrase_file is not None:
        raise typer.BadParameter("a key on a token has no passphrase; give --pin-file")
    for path in (p12, key_out, cert_out):
        if path is not None and path.exists():
            errors.print(f"[bold red]error:[/] {path} exists; it will not be overwritten")
            raise typer.Exit(1)
    module = _pkcs11_module() if token is not None else None
    clinic = clinic_or_exit()
    with readable_errors():
        issuing = clinic.pki.load_issuing_ca().certificate
        if token is not None:
            assert module is not None
            pin = _secret(pin_file, "PIN", "PIN of the token", minimum=False).decode("utf-8")
            label = key_label or licence
            key = generate_token_key(module, token, pin, label, algorithm)
            certificate = clinic.pki.issue_doctor_for_key(
                key.public_key, name, licence, email, valid_days
            )
            store_token_certificate(key, certificate)
            where = f"key '{label}' generated inside token '{token}'; certificate stored there"
        else:
            passphrase = _secret(passphrase_file, "passphrase", "Passphrase for the new key")
            doctor = clinic.pki.issue_doctor(name, licence, email, algorithm, valid_days)
            certificate = doctor.certificate
            if p12 is not None:
                encryption = (
                    PrivateFormat.PKCS12.encryption_builder()
                    .kdf_rounds(PKCS12_KDF_ROUNDS)
                    .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                    .hmac_hash(hashes.SHA256())
                    .build(passphrase)
                )
                bundle = pkcs12.serialize_key_and_certificates(
                    name.encode("utf-8"),
                    doctor.private_key,
                    certificate,
                    [issuing, clinic.pki.load_root_certificate()],
                    encryption,
                )
                _write(p12, bundle, PRIVATE_FILE_MODE)
                where = f"key, certificate and chain in {p12} (encrypted PKCS#12)"
            else:
                assert key_out is not None
                pem = encrypt_private_key_pem(doctor.private_key, passphrase)
                _write(key_out, pem, PRIVATE_FILE_MODE)
                where = f"key in {key_out} (encrypted PKCS#8)"
        if cert_out is not None:
            _write(cert_out, certificates_to_pem([certificate, issuing]), PUBLIC_FILE_MODE)
            where += f", certificate in {cert_out}"
    console.print(f"issued a doctor's signing certificate for {name} ({licence})")
    console.print(f"serial {certificate.serial_number:x}")
    console.print(f"valid until {certificate.not_valid_after_utc:%Y-%m-%d} (UTC)")
    console.print(where)


@app.command("revoke")
def revoke(
    serial: str = typer.Argument(..., help="Serial number in hex, as 'rekam ca doctor-cert' shows"),
    reason: ReasonChoice = typer.Option(ReasonChoice.unspecified, "--reason"),
) -> None:
    """Revoke a certificate issued by Rekam's issuing CA and re-sign the revocation list."""
    number = _parse_serial(serial)
    clinic = clinic_or_exit()
    with readable_errors():
        certificate = clinic.pki.issued_certificate(number)
        already = clinic.pki.load_crl().is_revoked(certificate)
        crl = clinic.pki.revoke(certificate, reason.flag)
    subject = certificate.subject.rfc4514_string()
    if already:
        console.print(f"{number:x} ({subject}) was already revoked; the list is unchanged")
    else:
        console.print(f"revoked {number:x} ({subject}): {reason.value}")
    console.print(f"revocation list number {crl.number} written to {clinic.pki.crl_path}")


def _parse_serial(text: str) -> int:
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        number = int(cleaned, 16)
    except ValueError:
        number = 0
    if number <= 0:
        raise typer.BadParameter(f"{text!r} is not a certificate serial number in hex")
    return number


def _pkcs11_module() -> str:
    module = settings_or_exit().pkcs11_module
    if module is None:
        errors.print(
            "[bold red]error:[/] no PKCS#11 module is configured: set REKAM_PKCS11_MODULE to the "
            "token's library, e.g. /usr/lib/softhsm/libsofthsm2.so"
        )
        raise typer.Exit(EXIT_USAGE)
    return str(module)


def _secret(path: Path | None, what: str, prompt: str, *, minimum: bool = True) -> bytes:
    """A passphrase or PIN from a private file, else typed twice on the terminal."""
    with readable_errors():
        if path is not None:
            secret = read_secret_file(path, what)
        elif not sys.stdin.isatty():
            raise PkiError(f"The {what} is needed: give --{what.lower()}-file or use a terminal.")
        else:
            typed = typer.prompt(prompt, hide_input=True, confirmation_prompt=minimum)
            secret = str(typed).encode("utf-8")
        return check_passphrase(secret) if minimum else secret


def _write(path: Path, data: bytes, mode: int) -> None:
    try:
        write_file_atomically(path, data, mode=mode, overwrite=False)
    except FileExistsError as exc:
        raise PkiError(f"{path} exists; it will not be overwritten.") from exc
