"""Real-time heart monitoring: detection speed and accuracy, packet CPU cost, end-to-end alert
latency and packet loss with 1, 100 and 500 simulated wearables.

Run: .venv/bin/python bench/monitor.py [--counts 1,100,500] [--seconds 50] [--skip-detection]
     [--transport wss|mqtt] [--processes N]

1. R-peak detection: the table of bench/ecg_detection.py (Rekam vs NeuroKit2 ecg_clean+ecg_peaks
   vs wfdb XQRS on the shared MIT-BIH records, Se / +P, speed).
2. CPU per packet (250 Hz, 25 samples): ``decode_packet`` (AES-256-GCM open + checks) against
   reading the same header and samples from an unencrypted packet, and ``encode_packet``.
3. For each device count: a fresh installation and a real ``rekam serve`` (TLS); the devices are
   paired through the clinic's monitoring service (10 patients, alarm limits 50/100 bpm, 3 s
   minimum duration) and stream the ``tachy`` scenario (normal 25–40 s, then tachycardia) in real
   time, 250 Hz, 25 samples per packet, one WSS connection per device, all from one asyncio loop.
   A clinician's event stream is read by a separate process (``--subscribe``), which stamps every
   message on arrival. Measured:

   * alert latency: the simulator sending the packet that holds the R peak of the beat that
     confirmed the episode (``confirmed_ms``) → the alert arriving at the subscriber. This
     includes the detector's look-ahead: a beat is only certain some 0.25–0.45 s of signal after
     its R peak, and in real time those samples take that long to arrive;
   * system latency: the simulator sending the packet whose analysis raised the alert → the alert
     at the subscriber (transport, TLS, gateway, analysis, fan-out, SSE), for every alert. The
     raising packet is the one the alert's ECG strip ends with. On the first 50 devices (the
     stream carries live samples for at most 50) the ``samples`` message that follows the alert
     names it too, an independent check: ``raising_packet_disagreed`` counts where the two differ;
   * loss: packets sent vs accepted by the gateway (its counters); alerts expected from the
     ground truth (episodes with time to be confirmed before the end, ``SETTLE_S``) vs received,
     expected episodes that got no alert, and false alerts (matching no injected episode);
   * CPU: the server's (all processes, all threads) per packet sent and as a share of one core,
     the simulator's and, with ``--transport mqtt``, the broker's;
   * the simulator's full garbage collections while it streams, and the longest: no device
     sends during one (``simulate`` keeps the devices' own objects out of them);
   * memory: the peak resident size of the server's processes and of their children (the
     analysis process and multiprocessing's resource tracker).

   With ``--transport mqtt`` the devices publish to a real Mosquitto (TLS, on 127.0.0.1, the
   tests' set-up) over one connection, and the server's MQTT bridge reads them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

sys.path.insert(0, str(Path(__file__).parent))
from bench_support import (
    PASSWORD,
    SERVER_PIDS,
    BenchInstallation,
    children_cpu_seconds,
    children_peak_memory_mib,
    free_port,
    machine,
    machine_cpu_seconds,
    make_installation,
    peak_memory_mib,
    percentile,
    process_cpu_seconds,
    server_process,
    write_result,
)
from rekam.config import Settings
from rekam.his.installation import open_clinic
from rekam.his.monitoring import MonitoringService
from rekam.his.patients import PatientInput
from rekam.his.rbac import Actor, Role
from rekam.monitor.mqtt_bridge import MqttEndpoint
from rekam.monitor.packets import HEADER, HEADER_LENGTH, decode_packet, encode_packet
from rekam.monitor.pairing import DevicePairing
from rekam.monitor.scenarios import SimulatedDevice
from rekam.monitor.simulator_client import (
    MqttTransport,
    PacketTransport,
    SentPacket,
    SimulatedWearable,
    WebSocketTransport,
    simulate,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.mosquitto import (
    DEVICE_USER,
    GATEWAY_USER,
    PASSWORDS,
    mosquitto_broker,
)

RATE = 250
PER_PACKET = 25
PATIENTS = 10
MIN_DURATION_S = 3.0
SETTLE_S = 4.0
"""An episode is expected to raise its alert within the run if it began at least
MIN_DURATION_S + SETTLE_S before the end. Beyond the minimum duration the alert waits for the
5-beat average to cross the limit as the rate climbs, and for the detector's look-ahead: measured
at 100 devices, alerts were confirmed 5.45 s (median) to 6.6 s (max) after the injected episode
began (``confirmed_after_episode_start_s``). Alerts for episodes cut off by the end still count
as received."""
MATCH_S = 1.0
"""An alert belongs to an episode of its device and kind if it says the episode began within
this long of the injected one (the average lags the signal's change of rate)."""
SAMPLED_DEVICES = 50
NURSE = Actor(user_id=None, username="bench.nurse", role=Role.NURSE)


# 2. CPU per packet -----------------------------------------------------------------------------


def packet_cpu_cost(count: int = 20_000) -> dict[str, float]:
    device_id = uuid.uuid4()
    device = DevicePairing(device_id, X25519PrivateKey.generate())
    from rekam.monitor.pairing import GatewayPairing

    gateway = GatewayPairing.new()
    key = gateway.derive(device.public_bytes(), device_id)
    rng = np.random.default_rng(1)
    chunks = [rng.integers(-2000, 2000, PER_PACKET).astype(np.int16) for _ in range(count)]
    now = int(time.time() * 1000)
    start = time.perf_counter()
    sealed = [encode_packet(key, device_id, i, now, RATE, c) for i, c in enumerate(chunks)]
    encode_s = time.perf_counter() - start
    plain = [
        HEADER.pack(b"RKD1", device_id.bytes, i, now, RATE, PER_PACKET) + c.astype(">i2").tobytes()
        for i, c in enumerate(chunks)
    ]
    lookup = {device_id: key}.get
    start = time.perf_counter()
    for raw in sealed:
        decode_packet(raw, lookup, now_ms=now)
    decode_s = time.perf_counter() - start
    start = time.perf_counter()
    for raw in plain:
        HEADER.unpack_from(raw)
        np.frombuffer(raw, dtype=">i2", offset=HEADER_LENGTH).astype(np.int16)
    plain_s = time.perf_counter() - start
    return {
        "encode_us": encode_s / count * 1e6,
        "decode_us": decode_s / count * 1e6,
        "plain_parse_us": plain_s / count * 1e6,
        "decrypt_overhead_us": (decode_s - plain_s) / count * 1e6,
    }


# 3. Latency and loss ---------------------------------------------------------------------------


def subscriber_main(url: str, ca: str, devices: str, out: str) -> None:
    """Run as a separate process: log in, read the event stream, stamp each message."""
    context = ssl.create_default_context(cafile=ca)
    with (
        httpx.Client(base_url=url, verify=context, timeout=httpx.Timeout(10, read=120)) as client,
        open(out, "w") as sink,
    ):
        login = client.post("/api/v1/session", json={"username": "nurse", "password": PASSWORD})
        login.raise_for_status()
        query = f"?devices={devices}" if devices else ""
        with client.stream("GET", "/api/v1/monitor/events" + query) as response:
            for line in response.iter_lines():
                if line.startswith("retry:"):
                    sink.write('{"type": "ready"}\t0\n')
                    sink.flush()
                elif line.startswith("data: "):
                    sink.write(f"{line[6:]}\t{time.time():.6f}\n")
                    sink.flush()


def pair(installation: BenchInstallation, count: int) -> list[tuple[Any, str]]:
    clinic = open_clinic(Settings(data_dir=installation.data_dir))
    try:
        service = MonitoringService.for_clinic(clinic)

        patients = []
        for n in range(PATIENTS):
            patient = clinic.patients.register(NURSE, _bench_patient(n))
            service.set_thresholds(
                NURSE, patient.id, service.thresholds_from(50, 100, 5, MIN_DURATION_S)
            )
            patients.append(patient.id)
        paired = []
        for n in range(count):
            private = X25519PrivateKey.generate()
            result = service.pair_device(
                NURSE,
                patients[n % PATIENTS],
                private.public_key().public_bytes_raw(),
                f"bench {n}",
            )
            key = DevicePairing(result.device_id, private).derive(result.gateway_public)
            paired.append((key, patients[n % PATIENTS]))
        return paired
    finally:
        clinic.close()


def _bench_patient(n: int) -> PatientInput:
    """A fictitious patient with a valid-format NIK (16 digits: region, birth date, serial)."""
    female = n % 2 == 1
    born = date(1950 + n, 1 + n % 12, 1 + n % 28)
    day = born.day + (40 if female else 0)
    nik = f"317101{day:02d}{born.month:02d}{born.year % 100:02d}{n + 1:04d}"
    return PatientInput(
        name=f"Pasien Uji {n}", birth_date=born, sex="F" if female else "M", nik=nik
    )


class SplitTransport:
    """Devices spread over several server processes, one WebSocket each (as a load balancer
    would spread them)."""

    def __init__(self, transports: list[WebSocketTransport]) -> None:
        self.transports = transports
        self.route: dict[uuid.UUID, WebSocketTransport] = {}

    async def open(self, device_ids: Sequence[uuid.UUID]) -> None:
        for n, device_id in enumerate(device_ids):
            self.route[device_id] = self.transports[n % len(self.transports)]
        await asyncio.gather(
            *(t.open([d for d, r in self.route.items() if r is t]) for t in self.transports)
        )

    async def send(self, device_id: uuid.UUID, packet: bytes) -> None:
        await self.route[device_id].send(device_id, packet)

    async def close(self) -> None:
        for transport in self.transports:
            await transport.close()


@contextlib.contextmanager
def redis_for_bench(workdir: Path, processes: int) -> Iterator[dict[str, str]]:
    """A redis-server on 127.0.0.1 (no persistence) when several server processes share events."""
    if processes < 2:
        yield {}
        return
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        yield {"REKAM_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    finally:
        redis.terminate()
        redis.wait(10)


@contextlib.contextmanager
def lower_priority(increment: int) -> Iterator[None]:
    """Run the simulator (this process only: the server and the subscriber were started before)
    at a lower CPU priority, as if the devices were on machines of their own; the priority is
    restored after (which needs root; otherwise it stays lowered)."""
    if increment <= 0:
        yield
        return
    os.nice(increment)
    try:
        yield
    finally:
        with contextlib.suppress(PermissionError):
            os.nice(-increment)


class SendTimes:
    """When the simulator sent each device's packets (wall clock, NaN for not sent), kept in one
    array: a dictionary of (device, sequence) keys would grow by 5,000 objects a second at 500
    devices, and the simulator's garbage collector would walk them all."""

    def __init__(self, device_ids: Sequence[uuid.UUID], seconds: float) -> None:
        self._row = {device_id: n for n, device_id in enumerate(device_ids)}
        packets = int(seconds * RATE / PER_PACKET) + 2
        self._times = np.full((len(device_ids), packets), np.nan)

    def record(self, packet: SentPacket) -> None:
        self._times[self._row[packet.device_id], packet.sequence] = packet.sent_at

    def span(self) -> tuple[float, float]:
        """When the first and the last packet were sent."""
        return float(np.nanmin(self._times)), float(np.nanmax(self._times))

    def get(self, device_id: uuid.UUID, sequence: int) -> float | None:
        row = self._row.get(device_id)
        if row is None or not 0 <= sequence < self._times.shape[1]:
            return None
        value = float(self._times[row, sequence])
        return None if np.isnan(value) else value


@contextlib.contextmanager
def collections_timed() -> Iterator[list[tuple[float, float]]]:
    """Every full garbage collection in this process (the simulator's) while the block runs, as
    (wall-clock start, duration in ms): no device sends during one."""
    durations: list[tuple[float, float]] = []
    began = [0.0, 0.0]

    def timer(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            began[:] = time.time(), time.perf_counter()
        else:
            durations.append((began[0], (time.perf_counter() - began[1]) * 1000))

    gc.callbacks.append(timer)
    try:
        yield durations
    finally:
        gc.callbacks.remove(timer)


def run_count(
    count: int,
    seconds: float,
    workdir: Path,
    processes: int = 1,
    transport_kind: str = "wss",
    analysis: str = "process",
    simulator_nice: int = 0,
) -> dict[str, Any]:
    name = f"n{count}-p{processes}-{transport_kind}-{analysis}"
    installation = make_installation(workdir / name, [("nurse", Role.NURSE)])
    paired = pair(installation, count)
    sent = SendTimes([key.device_id for key, _ in paired], seconds)

    with contextlib.ExitStack() as stack:
        env = {
            **stack.enter_context(redis_for_bench(workdir, processes)),
            "REKAM_MONITOR_ANALYSIS_PROCESS": "true" if analysis == "process" else "false",
        }
        broker = None
        if transport_kind == "mqtt":
            broker = stack.enter_context(mosquitto_broker(workdir / f"broker-{name}"))
            env = {
                **env,
                "REKAM_MQTT_URL": broker.url,
                "REKAM_MQTT_CA": str(broker.ca_file),
                "REKAM_MQTT_USERNAME": GATEWAY_USER,
                "REKAM_MQTT_PASSWORD": PASSWORDS[GATEWAY_USER],
            }
        ports = [
            stack.enter_context(server_process(installation, tls=True, extra_env=env))
            for _ in range(processes)
        ]
        urls = [f"https://127.0.0.1:{port}" for port in ports]
        context = ssl.create_default_context(cafile=str(installation.root_pem))
        sampled = ",".join(str(k.device_id) for k, _ in paired[:SAMPLED_DEVICES])
        log_path = workdir / f"events-{name}.log"
        log_path.unlink(missing_ok=True)
        subscriber = subprocess.Popen(
            [sys.executable, __file__, "--subscribe", urls[0], str(installation.root_pem),
             sampled, str(log_path)]
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if log_path.exists() and log_path.read_text().startswith('{"type": "ready"}'):
                    break
                time.sleep(0.1)
            wearables = [
                SimulatedWearable(
                    SimulatedDevice(key.device_id, "tachy", RATE, PER_PACKET, seed=n), key
                )
                for n, (key, _patient) in enumerate(paired)
            ]
            transport: PacketTransport
            if broker is not None:
                transport = MqttTransport(
                    MqttEndpoint(
                        "127.0.0.1",
                        broker.port,
                        ca_file=broker.ca_file,
                        username=DEVICE_USER,
                        password=PASSWORDS[DEVICE_USER],
                    )
                )
            else:
                transport = SplitTransport(
                    [
                        WebSocketTransport(
                            url.replace("https://", "wss://") + "/api/v1/monitor/devices", context
                        )
                        for url in urls
                    ]
                )
            pids = [SERVER_PIDS[port] for port in ports]
            broker_cpu_before = 0.0 if broker is None else process_cpu_seconds(broker.process.pid)
            server_cpu_before = sum(process_cpu_seconds(pid) for pid in pids)
            analysis_cpu_before = sum(children_cpu_seconds(pid) for pid in pids)
            machine_before = machine_cpu_seconds()
            simulator_cpu_before = time.process_time()
            start = time.time()
            with lower_priority(simulator_nice), collections_timed() as collections:
                stats = asyncio.run(
                    simulate(wearables, transport, duration_s=seconds, on_sent=sent.record)
                )
            elapsed = time.time() - start
            machine_after = machine_cpu_seconds()
            simulator_cpu = time.process_time() - simulator_cpu_before
            time.sleep(2.0)
            server_cpu = sum(process_cpu_seconds(pid) for pid in pids) - server_cpu_before
            analysis_cpu = sum(children_cpu_seconds(pid) for pid in pids) - analysis_cpu_before
            server_memory = sum(peak_memory_mib(pid) for pid in pids)
            analysis_memory = sum(children_peak_memory_mib(pid) for pid in pids)
            broker_cpu = (
                0.0
                if broker is None
                else process_cpu_seconds(broker.process.pid) - broker_cpu_before
            )
            counters: dict[str, Any] = {"packets": {}}
            for url in urls:
                with httpx.Client(base_url=url, verify=context) as client:
                    client.post("/api/v1/session", json={"username": "nurse", "password": PASSWORD})
                    for k, v in client.get("/api/v1/monitor/gateway").json()["packets"].items():
                        counters["packets"][k] = counters["packets"].get(k, 0) + v
        finally:
            subscriber.terminate()
            subscriber.wait(10)
    row = analyse(count, seconds, wearables, sent, stats, counters, log_path, elapsed)
    row["server_processes"] = processes
    row["transport"] = transport_kind
    row["analysis"] = analysis
    # the server's CPU per packet counts its analysis process too
    row["server_cpu_us_per_packet"] = round(
        (server_cpu + analysis_cpu) / max(1, stats.sent) * 1e6, 1
    )
    row["server_cpu_share"] = round(server_cpu / elapsed, 2)
    row["analysis_cpu_share"] = round(analysis_cpu / elapsed, 2)
    row["machine_busy_share"] = round((machine_after[0] - machine_before[0]) / elapsed, 2)
    row["machine_stolen_share"] = round((machine_after[1] - machine_before[1]) / elapsed, 2)
    row["simulator_cpu_share"] = round(simulator_cpu / elapsed, 2)
    row["broker_cpu_share"] = round(broker_cpu / elapsed, 2)
    row["simulator_nice"] = simulator_nice
    row["server_peak_memory_mib"] = round(server_memory)
    row["analysis_peak_memory_mib"] = round(analysis_memory)
    # those that came while the devices were sending (not the set-up's or the hand-over's)
    first, last = sent.span()
    streaming = [ms for at, ms in collections if first <= at <= last]
    row["simulator_full_collections"] = len(streaming)
    row["simulator_longest_collection_ms"] = round(max(streaming, default=0.0), 1)
    return row


def analyse(
    count: int,
    seconds: float,
    wearables: list[SimulatedWearable],
    sent: SendTimes,
    stats: Any,
    counters: dict[str, Any],
    log_path: Path,
    elapsed: float,
) -> dict[str, Any]:
    starts = {w.device_id: w.device.start_ms for w in wearables}
    messages: list[tuple[dict[str, Any], float]] = []
    for line in log_path.read_text().splitlines()[1:]:
        text, stamp = line.rsplit("\t", 1)
        messages.append((json.loads(text), float(stamp)))
    kinds: dict[str, int] = {}
    for message, _ in messages:
        kinds[message["type"]] = kinds.get(message["type"], 0) + 1
    alert_latency, system_latency = [], []
    # the raising packet as the alert's strip names it (every device) and as the live samples
    # that follow the alert name it (the sampled devices): the two must agree
    raising: dict[uuid.UUID, int] = {}
    raising_checked = raising_disagree = 0
    # per device: the alerts raised, as (kind, episode started, confirmed), in seconds
    raised: dict[uuid.UUID, list[tuple[str, float, float]]] = {}
    for message, received in messages:
        device_id = uuid.UUID(message["device_id"])
        if message["type"] == "alert" and message["phase"] == "raised":
            started_s = (message["started_ms"] - starts[device_id]) / 1000
            confirmed_s = (message["confirmed_ms"] - starts[device_id]) / 1000
            raised.setdefault(device_id, []).append((message["kind"], started_s, confirmed_s))
            index = round((message["confirmed_ms"] - starts[device_id]) * RATE / 1000)
            sent_at = sent.get(device_id, index // PER_PACKET)
            if sent_at is not None:
                alert_latency.append((received - sent_at) * 1000)
            packet = _raising_packet(message["strip"], starts[device_id])
            sent_at = sent.get(device_id, packet)
            if sent_at is not None:
                system_latency.append((received - sent_at) * 1000)
            raising[device_id] = packet
        elif message["type"] == "samples" and device_id in raising:
            index = round((message["start_ms"] - starts[device_id]) * RATE / 1000)
            raising_checked += 1
            raising_disagree += raising.pop(device_id) != index // PER_PACKET
    episodes = {
        w.device_id: [e for e in w.device.ground_truth if e.kind == "tachycardia"]
        for w in wearables
    }
    expected = [
        (device_id, e)
        for device_id, device_episodes in episodes.items()
        for e in device_episodes
        if e.start_s + MIN_DURATION_S + SETTLE_S < seconds
    ]

    def matches(alert: tuple[str, float, float], e: Any) -> bool:
        return alert[0] == e.kind and e.start_s - MATCH_S <= alert[1] <= e.end_s + MATCH_S

    missed = [(d, e) for d, e in expected if not any(matches(a, e) for a in raised.get(d, []))]
    # how long after an injected episode began its alert was confirmed (in signal time)
    alerted_after = [
        a[2] - e.start_s
        for device_id, device_episodes in episodes.items()
        for e in device_episodes
        for a in raised.get(device_id, [])
        if matches(a, e)
    ]
    false_alerts = sum(
        1
        for device_id, alerts in raised.items()
        for a in alerts
        if not any(matches(a, e) for e in episodes.get(device_id, []))
    )
    packets = counters["packets"]
    return {
        "devices": count,
        "seconds": seconds,
        "wall_seconds": round(elapsed, 1),
        "connect_seconds": round(stats.connect_seconds, 1),
        "packets_sent": stats.sent,
        "packets_failed": stats.failed,
        "packets_late": stats.late,
        "packets_accepted": packets["accepted"],
        "packets_refused": {k: v for k, v in packets.items() if k != "accepted" and v},
        "packet_loss_percent": 100.0 * (stats.sent - packets["accepted"]) / max(1, stats.sent),
        "messages_received": kinds,
        "alerts_expected": len(expected),
        "alerts_received": sum(len(alerts) for alerts in raised.values()),
        "episodes_missed": len(missed),
        "missed_detail": [  # the first few, with what the device's alerts said
            {
                "episode_s": [round(e.start_s, 2), round(e.end_s, 2)],
                "alerts": [(a[0], round(a[1], 2)) for a in raised.get(d, [])],
            }
            for d, e in missed[:10]
        ],
        "false_alerts": false_alerts,
        "confirmed_after_episode_start_s": _summary(alerted_after, digits=2),
        "alert_latency_ms": _summary(alert_latency),
        "system_latency_ms": _summary(system_latency),
        "raising_packet_checked": raising_checked,
        "raising_packet_disagreed": raising_disagree,
    }


def _raising_packet(strip: dict[str, Any], device_start_ms: int) -> int:
    """The packet whose analysis raised an alert: the alert's strip ends with that packet's
    last sample."""
    end_ms = strip["start_ms"] + round(len(strip["samples_uv"]) * 1000 / strip["rate_hz"])
    last = round((end_ms - device_start_ms) * RATE / 1000) - 1
    return last // PER_PACKET


def _summary(values: list[float], digits: int = 1) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), digits),
        "p99": round(percentile(values, 99), digits),
        "max": round(max(values), digits),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,100,500")
    parser.add_argument("--seconds", type=float, default=50.0)
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument("--workdir", help="keep installations and event logs here")
    parser.add_argument(
        "--processes", type=int, default=1, help="server processes (2+: events through Redis)"
    )
    parser.add_argument(
        "--transport",
        choices=("wss", "mqtt"),
        default="wss",
        help="devices send over the server's WebSocket (one connection each) or publish to a "
        "Mosquitto broker (TLS) that the server's MQTT bridge reads",
    )
    parser.add_argument(
        "--analysis",
        choices=("process", "inline", "both"),
        default="both",
        help="analyse the packets in a process beside the server's (the default of 'rekam serve' "
        "on 2+ CPUs), in the server's process, or both, one after the other, for each count",
    )
    parser.add_argument(
        "--simulator-nice",
        type=int,
        default=0,
        help="run the simulator at this much lower CPU priority (nice), so that it yields the "
        "cores to the server, as devices on machines of their own would; the subscriber is not "
        "lowered",
    )
    parser.add_argument("--subscribe", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscribe:
        subscriber_main(*args.subscribe)
        return 0
    print(f"# Real-time heart monitoring — {machine()}\n")
    result: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    if not args.skip_detection:
        import ecg_detection

        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            ecg_detection.main()
        print(captured.getvalue())
        result["detection"] = captured.getvalue()
    cost = packet_cpu_cost()
    result["packet_cpu"] = cost
    print("| per packet (25 samples) | µs |\n| --- | --- |")
    print(f"| decode_packet (AES-256-GCM open, checks) | {cost['decode_us']:.1f} |")
    print(f"| parse the same packet unencrypted | {cost['plain_parse_us']:.1f} |")
    print(f"| encode_packet (seal) | {cost['encode_us']:.1f} |")
    print(
        f"\nencryption adds {cost['decrypt_overhead_us']:.1f} µs per packet: "
        f"{cost['decrypt_overhead_us'] * 10 * 500 / 1e4:.2f} % of one core for 500 devices "
        "at 10 packets/s\n"
    )
    rows = []
    with (
        contextlib.nullcontext(args.workdir)
        if args.workdir
        else tempfile.TemporaryDirectory(prefix="rekam-bench-monitor-")
    ) as tmp:
        analyses = ("process", "inline") if args.analysis == "both" else (args.analysis,)
        for count in (int(c) for c in args.counts.split(",")):
            for analysis in analyses:
                row = run_count(
                    count,
                    args.seconds,
                    Path(tmp),
                    args.processes,
                    args.transport,
                    analysis,
                    args.simulator_nice,
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
    result["latency"] = rows
    print(
        "\n| devices | transport | analysis | server processes | packets sent | accepted | "
        "loss % | alerts expected / received / missed / false | alert latency p50 / p99 ms | "
        "system latency p50 / p99 ms | server CPU µs per packet | "
        "server / analysis / simulator CPU (cores) | machine busy / stolen (cores) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if r["raising_packet_disagreed"]:
            print(
                f"WARNING: {r['devices']} devices: the strip and the live samples named different "
                f"raising packets for {r['raising_packet_disagreed']} of "
                f"{r['raising_packet_checked']} alerts; the system latency is not to be trusted"
            )
        a, s = r["alert_latency_ms"], r["system_latency_ms"]
        print(
            f"| {r['devices']} | {r['transport']} | {r['analysis']} | {r['server_processes']} | "
            f"{r['packets_sent']} | {r['packets_accepted']} | "
            f"{r['packet_loss_percent']:.3f} | {r['alerts_expected']} / {r['alerts_received']} / "
            f"{r['episodes_missed']} / {r['false_alerts']} | "
            f"{a.get('p50', '-')} / {a.get('p99', '-')} | "
            f"{s.get('p50', '-')} / {s.get('p99', '-')} | {r['server_cpu_us_per_packet']} | "
            f"{r['server_cpu_share']} / {r['analysis_cpu_share']} / {r['simulator_cpu_share']} | "
            f"{r['machine_busy_share']} / {r['machine_stolen_share']} |"
        )
    print(f"\nwritten to {write_result('monitor', result)}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
