"""Benchmark: e-mails per second through `SmtpProvider` to a local aiosmtpd sink.

Sends N distinct e-mails (French reminder, text + HTML alternatives, about 5 KB on the
wire) on one kept-open connection (the provider's default: a fresh one every 100
messages), on two connections from two threads, and — the naive baseline — one
connection per message (connect, EHLO, MAIL, RCPT, DATA, QUIT each time). The sink
accepts and counts; by default it runs in a child process so that it does not share
the client's GIL (`--sink thread` runs it in a thread of this process, for comparison).
Every figure is checked against the sink's own count. Prints one JSON line.

    python bench/dispatch_email.py                      # 3,000 e-mails, naive on 500
    python bench/dispatch_email.py --emails 10000 --sink thread
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from parcours.channels.base import Outcome
from parcours.channels.content import (
    Channel,
    EmailBody,
    FeeLine,
    InvoiceLine,
    MessageContent,
)
from parcours.channels.email import SmtpConfig, SmtpProvider, build_email
from parcours.channels.render import SAMPLE_CREDITOR
from parcours.domain.structured_communication import StructuredCommunication
from parcours.observability import configure_logging

TARGET_EMAILS_PER_S = 1_000
HOST = "127.0.0.1"

CREDITOR = SAMPLE_CREDITOR


def _content(i: int) -> MessageContent:
    return MessageContent(
        attempt_id=f"{i:032x}",
        case_ref=f"C-{i:08d}",
        debtor_ref=f"D{i:07d}",
        channel=Channel.EMAIL,
        template="reminder_1",
        language="fr",
        persona="occasional",
        creditor=CREDITOR,
        debtor_name=f"Hélène Debtor {i}",
        email=f"debtor{i}@example.be",
        mobile=None,
        address=None,
        invoices=(
            InvoiceLine("INV-2026-0042", dt.date(2026, 10, 1), dt.date(2026, 10, 31), 8450, 8450),
        ),
        fees=(FeeLine("reminder_fee", 750, "Code de droit économique, art. XIX.4, § 2"),),
        currency="EUR",
        pay_by=dt.date(2026, 12, 20),
        structured_communication=StructuredCommunication.from_base(1_000_000 + i),
        pay_link=f"https://pay.parcours.example/p/{i:012x}",
        opt_out_link=f"https://pay.parcours.example/o/{i:012x}",
    )


def _body(content: MessageContent) -> EmailBody:
    """A reminder about as long as a real one: greeting, a table, how to pay, the footer."""
    comm = content.structured_communication.formatted
    rows = "".join(
        f'<tr><td style="padding:4px 8px;border-bottom:1px solid #ddd">{inv.ref}</td>'
        f'<td style="padding:4px 8px;border-bottom:1px solid #ddd">{inv.due_on:%d/%m/%Y}</td>'
        f'<td style="padding:4px 8px;border-bottom:1px solid #ddd;text-align:right">'
        f"{inv.open_minor / 100:.2f} €</td></tr>"
        for inv in content.invoices
    )
    paragraph = (
        "Nous n’avons pas encore reçu le paiement de la facture ci-dessous. C’est peut-être "
        "un simple oubli : vous pouvez régler en quelques secondes avec le lien personnel, "
        "ou par virement avec la communication structurée. Si vous avez déjà payé, merci "
        "de ne pas tenir compte de ce message. Une question, une difficulté ? Répondez à cet "
        "e-mail ou appelez-nous : nous cherchons une solution avec vous."
    )
    html = (
        '<!doctype html><html lang="fr"><head><meta charset="utf-8">'
        "<title>Rappel</title></head>"
        '<body style="font-family:Arial,sans-serif;color:#222;line-height:1.5">'
        f"<p>Bonjour {content.debtor_name},</p><p>{paragraph}</p>"
        '<table style="border-collapse:collapse;margin:16px 0">'
        '<tr><th style="text-align:left;padding:4px 8px">Facture</th>'
        '<th style="text-align:left;padding:4px 8px">Échéance</th>'
        '<th style="text-align:right;padding:4px 8px">Montant</th></tr>'
        f"{rows}</table>"
        f"<p>Total à payer : <strong>{content.total_minor / 100:.2f} €</strong> "
        f"avant le {content.pay_by:%d/%m/%Y}.</p>"
        f"<p>IBAN {CREDITOR.iban} — communication <code>{comm}</code></p>"
        f'<p><a href="{content.pay_link}" style="background:#0a7;color:#fff;padding:10px 16px;'
        'border-radius:4px;text-decoration:none">Payer maintenant</a></p>'
        f'<hr><p style="font-size:12px;color:#666">{CREDITOR.name}, '
        f"{', '.join(CREDITOR.address.lines())}. "
        f'<a href="{content.opt_out_link}">Ne plus recevoir ces e-mails</a></p>'
        "</body></html>"
    )
    text = (
        f"Bonjour {content.debtor_name},\n\n{paragraph}\n\n"
        f"Total à payer : {content.total_minor / 100:.2f} € avant le "
        f"{content.pay_by:%d/%m/%Y}.\nIBAN {CREDITOR.iban} — communication {comm}\n"
        f"Payer maintenant : {content.pay_link}\n\n-- \n{CREDITOR.name}\n"
        f"Ne plus recevoir ces e-mails : {content.opt_out_link}\n"
    )
    return EmailBody(subject="Rappel : votre facture Demo Energy impayée", text=text, html=html)


# -- the sink ------------------------------------------------------------------------------


@dataclasses.dataclass
class _Counter:
    received: int = 0

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.received += 1
        return "250 OK"


def _serve_sink(port: int, cert: str | None) -> None:
    """Child process: serve SMTP (port 0: a free one, shared with its siblings through
    SO_REUSEPORT), print the port, and the count and CPU seconds when stdin closes."""

    async def run() -> None:
        counter = _Counter()
        loop = asyncio.get_running_loop()
        tls = None
        if cert is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(cert, cert.replace("cert.pem", "key.pem"))
        server = await loop.create_server(
            lambda: SMTP(
                counter,
                hostname="sink.test",
                loop=loop,
                tls_context=tls,
                require_starttls=bool(tls),
            ),
            HOST,
            port,
            reuse_port=True,
        )
        print(server.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()
        print(counter.received, time.process_time(), flush=True)

    asyncio.run(run())


def _certificate(directory: str) -> str:
    """A self-signed certificate for 127.0.0.1 (and its key next to it), via openssl."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt"]
    command += ["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=sink.test"]
    command += ["-addext", f"subjectAltName=IP:{HOST}", "-keyout", key, "-out", cert]
    subprocess.run(command, check=True, capture_output=True)
    return cert


