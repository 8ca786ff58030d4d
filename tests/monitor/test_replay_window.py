from uuid import UUID, uuid4

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rekam.monitor import (
    DeviceKey,
    PacketAuthenticationFailed,
    ReplayedPacket,
    ReplayWindows,
    StalePacket,
    WindowCounters,
    encode_packet,
)

DEVICE_ID = UUID("5b0e4a8c-3f7d-4a36-9a51-0c6f1f2d9e11")
KEY = DeviceKey.from_storage(DEVICE_ID, bytes(range(32)))
LOOKUP = {DEVICE_ID: KEY}.get
NOW_MS = 1_767_225_600_000


def packet(sequence: int, key: DeviceKey = KEY) -> bytes:
    return encode_packet(key, DEVICE_ID, sequence, NOW_MS, 250, np.arange(4, dtype=np.int16))


def receive(windows: ReplayWindows, sequence: int) -> int:
    return windows.receive(packet(sequence), LOOKUP, now_ms=NOW_MS).sequence


def test_new_packets_are_accepted_and_a_replay_is_rejected() -> None:
    windows = ReplayWindows()
    assert [receive(windows, s) for s in (1, 2, 3)] == [1, 2, 3]
    with pytest.raises(ReplayedPacket, match="already received"):
        receive(windows, 2)
    with pytest.raises(ReplayedPacket):
        receive(windows, 3)
    assert windows.counters(DEVICE_ID) == WindowCounters(accepted=3, replayed=2)


def test_reordered_packets_within_the_window_are_accepted_once() -> None:
    windows = ReplayWindows(size=64)
    receive(windows, 100)
    assert receive(windows, 98) == 98
    assert receive(windows, 99) == 99
    assert receive(windows, 37) == 37  # exactly 63 behind: the oldest place in the window
    for sequence in (98, 99, 37, 100):
        with pytest.raises(ReplayedPacket):
            receive(windows, sequence)
    assert windows.newest_sequence(DEVICE_ID) == 100


def test_packets_older_than_the_window_are_stale() -> None:
    windows = ReplayWindows(size=64)
    receive(windows, 100)
    with pytest.raises(StalePacket, match="64 behind"):
        receive(windows, 36)
    with pytest.raises(StalePacket):
        receive(windows, 0)
    assert windows.counters(DEVICE_ID) == WindowCounters(accepted=1, stale=2)


def test_a_big_jump_forward_clears_the_window() -> None:
    windows = ReplayWindows(size=8)
    for sequence in range(5):
        receive(windows, sequence)
    receive(windows, 1000)
    with pytest.raises(StalePacket):
        receive(windows, 4)
    assert receive(windows, 999) == 999


def test_a_forged_packet_does_not_advance_the_window() -> None:
    windows = ReplayWindows(size=64)
    receive(windows, 10)
    forger = DeviceKey.from_storage(DEVICE_ID, b"\x42" * 32)
    with pytest.raises(PacketAuthenticationFailed):
        windows.receive(packet(1_000_000, forger), LOOKUP, now_ms=NOW_MS)
    assert windows.newest_sequence(DEVICE_ID) == 10
    assert receive(windows, 11) == 11  # would be stale had the forgery moved the window
    assert receive(windows, 9) == 9
    # A forgery re-using a sequence that is still free does not burn it either.
    with pytest.raises(PacketAuthenticationFailed):
        windows.receive(packet(12, forger), LOOKUP, now_ms=NOW_MS)
    assert receive(windows, 12) == 12
    assert windows.counters(DEVICE_ID) == WindowCounters(accepted=4, forged=2)


def test_counters_are_per_device() -> None:
    windows = ReplayWindows()
    other = uuid4()
    windows.admit(other, 5)
    with pytest.raises(ReplayedPacket):
        windows.admit(other, 5)
    receive(windows, 5)  # same number, other device: fine
    assert windows.counters(other) == WindowCounters(accepted=1, replayed=1)
    assert windows.counters(DEVICE_ID) == WindowCounters(accepted=1)
    assert windows.counters(uuid4()) == WindowCounters()


def test_forget_starts_a_fresh_window() -> None:
    windows = ReplayWindows()
    receive(windows, 5)
    windows.forget(DEVICE_ID)
    assert windows.newest_sequence(DEVICE_ID) is None
    assert receive(windows, 5) == 5


def test_a_window_started_at_a_floor_counts_everything_up_to_it_as_seen() -> None:
    windows = ReplayWindows(size=8)
    windows.start_at(DEVICE_ID, 100)
    for sequence in (100, 93):
        with pytest.raises(ReplayedPacket):
            receive(windows, sequence)
    with pytest.raises(StalePacket):
        receive(windows, 92)
    assert receive(windows, 101) == 101
    windows.start_at(DEVICE_ID, 500)  # a window already in use is left as it is
    assert receive(windows, 102) == 102
    assert windows.counters(DEVICE_ID) == WindowCounters(accepted=2, replayed=2, stale=1)


def test_window_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ReplayWindows(size=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=200), st.integers(1, 80))
def test_window_agrees_with_a_simple_model(sequences: list[int], size: int) -> None:
    """Each number accepted at most once; exactly the reference model's verdicts."""
    windows = ReplayWindows(size=size)
    seen: set[int] = set()
    highest: int | None = None
    device = uuid4()
    for sequence in sequences:
        if highest is not None and sequence <= highest - size:
            expected: type[Exception] | None = StalePacket
        elif sequence in seen:
            expected = ReplayedPacket
        else:
            expected = None
        if expected is None:
            windows.admit(device, sequence)
            seen.add(sequence)
            highest = sequence if highest is None else max(highest, sequence)
        else:
            with pytest.raises(expected):
                windows.admit(device, sequence)
    counters = windows.counters(device)
    assert counters.accepted == len(seen)
    assert counters.accepted + counters.replayed + counters.stale == len(sequences)
