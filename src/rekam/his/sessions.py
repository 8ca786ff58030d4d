"""Server-side login sessions with idle and absolute timeouts, and their CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from rekam.his.rbac import Actor, Role
from rekam.store.models import User, WebSession

# Writing last_seen_at on every request would turn every read into a write; a minute is precise
# enough for an idle timeout measured in tens of minutes.
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)


@dataclass(frozen=True)
class ActiveSession:
    """What a request learns from a valid session cookie."""

    token_hash: str
    actor: Actor
    display_name: str
    language: str | None
    must_change_password: bool
    second_factor_pending: bool
    csrf_token: str


def hash_session_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token_for(session_token: str) -> str:
    """The CSRF token bound to a session: an HMAC of a fixed label under the session token."""
    return hmac.new(session_token.encode(), b"rekam-csrf-v1", hashlib.sha256).hexdigest()


def csrf_token_matches(session_token: str, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(csrf_token_for(session_token), presented)


def start_session(
    session: Session,
    user: User,
    policy: SessionPolicy,
    source: str,
    now: datetime,
    second_factor_pending: bool,
) -> str:
    """Create a session for ``user`` and return its (secret) token for the cookie."""
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=hash_session_token(token),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + policy.absolute,
            second_factor_pending=second_factor_pending,
            source_address=source[:64],
        )
    )
    return token


def resolve_session(
    session: Session, token: str, policy: SessionPolicy, now: datetime
) -> tuple[ActiveSession | None, str | None]:
    """Look a session up without writing: the active session (or None) and the change to make
    afterwards ("touch" to renew the idle timer, "expire" to delete it, or None). Writing is
    left to the caller, in a short transaction of its own, so that looking a session up never
    holds the database's write lock."""
    if not token or len(token) > 128:
        return None, None
    token_hash = hash_session_token(token)
    row = session.get(WebSession, token_hash)
    if row is None:
        return None, None
    if row.expires_at <= now or row.last_seen_at + policy.idle <= now:
        return None, "expire"
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None, "expire"
    active = ActiveSession(
        token_hash=token_hash,
        actor=Actor(
            user_id=user.id,
            username=user.username,
            role=Role(user.role),
            source_address=row.source_address,
        ),
        display_name=user.display_name,
        language=user.language,
        must_change_password=user.must_change_password,
        second_factor_pending=row.second_factor_pending,
        csrf_token=csrf_token_for(token),
    )
    return active, "touch" if now - row.last_seen_at >= _TOUCH_EVERY else None


def apply_session_change(session: Session, token: str, change: str, now: datetime) -> None:
    token_hash = hash_session_token(token)
    if change == "expire":
        session.execute(delete(WebSession).where(WebSession.token_hash == token_hash))
    elif change == "touch":
        row = session.get(WebSession, token_hash)
        if row is not None:
            row.last_seen_at = now


def complete_second_factor(session: Session, token: str) -> None:
    row = session.get(WebSession, hash_session_token(token))
    if row is not None:
        row.second_factor_pending = False


def end_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == hash_session_token(token)))


def end_all_sessions(session: Session, user_id: str) -> None:
    session.execute(delete(WebSession).where(WebSession.user_id == user_id))


def purge_expired_sessions(session: Session, policy: SessionPolicy, now: datetime) -> int:
    result = session.execute(
        delete(WebSession).where(
            (WebSession.expires_at <= now) | (WebSession.last_seen_at <= now - policy.idle)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
