"""``rekam monitor simulate`` refuses bad usage with exit code 2 and an unreachable server with
exit code 1 and a readable message (the working path is tests/monitor/test_end_to_end.py)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from rekam.cli.main import app
from support.servers import free_port

BASE = ["monitor", "simulate", "--user", "nurse1", "--patient", "p-1", "--duration", "2"]
ENV = {"REKAM_MONITOR_PASSWORD": "irrelevant", "COLUMNS": "200"}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*BASE, *args], env=ENV)
    return result.exit_code, result.output


def test_unknown_transport_or_source_is_a_usage_error() -> None:
    code, output = run("--transport", "carrier-pigeon")
    assert code == 2 and "websocket or mqtt" in output
    code, output = run("--source", "tape")
    assert code == 2 and "synthetic or mitdb" in output
    code, output = run("--transport", "mqtt")
    assert code == 2 and "--mqtt-url" in output
    code, _ = run("--devices", "0")
    assert code == 2


def test_unreachable_server_is_a_readable_failure(tmp_path: Path) -> None:
    code, output = run("--server", f"https://127.0.0.1:{free_port()}", "--ca", "/nonexistent.pem")
    assert code == 2 and "cannot read the CA file" in output
    code, output = run("--server", f"https://127.0.0.1:{free_port()}")
    assert code == 1
    assert "cannot reach Rekam" in output and "Traceback" not in output
