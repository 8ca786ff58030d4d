"""Back-off after failed logins, per (account, source) and per source.

An attacker guessing one account's password from one address is slowed, then blocked; the same
address spraying many accounts is blocked once it passes a higher limit. There is deliberately no
lock on an account as such, so nobody can lock a colleague out from elsewhere: the real user, from
their own address, still logs in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from rekam.his.errors import LoginThrottled
from rekam.store.models import LoginThrottle


@dataclass(frozen=True)
class ThrottlePolicy:
    delay_after_failures: int = 3
    block_after_failures: int = 8
    block_minutes: int = 15
    source_block_after_failures: int = 40

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.block_minutes)


def _account_key(username: str, source: str) -> str:
    return f"acct:{username.lower()}|{source}"


def _source_key(source: str) -> str:
    return f"src:{source}"


def check_login_allowed(
    session: Session, policy: ThrottlePolicy, username: str, source: str, now: datetime
) -> None:
    """Raise LoginThrottled if this account/source pair or this source must wait."""
    for key in (_account_key(username, source), _source_key(source)):
        row = session.get(LoginThrottle, key)
        if row is not None and row.blocked_until is not None and row.blocked_until > now:
            wait = int((row.blocked_until - now).total_seconds()) + 1
            raise LoginThrottled(
                f"too many failed attempts; try again in {wait} seconds", retry_after_seconds=wait
            )


def record_login_failure(
    session: Session, policy: ThrottlePolicy, username: str, source: str, now: datetime
) -> None:
    account = _bump(session, _account_key(username, source), policy, now)
    if account.failures >= policy.block_after_failures:
        account.blocked_until = now + policy.window
    elif account.failures >= policy.delay_after_failures:
        # 1, 2, 4, 8 ... seconds: a person mistyping barely notices, a script crawls.
        delay = 2 ** (account.failures - policy.delay_after_failures)
        account.blocked_until = now + timedelta(seconds=delay)
    source_row = _bump(session, _source_key(source), policy, now)
    if source_row.failures >= policy.source_block_after_failures:
        source_row.blocked_until = now + policy.window


def record_login_success(session: Session, username: str, source: str) -> None:
    row = session.get(LoginThrottle, _account_key(username, source))
    if row is not None:
        session.delete(row)


def _bump(session: Session, key: str, policy: ThrottlePolicy, now: datetime) -> LoginThrottle:
    row = session.get(LoginThrottle, key)
    if row is None:
        row = LoginThrottle(key=key, failures=0, last_failure_at=now)
        session.add(row)
    elif row.last_failure_at < now - policy.window and (
        row.blocked_until is None or row.blocked_until <= now
    ):
        row.failures = 0  # old failures are forgotten after a quiet window
    row.failures += 1
    row.last_failure_at = now
    return row
