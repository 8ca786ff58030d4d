"""Set up and open one Rekam installation: data directory, passphrase, CA, database, admin."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from rekam.config import Settings
from rekam.crypto import (
    BlindIndexer,
    BlobCipher,
    DataKeyManager,
    FieldCipher,
    Keyring,
    KeyringEmpty,
    KeyringError,
    KeyringUnavailable,
    LocalKeyring,
    PassphraseError,
    Pkcs11Keyring,
    SecretSealer,
    VaultTransitKeyring,
    create_passphrase_file,
    read_passphrase_file,
    read_secret_file,
)
from rekam.crypto.passphrase import check_passphrase
from rekam.crypto.private_files import write_private_file
from rekam.his.accounts import AccountService
from rekam.his.errors import HisError
from rekam.his.login_throttle import ThrottlePolicy
from rekam.his.patients import PatientService
from rekam.his.rbac import Actor, Role
from rekam.his.sessions import SessionPolicy
from rekam.pki import KeyAlgorithm, PkiStore
from rekam.store import Database, upgrade_to_latest
from rekam.store.blobs import BlobStore, EncryptedFileStore, FilesystemBlobStore
from rekam.store.data_key_store import SqlDataKeyStore
from rekam.store.migrations_runner import is_up_to_date

FIRST_ADMIN = "admin"


class NotInitialised(HisError):
    code = "not_initialised"


def installation_passphrase(settings: Settings) -> bytes:
    if settings.passphrase is not None:
        return check_passphrase(settings.passphrase.get_secret_value().encode())
    return read_passphrase_file(settings.effective_passphrase_file)


def _sealing_salt(settings: Settings, create: bool) -> bytes:
    path = settings.secrets_dir / "sealing-salt"
    if not path.exists():
        if not create:
            raise NotInitialised(f"{path} is missing: run 'rekam init'")
        write_private_file(path, os.urandom(32))
    return path.read_bytes()


@dataclass
class InitReport:
    data_dir: Path
    created_passphrase_file: Path | None = None
    created_ca: bool = False
    root_certificate: Path | None = None
    created_keyring: Path | None = None
    admin_username: str | None = None
    admin_one_time_password: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Clinic:
    """The services of one installation, wired to its settings."""

    settings: Settings
    database: Database
    accounts: AccountService
    pki: PkiStore
    keyring: Keyring
    keys: DataKeyManager
    fields: FieldCipher
    indexer: BlindIndexer
    files: EncryptedFileStore
    patients: PatientService

    def close(self) -> None:
        self.database.dispose()


def initialise(settings: Settings, admin_username: str = FIRST_ADMIN) -> InitReport:
    """Create whatever is missing; never overwrite what exists. Safe to run again."""
    report = InitReport(data_dir=settings.data_dir.resolve())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    settings.secrets_dir.mkdir(mode=0o700, exist_ok=True)
    if settings.passphrase is None and not settings.effective_passphrase_file.exists():
        create_passphrase_file(settings.effective_passphrase_file)
        report.created_passphrase_file = settings.effective_passphrase_file
    passphrase = installation_passphrase(settings)
    _sealing_salt(settings, create=True)

    pki = PkiStore(settings.pki_dir, passphrase)
    if not pki.exists():
        pki.initialise(
            organization=settings.organization,
            hosts=settings.server_names,
            algorithm=KeyAlgorithm(settings.key_algorithm),
        )
        report.created_ca = True
    report.root_certificate = pki.root_certificate_path
    if settings.keyring == "local" and not settings.effective_keyring_file.exists():
        LocalKeyring.create(settings.effective_keyring_file, passphrase)
        report.created_keyring = settings.effective_keyring_file
    elif settings.keyring != "local":
        open_keyring(settings, passphrase, create=True)  # creates the keys on an empty token

    clinic = open_clinic(settings, migrate=True)
    try:
        if clinic.accounts.count_users() == 0:
            created = clinic.accounts.create_user(
                Actor.system(), admin_username, "Administrator", Role.ADMIN
            )
            report.admin_username = created.user.username
            report.admin_one_time_password = created.one_time_password
    finally:
        clinic.close()
    return report


def open_clinic(settings: Settings, migrate: bool = False) -> Clinic:
    """Open an initialised installation (raises NotInitialised with what to do otherwise)."""
    try:
        passphrase = installation_passphrase(settings)
    except PassphraseError as exc:
        raise NotInitialised(str(exc)) from exc
    database = Database(settings.effective_database_url)
    if migrate:
        upgrade_to_latest(database)
    elif not is_up_to_date(database):
        database.dispose()
        raise NotInitialised("the database schema is not current: run 'rekam init'")
    sealer = SecretSealer(passphrase, _sealing_salt(settings, create=False))
    accounts = AccountService(
        database,
        sealer,
        throttle=ThrottlePolicy(
            delay_after_failures=settings.login_delay_after_failures,
            block_after_failures=settings.login_block_after_failures,
            block_minutes=settings.login_block_minutes,
            source_block_after_failures=settings.source_block_after_failures,
        ),
        session_policy=SessionPolicy(
            idle=timedelta(minutes=settings.session_idle_minutes),
            absolute=timedelta(hours=settings.session_absolute_hours),
        ),
    )
    try:
        keyring = open_keyring(settings, passphrase)
    except (KeyringError, PassphraseError):
        database.dispose()
        raise
    keys = DataKeyManager(
        keyring, SqlDataKeyStore(database), cache_seconds=settings.key_cache_seconds
    )
    fields = FieldCipher(keys)
    indexer = BlindIndexer(keyring)
    files = EncryptedFileStore(open_blob_store(settings), BlobCipher(keys))
    return Clinic(
        settings=settings,
        database=database,
        accounts=accounts,
        pki=PkiStore(settings.pki_dir, passphrase),
        keyring=keyring,
        keys=keys,
        fields=fields,
        indexer=indexer,
        files=files,
        patients=PatientService(database, fields, indexer, keys, files),
    )


def open_blob_store(settings: Settings) -> BlobStore:
    """The configured store for encrypted files (filesystem by default, or S3)."""
    if settings.blob_store == "s3":
        if not (settings.s3_endpoint and settings.s3_access_key and settings.s3_secret_key):
            raise NotInitialised(
                "the S3 file store needs REKAM_S3_ENDPOINT, REKAM_S3_ACCESS_KEY and "
                "REKAM_S3_SECRET_KEY"
            )
        from rekam.store.blobs.s3 import S3BlobStore  # its client library only when used

        return S3BlobStore(
            settings.s3_endpoint,
            settings.s3_bucket,
            settings.s3_access_key,
            settings.s3_secret_key.get_secret_value(),
            region=settings.s3_region,
            verify=str(settings.s3_ca) if settings.s3_ca else True,
        )
    return FilesystemBlobStore(settings.effective_blob_dir)


def open_keyring(settings: Settings, passphrase: bytes, create: bool = False) -> Keyring:
    """The configured keyring provider (raises KeyringUnavailable saying what is missing).

    With ``create``, an empty token or transit engine gets Rekam's keys (``rekam init``)."""
    if settings.keyring == "local":
        return LocalKeyring(settings.effective_keyring_file, passphrase)
    if settings.keyring == "pkcs11":
        if not (settings.pkcs11_module and settings.pkcs11_token and settings.pkcs11_pin_file):
            raise KeyringUnavailable(
                "the PKCS#11 keyring needs REKAM_PKCS11_MODULE, REKAM_PKCS11_TOKEN and "
                "REKAM_PKCS11_PIN_FILE"
            )
        pin = _secret(settings.pkcs11_pin_file, "token PIN").decode()
        arguments = (settings.pkcs11_module, settings.pkcs11_token, pin, settings.pkcs11_key_prefix)
        try:
            return Pkcs11Keyring(*arguments)
        except KeyringEmpty:
            if not create:
                raise
            return Pkcs11Keyring.initialise(*arguments)
    if not (settings.vault_url and settings.vault_token_file):
        raise KeyringUnavailable(
            "the Vault keyring needs REKAM_VAULT_URL and REKAM_VAULT_TOKEN_FILE"
        )
    token = _secret(settings.vault_token_file, "Vault token").decode()
    verify: str | bool = str(settings.vault_ca) if settings.vault_ca else True
    vault_arguments = (settings.vault_url, token, settings.vault_key, settings.vault_mount, verify)
    try:
        return VaultTransitKeyring(*vault_arguments)
    except KeyringEmpty:
        if not create:
            raise
        return VaultTransitKeyring.initialise(*vault_arguments)


def _secret(path: Path, what: str) -> bytes:
    try:
        return read_secret_file(path, what)
    except FileNotFoundError as exc:
        raise KeyringUnavailable(f"the {what} file {path} is missing") from exc
