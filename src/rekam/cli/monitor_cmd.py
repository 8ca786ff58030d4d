"""``rekam monitor``: heart monitoring at the console.

``simulate`` pairs N simulated wearables through the server's pairing API and streams their
sealed ECG packets to the device WebSocket or through an MQTT broker, in real time (or faster,
``--speed``, up to what the server's flood limit allows), logging every injected episode as
ground truth. ``pair``, ``unpair`` and ``devices`` come from
:mod:`rekam.cli.monitor_devices_cmd`.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from rekam.cli import monitor_devices_cmd
from rekam.cli.monitor_pairing_client import pair_devices
from rekam.cli.output import EXIT_INVALID, EXIT_USAGE, console, errors
from rekam.monitor.errors import MonitorError
from rekam.monitor.mqtt_bridge import MqttEndpoint
from rekam.monitor.scenarios import Scenario, SimulatedDevice
from rekam.monitor.simulator_client import (
    MqttTransport,
    PacketTransport,
    SentPacket,
    SimulatedWearable,
    SimulationStats,
    WebSocketTransport,
    simulate,
)

app = typer.Typer(
    help="Heart monitoring: wearable devices and the simulator.", no_args_is_help=True
)
monitor_devices_cmd.mount_to_monitor(app)

PASSWORD_ENV = "REKAM_MONITOR_PASSWORD"  # noqa: S105 - the variable's name, not a password
MQTT_PASSWORD_ENV = "REKAM_MQTT_PASSWORD"  # noqa: S105


def _trust(ca: Path | None) -> ssl.SSLContext:
    if ca is None:
        default = Path(os.environ.get("REKAM_DATA_DIR", "rekam-data")) / "pki" / "root.pem"
        ca = default if default.is_file() else None
    try:
        return ssl.create_default_context(cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as exc:
        errors.print(f"[bold red]error:[/] cannot read the CA file {ca}: {exc}")
        raise typer.Exit(EXIT_USAGE) from exc


@app.command("simulate")
def simulate_command(
    server: str = typer.Option("https://127.0.0.1:8443", "--server", help="Rekam's HTTPS address"),
    devices: int = typer.Option(1, "--devices", min=1, max=2000, help="Simulated devices"),
    rate: int = typer.Option(250, "--rate", min=125, max=1000, help="Sampling rate (Hz)"),
    per_packet: int = typer.Option(25, "--samples-per-packet", min=1, max=500),
    scenario: Scenario = typer.Option(Scenario.MIXED, "--scenario", help="What the ECG does"),
    source: str = typer.Option("synthetic", "--source", help="synthetic | mitdb (real ECG)"),
    transport: str = typer.Option("websocket", "--transport", help="websocket | mqtt"),
    duration: float = typer.Option(60.0, "--duration", min=1.0, help="Seconds of signal"),
    speed: float = typer.Option(1.0, "--speed", min=0.1, max=100.0, help="× real time"),
    ground_truth: Path | None = typer.Option(
        None, "--ground-truth", help="Write the injected episodes here (JSON lines)"
    ),
    user: str = typer.Option(..., "--user", help="Clinician who pairs the devices"),
    patients: list[str] = typer.Option(
        ..., "--patient", help="Patient id to pair devices with (repeat for several)"
    ),
    ca: Path | None = typer.Option(
        None, "--ca", help="CA of the server (default: <data dir>/pki/root.pem)"
    ),
    mqtt_url: str | None = typer.Option(None, "--mqtt-url", help="mqtts://host:port"),
    mqtt_user: str | None = typer.Option(None, "--mqtt-user"),
    mqtt_ca: Path | None = typer.Option(None, "--mqtt-ca", help="CA of the MQTT broker"),
    seed: int = typer.Option(1, "--seed", help="Seed of the first device's signal"),
) -> None:
    """Stream simulated wearables' sealed ECG to the server.

    The clinician's password comes from $REKAM_MONITOR_PASSWORD or a prompt; the MQTT password
    from $REKAM_MQTT_PASSWORD."""
    if source not in ("synthetic", "mitdb"):
        errors.print("[bold red]error:[/] --source is synthetic or mitdb")
        raise typer.Exit(EXIT_USAGE)
    if transport not in ("websocket", "mqtt"):
        errors.print("[bold red]error:[/] --transport is websocket or mqtt")
        raise typer.Exit(EXIT_USAGE)
    if transport == "mqtt" and not mqtt_url:
        errors.print("[bold red]error:[/] --transport mqtt needs --mqtt-url")
        raise typer.Exit(EXIT_USAGE)
    password = os.environ.get(PASSWORD_ENV) or typer.prompt(f"password of {user}", hide_input=True)
    trust = _trust(ca)
    try:
        paired = pair_devices(server, trust, user, password, patients, devices)
        wearables = [
            SimulatedWearable(
                SimulatedDevice(
                    p.key.device_id,
                    scenario,
                    rate,
                    per_packet,
                    seed=seed + index,
                    source=source,  # type: ignore[arg-type]
                ),
                p.key,
            )
            for index, p in enumerate(paired)
        ]
        sender: PacketTransport
        if transport == "websocket":
            ws_url = server.replace("https://", "wss://", 1).rstrip("/") + "/api/v1/monitor/devices"
            sender = WebSocketTransport(ws_url, trust)
        else:
            assert mqtt_url is not None
            sender = MqttTransport(
                MqttEndpoint.from_url(
                    mqtt_url,
                    ca_file=mqtt_ca,
                    username=mqtt_user,
                    password=os.environ.get(MQTT_PASSWORD_ENV),
                )
            )
        console.print(
            f"{len(wearables)} devices paired; streaming {duration:g} s of '{scenario.value}' "
            f"ECG at {rate} Hz over {transport} ({speed:g}× real time)"
        )
        stats = _run_with_progress(wearables, sender, duration, speed)
    except (MonitorError, OSError, ValueError) as exc:
        errors.print(f"[bold red]error:[/] {getattr(exc, 'message', exc)}")
        raise typer.Exit(EXIT_INVALID) from exc
    episodes = [
        {"device_id": str(w.device_id), "device_start_ms": w.device.start_ms, **e.to_json()}
        for w in wearables
        for e in w.device.ground_truth
        if e.start_s < duration
    ]
    if ground_truth is not None:
        ground_truth.write_text("".join(json.dumps(e) + "\n" for e in episodes))
    alerting = sum(1 for w in wearables for e in w.device.ground_truth if e.alerting)
    console.print(
        f"sent {stats.sent} packets ({stats.samples} samples), {stats.failed} failed, "
        f"{stats.late} late; {len(episodes)} episodes injected ({alerting} should alert)"
    )
    if stats.failed:
        raise typer.Exit(EXIT_INVALID)


def _run_with_progress(
    wearables: list[SimulatedWearable], sender: PacketTransport, duration: float, speed: float
) -> SimulationStats:
    expected = sum(
        -(-round(duration * w.device.rate_hz) // w.device.samples_per_packet) for w in wearables
    )
    columns = (
        TextColumn("[bold]sending"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} packets"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("sending", total=expected)
        done = [0]

        def on_sent(_packet: SentPacket) -> None:
            done[0] += 1
            if done[0] % 50 == 0:
                progress.update(task, completed=done[0])

        stats = asyncio.run(
            simulate(wearables, sender, duration_s=duration, speed=speed, on_sent=on_sent)
        )
        progress.update(task, completed=stats.sent)
    return stats
