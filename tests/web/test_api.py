"""The integrator API on SQLite and PostgreSQL: keys and scopes, tenant isolation, debtors
and invoices by the CSV's rules, payments booked once, arrangements, case events, reads
with cursors, idempotency keys and problem details naming the field."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import Engine, select

from parcours.domain.money import parse_amount
from parcours.ingest import ImportKind
from parcours.payments.epc import parse_epc_payload, qr_png
from parcours.runtime.payments import import_statement
from parcours.settings import Settings
from parcours.store.api import (
    IDEMPOTENCY_TTL,
    CursorError,
    KeyVerifier,
    create_api_key,
    decode_cursor,
    encode_cursor,
    expire_idempotency_keys,
    format_minor,
    revoke_api_key,
)
from parcours.store.schema import (
    ApiKeyRow,
    AuditRow,
    DebtorRow,
    EnrolmentRow,
    EventRow,
    IdempotencyKeyRow,
    InvoiceRow,
    PaymentRow,
    PromiseRow,
)
from parcours.store.uow import UnitOfWork
from parcours.web.api import build_api_app
from tests.channels.conftest import write_channels
from tests.channels.test_epc import zbar_decode_raw
from tests.ingest.test_import import run_import, write_csv
from tests.runtime.test_payments import line, statement
from tests.runtime.test_tick import START, count, load, rows, tick

PROBLEM = "application/problem+json"


class Clock:
    """The API's clock, moved by the tests."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Api:
    client: TestClient
    clock: Clock
    creditor: Any
    other: Any
    key: str  # read, write, payments for "acme"
    reader: str  # read only for "acme"
    other_key: str  # every scope, for "other"

    def headers(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}", **extra}

    def get(self, path: str, key: str | None = None) -> Any:
        return self.client.get(f"/api/v1{path}", headers=self.headers(key))

    def post(self, path: str, body: Any, key: str | None = None, **headers: str) -> Any:
        return self.client.post(f"/api/v1{path}", json=body, headers=self.headers(key, **headers))

    def put(self, path: str, body: Any, key: str | None = None) -> Any:
        return self.client.put(f"/api/v1{path}", json=body, headers=self.headers(key))


def make_key(engine: Engine, creditor: Any, *scopes: str, now: dt.datetime = START) -> str:
    with engine.begin() as connection:
        return create_api_key(connection, creditor, "test", scopes, now).secret


def creditor_id(engine: Engine, name: str) -> Any:
    with UnitOfWork(engine) as uow:
        found = uow.creditors.by_name(name)
        assert found is not None
        return found.id


def load_other(engine: Engine, tmp_path: Path) -> Any:
    """A second creditor with debtor X1 and invoice G1 (case C-X1)."""
    folder = tmp_path / "other"
    folder.mkdir()
    run_import(
        engine,
        ImportKind.DEBTORS,
        write_csv(folder, "d.csv", "debtor_ref,name", ["X1,Xavier Other"]),
        creditor="other",
    )
    run_import(
        engine,
        ImportKind.INVOICES,
        write_csv(
            folder,
            "i.csv",
            "invoice_ref,debtor_ref,amount,currency,issue_date,due_date",
            ["G1,X1,55.00,EUR,2026-11-05,2026-12-05"],
        ),
        creditor="other",
    )
    return creditor_id(engine, "other")


