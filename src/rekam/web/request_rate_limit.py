"""Flood protection: a token bucket per source address for requests without a live session.

Requests carrying a session cookie that this process has recently seen valid are not counted
against their address, so a flood from a shared address (a clinic's NAT, or loopback in tests)
does not shut out logged-in staff. Unknown cookies count as unauthenticated.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from rekam.web.client_address import client_address
from rekam.web.cookies import SESSION_COOKIE, read_cookie


@dataclass
class _Bucket:
    tokens: float
    updated: float


class KnownSessions:
    """Hashes of session tokens recently verified valid, bounded in size and age."""

    def __init__(self, max_entries: int = 50_000, max_age_seconds: float = 300.0) -> None:
        self._entries: OrderedDict[str, float] = OrderedDict()
        self.max_entries = max_entries
        self.max_age = max_age_seconds

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def remember(self, token: str) -> None:
        key = self._key(token)
        self._entries[key] = time.monotonic()
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, token: str) -> None:
        self._entries.pop(self._key(token), None)

    def recently_valid(self, token: str) -> bool:
        seen = self._entries.get(self._key(token))
        return seen is not None and time.monotonic() - seen < self.max_age


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        known_sessions: KnownSessions,
        rate_per_second: float,
        burst: int,
        trusted_proxies: frozenset[str] = frozenset(),
        max_sources: int = 100_000,
    ) -> None:
        self.app = app
        self.known = known_sessions
        self.rate = rate_per_second
        self.burst = float(burst)
        self.trusted_proxies = trusted_proxies
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.refused = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        token = read_cookie(scope, SESSION_COOKIE)
        if token and self.known.recently_valid(token):
            await self.app(scope, receive, send)
            return
        if not self._take(client_address(scope, self.trusted_proxies)):
            self.refused += 1
            response = PlainTextResponse(
                "Too many requests / Terlalu banyak permintaan",
                status_code=429,
                headers={"retry-after": "1"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _take(self, source: str) -> bool:
        now = time.monotonic()
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = _Bucket(tokens=self.burst, updated=now)
            self._buckets[source] = bucket
            if len(self._buckets) > self.max_sources:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            self._buckets.move_to_end(source)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True
