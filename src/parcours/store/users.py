"""People of the back office and their signed-in browsers.

Passwords are kept as argon2id hashes (argon2-cffi's `PasswordHasher`, rehashed at the
next sign-in when its parameters change). A sign-in with an unknown e-mail address still
verifies against a dummy hash, so the time an answer takes does not tell which addresses
exist. `MAX_FAILURES` wrong passwords in a row lock the account for `LOCK`.

A session is a random token in the browser's cookie; only its SHA-256 is stored. It ends
after `IDLE` without a request, `ABSOLUTE` after sign-in at the latest, at sign-out, and
when its user is disabled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, func, insert, select, update

from parcours.store.repositories import new_id
from parcours.store.schema import UserRow, UserSessionRow

__all__ = [
    "ABSOLUTE",
    "IDLE",
    "LOCK",
    "MAX_FAILURES",
    "MIN_PASSWORD",
    "ROLES",
    "TOUCH_EVERY",
    "SignIn",
    "SignedIn",
    "User",
    "UserError",
    "UserStore",
    "generate_password",
    "normalise_email",
    "token_digest",
]

ROLES: Final = ("admin", "strategist", "agent", "viewer")
MAX_FAILURES: Final = 5
LOCK: Final = dt.timedelta(minutes=15)
IDLE: Final = dt.timedelta(hours=8)
ABSOLUTE: Final = dt.timedelta(days=7)
# last_seen_at is written at most this often: a page view is not a write each time.
TOUCH_EVERY: Final = dt.timedelta(minutes=1)
MIN_PASSWORD: Final = 12
_MAX_PASSWORD: Final = 1024  # argon2 hashes anything; a megabyte "password" is an attack
# Enough to refuse typos; the address is checked for real by whoever sends it mail.
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class UserError(ValueError):
    """A user cannot be made or changed as asked (the message says which field and why)."""


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    creditor_id: uuid.UUID
    email: str
    name: str
    role: str
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    last_login_at: dt.datetime | None
    failed_logins: int
    locked_until: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class SignIn:
    """How a sign-in went: `user` is set only when it succeeded.

    `reason` is for the audit log and tests (`ok`, `unknown`, `wrong_password`,
    `locked_now` (this failure locked it), `locked`, `disabled`); people are shown one
    message whatever it is, so that it does not tell which addresses exist."""

    user: User | None
    reason: str
    known: User | None = None  # the account the address names, when there is one


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session and its user."""

    user: User
    token_hash: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime


@lru_cache(maxsize=1)
def _default_hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with RFC 9106's low-memory profile


@lru_cache(maxsize=8)
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_urlsafe(16))


