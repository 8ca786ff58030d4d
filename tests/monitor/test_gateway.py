"""The gateway with real keys, real sealed packets and the real DeviceAnalyzer: genuine packets
become heart-rate readings, live samples and exactly one tachycardia alert per episode; every kind
of bad input is refused, counted, changes nothing and never raises an alert."""

from __future__ import annotations

import random
import struct
import threading
from uuid import UUID, uuid4

import numpy as np
import pytest

from rekam.ecg.rhythm import RhythmThresholds
from rekam.monitor.device_analysis import DeviceAnalyzer
from rekam.monitor.events import (
    AlertEvent,
    AlertKind,
    AlertPhase,
    HeartRateReading,
    LiveSamples,
    MonitorEvent,
)
from rekam.monitor.gateway import Gateway, Verdict
from rekam.monitor.packets import HEADER_LENGTH, encode_packet
from rekam.monitor.pairing import DeviceKey
from support.sealed_stream import PER_PACKET, RATE, SealedStream, paired_key, schedule_samples

SHORT = RhythmThresholds(min_duration_s=3.0)


class ListSink:
    def __init__(self) -> None:
        self.events: list[MonitorEvent] = []
        self.lock = threading.Lock()

    def publish(self, event: MonitorEvent) -> None:
        with self.lock:
            self.events.append(event)

    def alerts(self) -> list[AlertEvent]:
        return [e for e in self.events if isinstance(e, AlertEvent)]