_Received = Callable[[], tuple[int, float | None]]


@contextmanager
def _sink(kind: str, processes: int, cert: str | None) -> Iterator[tuple[int, _Received]]:
    """(port, received) of a running sink; `received()` ends it (call it last) and says
    how many e-mails it accepted and, for child processes, the CPU seconds they used."""
    if kind == "process":
        children: list[subprocess.Popen[str]] = []
        port = 0
        try:
            for _ in range(processes):
                command = [sys.executable, __file__, "--serve-sink", str(port)]
                child = subprocess.Popen(
                    command + (["--sink-cert", cert] if cert else []),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                children.append(child)
                assert child.stdout is not None
                port = int(child.stdout.readline())

            def received() -> tuple[int, float | None]:
                count, cpu = 0, 0.0
                for child in children:
                    assert child.stdin is not None
                    assert child.stdout is not None
                    child.stdin.close()
                    n, seconds = child.stdout.readline().split()
                    child.wait(timeout=10)
                    count, cpu = count + int(n), cpu + float(seconds)
                return count, cpu

            yield port, received
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        return
    counter = _Counter()
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    tls = None
    if cert is not None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, cert.replace("cert.pem", "key.pem"))
    controller = Controller(
        counter,
        hostname=HOST,
        port=port,
        server_hostname="sink.test",
        tls_context=tls,
        require_starttls=bool(tls),
    )
    controller.start()
    try:
        yield port, lambda: (counter.received, None)
    finally:
        controller.stop()


