"""A fresh database and account service per test, with a clock the test moves."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from rekam.crypto import SecretSealer
from rekam.his.accounts import AccountService
from rekam.his.login_throttle import ThrottlePolicy
from rekam.his.sessions import SessionPolicy
from rekam.store import Database, upgrade_to_latest


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 22, 8, 0, tzinfo=UTC))


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    upgrade_to_latest(db)
    yield db
    db.dispose()


@pytest.fixture
def accounts(database: Database, clock: Clock) -> AccountService:
    return AccountService(
        database,
        SecretSealer(b"test-passphrase-0123456789", os.urandom(16)),
        throttle=ThrottlePolicy(
            delay_after_failures=3,
            block_after_failures=6,
            block_minutes=15,
            source_block_after_failures=20,
        ),
        session_policy=SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12)),
        clock=clock,
    )
