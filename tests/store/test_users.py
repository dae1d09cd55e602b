"""Back-office users and sessions on SQLite and PostgreSQL: argon2id passwords, the lock
after repeated failures, idle and absolute session expiry (clock travel), sign-out, and
disabling a user."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, insert, select

from parcours.store.repositories import new_id
from parcours.store.schema import CreditorRow, UserRow, UserSessionRow
from parcours.store.users import (
    ABSOLUTE,
    IDLE,
    LOCK,
    MAX_FAILURES,
    UserError,
    UserStore,
    token_digest,
)

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery"
# Cheap parameters keep the tests fast; the hashes are still argon2id.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def make_creditor(engine: Engine, name: str = "acme") -> uuid.UUID:
    key = new_id()
    with engine.begin() as connection:
        connection.execute(insert(CreditorRow).values(id=key, name=name, created_at=NOW))
    return key


def add_user(engine: Engine, creditor: uuid.UUID, email: str = "Agent@Acme.example") -> None:
    with engine.begin() as connection:
        UserStore(connection, FAST).add(creditor, email, "Ann Agent", "agent", PASSWORD, NOW)


def test_a_user_is_kept_with_a_lower_cased_address_and_an_argon2id_hash(engine: Engine) -> None:
    creditor = make_creditor(engine)
    add_user(engine, creditor)
    with engine.begin() as connection:
        store = UserStore(connection, FAST)
        user = store.by_email("  AGENT@acme.EXAMPLE ")
        assert user is not None and user.email == "agent@acme.example" and user.role == "agent"
        stored = connection.execute(select(UserRow.password_hash)).scalar_one()
        assert stored.startswith("$argon2id$") and PASSWORD not in stored
        with pytest.raises(UserError, match="already exists"):
            store.add(creditor, "agent@ACME.example", "Other", "viewer", PASSWORD, NOW)
        with pytest.raises(UserError, match="role"):
            store.add(creditor, "x@acme.example", "X", "boss", PASSWORD, NOW)
        with pytest.raises(UserError, match="email"):
            store.add(creditor, "not an address", "X", "agent", PASSWORD, NOW)
        with pytest.raises(UserError, match="password"):
            store.add(creditor, "x@acme.example", "X", "agent", "short", NOW)


def test_users_are_listed_per_creditor(engine: Engine) -> None:
    acme, other = make_creditor(engine), make_creditor(engine, "other")
    add_user(engine, acme, "b@acme.example")
    add_user(engine, acme, "a@acme.example")
    add_user(engine, other, "c@other.example")
    with engine.connect() as connection:
        store = UserStore(connection, FAST)
        assert [u.email for u in store.users(acme)] == ["a@acme.example", "b@acme.example"]
        assert [u.email for u in store.users(other)] == ["c@other.example"]


def test_sign_in_checks_the_password_and_records_the_time(engine: Engine) -> None:
    creditor = make_creditor(engine)
    add_user(engine, creditor)
    with engine.begin() as connection:
        store = UserStore(connection, FAST)
        assert store.sign_in("agent@acme.example", "wrong password!", NOW).user is None
        assert store.sign_in("nobody@acme.example", PASSWORD, NOW).reason == "unknown"
        done = store.sign_in("Agent@acme.example", PASSWORD, NOW)
        assert done.user is not None and done.user.last_login_at == NOW
        assert done.user.failed_logins == 0


def test_five_failures_lock_the_account_for_fifteen_minutes(engine: Engine) -> None:
    creditor = make_creditor(engine)
    add_user(engine, creditor)
    with engine.begin() as connection:
        store = UserStore(connection, FAST)
        reasons = [
            store.sign_in("agent@acme.example", "wrong password!", NOW).reason
            for _ in range(MAX_FAILURES)
        ]
        assert reasons == ["wrong_password"] * (MAX_FAILURES - 1) + ["locked_now"]
        # Even the right password is refused while the lock holds, and does not extend it.
        assert store.sign_in("agent@acme.example", PASSWORD, NOW + LOCK / 2).reason == "locked"
        user = store.by_email("agent@acme.example")
        assert user is not None and user.locked_until == NOW + LOCK
        after = store.sign_in("agent@acme.example", PASSWORD, NOW + LOCK)
        assert after.reason == "ok" and after.user is not None
        assert after.user.locked_until is None


def test_a_hash_made_with_old_parameters_is_replaced_at_sign_in(engine: Engine) -> None:
    creditor = make_creditor(engine)
    add_user(engine, creditor)
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    with engine.begin() as connection:
        before = connection.execute(select(UserRow.password_hash)).scalar_one()
        assert UserStore(connection, stronger).sign_in("agent@acme.example", PASSWORD, NOW).user
        after = connection.execute(select(UserRow.password_hash)).scalar_one()
    assert after != before and "m=2048,t=2" in after


def test_a_session_keeps_only_the_hash_and_expires_when_idle(engine: Engine) -> None:
    creditor = make_creditor(engine)
    add_user(engine, creditor)
    with engine.begin() as connection:
        store = UserStore(connection, FAST)
        user = store.by_email("agent@acme.example")
        assert user is not None
        token = store.create_session(user.id, NOW)
        assert connection.execute(select(UserSessionRow.token_hash)).scalar_one() == (
            token_digest(token)
        )
        seen = store.session(token, NOW + IDLE - dt.timedelta(seconds=1))
        assert seen is not None and seen.user.id == user.id
        assert store.touch(seen, NOW + IDLE - dt.timedelta(seconds=1))
        # Active again just before the idle limit: good for another IDLE from then.
        assert store.session(token, NOW + IDLE + dt.timedelta(hours=1)) is not None
        assert store.session(token, NOW + 2 * IDLE) is None
        assert store.session_count(user.id) == 0  # a dead session is deleted
        assert store.session("forged-token", NOW) is None


def test_a_session_ends_after_seven_days_however_active(engine: Engine) -> None:
    creditor = make_creditor(engine)
    add_user(engine, creditor)
    with engine.begin() as connection:
        store = UserStore(connection, FAST)
        user = store.by_email("agent@acme.example")
        assert user is not None
        token = store.create_session(user.id, NOW)
        moment = NOW
        while moment < NOW + ABSOLUTE - dt.timedelta(hours=4):
            moment += dt.timedelta(hours=4)
            seen = store.session(token, moment)
            assert seen is not None, moment
            store.touch(seen, moment)
        assert store.session(token, NOW + ABSOLUTE) is None


def test_sign_out_and_disabling_end_sessions(engine: Engine) -> None:
    creditor, other = make_creditor(engine), make_creditor(engine, "other")
    add_user(engine, creditor)
    with engine.begin() as connection:
        store = UserStore(connection, FAST)
        user = store.by_email("agent@acme.example")
        assert user is not None
        first, second = store.create_session(user.id, NOW), store.create_session(user.id, NOW)
        store.delete_session(first)
        assert store.session(first, NOW) is None and store.session(second, NOW) is not None
        assert store.disable(other, "agent@acme.example", NOW) is None  # not theirs
        disabled = store.disable(creditor, "agent@acme.example", NOW)
        assert disabled is not None and disabled.disabled_at == NOW
        assert store.session(second, NOW) is None and store.session_count(user.id) == 0
        assert store.sign_in("agent@acme.example", PASSWORD, NOW).reason == "disabled"
