"""Sessions: idle and absolute timeouts, logout, CSRF tokens bound to the session."""

from __future__ import annotations

import hashlib
import hmac

from rekam.his.accounts import AccountService
from rekam.his.rbac import Actor, Role
from rekam.his.sessions import csrf_token_for, csrf_token_matches

from .conftest import Clock

GOOD = "Nasi-Goreng-Kampung-9"


def _logged_in(accounts: AccountService) -> str:
    accounts.create_user(Actor.system(), "ns.dewi", "Ns. Dewi", Role.NURSE, GOOD)
    return accounts.login("ns.dewi", GOOD, "10.0.0.5").session_token


def test_idle_timeout(accounts: AccountService, clock: Clock) -> None:
    token = _logged_in(accounts)
    clock.advance(minutes=29)
    assert accounts.resolve_session(token) is not None  # activity renews the idle timer
    clock.advance(minutes=29)
    assert accounts.resolve_session(token) is not None
    clock.advance(minutes=31)
    assert accounts.resolve_session(token) is None
    clock.advance(minutes=-31)
    assert accounts.resolve_session(token) is None  # an expired session is gone for good


def test_absolute_timeout_despite_activity(accounts: AccountService, clock: Clock) -> None:
    token = _logged_in(accounts)
    for _ in range(47):  # every 15 minutes for 11h45
        clock.advance(minutes=15)
        assert accounts.resolve_session(token) is not None
    clock.advance(minutes=16)
    assert accounts.resolve_session(token) is None


def test_logout_ends_the_session(accounts: AccountService) -> None:
    token = _logged_in(accounts)
    accounts.logout(token)
    assert accounts.resolve_session(token) is None


def test_unknown_and_absurd_tokens(accounts: AccountService) -> None:
    _logged_in(accounts)
    assert accounts.resolve_session("") is None
    assert accounts.resolve_session("x" * 10_000) is None
    assert accounts.resolve_session("not-a-session") is None


def test_csrf_token_is_bound_to_the_session() -> None:
    token_a, token_b = "session-token-a", "session-token-b"
    expected = hmac.new(token_a.encode(), b"rekam-csrf-v1", hashlib.sha256).hexdigest()
    assert csrf_token_for(token_a) == expected
    assert csrf_token_matches(token_a, expected)
    assert not csrf_token_matches(token_b, expected)
    assert not csrf_token_matches(token_a, None)
    assert not csrf_token_matches(token_a, "")
    assert not csrf_token_matches(token_a, expected[:-1] + ("0" if expected[-1] != "0" else "1"))
