"""Replay protection across restarts (rekam.monitor.replay_floors): a gateway starts a device's
window where the last one left it, saves the highest accepted sequence numbers as it goes and
when asked, and a floor saved under one pairing never applies to the next."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from uuid import UUID

from rekam.ecg.rhythm import RhythmThresholds
from rekam.monitor.events import MonitorEvent
from rekam.monitor.gateway import FLOORS_EVERY_S, Gateway, Verdict
from rekam.monitor.pairing import DeviceKey
from rekam.monitor.replay_floors import ReplayFloor
from support.sealed_stream import PER_PACKET, RATE, SealedStream, paired_key, schedule_samples

SHORT = RhythmThresholds(min_duration_s=3.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ListSink:
    def __init__(self) -> None:
        self.events: list[MonitorEvent] = []

    def publish(self, event: MonitorEvent) -> None:
        self.events.append(event)


class TableFloors:
    """Floors in a dict, as a database would keep them: raised only under the same pairing."""

    def __init__(self, pairings: dict[UUID, Hashable]) -> None:
        self.pairings = pairings
        self.highest: dict[UUID, int] = {}
        self.saves: list[list[tuple[UUID, ReplayFloor]]] = []
        self.fail = False

    def floor(self, device_id: UUID) -> ReplayFloor | None:
        if device_id not in self.pairings:
            return None
        return ReplayFloor(self.pairings[device_id], self.highest.get(device_id))

    def save(self, floors: Sequence[tuple[UUID, ReplayFloor]]) -> None:
        if self.fail:
            raise OSError("the store is down")
        self.saves.append(list(floors))
        for device_id, floor in floors:
            if floor.pairing == self.pairings.get(device_id) and floor.highest is not None:
                self.highest[device_id] = max(self.highest.get(device_id, -1), floor.highest)


def gateway_with(keys: list[DeviceKey], floors: TableFloors, clock: FakeClock) -> Gateway:
    table = {k.device_id: k for k in keys}
    return Gateway(
        table.get, ListSink(), thresholds_for=lambda _d: SHORT, replay_floors=floors, clock=clock
    )


def stream_of(key: DeviceKey, seconds: float = 12.0) -> SealedStream:
    return SealedStream(key, schedule_samples([(seconds, 70.0)]))


def test_a_restarted_gateway_refuses_what_the_one_before_accepted() -> None:
    key = paired_key()
    floors, clock = TableFloors({key.device_id: "pairing-1"}), FakeClock()
    stream = stream_of(key)
    packets = stream.packets()
    first = gateway_with([key], floors, clock)
    for packet in packets[:100]:
        clock.now += PER_PACKET / RATE
        assert first.receive(packet).accepted
    first.save_floors()  # as at shutdown
    assert floors.highest == {key.device_id: 100}  # sequence numbers count from 1

    second = gateway_with([key], floors, clock)  # the restarted process
    clock.now += 1.0
    assert second.receive(packets[99]).verdict is Verdict.REPLAYED  # the newest seen
    assert second.receive(packets[0]).verdict is Verdict.STALE  # too far behind to tell
    assert second.receive(packets[90]).verdict is Verdict.REPLAYED
    assert second.receive(packets[100]).accepted  # the stream goes on
    assert second.receive(packets[100]).verdict is Verdict.REPLAYED
    counts = second.counters
    assert (counts["accepted"], counts["replayed"], counts["stale"]) == (1, 3, 1)


def test_without_floors_a_restarted_gateway_would_accept_the_replay() -> None:
    # the check above can fail: without saved floors, the same replay gets through
    key = paired_key()
    packets = stream_of(key).packets()
    clock = FakeClock()
    first = gateway_with([key], TableFloors({key.device_id: "p"}), clock)
    for packet in packets[:10]:
        clock.now += 0.1
        first.receive(packet)
    restarted = gateway_with([key], TableFloors({key.device_id: "p"}), clock)
    assert restarted.receive(packets[9]).accepted


def test_floors_are_saved_every_few_seconds_while_packets_arrive() -> None:
    key, other = paired_key(), paired_key()
    floors = TableFloors({key.device_id: 1, other.device_id: 1})
    clock = FakeClock()
    gateway = gateway_with([key, other], floors, clock)
    ours, theirs = stream_of(key).packets(), stream_of(other).packets()
    started, index = clock.now, 0
    while not floors.saves:
        clock.now += PER_PACKET / RATE
        gateway.receive_many([ours[index], theirs[index]] if index < 20 else [ours[index]])
        index += 1
    # the first save comes once FLOORS_EVERY_S have passed, with that batch's packets in it
    assert abs(clock.now - started - FLOORS_EVERY_S) < 0.15
    assert floors.highest == {key.device_id: index, other.device_id: 20}
    for _ in range(10):
        clock.now += PER_PACKET / RATE
        gateway.receive(ours[index])
        index += 1
    assert len(floors.saves) == 1  # not one save per packet
    gateway.save_floors()
    assert floors.saves[-1] == [(key.device_id, ReplayFloor(1, index))]  # only what moved
    gateway.save_floors()
    assert len(floors.saves) == 2  # nothing moved: nothing to save


def test_a_floor_from_before_a_new_pairing_never_applies() -> None:
    key = paired_key()
    floors, clock = TableFloors({key.device_id: "old"}), FakeClock()
    gateway = gateway_with([key], floors, clock)
    packets = stream_of(key).packets()
    for packet in packets[:30]:
        clock.now += 0.1
        gateway.receive(packet)
    # paired again (a new key; its numbers start from 1 again); the old window's floor is then
    # saved late, under the old pairing
    new_key = paired_key(key.device_id)
    floors.pairings[key.device_id] = "new"
    floors.highest.pop(key.device_id, None)
    gateway.save_floors()
    assert key.device_id not in floors.highest
    gateway.forget(key.device_id)
    restarted = gateway_with([new_key], floors, clock)
    assert restarted.receive(stream_of(new_key).packet(0)).accepted


def test_a_forgotten_device_saves_nothing_and_a_failing_store_costs_no_packet() -> None:
    key = paired_key()
    floors, clock = TableFloors({key.device_id: 1}), FakeClock()
    gateway = gateway_with([key], floors, clock)
    packets = stream_of(key).packets()
    for packet in packets[:5]:
        clock.now += 0.1
        gateway.receive(packet)
    gateway.forget(key.device_id)
    gateway.save_floors()
    assert floors.saves == []
    floors.fail = True
    for packet in packets[5:80]:
        clock.now += 0.1
        assert gateway.receive(packet).accepted
    gateway.save_floors()  # logged, not raised


def test_an_unknown_or_failing_floor_source_starts_the_window_empty() -> None:
    key = paired_key()
    clock = FakeClock()

    class Broken(TableFloors):
        def floor(self, device_id: UUID) -> ReplayFloor | None:
            raise OSError("database unavailable")

    for floors in (TableFloors({}), Broken({key.device_id: 1})):
        gateway = gateway_with([key], floors, clock)
        assert gateway.receive(stream_of(key).packet(0)).accepted
