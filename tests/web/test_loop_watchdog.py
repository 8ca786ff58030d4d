"""The event-loop watchdog on a real asyncio loop: a callback that blocks the loop is reported
with its own function on the stack, and again when the loop turns; an idle loop is not."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator

import pytest

from rekam.web.loop_watchdog import LoopWatchdog

STALL_S = 0.4


@pytest.fixture
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def watching(loop: asyncio.AbstractEventLoop) -> LoopWatchdog:
    watchdog = LoopWatchdog(loop, stall_after_s=STALL_S)
    started = threading.Event()

    def start() -> None:
        watchdog.start()
        started.set()

    loop.call_soon_threadsafe(start)
    assert started.wait(5)
    return watchdog


def hold_the_loop_for_a_while() -> None:
    time.sleep(STALL_S * 4)


def test_a_blocked_loop_is_reported_with_what_blocked_it(
    running_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rekam.server.loop")
    watchdog = watching(running_loop)
    try:
        running_loop.call_soon_threadsafe(hold_the_loop_for_a_while)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(caplog.records) < 2:
            time.sleep(0.05)
    finally:
        watchdog.stop()
    blocked, resumed = caplog.records[:2]
    assert blocked.getMessage() == "server event loop blocked"
    assert blocked.blocked_s >= STALL_S  # type: ignore[attr-defined]
    assert any("hold_the_loop_for_a_while" in line for line in blocked.stack)  # type: ignore[attr-defined]
    assert resumed.getMessage() == "server event loop turns again"
    assert STALL_S * 3 <= resumed.stalled_s <= STALL_S * 4 + 2  # type: ignore[attr-defined]
    assert watchdog.stalls == 1  # one stall, one report, however long it lasted


def test_an_idle_or_busy_but_turning_loop_is_not_reported(
    running_loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rekam.server.loop")
    watchdog = watching(running_loop)

    async def many_short_steps() -> None:
        until = time.monotonic() + STALL_S * 5
        while time.monotonic() < until:
            time.sleep(STALL_S / 10)  # each step blocks briefly, then lets the loop turn
            await asyncio.sleep(0)

    try:
        asyncio.run_coroutine_threadsafe(many_short_steps(), running_loop).result(30)
        time.sleep(STALL_S * 2)  # and idle
    finally:
        watchdog.stop()
    assert watchdog.stalls == 0
    assert caplog.records == []


def test_a_stall_must_be_positive(running_loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(ValueError, match="positive"):
        LoopWatchdog(running_loop, stall_after_s=0)
