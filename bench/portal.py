"""Benchmark: the debtor's page and live chat, on PostgreSQL, the app in one uvicorn worker
process (uvloop, httptools), the load generator in this process on loopback.

Prints one JSON line with two measurements:

- **page** — `GET /p/{token}` (the debtor page's main view) with a valid portal cookie, by
  `--users` simulated debtors: each requests its own case's page, then thinks for an
  exponentially distributed time (`--think` seconds on average) and asks again, for
  `--seconds`. Reported: requests per second, p50/p95/p99 latency, against the target
  p95 < 50 ms; and the same page asked by one user alone (`unloaded_*`) for reference.
  Whatever the app serves at that route is measured (the placeholder page until the
  debtor page replaces it; `page_bytes` says which).
- **chat** — `--connections` WebSockets open on one process: `--conversations`
  conversations, each with `--tabs` debtor tabs and one agent. Messages are posted at
  `--rate` per second (Poisson arrivals) by a random participant of a random
  conversation; the latency of each delivery is measured from the send to its receipt by
  every socket of that conversation (the sender's own echo included: a message is shown
  once stored). Target: p95 < 100 ms. Debtor sockets use the app's `/p/{token}/chat/ws`
  when it has one, else a bench route that runs the same loop (`parcours.web.chat.
  debtor_socket`) without the page's cookie check — `chat.debtor_route` says which;
  agents use a bench route running `agent_socket` (the back office's route checks a
  session first). Baseline: a naive hub in the same app and load — each message stored
  on the event loop (no thread pool), then encoded and sent to each subscriber in turn —
  as a ratio of p95 latencies (naive / ours).

    python bench/portal.py                     # both, 100 users, 1,000 sockets
    python bench/portal.py --part chat --rate 100 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import zoneinfo
from pathlib import Path
from typing import Any

# At module level: FastAPI reads the routes' (string) annotations from the module globals.
from fastapi import WebSocket
from fastapi.responses import HTMLResponse

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "parcours_bench_portal"
PG_BENCH = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
SECRET = "bench-portal-secret"  # noqa: S105 - signs the bench's own links only
NOW = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
TARGET_PAGE_P95_MS = 50.0
TARGET_CHAT_P95_MS = 100.0
REAL_CHAT_ROUTE = "/p/{token}/chat/ws"


def _raise_file_limit() -> None:
    """A thousand sockets on each side: lift the soft limit on open files to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the server (a child process) --------------------------------------------------------


def serve(port: int, workdir: Path) -> None:
    """The real app (`create_app`) plus the bench's socket routes, in one worker."""
    import uvicorn
    from pydantic import SecretStr
    from sqlalchemy import select

    from parcours.settings import Settings
    from parcours.store.db import connect
    from parcours.store.schema import CaseRow
    from parcours.web.app import create_app
    from parcours.web.chat import ChatHub, agent_socket, debtor_socket
    from parcours.web.portal.access import DebtorAccess

    _raise_file_limit()
    settings = Settings(
        database_url=PG_BENCH,
        secret_key=SecretStr(SECRET),
        public_url=f"http://127.0.0.1:{port}",
        channels_file=workdir / "channels.yaml",  # the profile only: no PSP, no providers
        outbox_dir=workdir / "outbox",
    )
    app = create_app(settings)
    engine = getattr(app.state, "engine", None) or connect(PG_BENCH, pool_size=20)
    hub = getattr(app.state, "chat_hub", None)
    if hub is None:
        hub = app.state.chat_hub = ChatHub()
    naive = _NaiveHub()
    cases: dict[str, DebtorAccess] = {}

    def access(case_text: str) -> DebtorAccess:
        if case_text not in cases:
            with engine.connect() as connection:
                row = connection.execute(
                    select(CaseRow.creditor_id, CaseRow.debtor_id).where(
                        CaseRow.id == uuid.UUID(case_text)
                    )
                ).one()
            cases[case_text] = DebtorAccess(row[0], uuid.UUID(case_text), row[1], case_text)
        return cases[case_text]

    @app.websocket("/bench/debtor/{case_text}")
    async def bench_debtor(websocket: WebSocket, case_text: str) -> None:
        await debtor_socket(websocket, hub, engine, access(case_text))

    @app.websocket("/bench/agent/{case_text}/{conversation}")
    async def bench_agent(websocket: WebSocket, case_text: str, conversation: str) -> None:
        creditor = access(case_text).creditor_id
        await agent_socket(websocket, hub, engine, creditor, None, conversation)

    @app.get("/bench/naive-page/{case_text}", response_class=HTMLResponse)
    def naive_page(case_text: str) -> str:
        return _naive_page(engine, settings, access(case_text))

    @app.websocket("/bench/naive/{who}/{case_text}")
    async def naive_socket(websocket: WebSocket, who: str, case_text: str) -> None:
        await naive.socket(websocket, engine, access(case_text), who)

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=30,  # as a browser keeps a connection between two pages
    )