# -- the runs ------------------------------------------------------------------------------


def _send_all(port: int, batch: list[tuple[MessageContent, EmailBody]], **config: Any) -> int:
    config = {"host": HOST, "port": port, "security": "none", "domain": "bench.test"} | config
    provider = SmtpProvider(SmtpConfig(**config))
    with provider:
        sent = sum(provider.send(c, b).outcome is Outcome.SENT for c, b in batch)
    return sent


def _timed(run: Callable[[], int]) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    sent = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "emails": sent,
        "seconds": round(wall, 3),
        "emails_per_s": round(sent / wall, 1),
        "client_cpu_ms_per_email": round(cpu / sent * 1000, 3),
    }


def _pool(
    port: int, batch: list[tuple[MessageContent, EmailBody]], threads: int, **config: Any
) -> int:
    sent = [0] * threads

    def worker(k: int) -> None:
        sent[k] = _send_all(port, batch[k::threads], **config)

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(sent)


def measure(
    n: int,
    *,
    naive: int | None = None,
    sink: str = "process",
    sink_processes: int = 1,
    starttls: bool = False,
) -> dict[str, Any]:
    """Throughput of n e-mails: one kept connection, two in threads, one per message."""
    naive = min(n, 500) if naive is None else naive
    contents = [_content(i) for i in range(n)]
    batch = [(c, _body(c)) for c in contents]
    size = len(build_email(*batch[0], domain="bench.test").as_bytes())
    with tempfile.TemporaryDirectory() as directory:
        cert = _certificate(directory) if starttls else None
        config: dict[str, Any] = {"security": "starttls", "ca_file": cert} if cert else {}
        with _sink(sink, sink_processes, cert) as (port, received):
            _send_all(port, batch[:50], **config)  # warm up both sides (imports, caches)
            reuse = _timed(lambda: _send_all(port, batch, **config))
            pool2 = _timed(lambda: _pool(port, batch, 2, **config))
            single = _timed(lambda: _send_all(port, batch[:naive], max_per_connection=1, **config))
            total, sink_cpu = received()
    expected = 50 + reuse["emails"] + pool2["emails"] + single["emails"]
    best = max(reuse["emails_per_s"], pool2["emails_per_s"])
    return {
        "bench": "dispatch_email",
        "sink": sink,
        "sink_processes": sink_processes if sink == "process" else 0,
        "starttls": starttls,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "message_bytes": size,
        "kept_connection": reuse,
        "two_connections_in_threads": pool2,
        "connection_per_message": single,
        "reuse_vs_naive": round(reuse["emails_per_s"] / single["emails_per_s"], 2),
        "sink_cpu_ms_per_email": None if sink_cpu is None else round(sink_cpu / total * 1000, 3),
        "sink_received_all": total == expected,
        "target_emails_per_s": TARGET_EMAILS_PER_S,
        "target_met": best >= TARGET_EMAILS_PER_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=3_000)
    parser.add_argument("--naive", type=int, default=None, help="e-mails for the baseline")
    parser.add_argument("--sink", choices=("process", "thread"), default="process")
    parser.add_argument("--sink-processes", type=int, default=1)
    parser.add_argument("--starttls", action="store_true", help="STARTTLS, self-signed cert")
    parser.add_argument("--serve-sink", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sink-cert", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink is not None:
        _serve_sink(args.serve_sink, args.sink_cert)
        return
    configure_logging("WARNING")
    result = measure(
        args.emails,
        naive=args.naive,
        sink=args.sink,
        sink_processes=args.sink_processes,
        starttls=args.starttls,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
