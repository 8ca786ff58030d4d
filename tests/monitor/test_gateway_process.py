"""The gateway in a child process (``spawn``, a real second interpreter): the events that come
back, and the counters, are those an in-process gateway gives for the same packets; forgetting,
watched strips, the shutdown flush, a child that dies and a child that cannot start."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rekam.monitor import gateway_process
from rekam.monitor.events import AlertEvent, AlertPhase, LiveSamples, MonitorEvent
from rekam.monitor.gateway import Gateway, Verdict
from rekam.monitor.gateway_process import GatewayProcess
from support.gateway_setup import SHORT, TableSetup, setup_for
from support.sealed_stream import SealedStream, paired_key, schedule_samples

FAST = {"speed_limit": 1000.0, "burst_seconds": 600.0}  # packets are sent faster than real time


class ListSink:
    def __init__(self) -> None:
        self.events: list[MonitorEvent] = []
        self.lock = threading.Lock()
        self.threads: set[str] = set()

    def publish(self, event: MonitorEvent) -> None:
        with self.lock:
            self.events.append(event)
            self.threads.add(threading.current_thread().name)


def comparable(events: list[MonitorEvent]) -> list[dict[str, Any]]:
    """Events as JSON, without the episode id (a fresh random id in each gateway)."""
    out = []
    for event in events:
        data = event.to_json()
        data.pop("episode_id", None)
        out.append(data)
    return out


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


@pytest.fixture
def running() -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(setup: TableSetup, sink: ListSink, **kwargs: Any) -> GatewayProcess:
        gateway = GatewayProcess(setup, sink, **{**FAST, **kwargs})
        gateway.start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.close()


def two_streams() -> list[SealedStream]:
    """Two devices: a tachycardia episode and a normal rhythm, 30 s each."""
    return [
        SealedStream(paired_key(), schedule_samples([(8, 70), (14, 150), (8, 70)], seed=1)),
        SealedStream(paired_key(), schedule_samples([(30, 72)], seed=2)),
    ]


def interleaved(streams: list[SealedStream]) -> list[bytes]:
    packets = [s.packets() for s in streams]
    return [p for group in zip(*packets, strict=True) for p in group]


def test_the_child_gives_the_events_and_counters_of_an_in_process_gateway(
    running: Callable[..., GatewayProcess],
) -> None:
    streams = two_streams()
    keys = [s.key for s in streams]
    stranger = SealedStream(paired_key(), schedule_samples([(1, 70)]))
    packets = interleaved(streams)
    forged = bytearray(packets[50])
    forged[-1] ^= 1
    bad = [packets[10], bytes(forged), b"\x00" * 7, stranger.packet(0)]  # replay, forged, ...
    everything = packets[:100] + bad + packets[100:]

    reference_sink = ListSink()
    table = {k.device_id: k for k in keys}
    reference = Gateway(table.get, reference_sink, thresholds_for=lambda _d: SHORT, **FAST)  # type: ignore[arg-type]
    for start in range(0, len(everything), 16):
        reference.receive_many(everything[start : start + 16])

    sink = ListSink()
    gateway = running(setup_for(keys), sink, all_samples=True)
    for start in range(0, len(everything), 16):
        gateway.receive_many(everything[start : start + 16])
    gateway.refuse(Verdict.FLOODED, "a transport refused it")
    assert gateway.stop()  # everything sent is analysed and handed over before stop returns

    assert comparable(sink.events) == comparable(reference_sink.events)
    raised = [e for e in sink.events if isinstance(e, AlertEvent) and e.phase == AlertPhase.RAISED]
    assert [(e.kind, e.device_id) for e in raised] == [("tachycardia", streams[0].device_id)]
    assert sink.threads == {"rekam-monitor-events"}  # handed over by the server's reader
    expected = dict(reference.counters)
    expected["flooded"] += 1
    assert gateway.counters == expected
    assert expected["accepted"] == len(packets) and expected["replayed"] == 1
    assert expected["forged"] == expected["malformed"] == expected["unknown_device"] == 1


def test_strips_only_for_watched_devices(running: Callable[..., GatewayProcess]) -> None:
    streams = two_streams()
    sink = ListSink()
    gateway = running(setup_for([s.key for s in streams]), sink)
    packets = interleaved(streams)
    gateway.receive_many(packets[:20])
    gateway.watch([streams[1].device_id])
    gateway.receive_many(packets[20:40])
    assert gateway.stop()
    strips = [e for e in sink.events if isinstance(e, LiveSamples)]
    assert len(strips) == 10
    assert {s.device_id for s in strips} == {streams[1].device_id}


def test_forget_drops_the_replay_window_and_what_the_child_cached(
    running: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    stream = two_streams()[1]
    record = tmp_path / "forgotten"
    sink = ListSink()
    gateway = running(setup_for([stream.key], forgotten=str(record)), sink)
    first = stream.packets()[:5]
    gateway.receive_many(first)
    gateway.receive_many(first)  # replays
    wait_for(lambda: gateway.counters["replayed"] == 5)
    gateway.forget(stream.device_id)
    gateway.forget(None)
    gateway.receive_many(first)  # a fresh stream for the forgotten device
    assert gateway.stop()
    counters = gateway.counters
    assert (counters["accepted"], counters["replayed"]) == (10, 5)
    assert record.read_text().split() == [str(stream.device_id), "None"]


def test_the_child_names_devices_seen_together_to_prefetch_in_one_call(
    running: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    streams = two_streams()
    record = tmp_path / "prefetched"
    gateway = running(setup_for([s.key for s in streams], prefetched=str(record)), ListSink())
    gateway.receive_many(interleaved(streams)[:20])
    gateway.receive_many(interleaved(streams)[20:40])
    assert gateway.stop()
    assert gateway.counters["accepted"] == 40
    assert record.read_text().splitlines() == [" ".join(str(s.device_id) for s in streams)]


def test_a_child_that_dies_is_replaced(running: Callable[..., GatewayProcess]) -> None:
    stream = two_streams()[1]
    sink = ListSink()
    gateway = running(setup_for([stream.key]), sink)
    packets = stream.packets()
    gateway.receive_many(packets[:10])
    wait_for(lambda: gateway.counters["accepted"] == 10)
    first_pid = gateway.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    wait_for(lambda: gateway.restarts == 1 and gateway.pid not in (None, first_pid))
    gateway.receive_many(packets[10:20])  # the new child has a fresh replay window
    wait_for(lambda: gateway.counters["accepted"] >= 10)
    assert gateway.stop()


def test_a_child_that_cannot_start_says_why() -> None:
    gateway = GatewayProcess(setup_for([], fail="the keyring is locked"), ListSink())
    with pytest.raises(RuntimeError, match="the keyring is locked"):
        gateway.start()
    gateway.receive_many([b"\x00" * 40])  # never raises; counted as not analysed
    assert gateway.counters["analysis_failed"] == 1


def test_stopped_gateway_counts_what_it_could_not_send(
    running: Callable[..., GatewayProcess],
) -> None:
    stream = two_streams()[1]
    sink = ListSink()
    gateway = running(setup_for([stream.key]), sink)
    gateway.receive_many(stream.packets()[:3])
    assert gateway.stop()
    gateway.receive_many(stream.packets()[3:5])
    counters = gateway.counters
    assert (counters["accepted"], counters["analysis_failed"]) == (3, 2)


def test_a_hung_child_never_blocks_the_server_and_is_replaced(
    running: Callable[..., GatewayProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child stops taking packets (its key lookup never returns): the pipe fills, then the
    queue in front of it; from then on packets are counted as not analysed instead of making the
    caller (the server's event loop) wait, and after STALL_S the child is replaced."""
    monkeypatch.setattr(gateway_process, "MAX_WAITING", 4)
    monkeypatch.setattr(gateway_process, "STALL_S", 0.5)
    stream = SealedStream(paired_key(), schedule_samples([(40, 70)]))
    batch = stream.packets()[:100]  # ~10 kB a message: a few fill the pipe
    gateway = running(setup_for([stream.key], hang=True), ListSink())
    first_pid = gateway.pid
    calls = 0
    deadline = time.monotonic() + 30
    while gateway.restarts == 0:
        assert time.monotonic() < deadline, "the hung child was not replaced"
        gateway.receive_many(batch)  # returns at once, whatever the child does
        calls += 1
        time.sleep(0.01)
    assert gateway.pid != first_pid
    failed = gateway.counters["analysis_failed"]
    assert 0 < failed <= calls * len(batch)
    assert failed % len(batch) == 0  # whole batches, none half-analysed


