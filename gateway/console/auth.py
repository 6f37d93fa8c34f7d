"""Who may use the console: users and roles in the store, argon2id password hashes, sessions
(the cookie holds a random token; the store keeps its SHA-256 and the session's CSRF token),
login attempts rate-limited per client address, and a lockout after repeated failures."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select

from gateway.store.models import ConsoleSession, ConsoleUser, LoginAttempt

ROLES = ("viewer", "operator", "admin")
ACTING_ROLES = ("operator", "admin")          # may resend, acknowledge, subscribe
_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not a password anyone has")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.timezone.utc) if value is not None and value.tzinfo is None else value


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserError(Exception):
    """A mistake managing users (unknown role, duplicate name, weak password)."""


class LoginRefused(Exception):
    def __init__(self, message: str, locked: bool = False):
        super().__init__(message)
        self.locked = locked


@dataclass(frozen=True)
class Who:
    """The user behind a request."""

    id: int
    name: str
    role: str
    csrf: str
    via: str = "password"                     # password | proxy

    @property
    def can_act(self) -> bool:
        return self.role in ACTING_ROLES


# -- managing users (swgw console user …) ------------------------------------------------
def _check_password(password: str) -> None:
    if len(password) < 10:
        raise UserError("the password must have at least 10 characters")


def add_user(sessions, name: str, role: str, password: str) -> ConsoleUser:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)} (got {role!r})")
    if not name or len(name) > 80 or not name.isprintable() or " " in name:
        raise UserError("a user name is 1 to 80 printable characters without spaces")
    _check_password(password)
    with sessions.begin() as s:
        if s.scalar(select(ConsoleUser.id).where(ConsoleUser.name == name)) is not None:
            raise UserError(f"user {name!r} exists already; `swgw console user passwd {name}` changes the password")
        user = ConsoleUser(name=name, role=role, password_hash=_hasher.hash(password), created_at=_now())
        s.add(user)
    return user


def set_password(sessions, name: str, password: str, role: str | None = None) -> None:
    _check_password(password)
    if role is not None and role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)} (got {role!r})")
    with sessions.begin() as s:
        user = s.scalar(select(ConsoleUser).where(ConsoleUser.name == name))
        if user is None:
            raise UserError(f"no console user {name!r}")
        user.password_hash = _hasher.hash(password)
        user.failed_logins, user.locked_until = 0, None
        if role:
            user.role = role
        s.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))  # log out everywhere


def remove_user(sessions, name: str) -> None:
    with sessions.begin() as s:
        user = s.scalar(select(ConsoleUser).where(ConsoleUser.name == name))
        if user is None:
            raise UserError(f"no console user {name!r}")
        s.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
        s.delete(user)


def users(sessions) -> list[ConsoleUser]:
    with sessions() as s:
        return list(s.scalars(select(ConsoleUser).order_by(ConsoleUser.name)))


# -- logging in --------------------------------------------------------------------------
def login(sessions, cfg, name: str, password: str, client: str) -> tuple[Who, str]:
    """Check a login; returns the user and a new session token. Refuses (LoginRefused) when the
    client has tried too often in the last minute, the user is locked out, or the password is
    wrong (which counts towards the lockout). Every attempt is recorded (committed, refused or not)."""
    now = _now()
    name = name[:80]
    with sessions.begin() as s:
        refused, result = _check_login(s, cfg, name, password, client[:80], now)
    if refused is not None:
        raise refused
    return result


def _check_login(s, cfg, name, password, client, now):
    recent = s.scalar(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.client == client, LoginAttempt.at >= now - dt.timedelta(minutes=1)))
    attempt = LoginAttempt(name=name, client=client, ok=0, at=now)
    s.add(attempt)
    if recent >= cfg.client_attempts_per_minute:
        return LoginRefused("too many login attempts from this address; wait a minute"), None
    user = s.scalar(select(ConsoleUser).where(ConsoleUser.name == name))
    locked = _aware(user.locked_until) if user is not None else None
    if user is not None and locked is not None and locked > now:
        return LoginRefused(f"this user is locked out after {user.failed_logins} failed logins, until "
                            f"{locked:%H:%M} UTC", locked=True), None
    try:
        _hasher.verify(user.password_hash if user is not None else _DUMMY, password)
        good = user is not None
    except (VerificationError, InvalidHashError):
        good = False
    if not good:
        if user is not None:
            user.failed_logins = (user.failed_logins or 0) + 1
            if user.failed_logins >= cfg.max_failed_logins:
                user.locked_until = now + dt.timedelta(minutes=cfg.lockout_minutes)
                return LoginRefused(f"wrong name or password; this user is now locked out for "
                                    f"{cfg.lockout_minutes:g} minutes", locked=True), None
        return LoginRefused("wrong name or password"), None
    user.failed_logins, user.locked_until = 0, None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    attempt.ok = 1
    return None, _open_session(s, cfg, user, "password")


def _open_session(s, cfg, user: ConsoleUser, via: str) -> tuple[Who, str]:
    now = _now()
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    s.add(ConsoleSession(token_sha256=_digest(token), user_id=user.id, csrf=csrf, created_at=now,
                         expires_at=now + dt.timedelta(hours=cfg.session_hours)))
    return Who(user.id, user.name, user.role, csrf, via), token


def proxy_session(sessions, cfg, name: str) -> tuple[Who, str] | None:
    """A session for a user a trusted reverse proxy vouches for (by header); None if no such user."""
    with sessions.begin() as s:
        user = s.scalar(select(ConsoleUser).where(ConsoleUser.name == name[:80]))
        if user is None:
            return None
        return _open_session(s, cfg, user, "proxy")


def session_user(sessions, token: str | None) -> Who | None:
    if not token:
        return None
    with sessions() as s:
        row = s.execute(select(ConsoleSession, ConsoleUser).join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)
                        .where(ConsoleSession.token_sha256 == _digest(token))).first()
        if row is None:
            return None
        sess, user = row
        if _aware(sess.expires_at) < _now():
            return None
        return Who(user.id, user.name, user.role, sess.csrf)


def logout(sessions, token: str | None) -> None:
    if token:
        with sessions.begin() as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.token_sha256 == _digest(token)))


def csrf_ok(who: Who, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(who.csrf, given)
