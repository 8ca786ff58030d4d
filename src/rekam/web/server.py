"""Serve the app over TLS only (uvicorn), with an optional plain-HTTP listener that redirects."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import ssl
from asyncio import sslproto
from typing import Any

import h11
import uvicorn
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from rekam.his.installation import Clinic, installation_passphrase
from rekam.monitor.packets import MAX_PACKET_LENGTH
from rekam.pki import server_tls_context
from rekam.web.app import create_app
from rekam.web.device_socket import DeviceWebSocketProtocol
from rekam.web.loop_watchdog import LoopWatchdog
from rekam.web.monitor_stream import runtime_of

log = logging.getLogger("rekam.server")

HEADER_TIMEOUT_SECONDS = 10.0
TLS_READ_BUFFER_BYTES = 64 * 1024
"""What each TLS connection reads from its socket at most at once. asyncio gives every TLS
connection a 256 KiB receive buffer, filled with zeros when the connection opens: about 125 MiB
for 500 wearables that each send 100-byte packets. Four TLS records' worth is plenty."""
KEEP_ALIVE_SECONDS = 15
#: at shutdown, requests still running after this long are cancelled: live event streams never
#: end by themselves, and an open dashboard must not keep the server from stopping
GRACEFUL_SHUTDOWN_SECONDS = 3


class HeaderDeadlineProtocol(H11Protocol):
    """HTTP/1.1 that closes connections whose request headers do not arrive in time.

    Stock servers wait as long as a slow client keeps trickling bytes (slowloris); here each
    request's headers must be complete within HEADER_TIMEOUT_SECONDS of the connection opening
    or of the previous response."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        self._cycle_when_armed = self.cycle
        self._header_deadline: asyncio.TimerHandle | None = self.loop.call_later(
            HEADER_TIMEOUT_SECONDS, self._header_deadline_passed
        )

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not self._cycle_when_armed:
            self._cancel_header_deadline()
            self._cycle_when_armed = self.cycle
            self._describe_tls()

    def _describe_tls(self) -> None:
        """Tell the app which protocol and cipher protect this request (ASGI TLS extension).

        The request's task has been scheduled but not started, so its scope can still be
        completed here."""
        ssl_object = self.transport.get_extra_info("ssl_object")
        if ssl_object is None or self.scope is None:
            return
        cipher = ssl_object.cipher()
        self.scope.setdefault("extensions", {})["tls"] = {
            "tls_version": ssl_object.version(),
            "cipher_suite": cipher[0] if cipher else None,
        }

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._cancel_header_deadline()
            self._arm_header_deadline()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The WebSocket protocol takes over the connection: no further request headers to wait
        # for, so the deadline must not close it.
        self._cancel_header_deadline()
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing() and self.conn.our_state in (h11.IDLE, h11.DONE):
            self.transport.close()


def smaller_tls_read_buffers() -> None:
    """Give the TLS connections this process accepts from now on a receive buffer of
    ``TLS_READ_BUFFER_BYTES`` (asyncio has no setting for it: its TLS protocol keeps the size as
    a class attribute)."""
    if getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER_BYTES:
        sslproto.SSLProtocol.max_size = TLS_READ_BUFFER_BYTES


class HardenedServer(uvicorn.Server):
    """uvicorn with a bound on the TLS handshake: a connection that does not complete its
    handshake within HEADER_TIMEOUT_SECONDS is dropped (asyncio's default waits 60 s, which lets
    idle connections pile up). uvicorn has no setting for it, so the listening server is created
    with ``ssl_handshake_timeout`` passed through. Its TLS connections get smaller receive
    buffers (:func:`smaller_tls_read_buffers`). A :class:`LoopWatchdog` logs any moment its
    event loop is blocked."""

    watchdog: LoopWatchdog | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        smaller_tls_read_buffers()
        loop = asyncio.get_running_loop()
        self.watchdog = LoopWatchdog(loop)
        self.watchdog.start()
        create_server = loop.create_server

        async def create_server_with_handshake_timeout(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("ssl") is not None:
                kwargs.setdefault("ssl_handshake_timeout", HEADER_TIMEOUT_SECONDS)
            return await create_server(*args, **kwargs)

        loop.create_server = create_server_with_handshake_timeout  # type: ignore[method-assign]
        try:
            await super().startup(sockets)
        finally:
            del loop.create_server

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """After the connections are closed, write the alerts and trend minutes the monitoring
        sink still holds, before uvicorn ends the process (it re-raises the stopping signal)."""
        await super().shutdown(sockets)
        await asyncio.to_thread(runtime_of(self.config.app).stop)
        if self.watchdog is not None:
            self.watchdog.stop()


def uvicorn_config(
    app: Any, host: str, port: int, ssl_context: ssl.SSLContext | None
) -> uvicorn.Config:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=HeaderDeadlineProtocol,
        ws=DeviceWebSocketProtocol,  # device ingest: /api/v1/monitor/devices
        ws_max_size=MAX_PACKET_LENGTH,  # one frame is one device packet
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="off",
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        h11_max_incomplete_event_size=16 * 1024,
        access_log=False,
        log_config=None,
        ssl_context_factory=(lambda _config, _default: ssl_context) if ssl_context else None,
    )
    return config


def _redirect_app(https_port: int) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        host = "localhost"
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1").rsplit(":", 1)[0] or host
        if not host.replace(".", "").replace("-", "").isalnum() and not host.startswith("["):
            await PlainTextResponse("Bad Host header", status_code=400)(scope, receive, send)
            return
        target = f"https://{host}:{https_port}{scope['path']}"
        await RedirectResponse(target, status_code=301)(scope, receive, send)

    return app


def build_servers(clinic: Clinic) -> list[uvicorn.Server]:
    settings = clinic.settings
    context = server_tls_context(
        clinic.pki.server_certificate_chain_path,
        clinic.pki.server_key_path,
        installation_passphrase(settings),
    )
    analysis_process = settings.monitor_analysis_process
    if analysis_process is None:  # the devices' analysis on a core of its own, when there is one
        analysis_process = (os.cpu_count() or 1) >= 2
    app = create_app(clinic, monitor_analysis_process=analysis_process)
    servers: list[uvicorn.Server] = [
        HardenedServer(uvicorn_config(app, settings.host, settings.port, context))
    ]
    if settings.redirect_port:
        servers.append(
            uvicorn.Server(
                uvicorn_config(
                    _redirect_app(settings.port), settings.host, settings.redirect_port, None
                )
            )
        )
    return servers


def serve(clinic: Clinic) -> None:
    """Run until interrupted."""
    servers = build_servers(clinic)
    # The app, its routes and the libraries it loaded live as long as the process: keep them out
    # of the garbage collector's full passes, which otherwise walk them all again and again
    # while devices stream (each packet leaves a little garbage behind).
    gc.collect()
    gc.freeze()

    async def run_all() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    asyncio.run(run_all())
