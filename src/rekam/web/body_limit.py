"""Refuse request bodies above a size limit with 413, before the application reads them."""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so that frameworks reading the body
    (which turn other errors into 400) pass it through as 413."""

    def __init__(self) -> None:
        super().__init__(413, "Request body too large / Isi permintaan terlalu besar")


class BodySizeLimitMiddleware:
    """``max_bytes`` for every request, except paths matching ``upload_paths`` (file uploads),
    which may send up to ``max_upload_bytes``."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        max_upload_bytes: int | None = None,
        upload_paths: re.Pattern[str] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes_default = max_bytes
        self.max_upload_bytes = max_upload_bytes or max_bytes
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes_default
        if self.upload_paths is not None and self.upload_paths.fullmatch(scope["path"]):
            limit = self.max_upload_bytes
        headers = {name for name, _ in scope["headers"]}
        if b"content-length" in headers and b"transfer-encoding" in headers:
            # RFC 9112 §6.3: ambiguous framing, the classic request-smuggling vector
            await _refuse(400, scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    status = 400 if declared < 0 else 413
                    await _refuse(status, scope, receive, send)
                    return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await _refuse(413, scope, receive, send)


async def _refuse(status: int, scope: Scope, receive: Receive, send: Send) -> None:
    text = {
        400: "Bad request: invalid message framing / Permintaan tidak sah",
        413: "Request body too large / Isi permintaan terlalu besar",
    }[status]
    response = PlainTextResponse(text, status_code=status, headers={"connection": "close"})
    await response(scope, receive, send)
