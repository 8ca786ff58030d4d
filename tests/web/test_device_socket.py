"""The device WebSocket's flow control: reading pauses only when the app falls behind.

The protocol object is uvicorn's own (a subclass); only its transport is a recording stand-in,
so that pauses and resumptions can be counted. End to end, devices streaming through a real
server are tested in tests/web/test_monitor_stream.py."""

from __future__ import annotations

import asyncio

from uvicorn.config import Config
from uvicorn.server import ServerState

from rekam.web.device_socket import HIGH_WATER, DeviceWebSocketProtocol


class RecordingTransport:
    def __init__(self) -> None:
        self.pauses = 0
        self.resumes = 0

    def pause_reading(self) -> None:
        self.pauses += 1

    def resume_reading(self) -> None:
        self.resumes += 1


async def _app(scope: object, receive: object, send: object) -> None:  # never called here
    raise AssertionError


def _protocol() -> tuple[DeviceWebSocketProtocol, RecordingTransport]:
    config = Config(_app, ws=DeviceWebSocketProtocol, lifespan="off")
    config.load()
    protocol = DeviceWebSocketProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.transport = transport  # type: ignore[assignment]
    return protocol, transport


def _message_arrives(protocol: DeviceWebSocketProtocol, payload: bytes) -> None:
    protocol.curr_msg_data_type = "bytes"
    protocol.frames = [payload]
    protocol.send_receive_event_to_app()


def test_reading_goes_on_while_the_app_keeps_up() -> None:
    async def run() -> None:
        protocol, transport = _protocol()
        for n in range(1000):
            _message_arrives(protocol, n.to_bytes(4, "big"))
            message = await protocol.receive()
            assert message == {"type": "websocket.receive", "bytes": n.to_bytes(4, "big")}
        assert transport.pauses == 0  # the stock protocol pauses and resumes 1000 times
        assert transport.resumes == 0

    asyncio.run(run())


def test_reading_pauses_when_the_app_falls_behind_and_resumes_when_it_catches_up() -> None:
    async def run() -> None:
        protocol, transport = _protocol()
        for n in range(HIGH_WATER - 1):
            _message_arrives(protocol, bytes([n]))
        assert transport.pauses == 0
        _message_arrives(protocol, b"last")
        assert transport.pauses == 1
        _message_arrives(protocol, b"one more read")  # data already read still reaches the app
        assert transport.pauses == 1
        received = [await protocol.receive() for _ in range(HIGH_WATER + 1)]
        assert [m["bytes"] for m in received][-2:] == [b"last", b"one more read"]
        assert transport.resumes == 1  # resumed once the queue was empty
        assert protocol.read_paused is False

    asyncio.run(run())
