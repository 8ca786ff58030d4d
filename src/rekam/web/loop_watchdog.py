"""Notice when the server's event loop stops turning, and say where it was.

Every connection of the server (device WebSockets, event streams, pages) is served by one event
loop. Anything that blocks it — a synchronous call that waits on a lock, a pipe or a database —
holds up every device and every dashboard at once, and from outside it only looks like a slow
server. :class:`LoopWatchdog` keeps a heartbeat on the loop and, from a thread of its own, logs
a warning when the heartbeat is late by ``stall_after_s``, with the stack the loop's thread was
running at that moment (file, line and function names only: no values), and a second line when
the loop turns again, with how long it stood still.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

__all__ = ["STALL_AFTER_S", "LoopWatchdog"]

log = logging.getLogger("rekam.server.loop")

STALL_AFTER_S = 1.0
"""A heartbeat this late means the loop was blocked (it beats every quarter of this)."""
STACK_FRAMES = 12
"""Innermost frames of the blocked thread's stack to log."""


class LoopWatchdog:
    """A heartbeat on ``loop`` and a thread that watches it (see the module)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stall_after_s: float = STALL_AFTER_S):
        if stall_after_s <= 0:
            raise ValueError("stall_after_s must be positive")
        self.loop = loop
        self.stall_after_s = stall_after_s
        self.beat_every_s = stall_after_s / 4
        self.stalls = 0
        self._last_beat = time.monotonic()
        self._loop_thread: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Call from the loop's own thread."""
        self._loop_thread = threading.get_ident()
        self._last_beat = time.monotonic()
        self._timer = self.loop.call_later(self.beat_every_s, self._beat)
        self._thread = threading.Thread(target=self._watch, name="rekam-loop-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.stall_after_s + 1)

    def _beat(self) -> None:
        self._last_beat = time.monotonic()
        if not self._stop.is_set():
            self._timer = self.loop.call_later(self.beat_every_s, self._beat)

    def _watch(self) -> None:
        reported_beat: float | None = None  # the last beat before the stall already reported
        while not self._stop.wait(self.beat_every_s):
            last = self._last_beat
            late = time.monotonic() - last
            if reported_beat is not None and last != reported_beat:
                log.warning(
                    "server event loop turns again",
                    extra={"stalled_s": round(last - reported_beat, 2)},
                )
                reported_beat = None
            if reported_beat is None and late > self.stall_after_s:
                reported_beat = last
                self.stalls += 1
                log.warning(
                    "server event loop blocked",
                    extra={"blocked_s": round(late, 2), "stack": self._loop_stack()},
                )

    def _loop_stack(self) -> list[str]:
        frame = sys._current_frames().get(self._loop_thread or -1)
        if frame is None:
            return []
        summary = traceback.extract_stack(frame)[-STACK_FRAMES:]
        return [f"{entry.filename}:{entry.lineno} {entry.name}" for entry in summary]
