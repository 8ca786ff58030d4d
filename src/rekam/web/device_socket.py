"""The WebSocket protocol of the server, tuned for device ingest.

uvicorn's ``websockets-sansio`` protocol stops reading a connection after every message it hands
to the app and starts again once the app has taken it: two changes to the event loop's watch list
(system calls) and a trip through the TLS transport for every packet a wearable sends, ten
times a second per device. :class:`DeviceWebSocketProtocol` stops reading only when the app
falls ``HIGH_WATER`` messages behind on a connection, which keeps the same protection against a
client sending faster than the app reads (at most ``HIGH_WATER`` messages, plus those of one
read, wait in memory) without paying for it on every message.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["HIGH_WATER", "DeviceWebSocketProtocol"]

HIGH_WATER = 64
"""Messages waiting for the app on one connection before its reading is paused."""


class DeviceWebSocketProtocol(WebSocketsSansIOProtocol):
    """``websockets-sansio`` with reading paused only when the app is ``HIGH_WATER`` behind."""

    def send_receive_event_to_app(self) -> None:
        paused = self.read_paused
        self.read_paused = True  # keeps the parent from pausing after this one message
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if not self.read_paused and self.queue.qsize() >= HIGH_WATER:
            self.read_paused = True
            self.transport.pause_reading()
