"""The monitoring gateway in a process of its own, beside the server that receives the packets.

A server process that terminates TLS for hundreds of device connections and also analyses their
signal runs out of one core: at 500 devices both jobs together need about a whole one, and a
thread that busy delays every alert. :class:`GatewayProcess` moves the gateway — packet opening,
replay windows, flood limits and the analysis — into a child process, so the two jobs run on two
cores. The server keeps the connections and the event fan-out:

* packets go to the child in the batches the transports gather (one pipe message per batch),
  through a bounded queue and a writer thread, so the server's event loop never waits for the
  child: when the child lags that far behind, packets are counted ``analysis_failed``, and a
  child that takes nothing for ``STALL_S`` is replaced;
* the child's events come back, per batch, to a reader thread in the server, which hands them to
  the server's sink (the storing sink, the clinicians' event streams) — the same sink, and the
  same events, as an in-process :class:`~rekam.monitor.gateway.Gateway` would give it;
* ``forget`` (a device unpaired or paired again), the set of devices whose strips are watched,
  the counters and the shutdown flush travel over the same pipe, in order with the packets.

The child is started with the ``spawn`` method (a fresh interpreter: the server's threads and
open connections are not copied) and builds its key lookup and alarm limits from a
:class:`GatewaySetup` — a picklable callable, e.g. one that opens the clinic's installation. It
exits when the server stops it or when the pipe closes (the server died). If it dies on its own,
the server logs it and starts a new one; the packets sent meanwhile are counted
``analysis_failed``.

Like :class:`~rekam.monitor.gateway.Gateway`, :meth:`GatewayProcess.receive_many` never raises;
unlike it, it returns before the packets are analysed (their verdicts are counted in the child).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol
from uuid import UUID

from rekam.ecg.rhythm import RhythmThresholds
from rekam.monitor.events import EventSink, MonitorEvent, publish_all
from rekam.monitor.gateway import (
    DEFAULT_BURST_SECONDS,
    DEFAULT_SPEED_LIMIT,
    Gateway,
    ReceiveOutcome,
    Verdict,
)
from rekam.monitor.packets import KeyLookup
from rekam.monitor.replay_floors import ReplayFloors

__all__ = ["GatewayParts", "GatewayProcess", "GatewaySetup"]

log = logging.getLogger("rekam.monitor.gateway_process")

START_TIMEOUT_S = 120.0
"""How long the child may take to start (import, open the installation) before it is given up."""
REPLY_TIMEOUT_S = 10.0
"""How long a question to the child (counters, the shutdown flush) may wait for the answer."""
MERGE_PACKETS = 512
"""A child that fell behind analyses up to this many waiting packets as one batch."""
MAX_WAITING = 1000
"""Messages (batches of packets, mostly) that may wait for the child; more are counted
``analysis_failed`` rather than let the server's event loop wait for a child that lags."""
STALL_S = 10.0
"""A child that takes nothing for this long while messages wait is taken for hung and replaced."""
RESTART_PAUSE_S = 1.0


@dataclass
class GatewayParts:
    """What the child's gateway needs from the installation."""

    key_lookup: KeyLookup
    thresholds_for: Callable[[UUID], RhythmThresholds | None] | None = None
    forget: Callable[[UUID | None], None] = lambda device_id: None
    """Drop what the lookups cached about a device (unpaired or paired again), or about every
    device (``None``: alarm limits changed)."""
    sink: EventSink | None = None
    """Where the child itself puts the events too (e.g. the sink that stores them), besides
    sending them to the server."""
    flush: Callable[[], bool] = lambda: True
    """Write what ``sink`` still holds (at shutdown, before the child says it stopped)."""
    replay_floors: ReplayFloors | None = None
    """Where the replay windows start and are saved, so that they outlive the child."""
    close: Callable[[], None] = lambda: None
    prefetch: Callable[[Sequence[UUID]], None] | None = None
    """Fetch, in one go, the keys of devices a batch names that the gateway has not analysed
    yet (see :class:`~rekam.monitor.gateway.Gateway`)."""


class GatewaySetup(Protocol):
    """Builds the child's :class:`GatewayParts`; must be picklable (it crosses to the child)."""

    def __call__(self) -> GatewayParts: ...


@dataclass(frozen=True)
class _Options:
    speed_limit: float
    burst_seconds: float
    all_samples: bool


