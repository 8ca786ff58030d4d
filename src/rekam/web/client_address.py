"""The address a request came from, believing X-Forwarded-For only from configured proxies."""

from __future__ import annotations

from starlette.types import Scope


def client_address(scope: Scope, trusted_proxies: frozenset[str]) -> str:
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if peer in trusted_proxies:
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-for":
                text = bytes(value).decode("latin-1")
                hops = [h.strip() for h in text.split(",") if h.strip()]
                # the right-most address not belonging to our proxies is the client
                for hop in reversed(hops):
                    if hop not in trusted_proxies:
                        return hop[:64]
    return str(peer)[:64]