class FakeClock:
    """Wall clock for the flood limit, moved by the test (no sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_gateway(
    keys: list[DeviceKey], sink: ListSink, clock: FakeClock | None = None, **kwargs: object
) -> Gateway:
    table = {k.device_id: k for k in keys}
    return Gateway(
        table.get,
        sink,
        thresholds_for=lambda _device: SHORT,
        clock=clock or FakeClock(),
        **kwargs,  # type: ignore[arg-type]
    )


def send_in_real_time(gateway: Gateway, clock: FakeClock, stream: SealedStream) -> list[Verdict]:
    verdicts = []
    for packet in stream.packets():
        clock.now += PER_PACKET / RATE
        verdicts.append(gateway.receive(packet).verdict)
    return verdicts


def test_genuine_stream_gives_readings_live_samples_and_one_tachycardia_alert() -> None:
    key = paired_key()
    sink, clock = ListSink(), FakeClock()
    gateway = make_gateway([key], sink, clock)
    stream = SealedStream(key, schedule_samples([(10.0, 70.0), (12.0, 150.0)]))
    verdicts = send_in_real_time(gateway, clock, stream)

    assert set(verdicts) == {Verdict.ACCEPTED}
    assert gateway.counters["accepted"] == len(stream)
    live = [e for e in sink.events if isinstance(e, LiveSamples)]
    assert len(live) == len(stream)
    restored = np.concatenate([np.asarray(e.samples_uv, dtype=np.int16) for e in live])
    assert np.array_equal(restored, stream.samples)  # decrypted samples are the sent ones
    rates = [e.bpm for e in sink.events if isinstance(e, HeartRateReading) and e.bpm is not None]
    assert any(65 <= r <= 75 for r in rates) and any(140 <= r <= 160 for r in rates)
    raised = [a for a in sink.alerts() if a.phase is AlertPhase.RAISED]
    assert [a.kind for a in raised] == [AlertKind.TACHYCARDIA]
    # the episode began at 10 s of signal; it is confirmed after the minimum duration
    started_s = (raised[0].started_ms - stream.t0_ms) / 1000
    assert 9.0 <= started_s <= 11.5
    assert raised[0].strip is not None and raised[0].device_id == key.device_id


def test_malformed_unknown_forged_replayed_stale_are_refused_and_counted() -> None:
    key, stranger = paired_key(), paired_key()
    sink, clock = ListSink(), FakeClock()
    gateway = make_gateway([key], sink, clock)
    stream = SealedStream(key, schedule_samples([(4.0, 70.0)]))
    good = stream.packets()

    assert gateway.receive(b"").verdict is Verdict.MALFORMED
    assert gateway.receive(b"RKD1" + bytes(100)).verdict is Verdict.MALFORMED
    assert gateway.receive(good[0][:-1]).verdict is Verdict.MALFORMED  # truncated
    assert gateway.receive(b"XXXX" + good[0][4:]).verdict is Verdict.MALFORMED
    foreign = SealedStream(stranger, stream.samples).packet(0)
    assert gateway.receive(foreign).verdict is Verdict.UNKNOWN_DEVICE
    # sealed with another device's key but naming ours
    wrong_key = paired_key(key.device_id)
    forged = encode_packet(wrong_key, key.device_id, 1, stream.t0_ms, RATE, stream.samples[:25])
    assert gateway.receive(forged).verdict is Verdict.FORGED
    tampered = bytearray(good[0])
    tampered[HEADER_LENGTH + 3] ^= 0x01
    assert gateway.receive(bytes(tampered)).verdict is Verdict.FORGED
    assert sink.events == []  # nothing so far changed anything

    for packet in good:  # the forged packet 1 did not burn sequence 1
        clock.now += 0.1
        assert gateway.receive(packet).verdict is Verdict.ACCEPTED
    assert gateway.receive(good[5]).verdict is Verdict.REPLAYED
    assert gateway.receive(good[-1]).verdict is Verdict.REPLAYED
    long = SealedStream(key, np.zeros(40 * RATE, dtype=np.int16), t0_ms=stream.t0_ms)
    gateway_far = make_gateway([key], ListSink(), clock)
    for index in (0, 300):
        clock.now += 1.0
        assert gateway_far.receive(long.packet(index)).accepted
    assert gateway_far.receive(long.packet(1)).verdict is Verdict.STALE  # 299 behind

    counts = gateway.counters
    assert counts["malformed"] == 4
    assert counts["unknown_device"] == 1
    assert counts["forged"] == 2
    assert counts["replayed"] == 2
    assert counts["accepted"] == len(good)
    assert gateway.windows.counters(key.device_id).forged == 2


def test_unanalysable_rate_is_absurd() -> None:
    key = paired_key()
    sink = ListSink()
    gateway = make_gateway([key], sink)
    samples = np.zeros(25, dtype=np.int16)
    packet = encode_packet(key, key.device_id, 1, SealedStream(key, samples).t0_ms, 60, samples)
    outcome = gateway.receive(packet)
    assert outcome.verdict is Verdict.ABSURD and "60 Hz" in outcome.message
    assert sink.events == []


def test_saturated_and_flat_signal_never_raises_an_alert() -> None:
    key = paired_key()
    sink, clock = ListSink(), FakeClock()
    gateway = make_gateway([key], sink, clock)
    rng = np.random.default_rng(3)
    n = 30 * RATE
    rails = np.where(rng.random(n) < 0.5, -32768, 32767).astype(np.int16)  # ADC banging rails
    flat = np.full(n, 32767, dtype=np.int16)
    stream = SealedStream(key, np.concatenate([rails, flat]))
    verdicts = send_in_real_time(gateway, clock, stream)
    assert set(verdicts) == {Verdict.ACCEPTED}
    assert sink.alerts() == []
    rated = [e for e in sink.events if isinstance(e, HeartRateReading) and e.bpm is not None]
    assert rated == []  # "no reliable reading", never a false rate


def test_a_flooding_device_is_limited_and_raises_no_alert() -> None:
    key = paired_key()
    sink, clock = ListSink(), FakeClock()
    gateway = make_gateway([key], sink, clock, speed_limit=1.5, burst_seconds=4.0)
    stream = SealedStream(key, schedule_samples([(30.0, 150.0)]))
    verdicts = [gateway.receive(p).verdict for p in stream.packets()]  # 30 s of signal at once
    accepted = verdicts.count(Verdict.ACCEPTED)
    assert accepted == 4 * RATE // PER_PACKET  # exactly the burst
    assert gateway.counters["flooded"] == len(stream) - accepted
    assert sink.alerts() == []  # 4 s are too short to confirm anything
    clock.now += 2.0  # two seconds later: three seconds of signal allowed again
    again = SealedStream(key, stream.samples, t0_ms=stream.t0_ms)
    results = [gateway.receive(again.packet(i)).verdict for i in range(40, 80)]
    assert results.count(Verdict.ACCEPTED) == 3 * RATE // PER_PACKET


def test_random_corruption_never_raises_and_never_alerts() -> None:
    key = paired_key()
    sink, clock = ListSink(), FakeClock()
    gateway = make_gateway([key], sink, clock)
    stream = SealedStream(key, schedule_samples([(20.0, 150.0)]))
    rng = random.Random(11)
    packets = stream.packets()
    for packet in packets[:200]:
        data = bytearray(packet)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data))]
        if rng.random() < 0.1:
            data += bytes(rng.randrange(1, 40))
        clock.now += 0.1
        outcome = gateway.receive(bytes(data))
        assert outcome.verdict is not Verdict.ANALYSIS_FAILED
    # header fields announcing absurd counts and rates
    for count, rate in ((0, 250), (501, 250), (25, 0), (25, 65535)):
        header = struct.pack(">4s16sIQHH", b"RKD1", key.device_id.bytes, 9, 0, rate, count)
        assert gateway.receive(header + bytes(66)).verdict is Verdict.MALFORMED
    assert gateway.counters["accepted"] == 0
    assert sink.events == []


def test_a_failing_sink_or_analyzer_is_counted_and_the_gateway_goes_on() -> None:
    class BrokenSink:
        def publish(self, event: MonitorEvent) -> None:
            raise RuntimeError("database down")

    key = paired_key()
    clock = FakeClock()
    gateway = Gateway({key.device_id: key}.get, BrokenSink(), clock=clock)
    stream = SealedStream(key, schedule_samples([(2.0, 70.0)]))
    for packet in stream.packets():
        clock.now += 0.1
        assert gateway.receive(packet).accepted
    assert gateway.counters["sink_failed"] >= len(stream)

    class ExplodingAnalyzer(DeviceAnalyzer):
        def feed(self, packet: object) -> list[MonitorEvent]:
            raise ZeroDivisionError

        @staticmethod
        def feed_many(analyzers: object, packets: object) -> list[list[MonitorEvent]]:
            raise ZeroDivisionError

    sink = ListSink()
    broken = Gateway({key.device_id: key}.get, sink, analyzer_factory=ExplodingAnalyzer)
    assert broken.receive(stream.packet(0)).verdict is Verdict.ANALYSIS_FAILED
    assert sink.events == []


def test_devices_in_parallel_threads_keep_their_own_state() -> None:
    keys = [paired_key() for _ in range(4)]
    sink = ListSink()
    # the fake clock stands still here: the burst allows each whole stream
    gateway = make_gateway(keys, sink, live_samples=False, burst_seconds=100.0)
    streams = [
        SealedStream(k, schedule_samples([(6.0, 70.0), (10.0, 150.0)], seed=i))
        for i, k in enumerate(keys)
    ]

    def send(stream: SealedStream) -> None:
        for packet in stream.packets():
            assert gateway.receive(packet).accepted

    threads = [threading.Thread(target=send, args=(s,)) for s in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    raised: dict[UUID, int] = {}
    for alert in sink.alerts():
        if alert.phase is AlertPhase.RAISED:
            raised[alert.device_id] = raised.get(alert.device_id, 0) + 1
    assert raised == {k.device_id: 1 for k in keys}
    assert gateway.counters["accepted"] == sum(len(s) for s in streams)


@pytest.mark.parametrize("speed, burst", [(0.0, 1.0), (1.0, 0.0)])
def test_flood_limit_must_be_positive(speed: float, burst: float) -> None:
    with pytest.raises(ValueError):
        Gateway(lambda _d: None, ListSink(), speed_limit=speed, burst_seconds=burst)


def test_unknown_device_id_is_reported_in_the_outcome() -> None:
    stranger = paired_key()
    outcome = make_gateway([], ListSink()).receive(
        SealedStream(stranger, np.zeros(25, dtype=np.int16)).packet(0)
    )
    assert outcome.device_id == stranger.device_id and not outcome.accepted
    assert uuid4() != outcome.device_id


def _event_view(event: MonitorEvent) -> object:
    data = event.to_json()
    data.pop("episode_id", None)  # a random id per episode
    return data


def test_packets_received_together_get_the_outcomes_and_events_of_one_by_one() -> None:
    """receive_many (what the transports call) must change nothing but the speed: the same
    verdict for every packet — genuine, forged, replayed, malformed, from unknown devices — and
    the same events, as when the packets come one at a time."""
    keys = [paired_key() for _ in range(5)]
    stranger = paired_key()
    streams = [
        SealedStream(keys[n], schedule_samples([(20.0, 70.0), (25.0, 150.0)], seed=n))
        for n in range(len(keys))
    ]
    rng = random.Random(4)
    traffic: list[bytes] = []
    for index in range(max(len(s) for s in streams)):
        for stream in rng.sample(streams, len(streams)):
            if index >= len(stream):
                continue
            packet = stream.packet(index)
            traffic.append(packet)
            roll = rng.random()
            if roll < 0.02:
                traffic.append(packet)  # replayed
            elif roll < 0.04:
                forged = bytearray(packet)
                forged[-1] ^= 0x01
                traffic.append(bytes(forged))
            elif roll < 0.05:
                traffic.append(packet[: HEADER_LENGTH - 3])  # truncated
            elif roll < 0.06:
                traffic.append(SealedStream(stranger, stream.samples).packet(index))
    one_sink, many_sink = ListSink(), ListSink()
    one_clock, many_clock = FakeClock(), FakeClock()
    one = make_gateway(keys, one_sink, one_clock)
    many = make_gateway(keys, many_sink, many_clock)
    singly, together = [], []
    position = 0
    while position < len(traffic):
        size = rng.choice([1, 3, 8, 20, 40])
        batch = traffic[position : position + size]
        position += len(batch)
        for packet in batch:
            one_clock.now += PER_PACKET / RATE / len(streams)
            singly.append(one.receive(packet).verdict)
        many_clock.now += PER_PACKET / RATE / len(streams) * len(batch)
        together.extend(outcome.verdict for outcome in many.receive_many(batch))
    assert together == singly
    verdicts = set(singly)
    assert {Verdict.ACCEPTED, Verdict.REPLAYED, Verdict.FORGED, Verdict.MALFORMED} <= verdicts
    assert Verdict.UNKNOWN_DEVICE in verdicts
    assert many.counters == one.counters
    assert [_event_view(e) for e in many_sink.events] != []
    for key in keys:
        mine = [_event_view(e) for e in one_sink.events if e.device_id == key.device_id]
        theirs = [_event_view(e) for e in many_sink.events if e.device_id == key.device_id]
        assert theirs == mine
    assert len(one_sink.alerts()) >= len(keys)  # every device's tachycardia was raised


def test_one_device_whose_analysis_fails_does_not_cost_the_others_theirs() -> None:
    keys = [paired_key() for _ in range(3)]
    doomed = keys[1].device_id

    class FragileAnalyzer(DeviceAnalyzer):
        def feed(self, packet: object) -> list[MonitorEvent]:
            if self.device_id == doomed:
                raise ZeroDivisionError
            return super().feed(packet)  # type: ignore[arg-type]

        @staticmethod
        def feed_many(analyzers: object, packets: object) -> list[list[MonitorEvent]]:
            if any(a.device_id == doomed for a in analyzers):  # type: ignore[attr-defined]
                raise ZeroDivisionError
            return DeviceAnalyzer.feed_many(analyzers, packets)  # type: ignore[arg-type]

    sink = ListSink()
    clock = FakeClock()
    gateway = make_gateway(keys, sink, clock, analyzer_factory=FragileAnalyzer)
    streams = [
        SealedStream(k, schedule_samples([(10.0, 70.0)], seed=n)) for n, k in enumerate(keys)
    ]
    for index in range(len(streams[0])):
        clock.now += PER_PACKET / RATE
        outcomes = gateway.receive_many([s.packet(index) for s in streams])
        assert [o.verdict for o in outcomes] == [
            Verdict.ACCEPTED,
            Verdict.ANALYSIS_FAILED,
            Verdict.ACCEPTED,
        ]
    devices = {e.device_id for e in sink.events if isinstance(e, HeartRateReading)}
    assert devices == {keys[0].device_id, keys[2].device_id}


def test_raw_samples_are_published_only_for_the_devices_someone_watches() -> None:
    keys = [paired_key() for _ in range(2)]
    watched = {keys[0].device_id}
    sink = ListSink()
    clock = FakeClock()
    gateway = make_gateway(keys, sink, clock, samples_wanted=watched.__contains__)
    streams = [SealedStream(k, schedule_samples([(6.0, 70.0)], seed=n)) for n, k in enumerate(keys)]
    for index in range(len(streams[0])):
        clock.now += PER_PACKET / RATE
        gateway.receive_many([s.packet(index) for s in streams])
    strips = {e.device_id for e in sink.events if isinstance(e, LiveSamples)}
    readings = {e.device_id for e in sink.events if isinstance(e, HeartRateReading)}
    assert strips == watched
    assert readings == {k.device_id for k in keys}  # the analysis itself covers every device
    total = sum(len(e.samples_uv) for e in sink.events if isinstance(e, LiveSamples))
    assert total == streams[0].samples.size


def test_devices_seen_for_the_first_time_are_named_to_prefetch_once() -> None:
    keys = [paired_key() for _ in range(3)]
    a, b, c = (k.device_id for k in keys)
    asked: list[list[UUID]] = []
    gateway = make_gateway(keys, ListSink(), prefetch=asked.append)
    streams = [SealedStream(k, schedule_samples([(2.0, 70.0)])) for k in keys]
    sa, sb, sc = (s.packets() for s in streams)
    outcomes = gateway.receive_many([sa[0], sb[0], sa[1], b"RKD1 too short", sb[1]])
    assert asked == [[a, b]]  # in one call, each device once
    assert [o.verdict for o in outcomes] == [Verdict.ACCEPTED] * 3 + [
        Verdict.MALFORMED,
        Verdict.ACCEPTED,
    ]
    gateway.receive_many([sa[2], sb[2], sc[0]])
    assert asked[1:] == [[c]]  # only the device not analysed yet
    gateway.receive_many([sa[3], sb[3], sc[1]])
    assert len(asked) == 2  # all of them analysed here: nothing to fetch ahead
    gateway.forget(a)  # unpaired or paired again: its analysis starts afresh
    gateway.receive_many([sa[4], sb[4]])
    assert asked[2:] == [[a]]


def test_a_failing_prefetch_loses_no_packet() -> None:
    key = paired_key()

    def failing(_devices: object) -> None:
        raise ConnectionError("database unreachable")

    gateway = make_gateway([key], ListSink(), prefetch=failing)
    packets = SealedStream(key, schedule_samples([(1.0, 70.0)])).packets()
    outcomes = gateway.receive_many(packets[:5])
    assert [o.verdict for o in outcomes] == [Verdict.ACCEPTED] * 5


def _shared_buffers(analyzer: DeviceAnalyzer) -> list[str]:
    """Which of an analysis's signal buffers are views into a larger array."""
    stretch = analyzer._stretch
    assert stretch is not None
    detector, quality = stretch.detector, stretch.quality
    buffers = {
        "envelope": detector._env,
        "slope": detector._slope,
        "level": detector._level,
        "squared tail": detector._front._squared_tail,
        "quality window": quality._raw,
    }
    return [name for name, array in buffers.items() if array.base is not None]


def test_quiet_devices_get_buffers_of_their_own() -> None:
    """Devices analysed together keep rows of shared arrays. A device that stops sending while the
    others go on would keep its last call's arrays alive; the gateway's sweep gives it buffers of
    its own, and leaves those of the devices still sending as they are."""
    keys = [paired_key() for _ in range(3)]
    sink = ListSink()
    clock = FakeClock()
    gateway = make_gateway(keys, sink, clock)
    streams = [
        SealedStream(k, schedule_samples([(40.0, 70.0)], seed=n)) for n, k in enumerate(keys)
    ]
    stops = 100  # the third device's last packet: 10 s in
    for index in range(len(streams[0])):
        clock.now += PER_PACKET / RATE
        sending = streams if index < stops else streams[:2]
        gateway.receive_many([s.packet(index) for s in sending])
        if index == stops - 1:
            quiet = gateway._devices[keys[2].device_id].analyzer
            assert _shared_buffers(quiet), "analysed together, the buffers are rows"
    assert _shared_buffers(quiet) == []
    for key in keys[:2]:
        assert _shared_buffers(gateway._devices[key.device_id].analyzer)