class _CollectingSink:
    """Keeps a batch's events for the server, and hands them to ``also`` (if any)."""

    def __init__(self, also: EventSink | None) -> None:
        self.events: list[MonitorEvent] = []
        self.also = also
        self.lost = 0

    def publish(self, event: MonitorEvent) -> None:
        self.publish_many([event])

    def publish_many(self, events: Sequence[MonitorEvent]) -> None:
        self.events.extend(events)
        if self.also is not None:
            self.lost += publish_all(self.also, events)

    def take(self) -> list[MonitorEvent]:
        events, self.events = self.events, []
        return events


def _child_main(conn: Connection, setup: GatewaySetup, options: _Options) -> None:
    """The child: analyse what arrives on ``conn`` until told to stop or the pipe closes."""
    # The server stops its child itself, after its last packets: a Ctrl+C or `systemctl stop`
    # reaches the whole process group, and must not end the child before that. (If the server
    # dies, the pipe closes and the child ends.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        parts = setup()
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    watched: set[UUID] = set()
    sink = _CollectingSink(parts.sink)
    gateway = Gateway(
        parts.key_lookup,
        sink,
        thresholds_for=parts.thresholds_for,
        speed_limit=options.speed_limit,
        burst_seconds=options.burst_seconds,
        samples_wanted=None if options.all_samples else watched.__contains__,
        replay_floors=parts.replay_floors,
        prefetch=parts.prefetch,
    )
    # The libraries and the installation stay for the child's life: keep them out of the garbage
    # collector's full passes (the analysis leaves a little garbage behind on every batch).
    gc.collect()
    gc.freeze()
    conn.send(("ready",))
    try:
        _serve(conn, gateway, sink, parts, watched)
    finally:
        parts.close()


def _serve(
    conn: Connection,
    gateway: Gateway,
    sink: _CollectingSink,
    parts: GatewayParts,
    watched: set[UUID],
) -> None:
    held: tuple[Any, ...] | None = None  # a message read while merging packets, not yet done
    while True:
        try:
            message, held = (held, None) if held is not None else (conn.recv(), None)
        except (EOFError, OSError):
            return  # the server is gone
        kind = message[0]
        if kind == "packets":
            packets: list[bytes] = list(message[1])
            # Behind? Take the packets already waiting too: one batch costs less per packet.
            while len(packets) < MERGE_PACKETS and held is None and conn.poll(0):
                following = conn.recv()
                if following[0] == "packets":
                    packets.extend(following[1])
                else:
                    held = following
            gateway.receive_many(packets)
            events = sink.take()
            if events:
                conn.send(("events", events))
        elif kind == "forget":
            device_id = message[1]
            parts.forget(device_id)
            if device_id is not None:
                gateway.forget(device_id)
        elif kind == "watch":
            watched.clear()
            watched.update(message[1])
        elif kind == "counters":
            conn.send(("counters", message[1], _counters(gateway, sink)))
        elif kind == "stop":
            gateway.save_floors()
            if not parts.flush():
                log.error("monitor: the analysis process could not write all its events")
            conn.send(("stopped", _counters(gateway, sink)))
            return


def _counters(gateway: Gateway, sink: _CollectingSink) -> dict[str, int]:
    counts = gateway.counters
    counts["sink_failed"] += sink.lost
    return counts


@dataclass
class _Child:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    outbox: queue.Queue[tuple[Any, ...] | None] = field(
        default_factory=lambda: queue.Queue(MAX_WAITING)
    )
    reader: threading.Thread | None = None
    writer: threading.Thread | None = None
    stopping: bool = False
    stopped: threading.Event = field(default_factory=threading.Event)
    """Set when the reader ends: the child said it stopped (``clean``), or the pipe closed."""
    clean: bool = False
    last_counters: dict[str, int] = field(default_factory=dict)
    full_since: float | None = None
    killed: bool = False


