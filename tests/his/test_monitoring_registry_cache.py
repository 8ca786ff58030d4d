"""The device registry's cache: fresh entries from memory, expired ones answered at once and
reloaded in the background, lifetimes spread so reloads do not come in bursts, and nothing
forgotten comes back from a reload that began before the forgetting."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from rekam.his.monitoring_registry_cache import JITTER, RETRY_S, RegisteredDevice, RegistryCache
from rekam.monitor.pairing import DeviceKey, DevicePairing, GatewayPairing

TTL = 30.0


def device_key(device_id: UUID) -> DeviceKey:
    gateway = GatewayPairing.new()
    device = DevicePairing(device_id, X25519PrivateKey.generate())
    return gateway.derive(device.public_bytes(), device_id)


class Registry:
    """A stand-in for the database: what each device is registered as, which thread asked, and
    a gate that can hold a load until the test opens it."""

    def __init__(self) -> None:
        self.devices: dict[UUID, RegisteredDevice | None] = {}
        self.asked_from: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.failing = False
        self.known_reads = 0
        self.batches: list[list[UUID]] = []

    def paired_ids(self) -> frozenset[UUID]:
        self.known_reads += 1
        return frozenset(d for d, found in self.devices.items() if found is not None)

    def register(self, device_id: UUID, patient_id: str) -> RegisteredDevice:
        found = RegisteredDevice(
            device_key(device_id), patient_id, None, datetime(2026, 12, 1, tzinfo=UTC)
        )
        self.devices[device_id] = found
        return found

    def load(self, device_id: UUID) -> RegisteredDevice | None:
        self.asked_from.append(threading.get_ident())
        found = self.devices.get(device_id)  # read first; the answer may be late in coming
        self.entered.set()
        assert self.gate.wait(10)
        if self.failing:
            raise ConnectionError("database unreachable")
        return found

    def load_many(self, device_ids: Sequence[UUID]) -> dict[UUID, RegisteredDevice | None]:
        self.batches.append(list(device_ids))
        found = {d: self.devices.get(d) for d in device_ids}
        self.entered.set()
        assert self.gate.wait(10)
        if self.failing:
            raise ConnectionError("database unreachable")
        return found


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_cache(registry: Registry, clock: Clock) -> Iterator[Callable[..., RegistryCache]]:
    caches: list[RegistryCache] = []

    def make(
        jitter: Callable[[], float] = lambda: 0.0, with_known: bool = False, gather: float = 0.02
    ) -> RegistryCache:
        cache = RegistryCache(
            registry.load,
            ttl_seconds=TTL,
            clock=clock,
            jitter=jitter,
            load_known=registry.paired_ids if with_known else None,
            load_many=registry.load_many,
            gather_seconds=gather,
        )
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_an_expired_entry_is_answered_at_once_and_reloaded_in_the_background(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    cache = make_cache()
    device_id = uuid4()
    first = registry.register(device_id, "p1")
    assert cache.get(device_id) is first
    assert cache.get(device_id) is first
    assert registry.asked_from == [threading.get_ident()]  # once, by the first lookup itself

    second = registry.register(device_id, "p2")  # changed in the database meanwhile
    clock.now += TTL + 1
    registry.gate.clear()  # the database is slow: the reload will wait
    registry.entered.clear()
    began = time.monotonic()
    assert cache.get(device_id) is first  # answered from memory, not waiting for the reload
    assert time.monotonic() - began < 1.0
    assert registry.entered.wait(5)  # ... which runs meanwhile, in another thread
    assert registry.asked_from[-1] != threading.get_ident()
    assert cache.get(device_id) is first  # one reload at a time per device
    registry.gate.set()
    assert wait_until(lambda: cache.get(device_id) is second)
    assert len(registry.asked_from) == 2


def test_lifetimes_are_spread_so_reloads_do_not_come_together(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    draws = itertools.cycle([n / 100 for n in range(100)])
    cache = make_cache(jitter=lambda: next(draws))
    devices = [uuid4() for _ in range(100)]
    for device_id in devices:
        registry.register(device_id, "p")
        cache.get(device_id)  # loaded together, as when many devices connect at once
    registry.gate.clear()  # hold the reloads: count which entries ask for one
    for fraction, expected in ((1 - JITTER - 0.01, 0), (1 - JITTER / 2, 50), (1.0, 100)):
        clock.now = 1000.0 + TTL * fraction
        for device_id in devices:
            cache.get(device_id)
        due = len(cache._due) + len(cache._reloading)  # waiting, or held at the gate
        assert abs(due - expected) <= 1, (fraction, due)
    registry.gate.set()


def test_a_device_forgotten_during_its_reload_is_not_brought_back(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    cache = make_cache()
    device_id = uuid4()
    paired = registry.register(device_id, "p1")
    assert cache.get(device_id) is paired
    clock.now += TTL + 1
    registry.gate.clear()
    registry.entered.clear()
    assert cache.get(device_id) is paired  # the background reload starts, reads "paired" ...
    assert registry.entered.wait(5)
    registry.devices[device_id] = None  # ... while the device is unpaired here
    cache.forget(device_id)
    registry.gate.set()  # the reload ends with what it read before the unpairing
    time.sleep(0.2)
    assert cache.get(device_id) is None  # the cache asked again rather than keep the old answer


def test_a_failing_reload_keeps_the_entry_a_while_and_retries_without_hammering(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    cache = make_cache()
    device_id = uuid4()
    paired = registry.register(device_id, "p1")
    cache.get(device_id)
    registry.failing = True
    clock.now += TTL + 1
    assert cache.get(device_id) is paired
    assert wait_until(lambda: len(registry.asked_from) == 2)
    time.sleep(0.1)
    for _ in range(1000):  # every packet of the next second: no new attempt before RETRY_S
        assert cache.get(device_id) is paired
    time.sleep(0.1)
    assert len(registry.asked_from) == 2
    clock.now += RETRY_S
    assert cache.get(device_id) is paired
    assert wait_until(lambda: len(registry.asked_from) == 3)
    # still failing a whole ttl after expiry: the lookup itself goes to the database, and fails
    clock.now += TTL
    with pytest.raises(ConnectionError):
        cache.get(device_id)


def test_an_unknown_device_is_asked_for_again_after_its_short_lifetime(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    cache = make_cache()
    stranger = uuid4()
    for _ in range(1000):
        assert cache.get(stranger) is None
    assert len(registry.asked_from) == 1
    paired = registry.register(stranger, "p1")  # paired by another server process
    clock.now += 2.5
    cache.get(stranger)
    assert wait_until(lambda: cache.get(stranger) is paired)


def test_after_close_expired_entries_are_loaded_by_the_lookup(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    cache = make_cache()
    device_id = uuid4()
    registry.register(device_id, "p1")
    cache.get(device_id)
    cache.close()
    second = registry.register(device_id, "p2")
    clock.now += TTL + 1
    assert cache.get(device_id) is second
    assert registry.asked_from[-1] == threading.get_ident()


def test_made_up_device_ids_cost_no_query_each(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    cache = make_cache(with_known=True)
    device_id = uuid4()
    paired = registry.register(device_id, "p1")
    for _ in range(5000):  # anyone may open the device socket and send any device id
        assert cache.get(uuid4()) is None
    assert registry.asked_from == []  # not one lookup of a made-up id
    assert registry.known_reads == 1  # the set of paired ids, read once
    assert cache.get(device_id) is paired
    assert len(registry.asked_from) == 1
    assert len(cache._entries) == 1  # the made-up ids took no room from real devices


def test_a_device_paired_elsewhere_is_known_once_the_set_is_read_again(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    cache = make_cache(with_known=True)
    assert cache.get(uuid4()) is None  # the set is read
    device_id = uuid4()
    paired = registry.register(device_id, "p1")  # by another server process
    assert cache.get(device_id) is None  # the set read a moment ago does not hold it yet
    clock.now += 2.0  # unknown_ttl_seconds
    assert cache.get(device_id) is paired
    assert registry.known_reads == 2


def test_a_device_paired_here_is_known_at_once(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    cache = make_cache(with_known=True)
    assert cache.get(uuid4()) is None  # the set is read
    device_id = uuid4()
    paired = registry.register(device_id, "p1")
    cache.forget(device_id)  # what pairing in this process does
    assert cache.get(device_id) is paired
    registry.devices[device_id] = None  # unpaired here
    cache.forget(device_id)
    assert cache.get(device_id) is None


def test_devices_seen_together_for_the_first_time_are_loaded_in_one_go(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    cache = make_cache(with_known=True)
    paired = [uuid4() for _ in range(50)]
    found = {d: registry.register(d, f"p{n}") for n, d in enumerate(paired)}
    held = paired[0]
    assert cache.get(held) is found[held]  # already in the cache: left alone
    loads = cache.loads
    made_up = [uuid4() for _ in range(5)]
    cache.prefetch([*paired, *made_up, *paired[:10]])  # a batch: some devices send twice
    assert registry.batches == [paired[1:]]  # one load, of the paired ones not held, once each
    assert cache.loads == loads + 1
    for device_id in paired:
        assert cache.get(device_id) is found[device_id]
    assert len(registry.asked_from) == 1  # no device was then loaded on its own
    cache.prefetch(paired)  # all held now: nothing to load
    assert len(registry.batches) == 1


def test_a_failing_prefetch_leaves_each_device_to_its_lookup(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    cache = make_cache()
    device_id = uuid4()
    paired = registry.register(device_id, "p1")
    registry.failing = True
    cache.prefetch([device_id])  # does not raise
    assert len(registry.batches) == 1
    registry.failing = False
    assert cache.get(device_id) is paired
    assert len(registry.asked_from) == 1  # the lookup loaded it


def test_a_device_forgotten_during_a_prefetch_is_not_brought_back(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    cache = make_cache()
    device_id = uuid4()
    registry.register(device_id, "p1")
    registry.gate.clear()
    prefetching = threading.Thread(target=cache.prefetch, args=([device_id],))
    prefetching.start()
    assert registry.entered.wait(5)  # the registry has answered, the answer is on its way
    registry.devices[device_id] = None  # unpaired meanwhile, here
    cache.forget(device_id)
    registry.gate.set()
    prefetching.join(5)
    assert cache.get(device_id) is None  # not the key the prefetch read before the unpairing
    assert len(registry.asked_from) == 1


def test_entries_expiring_together_are_reloaded_in_one_go(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    cache = make_cache(gather=0.3)
    devices = [uuid4() for _ in range(20)]
    found = {d: registry.register(d, f"p{n}") for n, d in enumerate(devices)}
    cache.prefetch(devices)
    clock.now += TTL  # they connected together: they expire together
    for device_id in devices:
        assert cache.get(device_id) is found[device_id]  # answered at once, as they were
    assert wait_until(lambda: len(registry.batches) == 2)
    assert sorted(registry.batches[1]) == sorted(devices)  # one load for all of them
    assert registry.asked_from == []  # none on its own
    assert wait_until(lambda: not cache._reloading)
    loads = cache.loads
    for device_id in devices:
        assert cache.get(device_id) is found[device_id]
    assert cache.loads == loads  # fresh again


def test_expiring_every_entry_answers_them_at_once_and_reloads_them_together(
    registry: Registry, clock: Clock, make_cache: Callable[..., RegistryCache]
) -> None:
    cache = make_cache(gather=0.3)
    devices = [uuid4() for _ in range(20)]
    before = {d: registry.register(d, f"p{n}") for n, d in enumerate(devices)}
    cache.prefetch(devices)
    after = {d: registry.register(d, f"p{n}") for n, d in enumerate(devices)}  # limits changed
    cache.expire_all()
    for device_id in devices:
        assert cache.get(device_id) is before[device_id]  # at once, as it was
    assert registry.asked_from == []  # no lookup waited for the database
    assert wait_until(lambda: len(registry.batches) == 2)
    assert sorted(registry.batches[1]) == sorted(devices)
    assert wait_until(lambda: all(cache.get(d) is after[d] for d in devices))
