"""Accounts: creation, login, one-time passwords, resets, TOTP second factor."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from datetime import datetime

import pytest
from sqlalchemy import select

from rekam.his.accounts import AccountService
from rekam.his.errors import (
    Conflict,
    LoginRefused,
    PermissionDenied,
    ValidationFailed,
    WeakPassword,
)
from rekam.his.rbac import Actor, Role
from rekam.store import Database
from rekam.store.models import User, WebSession

from .conftest import Clock

GOOD = "Nasi-Goreng-Kampung-9"
SYSTEM = Actor.system()


def rfc6238(secret: bytes, at: datetime, step: int = 30, digits: int = 6) -> str:
    """Reference TOTP computed straight from RFC 6238/4226, independent of Rekam's code."""
    counter = int(at.timestamp()) // step
    mac = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def test_create_and_login(accounts: AccountService, database: Database) -> None:
    accounts.create_user(SYSTEM, "Dr.Sari", "dr. Sari", Role.DOCTOR, GOOD)
    outcome = accounts.login("dr.sari", GOOD, "10.0.0.5")
    assert not outcome.second_factor_required and not outcome.must_change_password
    active = accounts.resolve_session(outcome.session_token)
    assert active is not None and active.actor.role is Role.DOCTOR
    with database.transaction() as session:
        stored = session.scalars(select(WebSession)).one()
        user = session.scalars(select(User)).one()
    # only the token's hash is stored, and the password only as an Argon2id hash
    assert stored.token_hash == hashlib.sha256(outcome.session_token.encode()).hexdigest()
    assert outcome.session_token not in stored.token_hash
    assert user.password_hash.startswith("$argon2id$") and GOOD not in user.password_hash


def test_wrong_password_and_unknown_user_read_the_same(accounts: AccountService) -> None:
    accounts.create_user(SYSTEM, "ns.dewi", "Ns. Dewi", Role.NURSE, GOOD)
    with pytest.raises(LoginRefused) as wrong:
        accounts.login("ns.dewi", GOOD + "x", "10.0.0.5")
    with pytest.raises(LoginRefused) as unknown:
        accounts.login("nobody", GOOD, "10.0.0.5")
    assert str(wrong.value) == str(unknown.value)


def test_inactive_user_cannot_log_in(accounts: AccountService, database: Database) -> None:
    accounts.create_user(SYSTEM, "ns.dewi", "Ns. Dewi", Role.NURSE, GOOD)
    with database.transaction() as session:
        session.scalars(select(User)).one().active = False
    with pytest.raises(LoginRefused):
        accounts.login("ns.dewi", GOOD, "10.0.0.5")


def test_validation_and_duplicates(accounts: AccountService) -> None:
    accounts.create_user(SYSTEM, "apt.rina", "apt. Rina", Role.PHARMACIST, GOOD)
    with pytest.raises(Conflict):
        accounts.create_user(SYSTEM, "APT.RINA", "Another", Role.PHARMACIST, GOOD)
    with pytest.raises(ValidationFailed) as bad_name:
        accounts.create_user(SYSTEM, "a b", "Name", Role.NURSE, GOOD)
    assert bad_name.value.field == "username"
    with pytest.raises(ValidationFailed):
        accounts.create_user(SYSTEM, "someone", "Name", "surgeon", GOOD)
    with pytest.raises(WeakPassword):
        accounts.create_user(SYSTEM, "someone", "Name", Role.NURSE, "password1234")


def test_only_admins_create_users(accounts: AccountService) -> None:
    accounts.create_user(SYSTEM, "dr.sari", "dr. Sari", Role.DOCTOR, GOOD)
    doctor = Actor(user_id="x", username="dr.sari", role=Role.DOCTOR)
    with pytest.raises(PermissionDenied):
        accounts.create_user(doctor, "new.user", "New", Role.ADMIN, GOOD)
    with pytest.raises(PermissionDenied):
        accounts.list_users(doctor)