class GatewayProcess:
    """A :class:`~rekam.monitor.gateway.Gateway` running in a child process; see the module."""

    def __init__(
        self,
        setup: GatewaySetup,
        sink: EventSink,
        *,
        speed_limit: float = DEFAULT_SPEED_LIMIT,
        burst_seconds: float = DEFAULT_BURST_SECONDS,
        all_samples: bool = False,
    ) -> None:
        if speed_limit <= 0 or burst_seconds <= 0:
            raise ValueError("the flood limit needs a positive speed and burst")
        self.setup = setup
        self.sink = sink
        self._options = _Options(float(speed_limit), float(burst_seconds), all_samples)
        self._context = multiprocessing.get_context("spawn")
        self._child: _Child | None = None
        self._state_lock = threading.Lock()
        self._local: Counter[str] = Counter()  # refused by the transports, or lost on the way
        self._finished: Counter[str] = Counter()  # counted by children that have ended
        self._watched: frozenset[UUID] = frozenset()
        self._replies: dict[int, tuple[threading.Event, list[dict[str, int]]]] = {}
        self._next_question = 0
        self._closed = False
        self.restarts = 0

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the child and wait until it is ready (raises RuntimeError if it cannot start)."""
        with self._state_lock:
            if self._child is not None:
                return
            self._closed = False
            self._child = self._spawn()

    def _spawn(self) -> _Child:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_child_main,
            args=(theirs, self.setup, self._options),
            name="rekam-monitor-analysis",
            daemon=True,
        )
        process.start()
        theirs.close()
        if not ours.poll(START_TIMEOUT_S):
            process.kill()
            raise RuntimeError("the monitoring analysis process did not start")
        try:
            first = ours.recv()
        except EOFError:
            process.join(5)
            raise RuntimeError("the monitoring analysis process ended while starting") from None
        if first[0] != "ready":
            process.join(5)
            raise RuntimeError(f"the monitoring analysis process could not start: {first[1]}")
        child = _Child(process, ours)
        if self._watched:
            ours.send(("watch", self._watched))
        child.reader = threading.Thread(
            target=self._read, args=(child,), name="rekam-monitor-events", daemon=True
        )
        child.writer = threading.Thread(
            target=self._write, args=(child,), name="rekam-monitor-packets", daemon=True
        )
        child.reader.start()
        child.writer.start()
        log.info("monitor: analysis process %d started", process.pid)
        return child

    def stop(self) -> bool:
        """Analyse the packets already sent, hand over their events and end the child. True if
        it finished in time. The gateway can be started again."""
        with self._state_lock:
            child, self._child = self._child, None
        if child is None:
            return True
        child.stopping = True  # takes no more messages; those waiting go first, then "stop"
        try:
            child.outbox.put(("stop",), timeout=REPLY_TIMEOUT_S)
            finished = child.stopped.wait(REPLY_TIMEOUT_S) and child.clean
        except queue.Full:
            finished = False
        self._end(child, finished)
        return finished

    def close(self) -> None:
        self._closed = True
        self.stop()

    def _end(self, child: _Child, finished: bool) -> None:
        """Wait for (or end) the child and its two threads, then count what it counted."""
        child.stopping = True
        child.process.join(REPLY_TIMEOUT_S if finished else 0)
        if child.process.is_alive():
            child.process.kill()  # a writer blocked on the pipe fails now, and stops
            child.process.join(5)
        with contextlib.suppress(queue.Full):
            child.outbox.put_nowait(None)
        for thread in (child.writer, child.reader):
            if thread is not None and thread is not threading.current_thread():
                thread.join(REPLY_TIMEOUT_S)
        child.conn.close()
        with self._state_lock:
            self._finished.update(child.last_counters)

    @property
    def pid(self) -> int | None:
        child = self._child
        return None if child is None else child.process.pid

    # ------------------------------------------------------------------------------ packets

    def receive(self, raw: bytes | bytearray | memoryview) -> None:
        self.receive_many([raw])

    def receive_many(self, raws: Sequence[bytes | bytearray | memoryview]) -> None:
        """Send the packets to the child for analysis. Never raises: packets that cannot be sent
        (no child, the child died) are counted ``analysis_failed``."""
        if not raws:
            return
        packets = [bytes(raw) for raw in raws]
        if not self._send(("packets", packets)):
            with self._state_lock:
                self._local[Verdict.ANALYSIS_FAILED.value] += len(packets)

    def refuse(self, verdict: Verdict, message: str) -> ReceiveOutcome:
        """Count a packet a transport refused before it reached the gateway."""
        with self._state_lock:
            self._local[verdict.value] += 1
        return ReceiveOutcome(verdict, None, (), message)

    def forget(self, device_id: UUID | None) -> None:
        """Drop a device's analysis, replay window and cached key in the child (``None``: only
        what the child cached about every device, e.g. after alarm limits changed)."""
        self._send(("forget", device_id), wait=True)

    def watch(self, devices: Iterable[UUID]) -> None:
        """The devices whose raw samples are wanted (the strips someone watches)."""
        self._watched = frozenset(devices)
        self._send(("watch", self._watched), wait=True)

    @property
    def counters(self) -> dict[str, int]:
        """Packets per verdict, as :attr:`Gateway.counters`: the child's (all children's, if it
        was restarted) plus the packets refused or lost before reaching it."""
        counts: Counter[str] = Counter({verdict.value: 0 for verdict in Verdict})
        counts["sink_failed"] = 0
        counts.update(self._ask_counters())
        with self._state_lock:
            counts.update(self._finished)
            counts.update(self._local)
        return dict(counts)

    def _ask_counters(self) -> dict[str, int]:
        with self._state_lock:
            self._next_question += 1
            question = self._next_question
            answered = threading.Event()
            answer: list[dict[str, int]] = []
            self._replies[question] = (answered, answer)
        try:
            if not self._send(("counters", question), wait=True) or not answered.wait(
                REPLY_TIMEOUT_S
            ):
                return {}
            return answer[0]
        finally:
            with self._state_lock:
                self._replies.pop(question, None)

    # ------------------------------------------------------------------------------ plumbing

    def _send(self, message: tuple[Any, ...], *, wait: bool = False) -> bool:
        """Queue a message for the child. Packets never wait (the caller is the server's event
        loop); other messages wait a little when the queue is full."""
        child = self._child
        if child is None or child.stopping:
            return False
        try:
            if wait:
                child.outbox.put(message, timeout=REPLY_TIMEOUT_S)
            else:
                child.outbox.put_nowait(message)
        except queue.Full:
            self._check_stalled(child)
            return False
        child.full_since = None
        return True

    def _check_stalled(self, child: _Child) -> None:
        now = time.monotonic()
        if child.full_since is None:
            child.full_since = now
            log.warning("monitor: the analysis process is behind; packets are being dropped")
        elif now - child.full_since > STALL_S and not child.killed:
            child.killed = True
            log.error(
                "monitor: the analysis process took nothing for %.0f s; replacing it", STALL_S
            )
            child.process.kill()  # its reader sees the pipe close and starts a new one

    def _write(self, child: _Child) -> None:
        """The server's end, outgoing: one thread per child, so a child that lags never makes
        the server's event loop wait on the pipe."""
        broken = False
        while True:
            message = child.outbox.get()
            if message is None:
                return
            if not broken:
                try:
                    child.conn.send(message)
                    continue
                except (OSError, ValueError):  # the child died; its reader replaces it
                    broken = True
            if message[0] == "packets":  # never reached the child
                with self._state_lock:
                    self._local[Verdict.ANALYSIS_FAILED.value] += len(message[1])

    def _read(self, child: _Child) -> None:
        """The server's end: events to the sink, answers to whoever asked."""
        while True:
            try:
                message = child.conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "events":
                lost = publish_all(self.sink, message[1])
                if lost:
                    with self._state_lock:
                        self._local["sink_failed"] += lost
            elif kind == "counters":
                with self._state_lock:
                    waiting = self._replies.get(message[1])
                if waiting is not None:
                    waiting[1].append(message[2])
                    waiting[0].set()
            elif kind == "stopped":
                child.last_counters = message[1]
                child.clean = True
                child.stopped.set()
                return
        child.stopped.set()
        if child.stopping or self._closed:
            return
        self._restart(child)

    def _restart(self, dead: _Child) -> None:
        log.error("monitor: the analysis process ended unexpectedly; starting a new one")
        with self._state_lock:
            if self._child is not dead:
                return
        self._end(dead, finished=False)
        time.sleep(RESTART_PAUSE_S)
        try:
            child = self._spawn()
        except RuntimeError as exc:
            log.error("monitor: %s", exc)
            with self._state_lock:
                if self._child is dead:
                    self._child = None
            return
        with self._state_lock:
            if self._child is dead and not self._closed:
                self._child = child
                self.restarts += 1
                return
        self._end(child, finished=False)
