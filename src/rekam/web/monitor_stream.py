"""Live heart monitoring over HTTP: the device WebSocket in, Server-Sent Events out.

- ``WS /api/v1/monitor/devices`` — device ingest. Each binary frame is one RKD1 packet. No
  session: a packet is authenticated by its device's key, so anyone may connect but only paired
  devices' packets count. Frames larger than a packet are refused by the server; each connection
  may send ``CONNECTION_RATE`` packets per second (burst ``CONNECTION_BURST``); beyond that its
  packets are dropped and counted, and a connection that keeps flooding is closed (1008).
  Packets arriving within ``BATCH_WINDOW_S`` are analysed together (:class:`IngestBatch`).
- ``GET /api/v1/monitor/events`` — for users with MONITOR_VIEW: every live message of the devices
  whose patients are in their care, as ``data: <json>`` (the ``to_json()`` dictionaries of
  :mod:`rekam.monitor.events`), and ``alert_acknowledged`` (``episode_id``, ``device_id``,
  ``acknowledged_by``, ``acknowledged_ms``) when someone acknowledges one of their alerts;
  ``samples`` messages only for the devices named in ``?devices=<id>,<id>``. A comment line
  every ``KEEPALIVE_S`` keeps proxies from closing it.

:func:`install` adds the router to the app and builds the process's
:class:`~rekam.web.monitor_runtime.MonitorRuntime`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, FastAPI, HTTPException, Query, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.websockets import WebSocketDisconnect

from rekam.his.installation import Clinic
from rekam.his.rbac import Actor
from rekam.monitor.gateway import Verdict
from rekam.web.api_monitor import DeviceManager, Viewer
from rekam.web.monitor_runtime import MonitorRuntime

__all__ = ["install", "router", "runtime_of"]

router = APIRouter(prefix="/api/v1/monitor", tags=["monitor"])
log = logging.getLogger("rekam.web.monitor")

CONNECTION_RATE = 400.0
"""Packets per second one WebSocket connection may send (a phone relaying a few devices)."""
CONNECTION_BURST = 800.0
CLOSE_AFTER_DROPPED = 2000
"""A connection whose packets were dropped this many times in a row is closed."""
KEEPALIVE_S = 15.0
BATCH = 1000
BATCH_WINDOW_S = 0.005
"""How long the first packet of a batch waits for others before the batch is analysed."""
"""Messages an event stream takes from its queue per write."""
YIELD_EVERY = 8
"""Packets one device connection handles in a row before it lets the other tasks run."""
VISIBILITY_REFRESH_S = 60.0
VISIBILITY_RECHECK_S = 1.0
MAX_DEVICES_PARAM = 50


def install(
    app: FastAPI, clinic: Clinic, *, analysis_process: bool | None = None
) -> MonitorRuntime:
    """Mount the live endpoints and start this process's monitoring runtime."""
    runtime = MonitorRuntime(clinic, analysis_process=analysis_process)
    app.state.monitor = runtime
    app.state.monitor_ingest = IngestBatch(app)
    app.include_router(router)
    runtime.start()
    return runtime


def runtime_of(app: Any) -> MonitorRuntime:
    runtime: MonitorRuntime = app.state.monitor
    return runtime


# Device ingest ---------------------------------------------------------------------------------


class _ConnectionBucket:
    def __init__(self) -> None:
        self.tokens = CONNECTION_BURST
        self.updated = time.monotonic()
        self.dropped_in_a_row = 0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(CONNECTION_BURST, self.tokens + (now - self.updated) * CONNECTION_RATE)
        self.updated = now
        if self.tokens < 1.0:
            self.dropped_in_a_row += 1
            return False
        self.tokens -= 1.0
        self.dropped_in_a_row = 0
        return True