def test_one_time_password_must_be_changed(accounts: AccountService) -> None:
    created = accounts.create_user(SYSTEM, "lab.agus", "Agus", Role.LAB)
    assert created.one_time_password
    outcome = accounts.login("lab.agus", created.one_time_password, "10.0.0.5")
    assert outcome.must_change_password
    active = accounts.resolve_session(outcome.session_token)
    assert active is not None
    with pytest.raises(ValidationFailed):
        accounts.change_password(active.actor, "wrong-current-password", GOOD)
    with pytest.raises(ValidationFailed):
        accounts.change_password(active.actor, created.one_time_password, created.one_time_password)
    accounts.change_password(active.actor, created.one_time_password, GOOD)
    assert not accounts.login("lab.agus", GOOD, "10.0.0.5").must_change_password
    with pytest.raises(LoginRefused):
        accounts.login("lab.agus", created.one_time_password, "10.0.0.6")


def test_reset_password_ends_sessions(accounts: AccountService) -> None:
    accounts.create_user(SYSTEM, "dr.sari", "dr. Sari", Role.DOCTOR, GOOD)
    token = accounts.login("dr.sari", GOOD, "10.0.0.5").session_token
    one_time = accounts.reset_password(SYSTEM, "dr.sari")
    assert accounts.resolve_session(token) is None
    with pytest.raises(LoginRefused):
        accounts.login("dr.sari", GOOD, "10.0.0.5")
    assert accounts.login("dr.sari", one_time, "10.0.0.5").must_change_password


def test_totp_second_factor(accounts: AccountService, clock: Clock) -> None:
    accounts.create_user(SYSTEM, "dr.sari", "dr. Sari", Role.DOCTOR, GOOD)
    token = accounts.login("dr.sari", GOOD, "10.0.0.5").session_token
    actor = accounts.resolve_session(token).actor  # type: ignore[union-attr]
    enrolment = accounts.begin_totp_enrolment(actor)
    secret = base64.b32decode(enrolment.secret_base32 + "=" * (-len(enrolment.secret_base32) % 8))
    assert enrolment.provisioning_uri.startswith("otpauth://totp/Rekam%3Adr.sari?")
    with pytest.raises(ValidationFailed):
        accounts.confirm_totp_enrolment(
            actor, "000000" if rfc6238(secret, clock.now) != "000000" else "111111"
        )
    accounts.confirm_totp_enrolment(actor, rfc6238(secret, clock.now))

    clock.advance(seconds=60)
    outcome = accounts.login("dr.sari", GOOD, "10.0.0.5")
    assert outcome.second_factor_required
    pending = accounts.resolve_session(outcome.session_token)
    assert pending is not None and pending.second_factor_pending
    with pytest.raises(LoginRefused):
        accounts.verify_second_factor(outcome.session_token, "12345", "10.0.0.5")
    code = rfc6238(secret, clock.now)
    accounts.verify_second_factor(outcome.session_token, code, "10.0.0.5")
    done = accounts.resolve_session(outcome.session_token)
    assert done is not None and not done.second_factor_pending

    # the same code cannot be replayed for another login
    again = accounts.login("dr.sari", GOOD, "10.0.0.5")
    with pytest.raises(LoginRefused):
        accounts.verify_second_factor(again.session_token, code, "10.0.0.5")


def test_totp_secret_is_sealed_at_rest(accounts: AccountService, database: Database) -> None:
    accounts.create_user(SYSTEM, "dr.sari", "dr. Sari", Role.DOCTOR, GOOD)
    token = accounts.login("dr.sari", GOOD, "10.0.0.5").session_token
    actor = accounts.resolve_session(token).actor  # type: ignore[union-attr]
    enrolment = accounts.begin_totp_enrolment(actor)
    secret = base64.b32decode(enrolment.secret_base32 + "=" * (-len(enrolment.secret_base32) % 8))
    with database.transaction() as session:
        sealed = session.scalars(select(User)).one().totp_secret_sealed
    assert sealed is not None and secret not in sealed
