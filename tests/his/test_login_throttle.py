"""Back-off after failed logins: slows, then blocks one account from one source, never everyone."""

from __future__ import annotations

import pytest

from rekam.his.accounts import AccountService
from rekam.his.errors import LoginRefused, LoginThrottled
from rekam.his.rbac import Actor, Role

from .conftest import Clock

GOOD = "Nasi-Goreng-Kampung-9"
ATTACKER = "203.0.113.7"
NURSE_PC = "10.0.0.5"


@pytest.fixture
def two_users(accounts: AccountService) -> AccountService:
    accounts.create_user(Actor.system(), "dr.sari", "dr. Sari", Role.DOCTOR, GOOD)
    accounts.create_user(Actor.system(), "ns.dewi", "Ns. Dewi", Role.NURSE, GOOD)
    return accounts


def _fail(accounts: AccountService, user: str, source: str) -> type[Exception]:
    try:
        accounts.login(user, "wrong-password-123", source)
    except (LoginRefused, LoginThrottled) as exc:
        return type(exc)
    raise AssertionError("a wrong password was accepted")


def test_delay_then_block_for_one_account_and_source(
    two_users: AccountService, clock: Clock
) -> None:
    accounts = two_users
    assert [_fail(accounts, "dr.sari", ATTACKER) for _ in range(3)] == [LoginRefused] * 3
    # the 4th attempt right away is slowed down (the 3rd failure set a 1 s delay)
    with pytest.raises(LoginThrottled) as slowed:
        accounts.login("dr.sari", GOOD, ATTACKER)
    assert 1 <= slowed.value.retry_after_seconds <= 2
    # waiting out each delay, failures go on until the block
    for _ in range(3):
        clock.advance(seconds=60)
        assert _fail(accounts, "dr.sari", ATTACKER) is LoginRefused
    clock.advance(seconds=60)
    with pytest.raises(LoginThrottled) as blocked:
        accounts.login("dr.sari", GOOD, ATTACKER)  # even the right password is refused now
    assert blocked.value.retry_after_seconds > 10 * 60

    # the real user from their own machine, and another user from the same source, still log in
    assert accounts.login("dr.sari", GOOD, NURSE_PC).session_token
    assert accounts.login("ns.dewi", GOOD, ATTACKER).session_token

    clock.advance(minutes=16)
    assert accounts.login("dr.sari", GOOD, ATTACKER).session_token


def test_success_resets_the_account_counter(two_users: AccountService, clock: Clock) -> None:
    accounts = two_users
    for _ in range(2):
        _fail(accounts, "dr.sari", NURSE_PC)
    accounts.login("dr.sari", GOOD, NURSE_PC)
    for _ in range(2):
        assert _fail(accounts, "dr.sari", NURSE_PC) is LoginRefused


def test_password_spraying_from_one_source_is_blocked(
    two_users: AccountService, clock: Clock
) -> None:
    accounts = two_users
    for i in range(20):  # the source limit in this fixture is 20 failures
        assert _fail(accounts, f"guess{i}", ATTACKER) is LoginRefused
        clock.advance(seconds=1)
    with pytest.raises(LoginThrottled):
        accounts.login("ns.dewi", GOOD, ATTACKER)
    assert accounts.login("ns.dewi", GOOD, NURSE_PC).session_token