def token_digest(token: str) -> str:
    """The SHA-256 (hex) under which a session token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def generate_password() -> str:
    """A random password of 20 URL-safe characters (about 120 bits)."""
    return secrets.token_urlsafe(15)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _columns() -> tuple[Any, ...]:
    u = UserRow
    return (
        u.id, u.creditor_id, u.email, u.name, u.role, u.created_at, u.disabled_at,
        u.last_login_at, u.failed_logins, u.locked_until,
    )  # fmt: skip


def _user(row: Any) -> User:
    return User(
        row.id, row.creditor_id, row.email, row.name, row.role, row.created_at,
        row.disabled_at, row.last_login_at, int(row.failed_logins or 0), row.locked_until,
    )  # fmt: skip


class UserStore:
    """Users and sessions, inside the caller's transaction (the caller commits).

    Lookups by e-mail and by session are global (an address or a token names one user,
    whose creditor then scopes everything); lists and changes take the creditor."""

    def __init__(self, connection: Connection, hasher: PasswordHasher | None = None) -> None:
        self.connection = connection
        self.hasher = hasher or _default_hasher()

    # -- users -----------------------------------------------------------------------------

    def add(
        self,
        creditor_id: uuid.UUID,
        email: str,
        name: str,
        role: str,
        password: str,
        now: dt.datetime,
    ) -> User:
        """Make a user; the e-mail address is stored lower-cased and must be new."""
        address = normalise_email(email)
        if len(address) > 254 or not _EMAIL.fullmatch(address):
            raise UserError(f"email: {email!r} is not an e-mail address")
        name = name.strip()
        if not name or len(name) > 120:
            raise UserError("name: give a name of 1 to 120 characters")
        if role not in ROLES:
            raise UserError(f"role: {role!r} is not one of {', '.join(ROLES)}")
        _check_password(password)
        if self.by_email(address) is not None:
            raise UserError(f"email: a user with the address {address} already exists")
        user = User(new_id(), creditor_id, address, name, role, now, None, None, 0, None)
        self.connection.execute(
            insert(UserRow).values(
                id=user.id, creditor_id=creditor_id, email=address, name=name, role=role,
                password_hash=self.hasher.hash(password), created_at=now, failed_logins=0,
            )
        )  # fmt: skip
        return user

    def by_email(self, email: str) -> User | None:
        row = self.connection.execute(
            select(*_columns()).where(UserRow.email == normalise_email(email))
        ).first()
        return None if row is None else _user(row)

    def users(self, creditor_id: uuid.UUID) -> list[User]:
        """The creditor's users, disabled ones included, by e-mail address."""
        rows = self.connection.execute(
            select(*_columns()).where(UserRow.creditor_id == creditor_id).order_by(UserRow.email)
        )
        return [_user(r) for r in rows]

    def disable(self, creditor_id: uuid.UUID, email: str, now: dt.datetime) -> User | None:
        """Disable the creditor's user with this address and end their sessions; None when
        the creditor has no such user. Disabling twice keeps the first date."""
        user = self.by_email(email)
        if user is None or user.creditor_id != creditor_id:
            return None
        if user.disabled_at is None:
            self.connection.execute(
                update(UserRow)
                .where(UserRow.id == user.id, UserRow.creditor_id == creditor_id)
                .values(disabled_at=now)
            )
        self.delete_sessions(user.id)
        return self.by_email(email)

    # -- signing in ------------------------------------------------------------------------

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password[:_MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return False

    def sign_in(self, email: str, password: str, now: dt.datetime) -> SignIn:
        """Check a password and record the outcome (failures count toward the lock).

        Every path verifies one argon2 hash, so the answer takes as long whether or not
        the address exists, is locked or disabled."""
        u = UserRow
        row = self.connection.execute(
            select(*_columns(), u.password_hash).where(u.email == normalise_email(email))
        ).first()
        if row is None:
            self._verify(_dummy_hash(self.hasher), password)
            return SignIn(None, "unknown")
        user, stored = _user(row), str(row.password_hash)
        good = self._verify(stored, password)
        if user.disabled_at is not None:
            return SignIn(None, "disabled", user)
        if user.locked_until is not None and user.locked_until > now:
            return SignIn(None, "locked", user)  # not counted: the lock does not grow
        if not good:
            return SignIn(None, *self._failed(user, now))
        values: dict[str, object] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
        if self.hasher.check_needs_rehash(stored):
            values["password_hash"] = self.hasher.hash(password)
        self.connection.execute(update(u).where(u.id == user.id).values(**values))
        return SignIn(self.by_email(user.email), "ok", user)

    def _failed(self, user: User, now: dt.datetime) -> tuple[str, User]:
        u = UserRow
        self.connection.execute(
            update(u).where(u.id == user.id).values(failed_logins=u.failed_logins + 1)
        )
        count = self.connection.execute(select(u.failed_logins).where(u.id == user.id)).scalar_one()
        if count >= MAX_FAILURES:
            # The count starts again after the lock: MAX_FAILURES more tries, then again.
            self.connection.execute(
                update(u).where(u.id == user.id).values(failed_logins=0, locked_until=now + LOCK)
            )
            return "locked_now", user
        return "wrong_password", user

    # -- sessions --------------------------------------------------------------------------

    def create_session(self, user_id: uuid.UUID, now: dt.datetime) -> str:
        """A new session; returns the token for the cookie (only its hash is kept)."""
        token = secrets.token_urlsafe(32)
        self.connection.execute(
            insert(UserSessionRow).values(
                token_hash=token_digest(token), user_id=user_id, created_at=now,
                last_seen_at=now, expires_at=now + ABSOLUTE,
            )
        )  # fmt: skip
        return token

    def session(self, token: str, now: dt.datetime) -> SignedIn | None:
        """The session and its user, or None when unknown, idle too long, past its end or
        its user is disabled (a dead session is deleted)."""
        if not token or len(token) > 200:
            return None
        s = UserSessionRow
        digest = token_digest(token)
        row = self.connection.execute(
            select(*_columns(), s.created_at.label("s_created"), s.last_seen_at, s.expires_at)
            .join(UserRow, UserRow.id == s.user_id)
            .where(s.token_hash == digest)
        ).first()
        if row is None:
            return None
        user = _user(row)
        if row.expires_at <= now or row.last_seen_at + IDLE <= now or not user.active:
            self.delete_session(token)
            return None
        return SignedIn(user, digest, row.s_created, row.last_seen_at, row.expires_at)

    def touch(self, signed_in: SignedIn, now: dt.datetime) -> bool:
        """Record activity on the session (at most once per `TOUCH_EVERY`)."""
        if now - signed_in.last_seen_at < TOUCH_EVERY:
            return False
        s = UserSessionRow
        self.connection.execute(
            update(s).where(s.token_hash == signed_in.token_hash).values(last_seen_at=now)
        )
        return True

    def delete_session(self, token: str) -> None:
        """Sign out: the token no longer opens anything."""
        s = UserSessionRow
        self.connection.execute(delete(s).where(s.token_hash == token_digest(token)))

    def delete_sessions(self, user_id: uuid.UUID) -> int:
        """End every session of a user (when disabled)."""
        s = UserSessionRow
        return int(self.connection.execute(delete(s).where(s.user_id == user_id)).rowcount)

    def purge_sessions(self, now: dt.datetime) -> int:
        """Delete the sessions that can no longer be used."""
        s = UserSessionRow
        result = self.connection.execute(
            delete(s).where((s.expires_at <= now) | (s.last_seen_at <= now - IDLE))
        )
        return int(result.rowcount)

    def session_count(self, user_id: uuid.UUID) -> int:
        s = UserSessionRow
        return int(
            self.connection.execute(
                select(func.count()).select_from(s).where(s.user_id == user_id)
            ).scalar_one()
        )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password: use at least {MIN_PASSWORD} characters")
    if len(password) > _MAX_PASSWORD:
        raise UserError(f"password: use at most {_MAX_PASSWORD} characters")
