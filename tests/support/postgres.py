"""A real PostgreSQL server for tests: started on 127.0.0.1 in a temporary directory, as the
``postgres`` system user (initdb refuses root), and stopped afterwards."""

from __future__ import annotations

import glob
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.servers import free_port


def postgres_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


@dataclass
class PostgresServer:
    bin_dir: Path
    port: int
    socket_dir: Path
    password: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://rekam:{self.password}@127.0.0.1:{self.port}/{database}"

    def _as_postgres(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self._as_postgres(
            str(self.bin_dir / "psql"),
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-c",
            sql,
        ).stdout

    def create_database(self) -> str:
        """A fresh, empty database owned by the test role; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}" OWNER rekam')
        return self.url(name)

    def dump(self, database: str) -> bytes:
        """pg_dump of a database, as a cloud administrator or a stolen backup would see it."""
        result = subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bin_dir / "pg_dump"),
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "--inserts",
                database,
            ],
            capture_output=True,
            check=True,
            timeout=120,
        )
        return result.stdout


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (run scripts/install-system-deps)")
    root = Path(tempfile.mkdtemp(prefix="rekam-pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    shutil.chown(root, "postgres")
    shutil.chown(sockets, "postgres")
    password = secrets.token_urlsafe(16)
    port = free_port()
    server = PostgresServer(bin_dir, port, sockets, password)
    log = root / "server.log"
    try:
        server._as_postgres(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        server._as_postgres(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={sockets} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            "start",
        )
        server.psql(f"CREATE ROLE rekam LOGIN PASSWORD '{password}'")
        yield server
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)