@pytest.fixture
def api(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[Api]:
    load(engine, tmp_path)  # acme: D1..D3 owing F1 120.00, F2 80.00, F3 300.00 (C-D1..C-D3)
    acme = creditor_id(engine, "acme")
    other = load_other(engine, tmp_path)
    channels = write_channels(tmp_path / "channels.yaml")
    settings = Settings(
        database_url=db_url, secret_key=SecretStr("test-secret"), channels_file=channels
    )
    clock = Clock(START)
    app = build_api_app(engine, settings, clock=clock, key_ttl=0)
    with TestClient(app) as client:
        yield Api(
            client, clock, acme, other,
            make_key(engine, acme, "read", "write", "payments"),
            make_key(engine, acme, "read"),
            make_key(engine, other, "read", "write", "payments"),
        )  # fmt: skip


def problem(response: Any, status: int) -> dict[str, Any]:
    """The response's problem details, checked for shape and status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"] and body["title"] and body["detail"]
    return body


def fields(response: Any, status: int = 422) -> set[str]:
    return {e["field"] for e in problem(response, status)["errors"]}


def pay(amount: str = "20.00", ref: str = "PAY-1", **more: Any) -> dict[str, Any]:
    return {
        "ref": ref, "invoice_ref": "F1", "amount": amount, "currency": "EUR",
        "paid_at": "2026-12-01T08:00:00+00:00", **more,
    }  # fmt: skip


# -- keys and tenants --------------------------------------------------------------------


def test_requests_without_a_valid_key_are_refused(api: Api, engine: Engine) -> None:
    assert "Bearer" in api.client.get("/api/v1/cases").headers["www-authenticate"]
    problem(api.client.get("/api/v1/cases"), 401)
    problem(api.get("/cases", key="pk_live_" + "x" * 40), 401)
    problem(api.client.get("/api/v1/cases", headers={"Authorization": "Basic abc"}), 401)
    with engine.begin() as connection:
        prefix = api.key[len("pk_live_") :][:8]
        assert revoke_api_key(connection, api.creditor, prefix, START) is not None
    problem(api.get("/cases"), 401)


def test_a_key_only_does_what_its_scopes_allow(api: Api) -> None:
    assert api.get("/cases", key=api.reader).status_code == 200
    assert "payments" in problem(api.post("/payments", pay(), key=api.reader), 403)["detail"]
    problem(api.put("/debtors/D9", {"name": "Nina"}, key=api.reader), 403)
    problem(api.post("/cases/C-D1/events", {"type": "legal_hold.set"}, key=api.reader), 403)


def test_a_key_only_sees_and_touches_its_own_creditors_data(api: Api, engine: Engine) -> None:
    mine = api.get("/cases", key=api.other_key).json()["data"]
    assert [c["ref"] for c in mine] == ["C-X1"]
    assert [c["ref"] for c in api.get("/cases").json()["data"]] == ["C-D1", "C-D2", "C-D3"]
    problem(api.get("/cases/C-D1", key=api.other_key), 404)
    problem(api.get("/cases/C-D1/timeline", key=api.other_key), 404)
    assert fields(api.post("/payments", pay(), key=api.other_key)) == {"invoice_ref"}
    problem(api.post("/cases/C-D1/disputes", {"reason": "other"}, key=api.other_key), 404)
    problem(api.post("/cases/C-D1/events", {"type": "contact_objection"}, key=api.other_key), 404)
    assert fields(api.put("/invoices/F9", invoice(debtor_ref="D1"), key=api.other_key)) == {
        "debtor_ref"
    }
    assert api.post("/payments", pay(invoice_ref="G1"), key=api.other_key).status_code == 201
    assert fields(api.post("/payments", pay(ref="P2", invoice_ref="G1"))) == {"invoice_ref"}
    owners = {c for (c,) in rows(engine, PaymentRow.creditor_id)}
    assert owners == {api.other} and count(engine, EventRow) == 1  # the payment, not paid off


def test_a_verified_key_is_cached_for_its_time_to_live(engine: Engine, tmp_path: Path) -> None:
    load(engine, tmp_path)
    acme = creditor_id(engine, "acme")
    key = make_key(engine, acme, "read")
    ticks = [0.0]
    verifier = KeyVerifier(engine, ttl=10, clock=lambda: ticks[0])
    principal = verifier.verify(key, START)
    assert principal is not None and principal.creditor_id == acme
    assert principal.scopes == {"read"} and principal.creditor_name == "acme"
    other = key[:-1] + ("1" if key.endswith("0") else "0")  # never the key itself
    assert verifier.cached(key) == principal and verifier.cached(other) is None
    with engine.begin() as connection:
        revoke_api_key(connection, acme, key, START)
    ticks[0] = 9.9
    assert verifier.verify(key, START) == principal  # still within the 10 s
    ticks[0] = 10.1
    assert verifier.verify(key, START) is None and verifier.cached(key) is None
    [(used,)] = rows(engine, ApiKeyRow.last_used_at)
    assert used == START
    assert [h for (h,) in rows(engine, ApiKeyRow.hash)] != [key]  # only the digest is kept


def test_keys_are_only_made_with_known_scopes_and_a_name(engine: Engine, tmp_path: Path) -> None:
    load(engine, tmp_path)
    acme = creditor_id(engine, "acme")
    with engine.begin() as connection, pytest.raises(ValueError, match="scopes: admin"):
        create_api_key(connection, acme, "x", ["read", "admin"], START)
    with engine.begin() as connection, pytest.raises(ValueError, match="name"):
        create_api_key(connection, acme, " ", ["read"], START)


# -- debtors and invoices ----------------------------------------------------------------


def invoice(**fields: Any) -> dict[str, Any]:
    return {
        "debtor_ref": "D4", "amount": "99.90", "currency": "EUR",
        "issue_date": "2026-11-20", "due_date": "2026-12-20", **fields,
    }  # fmt: skip


def test_a_debtor_is_created_updated_and_left_unchanged(api: Api, engine: Engine) -> None:
    body = {"name": "Nina Nouvelle", "email": "Nina@Example.BE", "phone": "0470 11 22 33"}
    created = api.put("/debtors/D4", body)
    assert created.status_code == 201, created.text
    stored = created.json()
    assert stored["result"] == "created" and stored["phone"] == "+32470112233"
    assert stored["email"] == "Nina@example.be" and stored["language"] == "fr"
    assert api.put("/debtors/D4", body).json()["result"] == "unchanged"
    updated = api.put("/debtors/D4", {**body, "language": "nl-BE"})
    assert updated.status_code == 200 and updated.json()["language"] == "nl"
    actions = [a for (a,) in rows(engine, AuditRow.action)]
    assert actions.count("api.debtor.created") == 1 and actions.count("api.debtor.updated") == 1
    # Reconciliation can find her by the name a bank transfer gives.
    keys = {k for r, k in rows(engine, DebtorRow.ref, DebtorRow.name_key) if r == "D4"}
    assert keys == {"nina nouvelle"}


def test_a_debtor_is_checked_by_the_csv_rules_without_echoing_personal_data(api: Api) -> None:
    bad = api.put(
        "/debtors/D4",
        {"name": "Nina", "email": "nina.example.be", "phone": "12", "street": "Rue 1"},
    )
    body = problem(bad, 422)
    assert {e["field"] for e in body["errors"]} == {"email", "phone", "postcode"}
    assert "nina.example.be" not in bad.text and "'12'" not in bad.text
    assert fields(api.put("/debtors/D4", {"name": "Nina", "timezone": "Mars/Olympus"})) == {
        "timezone"
    }
    assert fields(api.put("/debtors/D4", {"name": "Nina", "birth_year": 2030})) == {"birth_year"}


def test_the_api_and_the_csv_import_agree_on_a_debtor(api: Api, engine: Engine) -> None:
    """D1 was imported from CSV with these values: sent again by the API it is unchanged."""
    body = {
        "name": "Alice Martin", "email": "alice@example.be", "phone": "0470123456",
        "language": "fr", "country": "BE", "street": "Rue Haute 1", "postcode": "1000",
        "city": "Bruxelles",
    }  # fmt: skip
    answer = api.put("/debtors/D1", body)
    assert answer.status_code == 200 and answer.json()["result"] == "unchanged", answer.text


def test_an_invoice_opens_a_case_for_its_debtor(api: Api, engine: Engine) -> None:
    assert api.put("/debtors/D4", {"name": "Nina Nouvelle"}).status_code == 201
    created = api.put("/invoices/F4", invoice())
    assert created.status_code == 201, created.text
    stored = created.json()
    assert (stored["case_ref"], stored["amount"], stored["paid"]) == ("C-D4", "99.90", "0.00")
    assert len(stored["structured_communication"]) == 12
    second = api.put("/invoices/F5", invoice(amount="10.00")).json()
    assert second["case_ref"] == "C-D4"
    assert api.put("/invoices/F4", invoice()).json()["result"] == "unchanged"
    changed = api.put("/invoices/F4", invoice(amount="89.90"))
    assert changed.status_code == 200 and changed.json()["amount"] == "89.90"
    case = api.get("/cases/C-D4").json()
    assert case["balance"] == "99.90" and [i["ref"] for i in case["invoices"]] == ["F4", "F5"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "12.345"}, "amount"),
        ({"amount": "0.00"}, "amount"),
        ({"amount": 12.3}, "amount"),
        ({"currency": "EUX"}, "currency"),
        ({"currency": "E1R"}, "currency"),
        ({"due_date": "2026-11-01"}, "due_date"),
        ({"issue_date": "2026-02-30"}, "issue_date"),
        ({"debtor_ref": "NOBODY"}, "debtor_ref"),
        ({"description": "two\nlines"}, "description"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_invoice_is_refused_naming_the_field(
    api: Api, engine: Engine, change: dict[str, Any], field: str
) -> None:
    assert fields(api.put("/invoices/F4", invoice(**{"debtor_ref": "D1", **change}))) == {field}
    assert api.get("/cases/C-D1").json()["invoices"][0]["ref"] == "F1"
    assert len(api.get("/cases/C-D1").json()["invoices"]) == 1


# -- payments ----------------------------------------------------------------------------


def test_a_payment_is_booked_once_however_often_it_is_sent(api: Api, engine: Engine) -> None:
    first = api.post("/payments", pay())
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["allocations"] == [{"invoice_ref": "F1", "amount": "20.00"}]
    assert (body["ref"], body["case_ref"], body["credit"]) == ("PAY-1", "C-D1", "0.00")
    again = api.post("/payments", pay())
    assert again.status_code == 200 and again.json() == body
    assert count(engine, PaymentRow) == 1
    assert api.get("/cases/C-D1").json()["balance"] == "100.00"
    conflict = api.post("/payments", pay(amount="21.00"))
    assert {e["field"] for e in problem(conflict, 409)["errors"]} == {"ref"}
    [(source, ref)] = rows(engine, PaymentRow.source, PaymentRow.ref)
    assert (source, ref) == ("api", "api:PAY-1")


def test_an_overpayment_is_kept_as_a_credit_and_pays_the_case(api: Api, engine: Engine) -> None:
    answer = api.post("/payments", pay(amount="130.00", invoice_ref=None, case_ref="C-D1"))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["allocations"] == [{"invoice_ref": "F1", "amount": "120.00"}]
    assert body["credit"] == "10.00" and body["amount"] == "130.00"
    case = api.get("/cases/C-D1").json()
    assert (case["balance"], case["credit"]) == ("0.00", "10.00")
    assert "case.paid" in [t for (t,) in rows(engine, EventRow.type)]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "12.345"}, "amount"),
        ({"amount": "-5"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "1e3"}, "amount"),
        ({"currency": "USD"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"invoice_ref": "NOPE"}, "invoice_ref"),
        ({"invoice_ref": None, "case_ref": "C-NOPE"}, "case_ref"),
        ({"invoice_ref": "F2", "case_ref": "C-D1"}, "invoice_ref"),
        ({"invoice_ref": None}, "invoice_ref"),
        ({"paid_at": "2027-01-01T00:00:00+00:00"}, "paid_at"),
        ({"paid_at": "2026-12-01T08:00:00"}, "paid_at"),
        ({"paid_at": "0001-01-01T00:00:00+05:00"}, "paid_at"),
        ({"ref": ""}, "ref"),
        ({"ref": "x" * 65}, "ref"),
        ({"ref": "a\u0000b"}, "ref"),
    ],
)
def test_a_bad_payment_is_refused_naming_the_field_and_books_nothing(
    api: Api, engine: Engine, change: dict[str, Any], field: str
) -> None:
    assert fields(api.post("/payments", pay(**change))) == {field}
    assert count(engine, PaymentRow) == 0


def test_malformed_requests_are_problems_naming_the_place(api: Api) -> None:
    raw = api.client.post(
        "/api/v1/payments",
        content=b"{not json",
        headers=api.headers(**{"content-type": "application/json"}),
    )
    assert fields(raw) == {"body"}
    missing = api.post("/payments", {"ref": "P"})
    assert fields(missing) == {"amount", "currency", "paid_at"}
    assert fields(api.get("/cases?limit=0")) == {"limit"}
    assert fields(api.get("/cases?cursor=not-a-cursor")) == {"cursor"}
    assert fields(api.get("/cases/C-D1/timeline?cursor=" + encode_cursor("x"))) == {"cursor"}
    bad_key = api.post("/payments", pay(), **{"Idempotency-Key": "a b"})
    assert fields(bad_key) == {"Idempotency-Key"}
    problem(api.client.get("/api/v1/nowhere", headers=api.headers()), 404)
    not_allowed = api.client.delete("/api/v1/payments")
    problem(not_allowed, 405)
    assert not_allowed.headers["allow"] == "POST"
    # Outside the API, FastAPI's own answers are kept.
    elsewhere = api.client.get("/nowhere")
    assert elsewhere.status_code == 404 and elsewhere.json() == {"detail": "Not Found"}


def test_a_payment_by_api_stops_the_journey_at_the_next_tick(
    api: Api, engine: Engine, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    tick(engine, START, outbox)
    api.clock.now = START + dt.timedelta(days=3)
    paid = api.post("/payments", pay(amount="120.00", paid_at="2026-12-04T08:00:00+00:00"))
    assert paid.status_code == 201, paid.text
    for day in range(4, 12):
        tick(engine, START + dt.timedelta(days=day), outbox)
    journeys = dict(rows(engine, EnrolmentRow.case_id, EnrolmentRow.exit_reason))
    state = api.get("/cases/C-D1").json()
    assert state["journey"]["done"] is True and state["journey"]["exit_reason"] == "paid"
    assert list(journeys.values()).count("paid") == 1
    timeline = api.get("/cases/C-D1/timeline?limit=200").json()["data"]
    after = [i for i in timeline if i["kind"] == "message" and i["at"] > "2026-12-04T08"]
    assert after == [], after


# -- arrangements and events -------------------------------------------------------------


def test_each_plan_instalment_has_an_epc_qr_code_a_banking_app_reads(
    api: Api, engine: Engine
) -> None:
    plan = api.post("/cases/C-D3/plans", {"instalments": 3, "first_on": "2026-12-15"})
    assert plan.status_code == 201, plan.text
    with engine.connect() as connection:
        f3 = connection.execute(
            select(InvoiceRow.structured_communication).where(InvoiceRow.ref == "F3")
        ).scalar_one()
    codes = [i["epc_qr"] for i in plan.json()["instalments"]]
    for n, code in enumerate(codes, 1):
        transfer = parse_epc_payload(code)
        assert (transfer.iban, transfer.amount_minor) == ("BE71096123456769", 10_000)
        assert transfer.structured_reference == f3 and transfer.information == f"{n}/3"
    # A real decoder reads the printed code back to the same payload.
    image = Image.open(io.BytesIO(qr_png(parse_epc_payload(codes[0]), scale=4)))
    assert [d.decode() for d in zbar_decode_raw(image)] == [codes[0]]


def test_a_promise_plan_and_dispute_show_in_the_case_state(api: Api, engine: Engine) -> None:
    promised = api.post("/cases/C-D1/promises", {"amount": "50.00", "due_on": "2026-12-10"})
    assert promised.status_code == 201, promised.text
    assert promised.json()["state"] == "pending"
    plan = api.post("/cases/C-D2/plans", {"instalments": 2, "first_on": "2026-12-15"})
    assert plan.status_code == 201, plan.text
    assert [i["amount"] for i in plan.json()["instalments"]] == ["40.00", "40.00"]
    dispute = api.post("/cases/C-D3/disputes", {"reason": "already_paid", "evidence": "receipt"})
    assert dispute.status_code == 201, dispute.text
    assert problem(api.post("/cases/C-D3/disputes", {"reason": "other"}), 409)
    d1, d2, d3 = (api.get(f"/cases/C-D{n}").json() for n in (1, 2, 3))
    assert d1["promise"]["amount"] == "50.00" and d1["promise"]["source"] == "creditor"
    assert d2["plan"]["state"] == "active" and len(d2["plan"]["instalments"]) == 2
    assert d3["dispute"]["state"] == "open" and "receipt" not in json.dumps(d3)
    resolved = api.post(
        "/cases/C-D3/disputes/resolve", {"outcome": "upheld", "adjustment": "100.00"}
    )
    assert resolved.status_code == 200, resolved.text
    after = api.get("/cases/C-D3").json()
    assert after["dispute"]["state"] == "upheld" and after["balance"] == "200.00"
    problem(api.post("/cases/C-D3/disputes/resolve", {"outcome": "rejected"}), 409)
    actors = {a for (a,) in rows(engine, AuditRow.actor)}
    assert f"api:{api.key[8:16]}" in actors


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("promises", {"amount": "500.00", "due_on": "2026-12-10"}, "amount"),
        ("promises", {"amount": "5.001", "due_on": "2026-12-10"}, "amount"),
        ("promises", {"amount": "5.00", "due_on": "2026-11-10"}, "due_on"),
        ("promises", {"amount": "5.00", "due_on": "2027-06-10"}, "due_on"),
        ("plans", {"instalments": 50, "first_on": "2026-12-15"}, "instalments"),
        ("plans", {"instalments": 12, "first_on": "2026-12-15"}, "instalments"),
        ("plans", {"instalments": 2, "first_on": "2026-11-15"}, "first_on"),
        ("plans", {"instalments": 2, "first_on": "2027-11-15"}, "first_on"),
        ("plans", {"instalments": 2, "first_on": "2026-12-15", "every": "day"}, "every"),
        ("plans", {"instalments": 0, "first_on": "2026-12-15"}, "instalments"),
        ("disputes", {"reason": "dont_feel_like_it"}, "reason"),
        ("disputes/resolve", {"outcome": "maybe"}, "outcome"),
        ("events", {"type": "debtor.died"}, "type"),
        (
            "events",
            {"type": "legal_hold.set", "occurred_at": "2030-01-01T00:00:00Z"},
            "occurred_at",
        ),
    ],
)
def test_an_arrangement_outside_the_limits_is_refused_naming_the_field(
    api: Api, engine: Engine, path: str, body: dict[str, Any], field: str
) -> None:
    assert fields(api.post(f"/cases/C-D1/{path}", body)) == {field}
    assert count(engine, PromiseRow) == 0


def test_an_unknown_case_is_not_found_naming_it(api: Api) -> None:
    for path, body in [
        ("promises", {"amount": "5.00", "due_on": "2026-12-10"}),
        ("plans", {"instalments": 2, "first_on": "2026-12-15"}),
        ("disputes", {"reason": "other"}),
        ("disputes/resolve", {"outcome": "rejected"}),
        ("events", {"type": "legal_hold.set"}),
    ]:
        assert fields(api.post(f"/cases/C-NOPE/{path}", body), 404) == {"case_ref"}, path
    assert fields(api.get("/cases/C-NOPE"), 404) == {"case_ref"}


def test_holds_and_objections_are_recorded_as_events_without_personal_data(
    api: Api, engine: Engine
) -> None:
    at = "2026-11-30T15:00:00+01:00"
    answer = api.post("/cases/C-D2/events", {"type": "legal_hold.set", "occurred_at": at})
    assert answer.status_code == 201, answer.text
    assert api.post("/cases/C-D2/events", {"type": "vulnerability.flagged"}).status_code == 201
    recorded = {
        kind: (occurred, recorded, payload)
        for kind, occurred, recorded, payload in rows(
            engine, EventRow.type, EventRow.occurred_at, EventRow.recorded_at, EventRow.payload
        )
    }
    occurred, recorded_at, payload = recorded["legal_hold.set"]
    assert occurred == dt.datetime(2026, 11, 30, 14, tzinfo=dt.UTC) and recorded_at == START
    assert payload == {"source": "api"} and "vulnerability.flagged" in recorded


# -- idempotency -------------------------------------------------------------------------


def test_an_idempotency_key_replays_the_first_answer(api: Api, engine: Engine) -> None:
    body = {"amount": "50.00", "due_on": "2026-12-10"}
    key = {"Idempotency-Key": "promise-1"}
    first = api.post("/cases/C-D1/promises", body, **key)
    again = api.post("/cases/C-D1/promises", body, **key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert count(engine, PromiseRow) == 1
    reused = api.post("/cases/C-D1/promises", {**body, "amount": "60.00"}, **key)
    assert fields(reused) == {"Idempotency-Key"}
    elsewhere = api.post("/cases/C-D2/promises", body, **key)
    assert fields(elsewhere) == {"Idempotency-Key"}
    # Another creditor's identical key is its own.
    assert api.post("/payments", pay(invoice_ref="G1"), api.other_key, **key).status_code == 201


def test_a_problem_is_not_kept_so_a_corrected_retry_runs(api: Api, engine: Engine) -> None:
    key = {"Idempotency-Key": "plan-1"}
    body = {"instalments": 2, "first_on": "2026-12-15"}
    problem(
        api.post("/cases/C-D1/disputes", {"reason": "other"}), 201 - 201 + 201
    ) if False else None
    assert fields(api.post("/cases/C-D1/plans", {**body, "instalments": 50}, **key)) == {
        "instalments"
    }
    assert count(engine, IdempotencyKeyRow) == 0
    assert api.post("/cases/C-D1/plans", body, **key).status_code == 201


def test_idempotent_payments_replay_and_keys_expire_after_a_day(api: Api, engine: Engine) -> None:
    key = {"Idempotency-Key": "k-1"}
    first = api.post("/payments", pay(), **key)
    replay = api.post("/payments", pay(), **key)
    assert first.status_code == replay.status_code == 201 and replay.json() == first.json()
    assert fields(api.post("/payments", pay(ref="PAY-2"), **key)) == {"Idempotency-Key"}
    api.clock.now = START + IDEMPOTENCY_TTL + dt.timedelta(seconds=1)
    fresh = api.post("/payments", pay(ref="PAY-2", paid_at="2026-12-02T08:00:00Z"), **key)
    assert fresh.status_code == 201, fresh.text
    assert count(engine, PaymentRow) == 2
    with engine.begin() as connection:
        assert expire_idempotency_keys(connection, api.clock.now + IDEMPOTENCY_TTL) == 1
    assert count(engine, IdempotencyKeyRow) == 0


# -- reads -------------------------------------------------------------------------------


def test_cases_page_by_cursor(api: Api) -> None:
    seen, cursor = [], ""
    while True:
        page = api.get(f"/cases?limit=1&cursor={cursor}").json()
        seen += [c["ref"] for c in page["data"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == ["C-D1", "C-D2", "C-D3"]
    first = api.get("/cases?limit=2").json()["data"][0]
    assert (first["balance"], first["currency"], first["status"]) == ("120.00", "EUR", "open")
    assert api.get("/cases?status=closed").json() == {"data": [], "next_cursor": None}


def test_the_timeline_pages_through_events_payments_and_messages(
    api: Api, engine: Engine, tmp_path: Path
) -> None:
    tick(engine, START, tmp_path / "outbox")
    for n in range(3):
        api.clock.now = START + dt.timedelta(hours=n + 1)
        paid_at = f"2026-12-01T1{n}:00:00Z"
        assert api.post("/payments", pay("1.00", f"P{n}", paid_at=paid_at)).status_code == 201
    api.post("/cases/C-D1/events", {"type": "contact_objection"})
    everything = api.get("/cases/C-D1/timeline?limit=200").json()
    assert everything["next_cursor"] is None
    items = everything["data"]
    assert {i["kind"] for i in items} >= {"event", "payment"}
    assert [i["at"] for i in items] == sorted(i["at"] for i in items)
    paged, cursor = [], ""
    while True:
        page = api.get(f"/cases/C-D1/timeline?limit=2&cursor={cursor}").json()
        assert len(page["data"]) <= 2
        paged += page["data"]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert paged == items


def test_the_unmatched_queue_pages_oldest_first(api: Api, engine: Engine) -> None:
    lines = [line(f"U{n}", 1_000 + n, text="no idea") for n in range(5)]
    import_statement(engine, api.creditor, _camt(lines), START)
    import_statement(engine, api.other, _camt([line("O1", 999, text="?")]), START)
    seen, cursor = [], ""
    while True:
        page = api.get(f"/unmatched?limit=2&cursor={cursor}").json()
        seen += [(u["bank_ref"], u["amount"]) for u in page["data"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert sorted(seen) == [(f"U{n}", f"10.0{n}") for n in range(5)]
    assert [u["bank_ref"] for u in api.get("/unmatched", key=api.other_key).json()["data"]] == [
        "O1"
    ]


def _camt(lines: list[Any]) -> bytes:
    from parcours.payments.camt import write_camt

    return write_camt([statement(*lines)])


def test_the_openapi_document_describes_the_api(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    paths = document["paths"]
    assert {"/api/v1/payments", "/api/v1/cases/{case_ref}/timeline", "/api/v1/unmatched"} <= set(
        paths
    )
    post = paths["/api/v1/payments"]["post"]
    assert "application/problem+json" in post["responses"]["422"]["content"]
    assert document["components"]["schemas"]["PaymentIn"]["examples"]
    assert "ApiKey" in document["components"]["securitySchemes"]


# -- properties --------------------------------------------------------------------------


@given(st.lists(st.one_of(st.text(max_size=20), st.integers()), min_size=1, max_size=3))
def test_a_cursor_decodes_to_what_was_encoded(values: list[str | int]) -> None:
    kinds = [type(v) for v in values]
    cursor = encode_cursor(*values)
    assert set(cursor) <= set(string.ascii_letters + string.digits + "-_")
    assert list(decode_cursor(cursor, *kinds)) == values


@given(st.text(max_size=60))
def test_any_text_is_a_cursor_or_a_cursor_error(text: str) -> None:
    """Whatever a client sends as a cursor, the listing gets a str or a CursorError (a
    422), never another exception (a 500)."""
    try:
        (value,) = decode_cursor(text, str)
    except CursorError:
        return
    assert isinstance(value, str)


@given(st.integers(min_value=0, max_value=10**14), st.sampled_from(["EUR", "JPY", "BHD"]))
def test_amounts_are_written_as_they_are_read(minor: int, currency: str) -> None:
    text = format_minor(minor, currency)
    assert minor == 0 or parse_amount(text, currency) == minor


def test_a_debtor_sent_by_the_api_is_unchanged_when_imported_from_csv(
    api: Api, engine: Engine, tmp_path: Path
) -> None:
    body = {"name": "Nina Nouvelle", "email": "nina@example.be", "phone": "0470112233"}
    assert api.put("/debtors/D4", body).status_code == 201
    csv = write_csv(
        tmp_path,
        "d4.csv",
        "debtor_ref,name,email,phone",
        ["D4,Nina Nouvelle,nina@example.be,0470112233"],
    )
    report = run_import(engine, ImportKind.DEBTORS, csv)
    assert (report.unchanged, report.updated, report.inserted) == (1, 0, 0), report.as_dict()


# -- payments booked in batches ----------------------------------------------------------


def test_concurrent_payments_are_booked_in_batches_one_after_another(
    api: Api, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thirty requests at once: fewer transactions than requests, each payment allocated
    after the others (F1's 120.00 paid once, the rest a credit), a repeated ref booked once."""
    from parcours.web import api_payments

    batches: list[int] = []
    book_batch = api_payments.book_batch

    def counting(engine: Engine, requests: list[Any], now: Any) -> Any:
        batches.append(len(requests))
        return book_batch(engine, requests, now)

    monkeypatch.setattr(api_payments, "book_batch", counting)
    bodies = [pay("30.00", f"C{n}") for n in range(20)] + [pay("30.00", "SAME")] * 10

    async def send_all() -> list[Any]:
        transport = httpx.ASGITransport(app=api.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await asyncio.gather(
                *(client.post("/api/v1/payments", json=b, headers=api.headers()) for b in bodies)
            )

    answers = asyncio.run(send_all())
    assert len(batches) < len(bodies) and sum(batches) == len(bodies)
    statuses = [a.status_code for a in answers]
    assert statuses[:20] == [201] * 20
    assert sorted(statuses[20:]) == [200] * 9 + [201]
    assert len({a.text for a in answers[20:]}) == 1  # the repeats get the first answer
    case = api.get("/cases/C-D1").json()
    assert (case["balance"], case["credit"]) == ("0.00", "510.00")
    allocated = sum(
        parse_amount(x["amount"], "EUR") for a in answers[:21] for x in a.json()["allocations"]
    )
    assert allocated == 12_000
    types = [t for (t,) in rows(engine, EventRow.type)]
    assert types.count("case.paid") == 1 and types.count("payment.booked") == 21


def test_a_batch_the_database_refuses_is_booked_again_payment_by_payment(
    api: Api, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Idempotency-Key stored by another process after the batch looked (simulated: the
    look misses it) fails the batch's insert; each payment is then booked alone and the
    one with that key gets the stored answer."""
    from parcours.store.api import IdempotencyKeys
    from parcours.web.api_payments import PaymentIn, PaymentRequest, book_batch

    first = api.post("/payments", pay(ref="K1"), **{"Idempotency-Key": "k"})
    assert first.status_code == 201
    principal = api.client.app.state.api.verifier.verify(api.key, START)
    label = "POST /api/v1/payments"

    def request(ref: str, key: str | None) -> PaymentRequest:
        body = PaymentIn.model_validate(pay(ref=ref))
        from parcours.web.api import _fingerprint

        return PaymentRequest(
            principal,
            body,
            "EUR",
            body.paid_at,
            key,
            label,
            _fingerprint(label, body) if key else "",
        )

    real = IdempotencyKeys.get_many
    misses = iter([True])

    def blind_once(self: Any, keys: Any, now: Any) -> Any:
        return {} if next(misses, False) else real(self, keys, now)

    monkeypatch.setattr(IdempotencyKeys, "get_many", blind_once)
    outcomes = book_batch(engine, [request("K2", None), request("K1", "k")], lambda: START)
    assert [o.status for o in outcomes] == [201, 201]
    assert outcomes[1].replayed and outcomes[1].body == first.text
    assert count(engine, PaymentRow) == 2


def test_one_idempotency_key_twice_in_a_batch_is_answered_once(api: Api, engine: Engine) -> None:
    from parcours.web.api import _fingerprint
    from parcours.web.api_payments import PaymentIn, PaymentRequest, book_batch

    principal = api.client.app.state.api.verifier.verify(api.key, START)
    label = "POST /api/v1/payments"

    def request(ref: str) -> PaymentRequest:
        body = PaymentIn.model_validate(pay(ref=ref))
        return PaymentRequest(
            principal, body, "EUR", body.paid_at, "k", label, _fingerprint(label, body)
        )

    first, again, other = book_batch(
        engine, [request("A"), request("A"), request("B")], lambda: START
    )
    assert (first.status, again.status, again.replayed) == (201, 201, True)
    assert again.body == first.body and other.problem is not None
    assert (other.status, other.problem[1]) == (422, "Idempotency-Key")
    assert count(engine, PaymentRow) == 1 and count(engine, IdempotencyKeyRow) == 1


def test_a_payment_on_an_invoice_goes_to_that_invoice_first(api: Api) -> None:
    assert api.put("/debtors/D4", {"name": "Nina Nouvelle"}).status_code == 201
    assert api.put("/invoices/F4", invoice(due_date="2026-12-10")).status_code == 201
    assert api.put("/invoices/F5", invoice(amount="10.00")).status_code == 201
    paid = api.post("/payments", pay(amount="15.00", invoice_ref="F5"))
    assert paid.status_code == 201, paid.text
    assert paid.json()["allocations"] == [
        {"invoice_ref": "F5", "amount": "10.00"},
        {"invoice_ref": "F4", "amount": "5.00"},
    ]
    on_case = api.post("/payments", pay(amount="1.00", ref="P2", invoice_ref=None, case_ref="C-D4"))
    assert on_case.json()["allocations"] == [{"invoice_ref": "F4", "amount": "1.00"}]