def _naive_page(engine: Any, settings: Any, access: Any) -> str:
    """The baseline page: what a first version does — an ORM session, one query for the
    case, one per invoice for its payments, the fees, and the QR code drawn on every
    request inside the HTML — rendered with the same template and words."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from parcours.channels.config import load_channels
    from parcours.domain.structured_communication import StructuredCommunication
    from parcours.payments.epc import belgian_transfer, format_iban, qr_svg
    from parcours.store.portal import DebtorView, InvoiceView, Overview
    from parcours.store.schema import CaseRow, DebtorRow, InvoiceRow, OutboxRow, PaymentRow
    from parcours.web.portal.i18n import LANGUAGES, environment

    with Session(engine) as session:
        case = session.get(CaseRow, (access.case_id, access.creditor_id))
        debtor = session.get(DebtorRow, (access.debtor_id, access.creditor_id))
        assert case is not None
        assert debtor is not None
        invoices = session.scalars(
            select(InvoiceRow).where(
                InvoiceRow.creditor_id == access.creditor_id, InvoiceRow.case_id == case.id
            )
        ).all()
        lines = []
        for invoice in invoices:  # the payments of each invoice, one query each
            paid = sum(
                p.amount_minor
                for p in session.scalars(
                    select(PaymentRow).where(
                        PaymentRow.creditor_id == access.creditor_id,
                        PaymentRow.invoice_id == invoice.id,
                    )
                )
            )
            lines.append(
                InvoiceView(
                    invoice.ref, invoice.issue_date, invoice.due_date, invoice.amount_minor,
                    paid, invoice.currency, invoice.structured_communication,
                )
            )  # fmt: skip
        fees = session.scalars(
            select(OutboxRow).where(
                OutboxRow.creditor_id == access.creditor_id, OutboxRow.case_id == case.id,
                OutboxRow.kind == "fee",
            )
        ).all()  # fmt: skip
        view = Overview(
            case.id, debtor.id, case.ref, case.status, case.structured_communication,
            DebtorView(
                debtor.name, debtor.language, debtor.postcode, debtor.birth_year,
                bool(debtor.email), bool(debtor.phone), bool(debtor.street),
                {"email": debtor.email_consent, "sms": debtor.phone_consent,
                 "letter": debtor.postal_consent},
                debtor.preferred_channel, debtor.remind_before_due, debtor.profiling_objection,
            ),
            None, None, invoices=lines,
            fees=[(f.template or "", f.amount_minor or 0, f.sent_at) for f in fees],
        )  # fmt: skip
    profile = load_channels(settings.channels_file).default
    assert profile is not None
    ogm = StructuredCommunication.parse(view.paying_communication or "")
    transfer = belgian_transfer(
        name=profile.profile.name, iban=profile.profile.iban, amount_minor=view.total_minor,
        communication=ogm,
    )  # fmt: skip
    html = (
        environment(view.debtor.language)
        .get_template("portal/page.html")
        .render(
            path="/", languages=LANGUAGES, token=access.case_text, view=view, creditor="Bench",
            csrf="", lang=view.debtor.language, profile=profile.profile,
            communication=ogm.formatted, payto="", iban=format_iban(transfer.iban),
            beneficiary=transfer.name, psp=False, agents_online=0, sla_hours=24, messages=[],
            today=_now().date(),
        )
    )  # fmt: skip
    return html.replace('<img class="qr"', f'<img class="qr" data-svg="{len(qr_svg(transfer))}"')


class _NaiveHub:
    """The baseline: store on the event loop, then encode and send to each in turn."""

    def __init__(self) -> None:
        self.sockets: dict[str, list[Any]] = {}

    async def socket(self, websocket: Any, engine: Any, access: Any, who: str) -> None:
        from parcours.runtime.chat import agent_says, debtor_says, open_conversation

        await websocket.accept()
        conversation = open_conversation(engine, access.creditor_id, access.case_id, _now())
        topic = str(conversation.id)
        self.sockets.setdefault(topic, []).append(websocket)
        await websocket.send_text(json.dumps({"type": "hello", "conversation": topic}))
        try:
            while True:
                data = json.loads(await websocket.receive_text())
                if who == "agent":
                    posted = agent_says(
                        engine, access.creditor_id, conversation.id, None, data["body"], _now(),
                        True,
                    )  # fmt: skip
                else:
                    posted = debtor_says(
                        engine, access.creditor_id, access.case_id, data["body"], _now()
                    )
                for peer in list(self.sockets.get(topic, [])):
                    with contextlib.suppress(Exception):  # a peer gone: the naive hub shrugs
                        await peer.send_text(json.dumps(posted.payload()))
        except Exception:  # the client left
            return
        finally:
            self.sockets[topic].remove(websocket)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- set-up ------------------------------------------------------------------------------


def fresh_database(debtors: int, workdir: Path) -> list[str]:
    """A migrated database with `debtors` debtors owing two invoices each; the case ids."""
    from sqlalchemy import select

    from parcours.ingest import ImportKind, import_file
    from parcours.ingest.importer import ImportOptions, report_allows_commit
    from parcours.store.db import connect
    from parcours.store.messages import MessageStore
    from parcours.store.migrate import upgrade
    from parcours.store.schema import CaseRow
    from parcours.store.uow import UnitOfWork

    admin = connect(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        connection.exec_driver_sql(f"CREATE DATABASE {DB_NAME}")
    admin.dispose()
    engine = connect(PG_BENCH)
    upgrade(engine)
    people = workdir / "debtors.csv"
    people.write_text(
        "debtor_ref,name,email,phone,language,street,postcode,city,birth_year\n"
        + "".join(
            f"D{n},Debtor {n},d{n}@example.be,0470{n:06d},{('fr', 'nl', 'en')[n % 3]},"
            f"Rue Haute {n % 200 + 1},1000,Bruxelles,1980\n"
            for n in range(debtors)
        ),
        encoding="utf-8",
    )
    bills = workdir / "invoices.csv"
    bills.write_text(
        "invoice_ref,debtor_ref,amount,currency,issue_date,due_date\n"
        + "".join(
            f"F{n}a,D{n},120.00,EUR,2026-10-01,2026-11-01\nF{n}b,D{n},80.50,EUR,2026-11-01,"
            "2026-12-01\n"
            for n in range(debtors)
        ),
        encoding="utf-8",
    )
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.add("bench", NOW)
        options = ImportOptions(
            creditor.id, "bench", NOW, default_zone=zoneinfo.ZoneInfo("Europe/Brussels")
        )
        for kind, path in ((ImportKind.DEBTORS, people), (ImportKind.INVOICES, bills)):
            report = import_file(uow.connection(), kind, path, options)
            if report.errors or not report_allows_commit(report):
                raise SystemExit(f"benchmark data rejected: {report.errors[:3]}")
        uow.commit()
    # The creditor's profile (IBAN, help): the page shows how to pay, with its QR code.
    (workdir / "channels.yaml").write_text(
        "default:\n  profile:\n    name: Bench Energy SA\n    iban: BE71096123456769\n"
        "    bic: GKCCBEBB\n    street: Rue de la Loi 16\n    postcode: '1000'\n"
        "    city: Bruxelles\n    help_email: help@bench.example\n"
        "    help_phone: '+3225550100'\n    email_from: bills@bench.example\n",
        encoding="utf-8",
    )
    with engine.begin() as connection:
        # Each case gets the structured communication that pays both its invoices, as
        # the first message sent to the debtor would have given it.
        store = MessageStore(connection, creditor.id)
        store.message_facts([str(c) for c in connection.scalars(select(CaseRow.id))])
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")  # as autovacuum would have it
        cases = [str(c) for c in connection.scalars(select(CaseRow.id).order_by(CaseRow.ref))]
    engine.dispose()
    return cases


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--port", str(port), "--workdir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the app did not start (see its error above)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the app did not start")


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan")}

    def at(q: float) -> float:
        return round(ordered[min(int(len(ordered) * q), len(ordered) - 1)] * 1000, 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99)}


# -- the page ----------------------------------------------------------------------------


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, int]:
    """One HTTP/1.1 request on a keep-alive connection: (status, body bytes)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return status, length
    size = 0
    while True:
        chunk = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
        await reader.readexactly(chunk + 2)
        size += chunk
        if chunk == 0:
            return status, size