def test_the_child_outlives_a_stopping_signal_until_the_server_stops_it(
    running: Callable[..., GatewayProcess],
) -> None:
    """`systemctl stop` or Ctrl+C signals the whole process group: the child must still be there
    to analyse the server's last packets and hand over their events."""
    stream = two_streams()[1]
    sink = ListSink()
    gateway = running(setup_for([stream.key]), sink, all_samples=True)
    pid = gateway.pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    gateway.receive_many(stream.packets()[:10])
    assert gateway.stop()
    assert gateway.restarts == 0
    assert len([e for e in sink.events if isinstance(e, LiveSamples)]) == 10


def test_the_child_stores_the_events_itself_and_writes_them_before_it_stops(
    running: Callable[..., GatewayProcess], tmp_path: Path
) -> None:
    """The clinic's storing sink runs in the child (its database work off the server); at
    shutdown it is flushed before the child says it stopped."""
    streams = two_streams()
    stored = tmp_path / "stored.jsonl"
    sink = ListSink()
    gateway = running(setup_for([s.key for s in streams], stored=str(stored)), sink)
    gateway.receive_many(interleaved(streams))
    assert gateway.stop()
    written = [json.loads(line) for line in stored.read_text().splitlines()]
    assert written == [e.to_json() for e in sink.events]  # the same events, in order
    assert any(e["type"] == "alert" for e in written)
