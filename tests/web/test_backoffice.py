"""The back office through the real app (starlette's TestClient) on SQLite and PostgreSQL:
sign-in and sign-out, wrong passwords and the lock, session expiry (clock travel), CSRF,
roles, tenant isolation, the inbox's deadline order and breach count, the quick actions,
phone tasks, and the audit of every view and action."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, select
from starlette.websockets import WebSocketDisconnect

from parcours.domain.persona import AssignmentSource
from parcours.ingest import ImportKind
from parcours.runtime.chat import debtor_says
from parcours.settings import Settings
from parcours.store.chat import ChatStore
from parcours.store.personas import PersonaStore
from parcours.store.schema import (
    AuditRow,
    CaseRow,
    ChatMessageRow,
    DebtorRow,
    DisputeRow,
    EventRow,
    PaymentPlanRow,
    PromiseRow,
)
from parcours.store.uow import UnitOfWork
from parcours.store.users import IDLE, LOCK, MAX_FAILURES, UserStore
from parcours.web.app import create_app
from parcours.web.backoffice import BackOffice
from parcours.web.backoffice.login import FAILED
from tests.channels.conftest import write_channels
from tests.ingest.test_import import run_import, write_csv
from tests.runtime.test_tick import START, library, load, rows

PUBLIC = "https://bo.example"
SECRET = "test-secret"
PASSWORD = "a long enough password"
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
ROLES = ("admin", "agent", "viewer", "strategist")


@dataclass
class Clock:
    now: dt.datetime = START

    def __call__(self) -> dt.datetime:
        return self.now

    def travel(self, by: dt.timedelta) -> None:
        self.now += by


@dataclass
class World:
    client: TestClient
    app: FastAPI
    engine: Engine
    clock: Clock
    acme: uuid.UUID
    other: uuid.UUID
    cases: dict[str, uuid.UUID] = field(default_factory=dict)

    @property
    def office(self) -> BackOffice:
        office: BackOffice = self.app.state.backoffice
        return office

    def ask(self, case_ref: str, body: str, at: dt.datetime) -> uuid.UUID:
        """A debtor's question on the case's conversation; returns the conversation."""
        creditor = self.other if case_ref.startswith("C-O") else self.acme
        posted = debtor_says(self.engine, creditor, self.cases[case_ref], body, at)
        return posted.conversation.id

    def audit(self) -> list[tuple[str, str, str | None]]:
        return [
            (actor, action, subject)
            for actor, action, subject in rows(
                self.engine, AuditRow.actor, AuditRow.action, AuditRow.subject
            )
        ]


def add_users(engine: Engine, creditor: uuid.UUID, domain: str, *roles: str) -> None:
    with engine.begin() as connection:
        store = UserStore(connection, FAST)
        for role in roles:
            store.add(creditor, f"{role}@{domain}", f"{role.title()} Person", role, PASSWORD, START)


@pytest.fixture
def world(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[World]:
    load(engine, tmp_path)  # creditor acme: debtors D1-D3, cases C-D1..C-D3
    run_import(
        engine, ImportKind.DEBTORS,
        write_csv(tmp_path, "o.csv", "debtor_ref,name,email,phone,language,country",
                  ["O1,Olga Other,olga@example.be,0470999999,en,BE"]),
        creditor="other",
    )  # fmt: skip
    run_import(
        engine, ImportKind.INVOICES,
        write_csv(tmp_path, "oi.csv", "invoice_ref,debtor_ref,amount,currency,issue_date,due_date",
                  ["OF1,O1,50.00,EUR,2026-11-05,2026-12-05"]),
        creditor="other",
    )  # fmt: skip
    with UnitOfWork(engine) as uow:
        acme, other = uow.creditors.by_name("acme"), uow.creditors.by_name("other")
        assert acme is not None and other is not None
    add_users(engine, acme.id, "acme.example", *ROLES)
    add_users(engine, other.id, "other.example", "agent")
    settings = Settings(
        database_url=db_url,
        secret_key=SecretStr(SECRET),
        public_url=PUBLIC,
        channels_file=write_channels(tmp_path / "channels.yaml"),
    )
    clock = Clock()
    app = create_app(settings, library())
    app.state.backoffice.clock = clock
    app.state.backoffice.hasher = FAST
    with TestClient(app, base_url=PUBLIC) as client:
        found = World(client, app, engine, clock, acme.id, other.id)
        found.cases = dict(rows(engine, CaseRow.ref, CaseRow.id))
        yield found


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    form = client.get("/backoffice/login")
    assert form.status_code == 200
    return client.post(
        "/backoffice/login",
        data={"email": email, "password": password, "csrf": csrf_of(form.text)},
        follow_redirects=False,
    )


def signed_in(world: World, email: str) -> TestClient:
    """A fresh browser signed in as `email` (the world's client is another browser)."""
    client = TestClient(world.app, base_url=PUBLIC)
    answer = sign_in(client, email)
    assert answer.status_code == 303, answer.text
    return client


def post_form(client: TestClient, page_path: str, action: str, data: dict[str, str]) -> Any:
    """Post a form of a page the way a browser does: with the page's CSRF token."""
    page = client.get(page_path)
    assert page.status_code == 200, page.text
    return client.post(action, data={"csrf": csrf_of(page.text), **data}, follow_redirects=False)


def test_sign_in_sets_a_strict_session_cookie_and_sign_out_ends_it(world: World) -> None:
    client = world.client
    first = client.get("/backoffice/inbox", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/backoffice/login"
    answer = sign_in(client, "Agent@ACME.example")
    assert answer.status_code == 303 and answer.headers["location"] == "/backoffice/inbox"
    cookie = next(
        v for k, v in answer.headers.multi_items()
        if k == "set-cookie" and v.startswith("parcours_session=")
    )  # fmt: skip
    for part in ("HttpOnly", "Path=/backoffice", "SameSite=lax", "Secure"):
        assert part.lower() in cookie.lower(), part
    token = cookie.split(";")[0].split("=", 1)[1]
    inbox = client.get("/backoffice/inbox")
    assert inbox.status_code == 200 and "Agent Person" in inbox.text
    policy = inbox.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy and inbox.headers["x-frame-options"] == "DENY"
    assert inbox.headers["referrer-policy"] == "no-referrer"
    assert inbox.headers["cache-control"] == "no-store"
    out = client.post(
        "/backoffice/logout", data={"csrf": csrf_of(inbox.text)}, follow_redirects=False
    )
    assert out.status_code == 303 and out.headers["location"] == "/backoffice/login"
    assert client.get("/backoffice/inbox", follow_redirects=False).status_code == 303
    # The old cookie, replayed by hand, opens nothing: the session is gone server-side.
    replay = TestClient(world.app, base_url=PUBLIC, cookies={"parcours_session": token})
    assert replay.get("/backoffice/inbox", follow_redirects=False).status_code == 303
    actions = [(actor, action) for actor, action, _ in world.audit()]
    assert ("user:agent@acme.example", "user.signed_in") in actions
    assert ("user:agent@acme.example", "inbox.viewed") in actions
    assert ("user:agent@acme.example", "user.signed_out") in actions


def test_after_sign_in_the_page_asked_for_opens(world: World) -> None:
    conversation = world.ask("C-D1", "Hello?", START)
    path = f"/backoffice/inbox/{conversation}"
    asked = world.client.get(path, follow_redirects=False)
    assert asked.headers["location"] == f"/backoffice/login?next={path}"
    form = world.client.get(asked.headers["location"])
    answer = world.client.post(
        "/backoffice/login",
        data={"email": "agent@acme.example", "password": PASSWORD, "next": path,
              "csrf": csrf_of(form.text)},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.headers["location"] == path
    # Only back-office paths of this site are followed after sign-in.
    client = TestClient(world.app, base_url=PUBLIC)
    form = client.get("/backoffice/login?next=https://evil.example/")
    answer = client.post(
        "/backoffice/login",
        data={"email": "agent@acme.example", "password": PASSWORD,
              "next": "//evil.example/backoffice/", "csrf": csrf_of(form.text)},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.headers["location"] == "/backoffice/inbox"


def test_a_wrong_password_or_unknown_address_gets_one_message_and_no_session(
    world: World,
) -> None:
    wrong = sign_in(world.client, "agent@acme.example", "not the password")
    unknown = sign_in(world.client, "nobody@acme.example", PASSWORD)
    for answer in (wrong, unknown):
        assert answer.status_code == 401 and FAILED in answer.text
        assert "parcours_session" not in answer.headers.get("set-cookie", "")
    # What was typed stays in the form, except the password.
    assert 'value="agent@acme.example"' in wrong.text and "not the password" not in wrong.text
    assert world.client.get("/backoffice/inbox", follow_redirects=False).status_code == 303
    refused = [a for a in world.audit() if a[1] == "user.sign_in_refused"]
    assert refused == [("user:agent@acme.example", "user.sign_in_refused", refused[0][2])]


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(world: World) -> None:
    for _ in range(MAX_FAILURES):
        assert sign_in(world.client, "agent@acme.example", "not the password").status_code == 401
    locked = sign_in(world.client, "agent@acme.example")
    assert locked.status_code == 401 and FAILED in locked.text
    world.clock.travel(LOCK)
    assert sign_in(world.client, "agent@acme.example").status_code == 303


def test_one_address_failing_on_many_accounts_is_held_back_whoever_it_tries(
    world: World,
) -> None:
    """The accounts' own locks need five failures each; an address spraying one password
    over many accounts is stopped by its own count (made small here)."""
    from parcours.web.backoffice.login import TOO_MANY
    from parcours.web.throttle import Throttle

    world.app.state.backoffice.failed_signins = Throttle("3 per 15 minutes")
    for who in ("agent", "viewer", "admin"):
        assert sign_in(world.client, f"{who}@acme.example", "Winter2026!").status_code == 401
    held = sign_in(world.client, "strategist@acme.example")  # even the right password
    assert held.status_code == 429
    assert TOO_MANY.format(minutes=15) in held.text
    assert 840 <= int(held.headers["Retry-After"]) <= 900
    assert "parcours_session" not in held.headers.get("set-cookie", "")
    # Successes are not counted, and no account was locked by it.
    world.app.state.backoffice.failed_signins = Throttle("3 per 15 minutes")
    for _ in range(4):
        with TestClient(world.app, base_url=PUBLIC) as browser:
            assert sign_in(browser, "agent@acme.example").status_code == 303


def test_a_session_ends_after_eight_idle_hours(world: World) -> None:
    assert sign_in(world.client, "agent@acme.example").status_code == 303
    world.clock.travel(IDLE - dt.timedelta(minutes=1))
    assert world.client.get("/backoffice/inbox").status_code == 200  # activity renews it
    world.clock.travel(IDLE - dt.timedelta(minutes=1))
    assert world.client.get("/backoffice/inbox").status_code == 200
    world.clock.travel(IDLE)
    assert world.client.get("/backoffice/inbox", follow_redirects=False).status_code == 303


def test_a_post_without_the_sessions_csrf_token_is_refused(world: World) -> None:
    conversation = world.ask("C-D1", "Can I pay later?", START)
    client = signed_in(world, "agent@acme.example")
    path = f"/backoffice/inbox/{conversation}/reply"
    assert client.post(path, data={"body": "Yes"}).status_code == 403
    assert client.post(path, data={"body": "Yes", "csrf": "0" * 64}).status_code == 403
    # Another session's token does not do either.
    other = signed_in(world, "admin@acme.example")
    token = csrf_of(other.get("/backoffice/inbox").text)
    assert client.post(path, data={"body": "Yes", "csrf": token}).status_code == 403
    assert rows(world.engine, ChatMessageRow.author) == [("debtor",)]
    # The sign-in form has its own token.
    bare = TestClient(world.app, base_url=PUBLIC)
    answer = bare.post(
        "/backoffice/login", data={"email": "agent@acme.example", "password": PASSWORD}
    )
    assert answer.status_code == 403


def test_a_viewer_reads_but_cannot_act(world: World) -> None:
    conversation = world.ask("C-D1", "Can I pay later?", START)
    viewer = signed_in(world, "viewer@acme.example")
    page = viewer.get(f"/backoffice/inbox/{conversation}")
    assert page.status_code == 200 and "Can I pay later?" in page.text
    assert 'id="reply"' not in page.text and "Read-only access" in page.text
    token = csrf_of(viewer.get("/backoffice/inbox").text)  # the sign-out form's token
    for action, data in [
        ("reply", {"body": "Yes"}),
        ("promise", {"amount": "10.00", "due_on": "2026-12-10"}),
        ("pause", {}),
    ]:
        answer = viewer.post(
            f"/backoffice/inbox/{conversation}/{action}", data={"csrf": token, **data}
        )
        assert answer.status_code == 403, action
    assert rows(world.engine, PromiseRow.id) == []
    strategist = signed_in(world, "strategist@acme.example")
    assert strategist.get("/backoffice/inbox").status_code == 200
    assert strategist.get("/backoffice/tasks").status_code == 200


def test_a_user_of_another_creditor_sees_and_touches_nothing_of_acme(world: World) -> None:
    acme = world.ask("C-D1", "Acme question", START)
    theirs = world.ask("C-O1", "Other question", START)
    outsider = signed_in(world, "agent@other.example")
    inbox = outsider.get("/backoffice/inbox").text
    assert "Other question" in inbox and "Acme question" not in inbox and "C-D1" not in inbox
    assert outsider.get(f"/backoffice/inbox/{acme}").status_code == 404
    assert outsider.get(f"/backoffice/inbox/{uuid.uuid4()}").status_code == 404
    assert outsider.get("/backoffice/inbox/not-a-uuid").status_code == 404
    token = csrf_of(outsider.get(f"/backoffice/inbox/{theirs}").text)
    for action, data in [
        ("reply", {"body": "Hi"}),
        ("promise", {"amount": "10.00", "due_on": "2026-12-10"}),
        ("dispute", {"reason": "not_mine"}),
        ("pause", {}),
    ]:
        answer = outsider.post(f"/backoffice/inbox/{acme}/{action}", data={"csrf": token, **data})
        assert answer.status_code == 404, action
    assert sorted(rows(world.engine, ChatMessageRow.body)) == [
        ("Acme question",),
        ("Other question",),
    ]
    assert rows(world.engine, PromiseRow.id) == [] and rows(world.engine, DisputeRow.id) == []
    assert not [t for (t,) in rows(world.engine, EventRow.type) if t.startswith("legal_hold")]


def test_the_inbox_orders_by_deadline_and_counts_breaches(world: World) -> None:
    with world.engine.begin() as connection:
        d1 = connection.execute(select(DebtorRow.id).where(DebtorRow.ref == "D1")).scalar_one()
        PersonaStore(connection, world.acme).assign_one(
            d1, "occasional", AssignmentSource.OPERATOR, [], START - dt.timedelta(days=3)
        )
    hour = dt.timedelta(hours=1)
    # D2 and D3 have no persona: the default one (engaged) promises 48 hours.
    late = world.ask("C-D2", "Still waiting", START - 50 * hour)  # due 2 h ago
    soon = world.ask("C-D1", "Quick one", START - hour)  # occasional: 24 h, due in 23 h
    world.ask("C-D3", "Later one", START - hour / 2)  # due in 47 h 30
    client = signed_in(world, "agent@acme.example")
    page = client.get("/backoffice/inbox").text
    order = re.findall(r'<a href="/backoffice/inbox/[^"]+">(C-D\d)</a>', page)
    assert order == ["C-D2", "C-D1", "C-D3"]
    assert "overdue by 2 h 00 min" in page and "23 h 00 min left" in page
    assert "1 d 23 h left" in page
    assert re.search(r'id="breaches" class="breach">SLA breaches \(last 7 days\): <strong>1<', page)
    assert "SLA breached" in page and page.count('class="breached"') == 1
    # Answering late ends the wait but stays counted as a breach.
    answer = post_form(
        client, f"/backoffice/inbox/{late}", f"/backoffice/inbox/{late}/reply",
        {"body": "Sorry for the wait: yes, you can."},
    )  # fmt: skip
    assert answer.status_code == 303
    page = client.get("/backoffice/inbox").text
    assert re.findall(r'<a href="/backoffice/inbox/[^"]+">(C-D\d)</a>', page)[:2] == [
        "C-D1", "C-D3",
    ]  # fmt: skip
    assert re.search(r"SLA breaches \(last 7 days\): <strong>1<", page)
    late_flags = dict(rows(world.engine, ChatMessageRow.body, ChatMessageRow.late))
    assert late_flags["Sorry for the wait: yes, you can."] is True
    # The conversation page shows the persona's helper role beside the case.
    sheet = client.get(f"/backoffice/inbox/{soon}").text
    assert "Persona: The Occasional" in sheet and "Helper role: how to talk to" in sheet
    assert "Short and factual, one clear action" in sheet
    assert "F1" in sheet and "120.00" in sheet  # the invoice and the balance
    assert "question.asked" in sheet  # the timeline
    # Without a persona of their own, the default one (whose answer time applies) is shown.
    default = client.get(f"/backoffice/inbox/{late}").text
    assert 'Persona: The Engaged Average Payer <span class="sub">(default' in default
    assert ("user:agent@acme.example", "conversation.viewed", "case:C-D1") in world.audit()


def test_a_reply_by_the_plain_form_is_stored_and_shown(world: World) -> None:
    conversation = world.ask("C-D1", "When is it due?", START)
    client = signed_in(world, "agent@acme.example")
    path = f"/backoffice/inbox/{conversation}"
    too_long = "x" * 2001
    refused = post_form(client, path, f"{path}/reply", {"body": too_long})
    assert refused.status_code == 400 and 'role="alert"' in refused.text
    assert too_long in refused.text  # what was typed is still in the form
    done = post_form(client, path, f"{path}/reply", {"body": "On 5 December <b>ok</b>"})
    assert done.status_code == 303 and done.headers["location"].endswith("?done=reply#messages")
    page = client.get(done.headers["location"]).text
    assert "On 5 December &lt;b&gt;ok&lt;/b&gt;" in page and "Reply sent." in page
    with world.engine.connect() as connection:
        messages = ChatStore(connection, world.acme).messages(conversation)
    assert [m.author for m in messages] == ["debtor", "agent"] and messages[1].user_id
    assert ("user:agent@acme.example", "chat.replied", "case:C-D1") in world.audit()


def test_quick_actions_record_promise_plan_dispute_and_pause(world: World) -> None:
    conversation = world.ask("C-D1", "I can pay next week", START)
    client = signed_in(world, "agent@acme.example")
    page = f"/backoffice/inbox/{conversation}"

    bad = post_form(client, page, f"{page}/promise", {"amount": "lots", "due_on": "2026-12-10"})
    assert bad.status_code == 400 and "is not a number" in bad.text
    assert 'value="lots"' in bad.text and 'value="2026-12-10"' in bad.text
    good = post_form(client, page, f"{page}/promise", {"amount": "120.00", "due_on": "2026-12-10"})
    assert good.status_code == 303 and good.headers["location"].endswith("?done=promise")
    assert rows(world.engine, PromiseRow.amount_minor, PromiseRow.source) == [(12000, "agent")]

    plan = {"count": "3", "first_on": "2026-12-15", "every": "month"}
    preview = post_form(client, page, f"{page}/plan", {**plan, "step": "preview"})
    assert preview.status_code == 200 and "Proposed schedule" in preview.text
    assert "2027-02-15" in preview.text and rows(world.engine, PaymentPlanRow.id) == []
    made = post_form(client, page, f"{page}/plan", {**plan, "step": "create"})
    assert made.status_code == 303
    assert rows(world.engine, PaymentPlanRow.source) == [("agent",)]
    again = post_form(client, page, f"{page}/plan", {**plan, "step": "create"})
    assert again.status_code == 400 and "already has a running payment plan" in again.text

    opened = post_form(client, page, f"{page}/dispute", {"reason": "amount_wrong", "note": ""})
    assert opened.status_code == 303
    assert rows(world.engine, DisputeRow.reason, DisputeRow.state) == [("amount_wrong", "open")]
    resolved = post_form(client, page, f"{page}/resolve", {"outcome": "rejected"})
    assert resolved.status_code == 303
    assert rows(world.engine, DisputeRow.state) != [("open",)]

    paused = post_form(client, page, f"{page}/pause", {})
    assert paused.status_code == 303
    assert "Paused by an agent" in client.get(page).text
    twice = client.post(f"{page}/pause", data={"csrf": csrf_of(client.get(page).text)})
    assert twice.status_code == 400 and "already paused" in twice.text
    resumed = post_form(client, page, f"{page}/resume", {})
    assert resumed.status_code == 303
    holds = [
        (t, p) for t, p in rows(world.engine, EventRow.type, EventRow.payload)
        if t.startswith("legal_hold")
    ]  # fmt: skip
    assert holds == [
        ("legal_hold.set", {"reason": "paused by agent"}),
        ("legal_hold.lifted", {"reason": "paused by agent"}),
    ]
    timeline = client.get(page).text.split('id="timeline"')[1]
    kinds = re.findall(r'<span class="kind">([a-z_.]+)</span>', timeline)
    assert kinds[:3] == ["legal_hold.lifted", "legal_hold.set", "dispute.closed"]  # newest first
    audited = {(action, subject) for actor, action, subject in world.audit()
               if actor == "user:agent@acme.example"}  # fmt: skip
    for action in ("case.promise", "case.promise_refused", "case.plan", "case.dispute",
                   "case.resolve", "case.pause", "case.resume"):  # fmt: skip
        assert (action, "case:C-D1") in audited, action


def test_a_legal_hold_from_the_creditor_is_not_lifted_by_an_agent(world: World) -> None:
    conversation = world.ask("C-D1", "Hello", START)
    client = signed_in(world, "agent@acme.example")
    client.get("/backoffice/inbox")
    case = world.cases["C-D1"]
    with world.engine.begin() as connection:
        from parcours.store.messages import MessageStore

        store = MessageStore(connection, world.acme)
        debtor = ChatStore(connection, world.acme).case_debtor(case)
        assert debtor is not None
        keys = (case.bytes, debtor.bytes) if store.sqlite else (str(case), str(debtor))
        store.add_event(*keys, "legal_hold.set", START, {"source": "api"})
    page = f"/backoffice/inbox/{conversation}"
    assert "On legal hold (set by the creditor)" in client.get(page).text
    answer = client.post(f"{page}/resume", data={"csrf": csrf_of(client.get(page).text)})
    assert answer.status_code == 400 and "only they can lift it" in answer.text


def test_the_agent_socket_needs_a_session_the_role_and_the_creditor(world: World) -> None:
    acme = world.ask("C-D1", "Socket?", START)
    path = f"/backoffice/ws/{acme}"
    bare = TestClient(world.app, base_url=PUBLIC)
    with pytest.raises(WebSocketDisconnect) as closed, bare.websocket_connect(path) as socket:
        socket.receive_text()
    assert closed.value.code == 4401
    for email in ("viewer@acme.example", "agent@other.example"):
        client = signed_in(world, email)
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect(
                path, headers={"cookie": f"parcours_session={client.cookies['parcours_session']}"}
            ) as socket,
        ):
            socket.receive_text()
        assert closed.value.code == 4403, email
    agent = signed_in(world, "agent@acme.example")
    cookie = {"cookie": f"parcours_session={agent.cookies['parcours_session']}"}
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        agent.websocket_connect(
            path, headers={**cookie, "origin": "https://evil.example"}
        ) as socket,
    ):
        socket.receive_text()
    assert closed.value.code == 4403
    with agent.websocket_connect(path, headers={**cookie, "origin": PUBLIC}) as socket:
        socket.send_json({"type": "message", "body": "Live answer"})
        echoed = socket.receive_json()
        while echoed["type"] != "message":  # e.g. the hub's greeting
            echoed = socket.receive_json()
    assert echoed["type"] == "message" and echoed["author"] == "agent"
    assert echoed["body"] == "Live answer"
    assert ("user:agent@acme.example", "chat.joined", "case:C-D1") in world.audit()


def test_phone_tasks_are_listed_and_closed_with_a_disposition(world: World) -> None:
    from tests.runtime.test_tasks import DUE, tick

    tick(world.engine, START)
    tick(world.engine, DUE)
    world.clock.now = DUE
    client = signed_in(world, "agent@acme.example")
    listing = client.get("/backoffice/tasks")
    assert listing.status_code == 200
    by_case = {
        ref: link
        for link, ref in re.findall(
            r'href="(/backoffice/tasks/[0-9a-f]+)" aria-label="Open the call for case (C-D\d)"',
            listing.text,
        )
    }
    assert sorted(by_case) == ["C-D1", "C-D2"]  # Chris has no phone: no call for him
    alice = by_case["C-D1"]
    task = client.get(alice)
    assert task.status_code == 200 and "Alice Martin" in task.text and "tel:" in task.text
    missing = post_form(client, alice, alice, {"disposition": "promise", "amount": ""})
    assert missing.status_code == 400 and 'role="alert"' in missing.text
    assert '<option value="promise" selected>' in missing.text
    viewer = signed_in(world, "viewer@acme.example")
    token = csrf_of(viewer.get(alice).text)
    assert viewer.post(alice, data={"csrf": token, "disposition": "no_answer"}).status_code == 403
    done = post_form(
        client, alice, alice, {"disposition": "promise", "amount": "50.00", "due_on": "2026-12-20"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/backoffice/tasks?done=task"
    assert rows(world.engine, PromiseRow.amount_minor, PromiseRow.due_on) == [
        (5000, dt.date(2026, 12, 20))
    ]
    assert re.findall(r"<td>(C-D\d)</td>", client.get("/backoffice/tasks").text) == ["C-D2"]
    other = signed_in(world, "agent@other.example")
    assert other.get(by_case["C-D2"]).status_code == 404  # not their task
    audited = [(a, s) for actor, a, s in world.audit() if actor == "user:agent@acme.example"]
    assert ("tasks.viewed", "tasks") in audited and ("task.completed", "case:C-D1") in audited
