"""`parcours api-keys` and `parcours webhooks`: keys shown once that the API then accepts
until revoked, and endpoints that receive the creditor's events, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from parcours.settings import Settings
from parcours.store.db import connect
from parcours.web.api import build_api_app
from tests.cli.test_cli import invoke, run_json, text_of
from tests.cli.test_messages_cli import portfolio
from tests.runtime.test_webhooks import Receiver

DEBTORS = "debtor_ref,name,email,language\nD1,Alice Martin,alice@example.be,fr\n"
INVOICES = "F1,D1,120.00,EUR,2026-11-05,2026-12-05\n"


def cases_status(db_url: str, tmp_path: Path, key: str) -> int:
    """What the API answers this key on GET /api/v1/cases."""
    engine = connect(db_url)
    settings = Settings(
        database_url=db_url, secret_key=SecretStr("s"), channels_file=tmp_path / "none.yaml"
    )
    try:
        with TestClient(build_api_app(engine, settings, key_ttl=0)) as client:
            answer = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {key}"})
            return answer.status_code
    finally:
        engine.dispose()


def test_a_key_is_shown_once_works_and_stops_working_when_revoked(
    cli_db: Path, db_url: str
) -> None:
    portfolio(cli_db, DEBTORS, INVOICES)
    made = invoke("api-keys", "create", "ERP sync", "--scope", "read", "-s", "payments")
    assert made.exit_code == 0, made.output
    key = next(word for word in made.output.split() if word.startswith("pk_live_"))
    assert "shown only this once" in text_of(made)
    listed = run_json("api-keys", "list")
    assert [(k["name"], k["scopes"]) for k in listed] == [("ERP sync", ["read", "payments"])]
    assert key not in json.dumps(listed) and key[8:16] == listed[0]["prefix"]
    assert cases_status(db_url, cli_db, key) == 200
    revoked = invoke("api-keys", "revoke", listed[0]["prefix"])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert cases_status(db_url, cli_db, key) == 401
    assert run_json("api-keys", "list")[0]["revoked_at"] is not None


def test_bad_key_requests_are_clear_errors(cli_db: Path) -> None:
    portfolio(cli_db, DEBTORS, INVOICES)
    no_scope = invoke("api-keys", "create", "x")
    assert no_scope.exit_code == 2 and "--scope" in text_of(no_scope)
    bad_scope = invoke("api-keys", "create", "x", "-s", "read,admin")
    assert bad_scope.exit_code == 2 and "admin" in text_of(bad_scope)
    unknown = invoke("api-keys", "revoke", "ABCDEFGH")
    assert unknown.exit_code == 2 and "no API key 'ABCDEFGH'" in text_of(unknown)
    assert run_json("api-keys", "list") == []


def test_a_webhook_endpoint_receives_the_creditors_events(cli_db: Path) -> None:
    portfolio(cli_db, DEBTORS, INVOICES)
    bad = invoke("webhooks", "add", "https://erp.example/hooks", "--events", "payment.made")
    assert bad.exit_code == 2 and "payment.made" in text_of(bad)
    with Receiver(500, 200) as receiver:
        added = run_json("webhooks", "add", receiver.url, "--events", "promise.made,case.paid")
        assert added["secret"].startswith("whsec_") and added["events"] == [
            "promise.made",
            "case.paid",
        ]
        due = (dt.datetime.now(dt.UTC) + dt.timedelta(days=5)).date().isoformat()
        promised = invoke("payments", "promise", "C-D1", "--amount", "50.00", "--on", due)
        assert promised.exit_code == 0, promised.output
        first = run_json("webhooks", "deliver")
        assert first["acme"]["retrying"] == 1 and first["acme"]["delivered"] == 0
        log = run_json("webhooks", "log")
        assert [(e["type"], e["status"], e["last_status_code"]) for e in log] == [
            ("promise.made", "pending", 500)
        ]
        listed = run_json("webhooks", "list")
        assert listed[0]["url"] == receiver.url and listed[0]["deliveries"] == {"pending": 1}
        assert "secret" not in json.dumps(listed)
        shown = invoke("webhooks", "deliver")
        assert shown.exit_code == 0 and "0 delivered" in shown.output  # the retry is not due
    assert len(receiver.received) == 1
