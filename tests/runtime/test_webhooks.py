"""Outgoing webhooks on SQLite and PostgreSQL, to a real HTTP server on loopback: signed
deliveries a receiver can verify, retries with backoff (clock travel), a receiver that
never takes them, subscriptions per type and per creditor, and the delivery log."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, insert

from parcours.runtime.arrangements import make_promise, open_dispute
from parcours.runtime.webhooks import (
    BACKOFF,
    SIGNATURE_HEADER,
    SignatureError,
    deliver_webhooks,
    sign,
    verify_signature,
)
from parcours.store.repositories import new_id
from parcours.store.schema import EventRow, WebhookDeliveryRow
from parcours.store.webhooks import WebhookStore, add_endpoint, endpoints
from tests.runtime.test_payments import book, creditor, line, ogm
from tests.runtime.test_tick import START, count, load
from tests.web.test_api import load_other

SECRET = "whsec_test"


class Receiver:
    """An HTTP server on loopback that records what it receives and answers each POST
    with the next status of `statuses` (the last one repeats)."""

    def __init__(self, *statuses: int, delay: float = 0.0) -> None:
        self.statuses = list(statuses) or [200]
        self.delay = delay
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                if receiver.delay:
                    threading.Event().wait(receiver.delay)
                status = (
                    receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/parcours"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def loaded(engine: Engine, tmp_path: Path) -> Engine:
    load(engine, tmp_path)
    return engine


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as http:
        yield http


def subscribe(engine: Engine, url: str, *types: str, at: dt.datetime = START) -> Any:
    with engine.begin() as connection:
        return add_endpoint(connection, creditor(engine), url, types, at, secret=SECRET)


def log(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return WebhookStore(connection, creditor(engine)).log()


def promise(engine: Engine, case_ref: str = "C-D1", at: dt.datetime = START) -> None:
    make_promise(
        engine, creditor(engine), case_ref, 5_000, dt.date(2026, 12, 10), at, source="agent",
        actor="test",
    )  # fmt: skip


def test_events_reach_the_receiver_signed_once_each(loaded: Engine, client: httpx.Client) -> None:
    with Receiver() as receiver:
        subscribe(loaded, receiver.url, "promise.made", "dispute.opened", "case.paid")
        promise(loaded)
        open_dispute(
            loaded,
            creditor(loaded),
            "C-D2",
            "already_paid",
            "I paid",
            START,
            source="agent",
            actor="t",
        )
        book(loaded, line("L1", 30_000, structured=ogm(loaded, "F3")), now=START)
        report = deliver_webhooks(loaded, creditor(loaded), START, client)
        assert (report.queued, report.delivered, report.retrying) == (3, 3, 0)
        assert deliver_webhooks(loaded, creditor(loaded), START, client).attempted == 0
    bodies = {b["type"]: b for b in receiver.bodies()}
    assert set(bodies) == {"promise.made", "dispute.opened", "case.paid"}
    made = bodies["promise.made"]
    assert made["data"]["case_ref"] == "C-D1" and made["data"]["amount_minor"] == 5_000
    assert made["occurred_at"] == "2026-12-01T09:00:00Z" and len(made["id"]) == 36
    assert "I paid" not in json.dumps(bodies)  # the debtor's words stay in parcours
    for headers, body in receiver.received:
        verify_signature(body, headers[SIGNATURE_HEADER], SECRET, now=START)
        assert headers["Parcours-Event-Id"] == json.loads(body)["id"]
    assert [e.status for e in log(loaded)] == ["delivered"] * 3


def test_a_receiver_can_tell_a_forged_or_replayed_webhook(
    loaded: Engine, client: httpx.Client
) -> None:
    with Receiver() as receiver:
        subscribe(loaded, receiver.url, "promise.made")
        promise(loaded)
        deliver_webhooks(loaded, creditor(loaded), START, client)
    [(headers, body)] = receiver.received
    signature = headers[SIGNATURE_HEADER]
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(body, signature, "whsec_other", now=START)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(body.replace(b"5000", b"50"), signature, SECRET, now=START)
    with pytest.raises(SignatureError, match="replay"):
        verify_signature(body, signature, SECRET, now=START + dt.timedelta(minutes=6))
    with pytest.raises(SignatureError, match="must read"):
        verify_signature(body, "v1=abc", SECRET, now=START)


def test_a_failed_delivery_is_retried_after_its_backoff(
    loaded: Engine, client: httpx.Client
) -> None:
    with Receiver(500, 200) as receiver:
        subscribe(loaded, receiver.url, "promise.made")
        promise(loaded)
        first = deliver_webhooks(loaded, creditor(loaded), START, client)
        assert (first.attempted, first.retrying, first.delivered) == (1, 1, 0)
        [entry] = log(loaded)
        assert (entry.status, entry.attempts, entry.last_status_code) == ("pending", 1, 500)
        assert entry.next_at == START + BACKOFF[0]
        early = deliver_webhooks(loaded, creditor(loaded), START + dt.timedelta(seconds=59), client)
        assert early.attempted == 0
        later = deliver_webhooks(loaded, creditor(loaded), START + BACKOFF[0], client)
        assert later.delivered == 1
    first_body, second_body = (body for _, body in receiver.received)
    assert first_body == second_body  # the same bytes, signed again at the new time
    [entry] = log(loaded)
    assert (entry.status, entry.attempts, entry.delivered_at) == (
        "delivered",
        2,
        START + BACKOFF[0],
    )


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/nobody"


@pytest.mark.parametrize("receiver_kind", ["error", "refused", "slow"])
def test_a_receiver_that_never_takes_it_fails_after_six_attempts(
    loaded: Engine, receiver_kind: str
) -> None:
    statuses = {"error": (503,), "refused": (200,), "slow": (200,)}[receiver_kind]
    with (
        Receiver(*statuses, delay=0.5 if receiver_kind == "slow" else 0) as receiver,
        httpx.Client(timeout=0.2) as client,
    ):
        url = _closed_port_url() if receiver_kind == "refused" else receiver.url
        subscribe(loaded, url, "promise.made")
        promise(loaded)
        at = START
        outcomes = []
        for wait in (dt.timedelta(0), *BACKOFF):
            at += wait
            report = deliver_webhooks(loaded, creditor(loaded), at, client)
            outcomes.append((report.attempted, report.retrying, report.failed))
        assert (
            deliver_webhooks(loaded, creditor(loaded), at + dt.timedelta(days=9), client).attempted
            == 0
        )
    assert outcomes == [(1, 1, 0)] * 5 + [(1, 0, 1)]
    [entry] = log(loaded)
    assert (entry.status, entry.attempts, entry.next_at) == ("failed", 6, None)
    expected = {"error": "HTTP 503", "refused": "ConnectError", "slow": "ReadTimeout"}
    assert expected[receiver_kind] in (entry.last_error or "")


def test_an_endpoint_hears_only_its_types_its_creditor_and_what_came_after_it(
    loaded: Engine, client: httpx.Client, tmp_path: Path
) -> None:
    promise(loaded, "C-D3", at=START - dt.timedelta(hours=1))  # before the endpoint existed
    other = load_other(loaded, tmp_path)
    with Receiver() as receiver:
        subscribe(loaded, receiver.url, "dispute.opened")
        with loaded.begin() as connection:
            add_endpoint(connection, other, receiver.url, ["promise.made"], START)
        promise(loaded, "C-D1")
        open_dispute(
            loaded, creditor(loaded), "C-D2", "other", None, START, source="agent", actor="t"
        )
        make_promise(
            loaded, other, "C-X1", 1_000, dt.date(2026, 12, 9), START, source="agent", actor="t"
        )
        mine = deliver_webhooks(loaded, creditor(loaded), START, client)
        theirs = deliver_webhooks(loaded, other, START, client)
    assert (mine.delivered, theirs.delivered) == (1, 1)
    assert sorted((b["type"], b["data"]["case_ref"]) for b in receiver.bodies()) == [
        ("dispute.opened", "C-D2"),
        ("promise.made", "C-X1"),
    ]


def test_an_event_committed_late_is_still_delivered(loaded: Engine, client: httpx.Client) -> None:
    with Receiver() as receiver:
        subscribe(loaded, receiver.url, "promise.made")
        promise(loaded, "C-D1", at=START + dt.timedelta(minutes=10))
        assert (
            deliver_webhooks(
                loaded, creditor(loaded), START + dt.timedelta(minutes=10), client
            ).delivered
            == 1
        )
        # A transaction that began before the first run and committed after it.
        with loaded.begin() as connection:
            connection.execute(
                insert(EventRow).values(
                    id=new_id(), creditor_id=creditor(loaded), type="promise.made",
                    occurred_at=START + dt.timedelta(minutes=5), recorded_at=START + dt.timedelta(minutes=5),
                    payload={"amount_minor": 1},
                )
            )  # fmt: skip
        late = deliver_webhooks(loaded, creditor(loaded), START + dt.timedelta(minutes=11), client)
    assert late.delivered == 1 and len(receiver.received) == 2
    assert count(loaded, WebhookDeliveryRow) == 2


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_ends(loaded: Engine) -> None:
    subscribe(loaded, "http://127.0.0.1:9/none", "promise.made")
    promise(loaded)
    with loaded.begin() as connection:
        store = WebhookStore(connection, creditor(loaded))
        store.enqueue(START)
        assert len(store.claim(START, START + dt.timedelta(minutes=2), 10)) == 1
        assert (
            store.claim(START + dt.timedelta(minutes=1), START + dt.timedelta(minutes=3), 10) == []
        )
        assert (
            len(store.claim(START + dt.timedelta(minutes=2), START + dt.timedelta(minutes=4), 10))
            == 1
        )


def test_endpoints_refuse_unknown_event_types_and_urls(loaded: Engine) -> None:
    with loaded.begin() as connection, pytest.raises(ValueError, match=r"events: payment\.made"):
        add_endpoint(connection, creditor(loaded), "https://x.example/h", ["payment.made"], START)
    with loaded.begin() as connection, pytest.raises(ValueError, match="url"):
        add_endpoint(connection, creditor(loaded), "ftp://x.example/h", ["case.paid"], START)
    with loaded.connect() as connection:
        assert endpoints(connection, creditor(loaded)) == []


@given(st.binary(max_size=200), st.text(min_size=1, max_size=40), st.integers(0, 2**35))
def test_a_signature_verifies_only_its_own_body(body: bytes, secret: str, stamp: int) -> None:
    header = sign(body, secret, stamp)
    now = dt.datetime.fromtimestamp(stamp, dt.UTC)
    verify_signature(body, header, secret, now=now)
    with pytest.raises(SignatureError):
        verify_signature(body + b" ", header, secret, now=now)
    with pytest.raises(SignatureError):
        verify_signature(body, header, secret + "x", now=now)
