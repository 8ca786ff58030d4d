"""User accounts: creation, login with optional TOTP, passwords, sessions."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rekam.crypto import SecretSealer
from rekam.his import sessions as web_sessions
from rekam.his.errors import Conflict, LoginRefused, NotFound, ValidationFailed
from rekam.his.login_throttle import (
    ThrottlePolicy,
    check_login_allowed,
    record_login_failure,
    record_login_success,
)
from rekam.his.passwords import (
    check_password_policy,
    generate_password,
    hash_password,
    needs_rehash,
    verify_password,
)
from rekam.his.rbac import Actor, Permission, Role, authorize
from rekam.his.totp import matching_totp_step, new_totp_secret, provisioning_uri
from rekam.store import Database
from rekam.store.models import User
from rekam.store.types import utc_now

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
SUPPORTED_LANGUAGES = ("id", "en")


@dataclass(frozen=True)
class UserView:
    id: str
    username: str
    display_name: str
    role: Role
    active: bool
    totp_enabled: bool
    must_change_password: bool
    created_at: datetime


@dataclass(frozen=True)
class CreatedUser:
    user: UserView
    one_time_password: str | None


@dataclass(frozen=True)
class LoginOutcome:
    session_token: str
    second_factor_required: bool
    must_change_password: bool


@dataclass(frozen=True)
class TotpEnrolment:
    secret_base32: str
    provisioning_uri: str


def _view(user: User) -> UserView:
    return UserView(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=Role(user.role),
        active=user.active,
        totp_enabled=user.totp_enabled,
        must_change_password=user.must_change_password,
        created_at=user.created_at,
    )


def normalise_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_PATTERN.fullmatch(name):
        raise ValidationFailed(
            "user names have 2–64 characters: letters, digits, '.', '_' or '-'",
            field="username",
            key="account.username_invalid",
        )
    return name


def _totp_purpose(user_id: str) -> str:
    return f"users.totp_secret:{user_id}"


class AccountService:
    """Everything about who may log in and how."""

    def __init__(
        self,
        database: Database,
        sealer: SecretSealer,
        throttle: ThrottlePolicy | None = None,
        session_policy: web_sessions.SessionPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.database = database
        self.sealer = sealer
        self.throttle = throttle or ThrottlePolicy()
        self.session_policy = session_policy or web_sessions.SessionPolicy()
        self.clock = clock

    # Users -------------------------------------------------------------------------------------

    def create_user(
        self,
        actor: Actor,
        username: str,
        display_name: str,
        role: Role | str,
        password: str | None = None,
    ) -> CreatedUser:
        """Create a user; without a password, a one-time password is generated and returned."""
        authorize(actor, Permission.USERS_WRITE)
        name = normalise_username(username)
        try:
            role = Role(role)
        except ValueError as exc:
            roles = ", ".join(r.value for r in Role)
            raise ValidationFailed(
                f"unknown role; choose one of: {roles}", field="role", key="account.role_unknown"
            ) from exc
        display_name = display_name.strip()
        if not display_name or len(display_name) > 200:
            raise ValidationFailed(
                "a display name of 1–200 characters is needed",
                field="name",
                key="account.name_required",
            )
        one_time = None
        if password is None:
            one_time = password = generate_password()
        else:
            check_password_policy(password, name)
        with self.database.transaction(write=True) as session:
            if session.scalar(select(User.id).where(User.username == name)) is not None:
                raise Conflict(
                    f"the user name '{name}' is taken", key="account.username_taken", username=name
                )
            user = User(
                username=name,
                display_name=display_name,
                role=role.value,
                password_hash=hash_password(password),
                must_change_password=one_time is not None,
                created_at=self.clock(),
                password_changed_at=self.clock(),
            )
            session.add(user)
            session.flush()
            return CreatedUser(user=_view(user), one_time_password=one_time)

    def list_users(self, actor: Actor) -> list[UserView]:
        authorize(actor, Permission.USERS_READ)
        with self.database.transaction() as session:
            return [_view(u) for u in session.scalars(select(User).order_by(User.username))]

    def count_users(self) -> int:
        with self.database.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(User)) or 0)

    def get_user(self, actor: Actor, username: str) -> UserView:
        if actor.username != username:
            authorize(actor, Permission.USERS_READ)
        with self.database.transaction() as session:
            return _view(self._user_by_name(session, username))

    def reset_password(self, actor: Actor, username: str) -> str:
        """Give the user a new one-time password; all their sessions end."""
        authorize(actor, Permission.USERS_WRITE)
        one_time = generate_password()
        with self.database.transaction(write=True) as session:
            user = self._user_by_name(session, username)
            user.password_hash = hash_password(one_time)
            user.must_change_password = True
            user.password_changed_at = self.clock()
            web_sessions.end_all_sessions(session, user.id)
        return one_time

    def change_password(self, actor: Actor, current: str, new: str) -> None:
        authorize(actor, Permission.OWN_ACCOUNT_MANAGE)
        with self.database.transaction(write=True) as session:
            user = self._user_by_id(session, actor.user_id)
            if not verify_password(user.password_hash, current):
                raise ValidationFailed(
                    "the current password is wrong",
                    field="current_password",
                    key="account.current_password_wrong",
                )
            if verify_password(user.password_hash, new):
                raise ValidationFailed(
                    "the new password must differ from the current one",
                    field="new_password",
                    key="account.password_unchanged",
                )
            check_password_policy(new, user.username)
            user.password_hash = hash_password(new)
            user.must_change_password = False
            user.password_changed_at = self.clock()

    def set_language(self, actor: Actor, language: str) -> None:
        if language not in SUPPORTED_LANGUAGES:
            raise ValidationFailed(
                "unsupported language", field="language", key="account.language_unknown"
            )
        with self.database.transaction(write=True) as session:
            self._user_by_id(session, actor.user_id).language = language

    # Login -------------------------------------------------------------------------------------

    def login(self, username: str, password: str, source: str) -> LoginOutcome:
        """Check the password (with back-off) and open a session.

        The (deliberately slow) password check runs outside any transaction; only the short
        write that opens the session holds the database's write lock."""
        now = self.clock()
        name = username.strip().lower()[:64]
        with self.database.transaction() as session:
            check_login_allowed(session, self.throttle, name, source, now)
            user = session.scalar(select(User).where(User.username == name))
            user_id = user.id if user else None
            stored_hash = user.password_hash if user else None
            usable = bool(user and user.active)
        if not verify_password(stored_hash, password[:1024]) or not usable:
            self._record_failure(name, source, now)
            raise LoginRefused("wrong user name or password")
        rehash = hash_password(password) if stored_hash and needs_rehash(stored_hash) else None
        with self.database.transaction(write=True) as session:
            user = self._user_by_id(session, user_id)
            record_login_success(session, name, source)
            if rehash:
                user.password_hash = rehash
            token = web_sessions.start_session(
                session, user, self.session_policy, source, now, user.totp_enabled
            )
            return LoginOutcome(token, user.totp_enabled, user.must_change_password)

    def verify_second_factor(self, session_token: str, code: str, source: str) -> None:
        now = self.clock()
        active = self.resolve_session(session_token)
        if active is None or not active.second_factor_pending:
            raise LoginRefused("the login has expired; start again")
        with self.database.transaction() as session:
            check_login_allowed(session, self.throttle, active.actor.username, source, now)
            user = self._user_by_id(session, active.actor.user_id)
            secret = self.sealer.open(user.totp_secret_sealed or b"", _totp_purpose(user.id))
            last_step = user.totp_last_step
        step = matching_totp_step(secret, code, now)
        if step is None or (last_step is not None and step <= last_step):
            self._record_failure(active.actor.username, source, now)
            raise LoginRefused("the code is wrong or already used")
        with self.database.transaction(write=True) as session:
            user = self._user_by_id(session, active.actor.user_id)
            if user.totp_last_step is not None and step <= user.totp_last_step:
                raise LoginRefused("the code is wrong or already used")  # used meanwhile
            user.totp_last_step = step
            record_login_success(session, user.username, source)
            web_sessions.complete_second_factor(session, session_token)

    def _record_failure(self, username: str, source: str, now: datetime) -> None:
        with self.database.transaction(write=True) as session:
            record_login_failure(session, self.throttle, username, source, now)

    def resolve_session(self, session_token: str) -> web_sessions.ActiveSession | None:
        now = self.clock()
        with self.database.transaction() as session:
            active, change = web_sessions.resolve_session(
                session, session_token, self.session_policy, now
            )
        if change is not None:  # renew the idle timer (once a minute) or drop an expired one
            with self.database.transaction(write=True) as session:
                web_sessions.apply_session_change(session, session_token, change, now)
        return active

    def logout(self, session_token: str) -> None:
        with self.database.transaction(write=True) as session:
            web_sessions.end_session(session, session_token)

    # Second factor -----------------------------------------------------------------------------

    def begin_totp_enrolment(self, actor: Actor) -> TotpEnrolment:
        authorize(actor, Permission.OWN_ACCOUNT_MANAGE)
        secret = new_totp_secret()
        with self.database.transaction(write=True) as session:
            user = self._user_by_id(session, actor.user_id)
            user.totp_secret_sealed = self.sealer.seal(secret, _totp_purpose(user.id))
            user.totp_enabled = False
            user.totp_last_step = None
            return TotpEnrolment(
                secret_base32=base64.b32encode(secret).decode().rstrip("="),
                provisioning_uri=provisioning_uri(secret, user.username),
            )

    def confirm_totp_enrolment(self, actor: Actor, code: str) -> None:
        authorize(actor, Permission.OWN_ACCOUNT_MANAGE)
        with self.database.transaction(write=True) as session:
            user = self._user_by_id(session, actor.user_id)
            if user.totp_secret_sealed is None:
                raise ValidationFailed(
                    "start the second-factor set-up first",
                    field="code",
                    key="account.totp_not_started",
                )
            secret = self.sealer.open(user.totp_secret_sealed, _totp_purpose(user.id))
            step = matching_totp_step(secret, code, self.clock())
            if step is None:
                raise ValidationFailed(
                    "the code does not match; check the device clock",
                    field="code",
                    key="account.totp_mismatch",
                )
            user.totp_enabled = True
            user.totp_last_step = step

    def disable_totp(self, actor: Actor, username: str) -> None:
        if actor.username != username:
            authorize(actor, Permission.USERS_WRITE)
        with self.database.transaction(write=True) as session:
            user = self._user_by_name(session, username)
            user.totp_enabled = False
            user.totp_secret_sealed = None
            user.totp_last_step = None

    # Lookups -----------------------------------------------------------------------------------

    @staticmethod
    def _user_by_name(session: Session, username: str) -> User:
        user = session.scalar(select(User).where(User.username == username.strip().lower()))
        if user is None:
            raise NotFound(
                f"no user named '{username}'", key="account.no_such_user", username=username
            )
        return user

    @staticmethod
    def _user_by_id(session: Session, user_id: str | None) -> User:
        user = session.get(User, user_id) if user_id else None
        if user is None:
            raise NotFound("the account no longer exists", key="account.gone")
        return user
