"""Fixtures shared across Rekam's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from rekam.his.installation import Clinic, open_clinic
from rekam.his.rbac import Role
from rekam.web.app import create_app
from support.orthanc import OrthancServer, orthanc_available, orthanc_server
from support.postgres import PostgresServer, postgres_server
from support.servers import Installation, RunningServer, make_installation, running_server

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """One initialised installation (RSA CA) with a user of every role."""
    inst = make_installation(tmp_path_factory.mktemp("clinic"))
    for role in Role:
        inst.add_user(f"{role.value}1", role)
    return inst


@pytest.fixture(scope="session")
def clinic(installation: Installation) -> Iterator[Clinic]:
    clinic = open_clinic(installation.settings)
    yield clinic
    clinic.close()


@pytest.fixture
def app_client(clinic: Clinic) -> Iterator[TestClient]:
    """The app in-process over a simulated HTTPS connection (a fresh app: fresh rate limits)."""
    with TestClient(create_app(clinic), base_url="https://testserver") as client:
        yield client


@pytest.fixture(scope="session")
def live_server(installation: Installation) -> Iterator[RunningServer]:
    """A real ``rekam serve`` on 127.0.0.1, shared by tests that only read."""
    with running_server(installation) as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole run (each test makes its own database)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each engine Rekam supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rekam.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """One real Orthanc PACS (DICOMweb plugin, basic auth, AE REKAM registered) for the run."""
    if not orthanc_available():
        pytest.skip("Orthanc is not installed (scripts/install-system-deps installs it)")
    with orthanc_server(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


SERVER_LOG_LINES = 60


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """When a test that used a real ``rekam serve`` fails, its report ends with the server's
    last log lines: a failure in CI can then be read without the machine it ran on."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        server = value if isinstance(value, RunningServer) else getattr(value, "server", None)
        if isinstance(server, RunningServer) and server.log_path.exists():
            lines = server.log().splitlines()[-SERVER_LOG_LINES:]
            title = f"server log {server.log_path.name} (last {len(lines)} lines)"
            report.sections.append((title, "\n".join(lines)))