class IngestBatch:
    """The packets the device connections receive within ``BATCH_WINDOW_S`` of the first one,
    analysed together (:meth:`Gateway.receive_many`). The analysis of a batch costs much less
    per packet than packet by packet (its signal work runs once per batch, not per device), so
    the few milliseconds a packet waits buy the capacity to serve hundreds of devices."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._packets: list[bytes] = []
        self._scheduled = False
        self._lock = threading.Lock()  # the app may be served by more than one loop (tests)

    def add(self, packet: bytes) -> None:
        with self._lock:
            self._packets.append(packet)
            if self._scheduled:
                return
            self._scheduled = True
        asyncio.get_running_loop().call_later(BATCH_WINDOW_S, self.flush)

    def flush(self) -> None:
        with self._lock:
            packets, self._packets = self._packets, []
            self._scheduled = False
        if packets:
            runtime_of(self.app).gateway.receive_many(packets)


@router.websocket("/devices")
async def device_ingest(websocket: WebSocket) -> None:
    gateway = runtime_of(websocket.app).gateway
    batch: IngestBatch = websocket.app.state.monitor_ingest
    bucket = _ConnectionBucket()
    unyielded = 0
    await websocket.accept()
    try:
        while True:
            # let the event streams and other devices run: a connection with a backlog of frames
            # would otherwise keep the loop to itself (receive() does not suspend while frames
            # are queued). Every YIELD_EVERY frames, not after each one: most receives suspend
            # anyway, and an extra turn of the loop per packet is a large part of its cost.
            unyielded += 1
            if unyielded >= YIELD_EVERY:
                unyielded = 0
                await asyncio.sleep(0)
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:  # a text frame is not a packet
                gateway.refuse(Verdict.MALFORMED, "a text frame is not a packet")
                continue
            if not bucket.take():
                gateway.refuse(Verdict.FLOODED, "a device connection sends too many packets")
                if bucket.dropped_in_a_row >= CLOSE_AFTER_DROPPED:
                    await websocket.close(code=1008, reason="flooding")
                    return
                continue
            batch.add(data)
    except WebSocketDisconnect:
        return


# Event stream ----------------------------------------------------------------------------------


def _requested_devices(text: str | None) -> frozenset[UUID]:
    if not text:
        return frozenset()
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) > MAX_DEVICES_PARAM:
        raise HTTPException(400, f"at most {MAX_DEVICES_PARAM} devices per stream")
    try:
        return frozenset(UUID(p) for p in parts)
    except ValueError:
        raise HTTPException(400, "devices must be device ids (UUIDs) separated by commas") from None


class _Visibility:
    """The devices a viewer may see. A device the stream has not heard of starts a check in the
    background (so a device paired after the stream opened shows up within moments, at most one
    check per ``VISIBILITY_RECHECK_S``); meanwhile its messages are skipped and the other
    devices' messages flow on. A device found not visible is checked again only after
    ``VISIBILITY_REFRESH_S`` (each check is one audited query)."""

    def __init__(self, runtime: MonitorRuntime, actor: Actor, devices: frozenset[UUID]) -> None:
        self.runtime = runtime
        self.actor = actor
        self.devices = devices
        self.denied: set[UUID] = set()
        self.asked: set[UUID] = set()
        self.checked = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def allows(self, device_id: UUID) -> bool:
        if device_id in self.devices:
            return True
        since = time.monotonic() - self.checked
        if device_id in self.denied and since < VISIBILITY_REFRESH_S:
            return False
        self.asked.add(device_id)
        if self._task is None and since >= VISIBILITY_RECHECK_S:
            self._task = asyncio.create_task(self._refresh())
        return False

    async def _refresh(self) -> None:
        asked, self.asked = self.asked, set()
        try:
            self.devices = await run_in_threadpool(
                self.runtime.service.devices_visible_to, self.actor
            )
            self.denied = (self.denied | asked) - self.devices
        except Exception as exc:  # the database busy: keep what we knew, try again later
            log.warning("monitor stream: visibility check failed (%s)", type(exc).__name__)
        finally:
            self.checked = time.monotonic()
            self._task = None

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


@lru_cache(maxsize=20_000)  # every message names a device: parse each id once
def _parse_device_id(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def _device_of(message: dict[str, Any]) -> UUID | None:
    raw = message.get("device_id")
    return None if raw is None else _parse_device_id(str(raw))


async def _event_stream(
    runtime: MonitorRuntime, visibility: _Visibility, samples_for: frozenset[UUID]
) -> AsyncIterator[str]:
    async with runtime.bus.subscribe() as subscription:
        runtime.watch_samples(samples_for)
        try:
            yield "retry: 3000\n\n"  # subscribed: from here on nothing is missed
            while True:
                messages = await subscription.batch(BATCH, KEEPALIVE_S)
                if not messages:
                    yield ": keepalive\n\n"
                    continue
                lines = []
                for message in messages:
                    device_id = _device_of(message)
                    if device_id is None or not visibility.allows(device_id):
                        continue
                    if message.get("type") == "samples" and device_id not in samples_for:
                        continue
                    lines.append(f"data: {json.dumps(message, separators=(',', ':'))}\n\n")
                if lines:
                    yield "".join(lines)  # one write for everything that was waiting
        finally:
            runtime.unwatch_samples(samples_for)
            visibility.close()


@router.get("/events", summary="Live monitoring events (Server-Sent Events)")
async def events(
    context: Viewer,
    devices: Annotated[
        str | None,
        Query(max_length=2000, description="Device ids whose raw samples to include"),
    ] = None,
) -> StreamingResponse:
    samples_for = _requested_devices(devices)
    runtime = runtime_of(context.request.app)
    actor = context.actor
    visible = await run_in_threadpool(runtime.service.devices_visible_to, actor)
    visibility = _Visibility(runtime, actor, visible)
    return StreamingResponse(
        _event_stream(runtime, visibility, samples_for),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


# Counters --------------------------------------------------------------------------------------


@router.get("/gateway", summary="What this server process's device gateway did with packets")
def gateway_counters(context: DeviceManager) -> dict[str, dict[str, int]]:
    runtime = runtime_of(context.request.app)
    bridge = runtime.bridge
    return {
        "packets": runtime.gateway.counters,
        "mqtt": dict(bridge.counters) if bridge is not None else {},
    }
