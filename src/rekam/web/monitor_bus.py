"""Fan-out of live monitoring messages to the clinicians' open event streams.

A message is the ``to_json()`` dictionary of a :mod:`rekam.monitor.events` value. The gateway of
whichever server process received a device's packet publishes; every event stream of every
process subscribes.

- :class:`InProcessBus` (the default): one process; ``publish`` hands the message to each
  subscriber's queue on its event loop.
- :class:`RedisBus` (``REKAM_REDIS_URL``): Redis pub/sub on one channel, so several server
  processes behind a load balancer all see every device. ``publish`` puts the message on a local
  queue that one background thread sends to Redis, so the receive path never waits for the
  network.

``publish`` never blocks and never raises: a subscriber that does not keep up loses its oldest
messages (counted in :attr:`dropped`), not the others' and not the gateway's time.

The bus also carries the device registry's changes between server processes
(:meth:`MonitorBus.announce_registry_change`, :meth:`MonitorBus.on_registry_change`): a device
unpaired (or paired again, or alarm limits changed) through one process is dropped from what the
others cached about it at once, not at their next reload of it (up to 30 s later). Over Redis, on
a channel of its own; a change announced while a process is not subscribed (Redis restarting)
reaches it through that reload instead.

    async with bus.subscribe() as messages:
        async for message in messages:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol
from uuid import UUID

log = logging.getLogger("rekam.web.monitor_bus")

__all__ = [
    "CHANNEL",
    "REGISTRY_CHANNEL",
    "InProcessBus",
    "MonitorBus",
    "RedisBus",
    "Subscription",
]

CHANNEL = "rekam:monitor:events"
REGISTRY_CHANNEL = "rekam:monitor:registry"
SUBSCRIBER_QUEUE = 5000
"""Messages one slow subscriber may lag behind before it loses the oldest."""
PUBLISH_QUEUE = 100_000

Message = dict[str, Any]


class MonitorBus(Protocol):
    def publish_many(self, messages: list[Message]) -> None:
        """Publish several messages, in order."""

    def publish(self, message: Message) -> None:
        """Send ``message`` to every subscriber (non-blocking, thread-safe)."""
        ...

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """Messages published from now on, as an async iterator."""
        ...

    def announce_registry_change(self, device_id: UUID | None) -> None:
        """Tell the other server processes that a device was paired or unpaired here (``None``:
        alarm limits changed), so that they drop what they cached about it. Never blocks."""

    def on_registry_change(self, listener: Callable[[UUID | None], None]) -> None:
        """Call ``listener`` (from a thread of the bus) with what the other processes announce;
        never with this process's own announcements."""

    def close(self) -> None: ...


class _Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Message] = asyncio.Queue(size)
        self.dropped = 0

    def offer(self, message: Message) -> None:
        """On the subscriber's loop: enqueue, dropping the oldest message when full."""
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(message)

    def offer_many(self, messages: list[Message]) -> None:
        for message in messages:
            self.offer(message)


class Subscription:
    """What ``subscribe()`` yields: an async iterator of messages, plus :meth:`batch` for
    consumers that can take everything queued at once (the event stream writes a batch in one
    send, so it keeps up under load)."""

    def __init__(self, subscriber: _Subscriber) -> None:
        self._subscriber = subscriber

    @property
    def dropped(self) -> int:
        return self._subscriber.dropped

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        return await self._subscriber.queue.get()

    async def batch(self, max_items: int, timeout: float) -> list[Message]:
        """Wait up to ``timeout`` seconds for a message; return it with whatever else is queued
        (at most ``max_items``); an empty list when nothing came."""
        queue = self._subscriber.queue
        if queue.empty():
            # asyncio.timeout rather than wait_for: wait_for wraps the get in a new task each
            # time, and the event stream waits here once per batch
            try:
                async with asyncio.timeout(timeout):
                    first = await queue.get()
            except TimeoutError:
                return []
            messages = [first]
        else:
            messages = []
        while len(messages) < max_items and not queue.empty():
            messages.append(queue.get_nowait())
        return messages


class InProcessBus:
    """Fan-out inside one server process."""

    def __init__(self, subscriber_queue: int = SUBSCRIBER_QUEUE) -> None:
        self._subscribers: set[_Subscriber] = set()
        self._lock = threading.Lock()
        self._size = subscriber_queue
        self.published = 0

    @property
    def dropped(self) -> int:
        with self._lock:
            return sum(s.dropped for s in self._subscribers)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def publish(self, message: Message) -> None:
        self.publish_many([message])

    def publish_many(self, messages: list[Message]) -> None:
        """Every subscriber gets the messages in order; a subscriber on another event loop is
        woken once for all of them."""
        with self._lock:
            subscribers = list(self._subscribers)
            self.published += len(messages)
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for subscriber in subscribers:
            if subscriber.loop is running:  # published on the subscriber's own loop
                subscriber.offer_many(messages)
                continue
            try:
                subscriber.loop.call_soon_threadsafe(subscriber.offer_many, messages)
            except RuntimeError:  # the subscriber's loop has closed
                with self._lock:
                    self._subscribers.discard(subscriber)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        subscriber = _Subscriber(asyncio.get_running_loop(), self._size)
        with self._lock:
            self._subscribers.add(subscriber)
        try:
            yield Subscription(subscriber)
        finally:
            with self._lock:
                self._subscribers.discard(subscriber)

    def announce_registry_change(self, device_id: UUID | None) -> None:
        """One process: nobody else to tell."""

    def on_registry_change(self, listener: Callable[[UUID | None], None]) -> None:
        """One process: nobody else announces."""

    def close(self) -> None:
        with self._lock:
            self._subscribers.clear()


