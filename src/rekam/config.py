"""Rekam's one settings object.

Values come, highest priority first, from: keyword arguments, ``REKAM_*`` environment variables,
a TOML config file (``REKAM_CONFIG``, else ``rekam.toml`` in the working directory, else
``<data_dir>/rekam.toml``), and the embedded defaults below — which give a complete single-machine
clinic: SQLite, a local keyring and local stores under ``./rekam-data``, HTTPS on 127.0.0.1:8443.
"""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Language(StrEnum):
    INDONESIAN = "id"
    ENGLISH = "en"


def _config_file() -> Path | None:
    explicit = os.environ.get("REKAM_CONFIG")
    if explicit:
        return Path(explicit)
    for candidate in (
        Path("rekam.toml"),
        Path(os.environ.get("REKAM_DATA_DIR", "rekam-data")) / "rekam.toml",
    ):
        if candidate.is_file():
            return candidate
    return None


class Settings(BaseSettings):
    """Effective configuration of one Rekam installation."""

    model_config = SettingsConfigDict(env_prefix="REKAM_", extra="forbid", frozen=True)

    data_dir: Path = Field(default=Path("rekam-data"), description="Where Rekam keeps its state")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in the data directory"
    )
    host: str = Field(default="127.0.0.1", description="Address the HTTPS server binds to")
    port: int = Field(default=8443, ge=1, le=65535)
    redirect_port: int | None = Field(
        default=None, ge=1, le=65535, description="Optional plain-HTTP port that only redirects"
    )
    server_names: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1"],
        description="Host names and IP addresses in the server certificate",
    )
    key_algorithm: Literal["rsa3072", "ecdsa-p256"] = "rsa3072"
    organization: str = "Rekam Clinic"
    default_language: Language = Language.INDONESIAN
    timezone: str = "Asia/Jakarta"
    passphrase: SecretStr | None = Field(
        default=None, description="Passphrase sealing keys at rest (else the passphrase file)"
    )
    passphrase_file: Path | None = Field(
        default=None, description="Passphrase file; default <data_dir>/secrets/passphrase"
    )
    session_idle_minutes: int = Field(default=30, ge=1)
    session_absolute_hours: int = Field(default=12, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    login_delay_after_failures: int = Field(default=3, ge=1)
    login_block_after_failures: int = Field(default=8, ge=2)
    login_block_minutes: int = Field(default=15, ge=1)
    source_block_after_failures: int = Field(default=40, ge=2)
    unauthenticated_rate_per_second: float = Field(default=20.0, gt=0)
    unauthenticated_burst: int = Field(default=60, ge=1)
    keyring: Literal["local", "pkcs11", "vault"] = Field(
        default="local", description="Where key-encryption keys live"
    )
    keyring_file: Path | None = Field(
        default=None, description="Local keyring file; default <data_dir>/keyring.json"
    )
    pkcs11_module: Path | None = Field(default=None, description="PKCS#11 library (.so)")
    pkcs11_token: str | None = Field(default=None, description="PKCS#11 token label")
    pkcs11_pin_file: Path | None = Field(default=None, description="File holding the token PIN")
    pkcs11_key_prefix: str = Field(default="rekam-kek", description="Label prefix of the KEKs")
    vault_url: str | None = Field(default=None, description="Vault / OpenBao address")
    vault_token_file: Path | None = Field(default=None, description="File holding a Vault token")
    vault_key: str = Field(default="rekam", description="Transit key name")
    vault_mount: str = Field(default="transit", description="Transit engine mount path")
    vault_ca: Path | None = Field(default=None, description="CA bundle for the Vault server")
    key_cache_seconds: float = Field(
        default=60.0, ge=0, description="How long unwrapped data keys stay in memory"
    )
    blob_store: Literal["filesystem", "s3"] = Field(
        default="filesystem", description="Where encrypted files are kept"
    )
    blob_dir: Path | None = Field(default=None, description="Default <data_dir>/blobs")
    s3_endpoint: str | None = None
    s3_bucket: str = "rekam"
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    s3_ca: Path | None = Field(default=None, description="CA bundle for the S3 endpoint")
    max_upload_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Proxies whose X-Forwarded-For is believed"
    )
    pacs: Literal["embedded", "orthanc"] = Field(
        default="embedded", description="Where DICOM ECG objects are archived"
    )
    pacs_protocol: Literal["dimse", "dicomweb"] = Field(
        default="dimse", description="How Rekam talks to Orthanc: DICOM network or DICOMweb"
    )
    pacs_calling_aet: str = Field(default="REKAM", max_length=16, description="Rekam's AE title")
    orthanc_host: str = Field(default="127.0.0.1", description="Orthanc's DICOM host")
    orthanc_dicom_port: int = Field(default=4242, ge=1, le=65535)
    orthanc_aet: str = Field(default="ORTHANC", max_length=16, description="Orthanc's AE title")
    orthanc_dicomweb_url: str = Field(
        default="http://127.0.0.1:8042/dicom-web", description="Orthanc's DICOMweb root"
    )
    orthanc_username: str | None = Field(default=None, description="Orthanc HTTP user")
    orthanc_password: SecretStr | None = None
    orthanc_ca: Path | None = Field(default=None, description="CA bundle for Orthanc's HTTPS")
    pacs_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    redis_url: str | None = Field(
        default=None,
        description="Redis for live monitoring events across server processes (redis://...)",
    )
    mqtt_url: str | None = Field(
        default=None, description="MQTT broker the device bridge subscribes to (mqtts://host:port)"
    )
    mqtt_ca: Path | None = Field(
        default=None, description="CA bundle for the MQTT broker; default this installation's root"
    )
    mqtt_username: str | None = Field(default=None, description="MQTT user of the bridge")
    mqtt_password: SecretStr | None = None
    mqtt_client_cert: Path | None = Field(
        default=None, description="Client certificate (PEM, key included) for the MQTT broker"
    )
    monitor_speed_limit: float = Field(
        default=1.5,
        gt=0,
        le=100,
        description="Seconds of ECG a device may send per second (more is refused as a flood)",
    )
    monitor_burst_seconds: float = Field(
        default=10.0, gt=0, le=600, description="Seconds of ECG a device may send at once"
    )
    monitor_analysis_process: bool | None = Field(
        default=None,
        description=(
            "Analyse device packets in a process of their own beside the server (true), in the "
            "server process (false), or decide at 'rekam serve' (unset: a process of their own "
            "on a machine with two or more CPUs)"
        ),
    )

    @field_validator("server_names", "trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("server_names")
    @classmethod
    def _names_not_empty(cls, value: list[str]) -> list[str]:
        names = [v.strip() for v in value if v.strip()]
        if not names:
            raise ValueError("at least one server name is needed for the TLS certificate")
        return names

    @field_validator("host")
    @classmethod
    def _host_is_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError as exc:
            raise ValueError(f"host must be an IP address to bind to, not {value!r}") from exc
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    # Derived locations -------------------------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'rekam.db').resolve()}"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def effective_keyring_file(self) -> Path:
        return self.keyring_file or self.data_dir / "keyring.json"

    @property
    def effective_blob_dir(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    @property
    def effective_passphrase_file(self) -> Path:
        return self.passphrase_file or self.secrets_dir / "passphrase"

    @property
    def config_file(self) -> Path | None:
        return _config_file()

    def public_view(self) -> dict[str, Any]:
        """The settings as plain values, secrets masked, for ``rekam config show``."""
        view = self.model_dump(mode="json")
        view["passphrase"] = "********" if self.passphrase is not None else None
        view["s3_secret_key"] = "********" if self.s3_secret_key is not None else None
        view["orthanc_password"] = "********" if self.orthanc_password is not None else None
        view["passphrase_file"] = (
            None if self.passphrase is not None else str(self.effective_passphrase_file)
        )
        view["database_url"] = _mask_url_password(self.effective_database_url)
        return view


def _mask_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.password:
        return parsed.render_as_string(hide_password=True)
    return url


def load_settings(**overrides: Any) -> Settings:
    """Read the effective settings (environment, config file, defaults)."""
    return Settings(**overrides)