def _page_request(port: int, case_text: str, now: dt.datetime) -> bytes:
    from parcours.channels.links import Links
    from parcours.web.portal.access import PORTAL_COOKIE, portal_cookie_value

    token = Links(SECRET, f"http://127.0.0.1:{port}").token("page", case_text, now)
    cookie = portal_cookie_value(SECRET, case_text)
    return (
        f"GET /p/{token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/html\r\n"
        f"Accept-Language: fr-BE,fr;q=0.9\r\nCookie: {PORTAL_COOKIE}={cookie}\r\n\r\n"
    ).encode()


def _naive_page_request(port: int, case_text: str) -> bytes:
    return (
        f"GET /bench/naive-page/{case_text} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Accept: text/html\r\n\r\n"
    ).encode()


async def _user(
    port: int,
    request: bytes,
    think: float,
    until: float,
    rng: random.Random,
    latencies: list[float],
    failures: list[str],
    sizes: list[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.sleep(rng.expovariate(1 / think))  # users do not arrive in step
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                status, size = await _get(reader, writer, request)
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed an idle keep-alive connection: a browser reconnects
                # and asks again (the time to connect counts).
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                status, size = await _get(reader, writer, request)
            latencies.append(time.perf_counter() - started)
            sizes.append(size)
            if status != 200:
                failures.append(str(status))
            await asyncio.sleep(rng.expovariate(1 / think))
    finally:
        writer.close()


async def _page_load(
    port: int, requests: list[bytes], think: float, seconds: float, seed: int
) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[str] = []
    sizes: list[int] = []
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(
        *(
            _user(port, r, think, until, random.Random(seed + n), latencies, failures, sizes)
            for n, r in enumerate(requests)
        )
    )
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        **_percentiles(latencies),
        "failures": len(failures),
        "failure_statuses": sorted(set(failures))[:5],
        "page_bytes": max(sizes) if sizes else 0,
    }


def bench_page(port: int, cases: list[str], args: argparse.Namespace) -> dict[str, Any]:
    import uvloop

    now = _now()
    requests = [_page_request(port, case, now) for case in cases[: args.users]]
    # Warm up (connections, statement caches), then one user alone, then the crowd.
    uvloop.run(_page_load(port, requests[:10], 0.05, 3, 1))
    alone = uvloop.run(_page_load(port, requests[:1], 0.02, 5, 2))
    loaded = uvloop.run(_page_load(port, requests, args.think, args.seconds, 3))
    if loaded["failures"]:
        raise SystemExit(f"page: {loaded['failures']} requests failed: {loaded}")
    naive_requests = [_naive_page_request(port, case) for case in cases[: args.users]]
    naive = uvloop.run(_page_load(port, naive_requests, args.think, args.baseline_seconds, 4))
    return {
        "route": "GET /p/{token}",
        "users": args.users,
        "think_s": args.think,
        "seconds": args.seconds,
        **loaded,
        "target_p95_ms": TARGET_PAGE_P95_MS,
        "meets_target": loaded["p95_ms"] < TARGET_PAGE_P95_MS,
        "unloaded_p50_ms": alone["p50_ms"],
        "unloaded_p95_ms": alone["p95_ms"],
        "ratio_p95_to_unloaded": round(loaded["p95_ms"] / alone["p95_ms"], 2),
        "baseline": "the same page built naively (ORM, a query per invoice, the QR code "
        "drawn on every request), same users and think time",
        "baseline_requests_per_s": naive["requests_per_s"],
        "baseline_p95_ms": naive["p95_ms"],
        "ratio_p95_baseline_to_ours": round(naive["p95_ms"] / loaded["p95_ms"], 2),
    }


# -- the chat ----------------------------------------------------------------------------


class _Chat:
    """The load generator's side: sockets, sends, and when each delivery arrived."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}  # message tag -> send time
        self.expected: dict[str, int] = {}  # message tag -> sockets that must receive it
        self.latencies: list[float] = []
        self.received = 0
        self.errors: list[str] = []
        self.done = asyncio.Event()
        self.waiting_for = 0

    async def listen(self, ws: Any) -> None:
        try:
            async for raw in ws:
                at = time.perf_counter()
                data = json.loads(raw)
                if data.get("type") == "error":
                    self.errors.append(str(data.get("detail")))
                    continue
                if data.get("type") != "message":
                    continue
                tag = data["body"].split(" ", 1)[0]
                sent = self.sent.get(tag)
                if sent is None:
                    continue
                self.latencies.append(at - sent)
                self.received += 1
                if self.received >= self.waiting_for and self.waiting_for:
                    self.done.set()
        except Exception:  # closed at the end of the run
            return


async def _open(url: str) -> tuple[Any, dict[str, Any]]:
    from websockets.asyncio.client import connect

    ws = await connect(url, max_queue=None, ping_interval=None, open_timeout=60)
    hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
    return ws, hello


async def _chat_load(
    port: int, cases: list[str], args: argparse.Namespace, mode: str, debtor_route: str
) -> dict[str, Any]:
    from parcours.channels.links import Links
    from parcours.web.portal.access import PORTAL_COOKIE, portal_cookie_value

    base = f"ws://127.0.0.1:{port}"
    chat = _Chat()
    rooms: list[list[Any]] = []
    links = Links(SECRET, f"http://127.0.0.1:{port}")

    async def debtor(case: str) -> tuple[Any, dict[str, Any]]:
        if mode == "naive":
            return await _open(f"{base}/bench/naive/debtor/{case}")
        if debtor_route == "real":
            from websockets.asyncio.client import connect

            token = links.token("page", case, _now())
            ws = await connect(
                f"{base}/p/{token}/chat/ws",
                additional_headers={
                    "Cookie": f"{PORTAL_COOKIE}={portal_cookie_value(SECRET, case)}"
                },
                max_queue=None,
                ping_interval=None,
                open_timeout=60,
            )
            return ws, json.loads(await asyncio.wait_for(ws.recv(), 60))
        return await _open(f"{base}/bench/debtor/{case}")

    async def room(case: str) -> list[Any]:
        tabs = [await debtor(case) for _ in range(args.tabs)]
        conversation = tabs[0][1]["conversation"]
        if mode == "naive":
            agent = await _open(f"{base}/bench/naive/agent/{case}")
        else:
            agent = await _open(f"{base}/bench/agent/{case}/{conversation}")
        return [ws for ws, _ in tabs] + [agent[0]]

    opening = time.perf_counter()
    for start in range(0, args.conversations, 25):  # 25 rooms at a time: no connect storm
        batch = cases[start : min(start + 25, args.conversations)]
        rooms += await asyncio.gather(*(room(c) for c in batch))
    opened_in = time.perf_counter() - opening
    sockets = [ws for r in rooms for ws in r]
    listeners = [asyncio.create_task(chat.listen(ws)) for ws in sockets]
    rng = random.Random(7)

    async def post(n: int) -> None:
        members = rooms[rng.randrange(len(rooms))]
        sender = members[rng.randrange(len(members))]
        tag = f"m{n}"
        chat.expected[tag] = len(members)
        chat.sent[tag] = time.perf_counter()
        await sender.send(json.dumps({"type": "message", "body": f"{tag} Is this amount right?"}))

    # Warm-up messages are not measured (their tags are forgotten before the run).
    for n in range(20):
        await post(-n - 1)
        await asyncio.sleep(0.01)
    await asyncio.sleep(1)
    chat.sent.clear()
    chat.expected.clear()
    chat.latencies.clear()
    chat.received = 0
    messages = int(args.rate * args.chat_seconds)
    started = time.perf_counter()
    clock = started
    for n in range(messages):
        clock += rng.expovariate(args.rate)
        delay = clock - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await post(n)
    chat.waiting_for = sum(chat.expected.values())
    if chat.received < chat.waiting_for:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(chat.done.wait(), args.drain)
    elapsed = time.perf_counter() - started
    for ws in sockets:
        await ws.close()
    for task in listeners:
        task.cancel()
    return {
        "connections": len(sockets),
        "conversations": len(rooms),
        "sockets_per_conversation": args.tabs + 1,
        "opened_in_s": round(opened_in, 1),
        "messages": messages,
        "messages_per_s": round(messages / elapsed, 1),
        "deliveries": chat.received,
        "deliveries_missing": chat.waiting_for - chat.received,
        "errors": len(chat.errors),
        **_percentiles(chat.latencies),
    }


def bench_chat(port: int, cases: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Ours on the first `--conversations` cases, then the naive hub on the next ones (a
    shorter run at the same rate: it falls behind)."""
    import uvloop

    debtor_route = "real" if uvloop.run(_has_chat_route(port, cases[-1])) else "bench"
    ours = uvloop.run(_chat_load(port, cases, args, "ours", debtor_route))
    others = cases[args.conversations : 2 * args.conversations]
    if len(others) < args.conversations:
        others = cases[-args.conversations :]
    shorter = argparse.Namespace(**{**vars(args), "chat_seconds": args.baseline_seconds})
    naive = uvloop.run(_chat_load(port, others, shorter, "naive", "bench"))
    return {
        "debtor_route": REAL_CHAT_ROUTE if debtor_route == "real" else "bench (same loop)",
        **ours,
        "rate_per_s": args.rate,
        "target_p95_ms": TARGET_CHAT_P95_MS,
        "meets_target": ours["p95_ms"] < TARGET_CHAT_P95_MS,
        "baseline": "naive hub: stores on the event loop, then encodes and sends to each "
        "subscriber in turn",
        "baseline_seconds": args.baseline_seconds,
        "baseline_messages_per_s": naive["messages_per_s"],
        "baseline_p50_ms": naive["p50_ms"],
        "baseline_p95_ms": naive["p95_ms"],
        "baseline_p99_ms": naive["p99_ms"],
        "baseline_deliveries_missing": naive["deliveries_missing"],
        "ratio_p95_baseline_to_ours": round(naive["p95_ms"] / ours["p95_ms"], 1),
    }


async def _has_chat_route(port: int, case: str) -> bool:
    """Whether the app serves the debtor page's chat socket: a handshake with a valid
    link and cookie is accepted (Starlette refuses an unknown WebSocket path)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    from parcours.channels.links import Links
    from parcours.web.portal.access import PORTAL_COOKIE, portal_cookie_value

    token = Links(SECRET, f"http://127.0.0.1:{port}").token("page", case, _now())
    cookie = f"{PORTAL_COOKIE}={portal_cookie_value(SECRET, case)}"
    try:
        async with connect(
            f"ws://127.0.0.1:{port}/p/{token}/chat/ws",
            additional_headers={"Cookie": cookie},
            open_timeout=30,
        ) as ws:
            await asyncio.wait_for(ws.recv(), 30)
    except (InvalidStatus, OSError, TimeoutError):
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=["page", "chat", "both"], default="both")
    parser.add_argument("--debtors", type=int, default=5_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--think", type=float, default=1.0, help="mean think time, seconds")
    parser.add_argument("--seconds", type=float, default=30.0, help="page run length")
    parser.add_argument("--conversations", type=int, default=250)
    parser.add_argument("--tabs", type=int, default=3, help="debtor sockets per conversation")
    parser.add_argument("--rate", type=float, default=100.0, help="chat messages per second")
    parser.add_argument("--chat-seconds", type=float, default=20.0)
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to await stragglers")
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    _raise_file_limit()
    if args.serve:
        serve(args.port, args.workdir)
        return
    out: dict[str, Any] = {"bench": "portal", "db": "postgresql", "workers": 1}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cases = fresh_database(max(args.debtors, args.users, args.conversations), workdir)
        process, port = start_server(workdir)
        try:
            if args.part in ("page", "both"):
                out["page"] = bench_page(port, cases, args)
            if args.part in ("chat", "both"):
                out["chat"] = bench_chat(port, cases, args)
        finally:
            process.terminate()
            process.wait(timeout=30)
    out["load_average"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