_STOP = object()


class _RegistryNote(str):
    """A registry change waiting in the sender's queue (published on the registry channel)."""


class RedisBus:
    """Fan-out across server processes through Redis pub/sub."""

    def __init__(
        self,
        url: str,
        *,
        channel: str = CHANNEL,
        registry_channel: str = REGISTRY_CHANNEL,
        subscriber_queue: int = SUBSCRIBER_QUEUE,
        ssl_ca_certs: str | None = None,
    ) -> None:
        import redis  # only needed when Redis is configured

        self.url = url
        self.channel = channel
        self.registry_channel = registry_channel
        self._origin = uuid.uuid4().hex  # this process's announcements, to skip when they return
        self._registry_listener: Callable[[UUID | None], None] | None = None
        self._registry_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._size = subscriber_queue
        self._ssl_kwargs: dict[str, Any] = {}
        if ssl_ca_certs and url.startswith("rediss://"):
            self._ssl_kwargs["ssl_ca_certs"] = ssl_ca_certs
        self._client = redis.Redis.from_url(url, **self._ssl_kwargs)
        self._outgoing: queue.Queue[object] = queue.Queue(PUBLISH_QUEUE)
        self.published = 0
        self.dropped = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._send, name="monitor-redis-bus", daemon=True)
        self._thread.start()

    def publish(self, message: Message) -> None:
        try:
            self._outgoing.put_nowait(json.dumps(message, separators=(",", ":")))
        except queue.Full:
            self.dropped += 1

    def publish_many(self, messages: list[Message]) -> None:
        for message in messages:
            self.publish(message)

    def _send(self) -> None:
        while True:
            item = self._outgoing.get()
            if item is _STOP:
                return
            batch = [item]
            while len(batch) < 500:  # whatever queued up meanwhile goes in one round trip
                try:
                    item = self._outgoing.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._publish_batch(batch)
                    return
                batch.append(item)
            self._publish_batch(batch)

    def _publish_batch(self, batch: list[object]) -> None:
        try:
            pipeline = self._client.pipeline(transaction=False)
            for text in batch:
                channel = self.registry_channel if isinstance(text, _RegistryNote) else self.channel
                pipeline.publish(channel, text)  # type: ignore[arg-type]
            pipeline.execute()
            self.published += len(batch)
        except Exception as exc:  # Redis down: these messages are lost, the next may pass
            self.failures += 1
            self.dropped += len(batch)
            if self.failures % 100 == 1:
                log.error("monitor bus: Redis publish failed (%s)", type(exc).__name__)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(self.url, **self._ssl_kwargs)
        # Any: redis-py types PubSub.aclose in some releases and not in others.
        pubsub: Any = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.channel)
        subscriber = _Subscriber(asyncio.get_running_loop(), self._size)
        reader = asyncio.create_task(self._read(pubsub, subscriber))
        try:
            yield Subscription(subscriber)
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe(self.channel)
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()

    @staticmethod
    async def _read(pubsub: Any, subscriber: _Subscriber) -> None:
        async for raw in pubsub.listen():
            if raw.get("type") != "message":
                continue
            try:
                message = json.loads(raw["data"])
            except (ValueError, TypeError):
                continue  # not ours; never fatal to the stream
            if isinstance(message, dict):
                subscriber.offer(message)

    def announce_registry_change(self, device_id: UUID | None) -> None:
        note = {"origin": self._origin, "device_id": None if device_id is None else str(device_id)}
        try:  # through the sender thread: an unpairing never waits for Redis
            self._outgoing.put_nowait(_RegistryNote(json.dumps(note)))
        except queue.Full:
            self.dropped += 1

    def on_registry_change(self, listener: Callable[[UUID | None], None]) -> None:
        self._registry_listener = listener
        if self._registry_thread is None:
            self._registry_thread = threading.Thread(
                target=self._listen_registry, name="monitor-redis-registry", daemon=True
            )
            self._registry_thread.start()

    def _listen_registry(self) -> None:
        """Subscribe to the registry channel and hand each announcement to the listener; after
        a failure (Redis away), subscribe again a second later."""
        failures = 0
        while not self._stopping.is_set():
            pubsub: Any = None
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.registry_channel)
                failures = 0
                while not self._stopping.is_set():
                    raw = pubsub.get_message(timeout=0.5)
                    if raw is not None and raw.get("type") == "message":
                        self._registry_message(raw["data"])
            except Exception as exc:  # Redis away: the caches' own reloads cover the gap
                failures += 1
                if failures % 60 == 1:
                    log.warning(
                        "monitor bus: registry channel unavailable (%s)", type(exc).__name__
                    )
                self._stopping.wait(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()

    def _registry_message(self, data: bytes | str) -> None:
        try:
            note = json.loads(data)
            if not isinstance(note, dict) or note.get("origin") == self._origin:
                return
            raw = note["device_id"]
            device_id = None if raw is None else UUID(str(raw))
        except (ValueError, TypeError, KeyError):
            return  # not ours; never fatal to the channel
        listener = self._registry_listener
        if listener is None:
            return
        try:
            listener(device_id)
        except Exception as exc:  # a listener failing must not end the subscription
            log.error("monitor bus: a registry listener failed (%s)", type(exc).__name__)

    def close(self) -> None:
        self._stopping.set()
        if self._registry_thread is not None:
            self._registry_thread.join(5.0)
        with contextlib.suppress(queue.Full):
            self._outgoing.put(_STOP, timeout=1.0)
        self._thread.join(5.0)
        with contextlib.suppress(Exception):
            self._client.close()
