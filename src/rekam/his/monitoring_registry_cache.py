"""The in-memory cache in front of the device registry, for the gateway's per-packet lookups.

Every packet asks for its device's key; the database is asked once per device and then again
only after ``ttl_seconds`` (so an unpairing done by another server process takes effect within
that time, plus the moment its reload takes; one done in this process takes effect at once).
Unknown device ids are remembered for ``unknown_ttl_seconds`` — a flood of packets from an
unknown device does not become a flood of queries — and at most ``max_entries`` ids are kept
(oldest dropped first).

An entry that has expired is reloaded *in the background*: the lookup that finds it answers at
once with what it held, and a thread of the cache reloads it. Only a device never seen before
(or one whose reload has failed for a further ``ttl_seconds``) waits for the database. Without
this, the devices that connected together expired together, and every ``ttl_seconds`` the
packet path stopped to reload hundreds of them one by one (at 500 devices: 0.15–0.3 s, every
30 s). Each entry's lifetime is also shortened by a random part of up to ``JITTER`` of it, so
the reloads spread out instead of coming back in a burst.

With ``load_known``, the cache also keeps the set of paired device ids (read again when it is
older than ``unknown_ttl_seconds``), and a device id not in it is answered "unknown" without
asking the database for it. Packets with made-up device ids — anyone may open the device
WebSocket — then cost a set lookup each, not a query each, and do not push the real devices out
of the cache. A device paired or forgotten in this process counts as possibly known until the
set has been read again; one paired by another process is known within ``unknown_ttl_seconds``.

With ``load_many``, devices are loaded many at a time:

* :meth:`prefetch` loads, in one query, the devices of a batch of packets that the cache has never
  held. Devices that connect together (a server restart, a ward's devices coming back after a
  network outage) would otherwise each wait for a query of their own at their first packet: at
  500 devices, about 1 s of queries in a row on the packet path.
* expired entries that expire within ``gather_seconds`` of each other (devices that connected
  together) are reloaded in one query.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from rekam.ecg.rhythm import RhythmThresholds
from rekam.monitor.pairing import DeviceKey


@dataclass(frozen=True)
class RegisteredDevice:
    """What the gateway needs about one paired device. ``repr`` never shows the key."""

    key: DeviceKey
    patient_id: str
    thresholds: RhythmThresholds | None
    paired_at: datetime
    """Names the pairing (the key) that ``accepted_sequence`` belongs to."""
    accepted_sequence: int | None = None
    """The highest packet sequence number accepted under this pairing, as last saved."""


log = logging.getLogger(__name__)

JITTER = 0.2
"""An entry lives between (1 − JITTER) × its ttl and its full ttl before it is reloaded."""
RETRY_S = 1.0
"""After a failed reload, the entry is served as it was and tried again this much later."""
GATHER_S = 0.5
"""With ``load_many``, expired entries are reloaded in one query per this much time (an entry is
served as it was meanwhile)."""


class RegistryCache:
    def __init__(
        self,
        load: Callable[[UUID], RegisteredDevice | None],
        *,
        ttl_seconds: float = 30.0,
        unknown_ttl_seconds: float = 2.0,
        max_entries: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        load_known: Callable[[], frozenset[UUID]] | None = None,
        load_many: Callable[[Sequence[UUID]], Mapping[UUID, RegisteredDevice | None]] | None = None,
        gather_seconds: float = GATHER_S,
    ) -> None:
        self._load = load
        self._load_many = load_many
        self._gather = gather_seconds
        self._load_known = load_known
        self._known: frozenset[UUID] | None = None  # paired device ids, as last read
        self._known_until = 0.0
        self._maybe_known: set[UUID] = set()  # paired or forgotten here since that read
        self._ttl = ttl_seconds
        self._unknown_ttl = unknown_ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._jitter = jitter
        self._lock = threading.Lock()
        #: device id -> (fresh until, served until, what the registry said)
        self._entries: OrderedDict[UUID, tuple[float, float, RegisteredDevice | None]] = (
            OrderedDict()
        )
        self._epoch = 0  # moves on every forget/clear: a load (or set read) begun before one
        # is not kept (or does not settle the ids forgotten since)
        self._due: OrderedDict[UUID, None] = OrderedDict()  # expired, waiting to be reloaded
        self._reloading: set[UUID] = set()  # those being reloaded now
        self._wake = threading.Condition(self._lock)
        self._reloader: threading.Thread | None = None
        self._closed = False
        self._failure_logged = -RETRY_S
        #: how many times devices were loaded from the database (a prefetch of many counts
        #: once; for tests and metrics)
        self.loads = 0
        #: how many times the set of paired ids was read
        self.known_reads = 0

    def get(self, device_id: UUID) -> RegisteredDevice | None:
        now = self._clock()
        with self._lock:
            cached = self._entries.get(device_id)
            if cached is not None:
                fresh_until, served_until, found = cached
                if now < fresh_until:
                    return found
                if now < served_until and not self._closed:
                    self._schedule(device_id)
                    return found
            epoch = self._epoch
        if not self._may_be_paired(device_id, now):
            return None
        found = self._load(device_id)
        self._keep(device_id, found, now, epoch)
        return found

    def prefetch(self, device_ids: Iterable[UUID]) -> None:
        """Load in one go (``load_many``) those of ``device_ids`` the cache holds nothing about
        and that may be paired. Entries it holds, fresh or expired, are left to :meth:`get`.
        Never raises: a device not loaded here is loaded at its lookup."""
        if self._load_many is None:
            return
        now = self._clock()
        with self._lock:
            if self._closed:
                return
            missing = [d for d in dict.fromkeys(device_ids) if d not in self._entries]
            epoch = self._epoch
        try:
            wanted = [d for d in missing if self._may_be_paired(d, now)]
            if not wanted:
                return
            found = self._load_many(wanted)
        except Exception as exc:  # the lookups load them one by one, and say why if they fail
            self._log_failure("loading devices ahead of their packets", now, exc)
            return
        with self._lock:
            self.loads += 1
        for device_id in wanted:
            self._keep(device_id, found.get(device_id), now, epoch, counted=True)

    def _may_be_paired(self, device_id: UUID, now: float) -> bool:
        """False only if the set of paired ids says the device is not paired (always True
        without ``load_known``). The set is read again when it is older than
        ``unknown_ttl_seconds``: one query, whatever the number of ids asked about meanwhile."""
        if self._load_known is None:
            return True
        with self._lock:
            stale = self._known is None or now >= self._known_until
            epoch = self._epoch
        if stale:
            self._read_known(now, epoch)
        with self._lock:
            return device_id in (self._known or ()) or device_id in self._maybe_known

    def _read_known(self, now: float, epoch: int) -> None:
        assert self._load_known is not None
        known = self._load_known()
        with self._lock:
            self.known_reads += 1
            self._known = known
            self._known_until = now + self._unknown_ttl
            if epoch == self._epoch:
                self._maybe_known.clear()  # all of them were paired or not when it was read

    def _schedule(self, device_id: UUID) -> None:
        """Queue an expired entry for the reloading thread (called with the lock held)."""
        if device_id in self._due or device_id in self._reloading:
            return
        self._due[device_id] = None
        if self._reloader is None:
            self._reloader = threading.Thread(
                target=self._reload, name="rekam-device-registry", daemon=True
            )
            self._reloader.start()
        self._wake.notify()

    def _keep(
        self,
        device_id: UUID,
        found: RegisteredDevice | None,
        now: float,
        epoch: int,
        *,
        counted: bool = False,
    ) -> None:
        ttl = self._ttl if found is not None else self._unknown_ttl
        fresh_until = now + ttl * (1.0 - JITTER * self._jitter())
        with self._lock:
            if not counted:
                self.loads += 1
            if epoch != self._epoch:
                return  # forgotten meanwhile: what was loaded may already be out of date
            self._entries[device_id] = (fresh_until, fresh_until + self._ttl, found)
            self._entries.move_to_end(device_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def _reload(self) -> None:
        while True:
            with self._lock:
                while not self._due and not self._closed:
                    self._wake.wait()
                if self._load_many is not None:
                    # Entries of devices that connected together expire close together: gather
                    # those expiring within ``gather_seconds`` and reload them in one query.
                    deadline = time.monotonic() + self._gather
                    while not self._closed and (left := deadline - time.monotonic()) > 0:
                        self._wake.wait(left)
                if self._closed:
                    return
                batch = list(self._due)
                self._due.clear()
                self._reloading = set(batch)
                epoch = self._epoch
            now = self._clock()
            try:
                if len(batch) > 1 and self._load_many is not None:
                    self._reload_together(batch, now, epoch)
                else:
                    for device_id in batch:
                        self._reload_one(device_id, now, epoch)
            finally:
                with self._lock:
                    self._reloading = set()

    def _reload_together(self, batch: list[UUID], now: float, epoch: int) -> None:
        assert self._load_many is not None
        try:
            found = self._load_many(batch)
        except Exception as exc:  # the database is away: serve what we had a while longer
            for device_id in batch:
                self._failed(device_id, now, exc)
            return
        with self._lock:
            self.loads += 1
        for device_id in batch:
            self._keep(device_id, found.get(device_id), now, epoch, counted=True)

    def _reload_one(self, device_id: UUID, now: float, epoch: int) -> None:
        try:
            found = self._load(device_id)
        except Exception as exc:  # the database is away: serve what we had a while longer
            self._failed(device_id, now, exc)
            return
        self._keep(device_id, found, now, epoch)

    def _failed(self, device_id: UUID, now: float, exc: Exception) -> None:
        """A reload failed: try again after ``RETRY_S`` (not on every packet), and say so at most
        once per ``RETRY_S``."""
        with self._lock:
            cached = self._entries.get(device_id)
            if cached is not None:
                self._entries[device_id] = (now + RETRY_S, cached[1], cached[2])
        self._log_failure("reloading a device", now, exc)

    def _log_failure(self, what: str, now: float, exc: Exception) -> None:
        """Say that a load failed, at most once per ``RETRY_S``."""
        with self._lock:
            if now - self._failure_logged < RETRY_S:
                return
            self._failure_logged = now
        log.warning("device registry: %s failed (%s)", what, type(exc).__name__)

    def forget(self, device_id: UUID) -> None:
        """Drop what is cached about a device paired, re-paired or unpaired in this process."""
        with self._lock:
            self._entries.pop(device_id, None)
            self._due.pop(device_id, None)
            self._epoch += 1
            self._maybe_known.add(device_id)

    def expire_all(self) -> None:
        """Reload every entry (alarm limits changed somewhere). Each is answered as it was until
        its reload, which runs in the background, in batches: dropping them all instead made the
        next packet of every device wait for a query of its own (at 500 devices, 0.4–0.9 s of
        queries in a row on the packet path, whenever one patient's limits changed). A reload
        begun before this call is not kept."""
        now = self._clock()
        with self._lock:
            self._epoch += 1
            for device_id, (_, served_until, found) in list(self._entries.items()):
                self._entries[device_id] = (now, max(served_until, now + self._ttl), found)

    def close(self) -> None:
        """Stop the reloading thread (lookups go on, loading expired entries themselves)."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            reloader = self._reloader
        if reloader is not None and reloader is not threading.current_thread():
            reloader.join(5)
