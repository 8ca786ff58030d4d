"""Each ``rekam`` command imports the libraries of its own group, not those of every group.

Checked with the interpreter's own import log (``-X importtime``) of a real ``rekam`` process:
before the command groups were loaded lazily, ``rekam version`` imported SciPy, SQLAlchemy and
the web framework, and took seconds to print one line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REKAM = str(Path(sys.executable).with_name("rekam"))


def imported_by(*args: str) -> set[str]:
    """The top-level packages a real ``rekam ARGS`` process imports, from its import log."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", REKAM, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0])
    assert "rekam" in names, "the import log names no module: was -X importtime honoured?"
    return names


HEAVY = {"scipy", "numpy", "sqlalchemy", "fastapi", "pydicom", "pynetdicom", "boto3"}


def test_version_imports_none_of_the_heavy_libraries() -> None:
    assert imported_by("version") & HEAVY == set()


@pytest.mark.parametrize(
    ("command", "not_needed"),
    [
        (("user", "--help"), {"scipy", "fastapi", "pydicom", "pynetdicom"}),
        (("keys", "--help"), {"scipy", "fastapi", "pydicom", "pynetdicom"}),
        (("ecg", "analyze", "--help"), {"fastapi", "pydicom", "pynetdicom"}),
        (("monitor", "--help"), {"fastapi", "pydicom", "pynetdicom"}),
    ],
)
def test_a_command_imports_only_what_it_needs(
    command: tuple[str, ...], not_needed: set[str]
) -> None:
    imported = imported_by(*command)
    assert "typer" in imported
    assert imported & not_needed == set()


def test_the_full_help_still_lists_every_group() -> None:
    done = subprocess.run(
        [REKAM, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    listed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("│ ")}
    expected = {
        "init",
        "serve",
        "version",
        "config",
        "ca",
        "user",
        "demo",
        "ecg",
        "dicom",
        "keys",
        "patient",
        "audit",
        "pacs",
        "monitor",
    }
    assert expected <= listed


SERVER_SCRIPT = """
import os
import sys
from pathlib import Path
from rekam.config import Settings
from rekam.his.installation import initialise, open_clinic
from rekam.web.server import build_servers

settings = Settings(data_dir=Path(sys.argv[1]) / "rekam-data", key_algorithm="ecdsa-p256")
initialise(settings)
clinic = open_clinic(settings)
build_servers(clinic)
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})), flush=True)
os._exit(0)  # the built servers' threads are not stopped: this only reads what was imported
"""


def test_the_server_loads_no_s3_or_dimse_client_it_is_not_configured_for(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SERVER_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(done.stdout.split())
    assert {"fastapi", "uvicorn", "sqlalchemy"} <= loaded  # it did build the server
    assert loaded & {"boto3", "botocore", "pynetdicom"} == set()


@pytest.mark.parametrize(
    ("typo", "suggested"),
    [(("ecgg",), "'ecg'"), (("pac",), "'pacs'"), (("ecg", "to-dicm"), "'to-dicom'")],
)
def test_a_mistyped_command_gets_a_suggestion(typo: tuple[str, ...], suggested: str) -> None:
    done = subprocess.run(
        [REKAM, *typo], capture_output=True, text=True, timeout=120, check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 2
    assert f"No such command '{typo[-1]}'. Did you mean {suggested}" in done.stderr
