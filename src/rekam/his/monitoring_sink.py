"""The event sink that keeps the monitoring gateway's events with the patients' records.

``publish`` and ``publish_many`` are called on the gateway's receive path, so they never touch
the database: they put the events on a queue (one item per batch, bounded in events) and return.
One background thread drains the queue:

- an :class:`AlertEvent` is stored at once (merged by episode, one alert per episode) and audited;
- :class:`HeartRateReading` values are summed per patient and minute in memory and merged into
  ``heart_rate_minutes`` every ``flush_seconds``;
- :class:`LiveSamples` are ignored (they only go to browsers);
- the replay floors a gateway saves (:meth:`MonitoringSink.keep_floors`) raise the devices'
  ``accepted_sequence`` (:func:`raise_replay_floors`).

With :attr:`MonitoringSink.store` set to False the sink only keeps
:attr:`MonitoringSink.latest` (for the dashboard tiles): a server whose analysis process stores
the events itself uses it that way.

When the queue is full (the database cannot keep up), readings and alerts are dropped and counted
in :attr:`MonitoringSink.counters` — never blocking the gateway. Errors in the writer are logged
(without patient data) and counted; the thread carries on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import cast
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from rekam.crypto import FieldCipher
from rekam.his.audit import AuditEvent, append_audit
from rekam.his.monitoring_records import (
    MinuteSummary,
    add_to_minute,
    minute_of,
    raise_replay_floors,
    store_alert_event,
)
from rekam.his.rbac import Actor, Role
from rekam.monitor.events import AlertEvent, HeartRateReading, MonitorEvent
from rekam.monitor.replay_floors import ReplayFloor
from rekam.store import Database
from rekam.store.types import utc_now

log = logging.getLogger("rekam.monitoring")

#: the actor the sink writes as (in the audit trail)
GATEWAY_ACTOR = Actor(
    user_id=None, username="monitor-gateway", role=Role.ADMIN, source_address="local"
)

_Flush = threading.Event
_Stop = object()

GATHER_S = 0.02
"""After storing a batch the writer waits this long, so that batches gather in the queue and it
is woken at most 50 times a second, not once per batch: each wake-up takes the interpreter from
the packet path for a moment. An alert is stored at most this much later."""


class _Floors(list[tuple[UUID, ReplayFloor]]):
    """Replay floors waiting for the writer (one queue item per save)."""


class _Events(list[MonitorEvent]):
    """Readings and alerts waiting for the writer, in the order published (one queue item per
    batch, so the writer thread is woken once per batch, not once per event)."""


class MonitoringSink:
    """An :class:`rekam.monitor.events.EventSink` that stores alerts and heart-rate trends."""

    def __init__(
        self,
        database: Database,
        fields: FieldCipher,
        patient_of: Callable[[UUID], str | None],
        *,
        flush_seconds: float = 5.0,
        max_queued: int = 50_000,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.database = database
        #: False in a server whose analysis process stores the events (see the module)
        self.store = True
        self.fields = fields
        self._patient_of = patient_of
        self._flush_seconds = flush_seconds
        self._clock = clock
        # Bounded in events (not queue items, which may be batches): ``_waiting`` counts them.
        self._queue: queue.Queue[object] = queue.Queue()
        self._max_queued = max_queued
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._minutes: dict[tuple[str, datetime], MinuteSummary] = {}
        #: the latest reading of every device seen by this process (for the dashboard tiles)
        self.latest: dict[UUID, HeartRateReading] = {}
        #: what happened to events: stored, dropped (and why), writer errors
        self.counters: Counter[str] = Counter()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitoring-sink", daemon=True)
        self._thread.start()

    # The receive path -----------------------------------------------------------------------

    def publish(self, event: MonitorEvent) -> None:
        self.publish_many((event,))

    def publish_many(self, events: Sequence[MonitorEvent]) -> None:
        """Keep the latest readings and queue the readings and alerts for the writer, as one
        item: never waits, and drops (and counts) what does not fit in ``max_queued``."""
        kept = _Events()
        for event in events:
            if isinstance(event, HeartRateReading):
                self.latest[event.device_id] = event
                kept.append(event)
            elif isinstance(event, AlertEvent):
                kept.append(event)
        if not self.store or not kept:
            return
        with self._waiting_lock:
            room = self._max_queued - self._waiting
            if room < len(kept):
                self.counters["dropped_queue_full"] += len(kept) - max(0, room)
                del kept[max(0, room) :]
            self._waiting += len(kept)
        if kept:
            self._queue.put_nowait(kept)

    def keep_floors(self, floors: Sequence[tuple[UUID, ReplayFloor]]) -> None:
        """Queue replay floors for the writer (:class:`rekam.monitor.ReplayFloors`.save)."""
        if self.store and floors:
            self._queue.put_nowait(_Floors(floors))

    # Control ----------------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything published so far; True when done within ``timeout`` seconds."""
        done = _Flush()
        self._queue.put_nowait(done)  # the queue itself is unbounded (the bound is in events)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is pending (waiting at most ``timeout`` seconds) and stop the writer."""
        if not self._thread.is_alive():
            return
        self.flush(timeout)
        self._stopping.set()
        self._queue.put_nowait(_Stop)
        self._thread.join(timeout)

    # The writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        deadline = self._monotonic() + self._flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.05, deadline - self._monotonic()))
            except queue.Empty:
                item = None
            if item is _Stop or self._stopping.is_set():
                if isinstance(item, _Flush):
                    item.set()
                return
            try:
                if isinstance(item, _Events):
                    self._take(item)
                    if self._queue.empty():
                        self._stopping.wait(GATHER_S)
                elif isinstance(item, _Floors):
                    with self.database.transaction(write=True) as session:
                        raise_replay_floors(session, item)
                    self.counters["floors_saved"] += len(item)
                elif isinstance(item, _Flush):
                    self._write_minutes()
                    item.set()
                if self._monotonic() >= deadline:
                    self._write_minutes()
                    deadline = self._monotonic() + self._flush_seconds
            except Exception as exc:  # the writer must outlive any one bad event
                self.counters["writer_errors"] += 1
                log.error("monitoring: could not store an event (%s)", type(exc).__name__)
                if isinstance(item, _Flush):
                    item.set()

    @staticmethod
    def _monotonic() -> float:
        return time.monotonic()

    def _take(self, events: _Events) -> None:
        """Store a batch's alerts and add its readings to their minutes; an event that fails
        costs that event only."""
        try:
            for event in events:
                try:
                    if isinstance(event, AlertEvent):
                        self._store_alert(event)
                    else:
                        self._add_reading(cast(HeartRateReading, event))
                except Exception as exc:  # the writer must outlive any one bad event
                    self.counters["writer_errors"] += 1
                    log.error("monitoring: could not store an event (%s)", type(exc).__name__)
        finally:
            with self._waiting_lock:
                self._waiting -= len(events)

    def _add_reading(self, reading: HeartRateReading) -> None:
        patient_id = self._patient_of(reading.device_id)
        if patient_id is None:
            self.counters["dropped_unpaired"] += 1
            return
        key = (patient_id, minute_of(reading.time_ms))
        self._minutes.setdefault(key, MinuteSummary()).add(reading.bpm)
        self.counters["readings"] += 1

    def _write_minutes(self) -> None:
        pending, self._minutes = self._minutes, {}
        if not pending:
            return
        try:
            self._merge_minutes(pending)
        except IntegrityError:  # another process created one of these minutes meanwhile
            self._merge_minutes(pending)
        self.counters["minutes_written"] += len(pending)

    def _merge_minutes(self, pending: dict[tuple[str, datetime], MinuteSummary]) -> None:
        with self.database.transaction(write=True) as session:
            for (patient_id, minute), summary in sorted(pending.items()):
                add_to_minute(session, self.fields, patient_id, minute, summary)

    def _store_alert(self, event: AlertEvent) -> None:
        patient_id = self._patient_of(event.device_id)
        if patient_id is None:
            self.counters["dropped_unpaired"] += 1
            return
        with self.database.transaction(write=True) as session:
            row, created = store_alert_event(session, self.fields, event, patient_id, self._clock())
            append_audit(
                session,
                GATEWAY_ACTOR,
                AuditEvent(
                    "monitor.alert_raise" if created else f"monitor.alert_{event.phase.value}",
                    patient_id=patient_id,
                    record=row.id,
                    detail=f"device {event.device_id}",
                ),
            )
        self.counters["alerts_stored"] += 1
