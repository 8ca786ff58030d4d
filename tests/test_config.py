"""Settings: embedded defaults, REKAM_* variables, config file, masking of secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rekam.config import Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("REKAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_embedded_defaults_make_a_single_machine_clinic() -> None:
    s = load_settings()
    assert s.data_dir == Path("rekam-data")
    assert (s.host, s.port) == ("127.0.0.1", 8443)
    assert s.effective_database_url == f"sqlite:///{Path('rekam-data/rekam.db').resolve()}"
    assert s.key_algorithm == "rsa3072"
    assert s.default_language == "id"


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REKAM_PORT", "9443")
    monkeypatch.setenv("REKAM_SERVER_NAMES", "rekam.puskesmas.example, 10.1.2.3")
    monkeypatch.setenv("REKAM_DEFAULT_LANGUAGE", "en")
    s = load_settings()
    assert s.port == 9443
    assert s.server_names == ["rekam.puskesmas.example", "10.1.2.3"]
    assert s.default_language == "en"


def test_config_file_is_read_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "site.toml"
    config.write_text('port = 10443\norganization = "RSUD Contoh"\n')
    monkeypatch.setenv("REKAM_CONFIG", str(config))
    assert load_settings().organization == "RSUD Contoh"
    assert load_settings().port == 10443
    monkeypatch.setenv("REKAM_PORT", "11443")
    assert load_settings().port == 11443


def test_rekam_toml_in_working_directory_is_found(tmp_path: Path) -> None:
    (tmp_path / "rekam.toml").write_text('timezone = "Asia/Makassar"\n')
    assert load_settings().timezone == "Asia/Makassar"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REKAM_PORT", "0"),
        ("REKAM_PORT", "http"),
        ("REKAM_HOST", "example.org"),
        ("REKAM_KEY_ALGORITHM", "dsa"),
        ("REKAM_SERVER_NAMES", " , "),
        ("REKAM_UNKNOWN", "1"),
    ],
)
def test_invalid_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    if name == "REKAM_UNKNOWN":
        # unknown environment variables are ignored; unknown keys in a file are refused
        Path("rekam.toml").write_text("unknown_key = 1\n")
    with pytest.raises(ValidationError):
        load_settings()


def test_public_view_masks_secrets() -> None:
    s = Settings(
        passphrase="a-very-secret-passphrase-123",  # type: ignore[arg-type]
        database_url="postgresql+psycopg://rekam:db-secret-pw@127.0.0.1/rekam",
    )
    text = repr(s.public_view())
    assert "a-very-secret-passphrase-123" not in text
    assert "db-secret-pw" not in text
    assert "********" in text
