"""Online analysis cost: CPU per packet of DeviceAnalyzer, and how many devices one core serves.

Run: .venv/bin/python bench/device_analysis.py [--seconds 300]

Each case streams simulated device packets (rekam.monitor.scenarios) through one DeviceAnalyzer
and measures process CPU time for the ``feed`` calls only (signal generation excluded), after a
10 s warm-up. "Devices per core" = 1 / (CPU per packet × packets per second per device). Beside
it: the share of that cost spent in the streaming R-peak detector (the same chunks fed to a bare
RPeakDetector), and the offline detector on the same samples in one call, per packet's worth of
samples — the floor that per-call overhead is measured against.

A second table analyses 1, 8, 32 and 128 devices' packets of each moment in one call
(``DeviceAnalyzer.feed_many``, what the server's gateway does with the packets it gathers): CPU
per packet against one device per call, in the same run.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import uuid
from typing import Literal, cast

import numpy as np

from rekam.ecg import detect_r_peaks
from rekam.ecg.rpeaks import RPeakDetector
from rekam.monitor.device_analysis import DeviceAnalyzer
from rekam.monitor.packets import Packet
from rekam.monitor.scenarios import SimulatedDevice, mitdb_directory

CASES = (
    # rate, samples per packet, scenario, source
    (250, 25, "normal", "synthetic"),
    (250, 25, "mixed", "synthetic"),
    (250, 25, "noisy", "synthetic"),
    (250, 25, "normal", "mitdb"),
    (250, 25, "mixed", "mitdb"),
    (125, 25, "normal", "synthetic"),
    (500, 50, "normal", "synthetic"),
    (1000, 100, "normal", "synthetic"),
    (250, 5, "normal", "synthetic"),
)
WARM_UP_S = 10.0


def measure(
    rate: int, per_packet: int, scenario: str, source: str, seconds: float
) -> dict[str, float]:
    device = SimulatedDevice(
        uuid.uuid4(),
        scenario,
        rate,
        per_packet,
        seed=1,
        source=cast(Literal["synthetic", "mitdb"], source),
        start_ms=0,
    )
    stream = [
        Packet(device.device_id, c.sequence, c.timestamp_ms, c.rate, c.samples)
        for c in device.chunks(WARM_UP_S + seconds)
    ]
    warm = round(WARM_UP_S * rate / per_packet)
    best = float("inf")
    for _ in range(3):
        analyzer = DeviceAnalyzer(device.device_id)
        for packet in stream[:warm]:
            analyzer.feed(packet)
        started = time.process_time()
        for packet in stream[warm:]:
            analyzer.feed(packet)
        best = min(best, time.process_time() - started)
    measured = len(stream) - warm
    per_packet_us = best / measured * 1e6
    packets_per_s = rate / per_packet
    chunks = [p.samples.astype(np.float64) / 1000 for p in stream]
    detector_only = float("inf")
    for _ in range(3):
        detector = RPeakDetector(rate)
        for chunk in chunks[:warm]:
            detector.feed(chunk)
        started = time.process_time()
        for chunk in chunks[warm:]:
            detector.feed(chunk)
        detector_only = min(detector_only, time.process_time() - started)
    samples = np.concatenate(chunks)
    offline = float("inf")
    for _ in range(3):
        started = time.process_time()
        detect_r_peaks(samples, rate)
        offline = min(offline, time.process_time() - started)
    return {
        "per_packet_us": per_packet_us,
        "devices_per_core": 1e6 / (per_packet_us * packets_per_s),
        "detector_share": detector_only / best,
        "offline_per_packet_us": offline / len(stream) * 1e6,
    }


BATCH_SIZES = (1, 8, 32, 128)


def measure_together(devices: int, seconds: float) -> float:
    """CPU per packet when ``devices`` devices' packets of one moment are analysed in one call
    (``DeviceAnalyzer.feed_many``, as the server's gateway does with a batch); 250 Hz, 25
    samples per packet, the ``mixed`` scenario, a different patient per device."""
    streams = []
    for n in range(devices):
        device = SimulatedDevice(uuid.uuid4(), "mixed", 250, 25, seed=n, start_ms=0)
        streams.append(
            [
                Packet(device.device_id, c.sequence, c.timestamp_ms, c.rate, c.samples)
                for c in device.chunks(WARM_UP_S + seconds)
            ]
        )
    ticks = len(streams[0])
    warm = round(WARM_UP_S * 10)
    best = float("inf")
    for _ in range(3):
        analyzers = [DeviceAnalyzer(s[0].device_id) for s in streams]
        for tick in range(warm):
            DeviceAnalyzer.feed_many(analyzers, [s[tick] for s in streams])
        started = time.process_time()
        for tick in range(warm, ticks):
            DeviceAnalyzer.feed_many(analyzers, [s[tick] for s in streams])
        best = min(best, time.process_time() - started)
    return best / ((ticks - warm) * devices) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="signal per case")
    args = parser.parse_args()
    print(
        f"# DeviceAnalyzer CPU per packet — {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    print(f"# {args.seconds:g} s of signal per case, best of 3, process CPU time\n")
    print(
        "| rate | samples/packet | scenario | source | CPU per packet | devices per core "
        "| of which streaming R-peak detector | offline detector, same samples, per packet |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for rate, per_packet, scenario, source in CASES:
        if source == "mitdb" and not (mitdb_directory() / "100.hea").is_file():
            print(f"| {rate} | {per_packet} | {scenario} | {source} | records not found | | | |")
            continue
        r = measure(rate, per_packet, scenario, source, args.seconds)
        print(
            f"| {rate} Hz | {per_packet} | {scenario} | {source} | {r['per_packet_us']:.0f} µs "
            f"| {r['devices_per_core']:.0f} | {100 * r['detector_share']:.0f} % "
            f"| {r['offline_per_packet_us']:.1f} µs |"
        )
    print("\n## Devices analysed together (DeviceAnalyzer.feed_many, 250 Hz, 25 samples, mixed)\n")
    print("| devices per call | CPU per packet | devices per core | vs one per call |")
    print("| ---: | ---: | ---: | ---: |")
    seconds = min(args.seconds, 60.0)
    alone = 0.0
    for devices in BATCH_SIZES:
        per_packet = measure_together(devices, seconds)
        alone = alone or per_packet
        print(
            f"| {devices} | {per_packet:.0f} µs | {1e6 / (per_packet * 10):.0f} "
            f"| {alone / per_packet:.2f}× |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
