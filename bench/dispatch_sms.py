"""Benchmark: preparing SMS requests (the sms-http hot path) and sending them over HTTP.

Prints one JSON line. The first part times what `SmsHttpProvider.send` does before any
I/O — `build_payload` plus the segment count (alphabet detection) — over `--n` messages
mixing plain GSM, GSM with €, French that needs UCS-2 and two-segment texts, against a
naive version of the same work: fields read from a JSON round trip of the whole message,
the alphabet found by a per-character lookup in the GSM table, and the payload dict passed
through JSON again. Target: 50,000 prepared messages per second.

The second part sends `--sends` messages to the fake Twilio gateway of the test suite (a
real HTTP server on 127.0.0.1), over TLS (a throw-away self-signed certificate made with
the openssl command) and over plain HTTP: one provider reusing its kept-alive connection,
against a new provider, hence a new connection, per message. Loopback has no round-trip
time, so the gain shown is only the handshakes' CPU; over the Internet each new
connection also costs two or three round trips.

    python bench/dispatch_sms.py                  # 100,000 payloads, 500 sends each way
    python bench/dispatch_sms.py --n 20000 --sends 200
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from pydantic import SecretStr

from parcours.channels.content import Channel, MessageContent, SmsBody
from parcours.channels.gsm import segments
from parcours.channels.sms import SmsHttpConfig, SmsHttpProvider

TARGET_PAYLOADS_PER_S = 50_000
NAIVE_SAMPLE = 20_000  # the naive runs are timed on at most this many messages
ACCOUNT_SID = "AC" + "1f" * 16
CALLBACK = "https://app.parcours.example/sms/status"
TEXTS = (
    "Demo Energy: rappel, votre facture INV-2026-0042 arrive à échéance le 31/10. "
    "Payez ici: https://pay.parcours.example/p/tok3n",
    "Demo Energy: il reste 157,00 € à payer avant le 20/12. "
    "Payez en 2 clics: https://pay.parcours.example/p/tok3n",
    "Demo Energy: votre paiement est-il prêt ? Il reste 157,00 € dû. Réponse rapide: "
    "https://pay.parcours.example/p/tok3n",
    "Demo Energy: uw factuur INV-2026-0042 van 84,50 € en INV-2026-0051 (saldo 40,00 €) "
    "staan nog open, met 7,50 € aanmaningskosten. Betaal vóór 20/12 via "
    "https://pay.parcours.example/p/tok3n of bel +3225550100. Stop: antwoord STOP.",
)

# What a naive implementation keeps: the alphabet as one string, searched per character.
NAIVE_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
NAIVE_EXTENSION = "\f^{}\\[~]|€"


def _tests_module(name: str) -> ModuleType:
    """Import a module of the test suite (the fake gateway, the message factory)."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(name)


def messages(n: int) -> list[tuple[MessageContent, SmsBody]]:
    make_content = _tests_module("tests.channels.conftest").make_content
    base = make_content(channel=Channel.SMS)
    return [
        (
            dataclasses.replace(base, attempt_id=f"{i:032x}", mobile=f"+32470{i % 1_000_000:06d}"),
            SmsBody(TEXTS[i % len(TEXTS)]),
        )
        for i in range(n)
    ]


def naive_segments(text: str) -> int:
    """Segments the obvious way: each character looked up in the alphabet string."""
    septets, gsm = 0, True
    for char in text:
        if char in NAIVE_BASIC:
            septets += 1
        elif char in NAIVE_EXTENSION:
            septets += 2
        else:
            gsm = False
            break
    if gsm:
        parts = 1 if septets <= 160 else math.ceil(septets / 153)
    else:
        code_units = len(text.encode("utf-16-le")) // 2
        parts = 1 if code_units <= 70 else math.ceil(code_units / 67)
    return parts


def naive_prepare(content: MessageContent, body: SmsBody) -> tuple[dict[str, Any], int]:
    """The same work done the obvious way: JSON round trips and a per-character scan."""
    record = json.loads(json.dumps(dataclasses.asdict(content), default=str))
    mobile = record["mobile"]
    if not mobile or not re.match(r"^\+[1-9]\d{1,14}$", mobile):
        raise ValueError("no mobile number")
    text = body.text
    payload = {
        "To": mobile,
        "From": record["creditor"]["sms_sender"],
        "Body": text,
        "StatusCallback": f"{CALLBACK}?attempt={record['attempt_id']}",
    }
    return json.loads(json.dumps(payload)), naive_segments(text)


def best_rate(run: Callable[[], None], count: int, repeat: int = 3) -> float:
    """Items per second of the fastest of `repeat` runs (this machine is shared)."""
    best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return count / best


def measure_payloads(n: int) -> dict[str, Any]:
    items = messages(n)
    config = SmsHttpConfig(
        base_url="http://127.0.0.1:9",
        account_sid=ACCOUNT_SID,
        token=SecretStr("bench"),
        status_callback_url=CALLBACK,
    )
    with SmsHttpProvider(config) as provider:
        build = provider.build_payload
        # Same answers first: the comparison is only fair if both do the same work.
        for content, body in items[:50]:
            assert naive_prepare(content, body) == (build(content, body), segments(body.text))

        def ours() -> None:
            for content, body in items:
                build(content, body)
                segments(body.text)

        sample = items[:NAIVE_SAMPLE]

        def naive() -> None:
            for content, body in sample:
                naive_prepare(content, body)

        texts = [body.text for _, body in items]

        def our_count() -> None:
            for text in texts:
                segments(text)

        def naive_count() -> None:
            for text in texts[:NAIVE_SAMPLE]:
                naive_segments(text)

        rate = best_rate(ours, n)
        naive_rate = best_rate(naive, len(sample))
        count_rate = best_rate(our_count, n)
        naive_count_rate = best_rate(naive_count, min(n, NAIVE_SAMPLE))
    return {
        "payloads": n,
        "payloads_per_s": round(rate),
        "naive_payloads_per_s": round(naive_rate),
        "payload_speedup": round(rate / naive_rate, 1),
        "target_payloads_per_s": TARGET_PAYLOADS_PER_S,
        "meets_target": rate >= TARGET_PAYLOADS_PER_S,
        "segment_counts_per_s": round(count_rate),
        "naive_segment_counts_per_s": round(naive_count_rate),
        "segment_count_speedup": round(count_rate / naive_count_rate, 1),
    }


def loopback_tls(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: the server's context and a client trusting it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the TLS measurement needs the openssl command")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext"),
            *("subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


def measure_sends(sends: int, tls: tuple[ssl.SSLContext, ssl.SSLContext] | None) -> dict[str, Any]:
    """Sends per second, one kept-alive connection against one connection per message."""
    fake = _tests_module("tests.channels.fake_sms_gateway")
    items = messages(sends)
    server_tls, client_tls = tls if tls is not None else (None, None)
    with fake.FakeSmsGateway(tls=server_tls) as gateway:
        config = SmsHttpConfig(
            base_url=gateway.base_url,
            account_sid=fake.ACCOUNT_SID,
            token=SecretStr(fake.AUTH_TOKEN),
        )

        def provider() -> SmsHttpProvider:
            transport = httpx.HTTPTransport(verify=client_tls) if client_tls else None
            return SmsHttpProvider(config, transport=transport)

        provider().close()  # build the shared TLS context outside the timing

        def reused(batch: Sequence[tuple[MessageContent, SmsBody]]) -> None:
            with provider() as opened:
                for content, body in batch:
                    assert opened.send(content, body).provider_ref

        def one_connection_each(batch: Sequence[tuple[MessageContent, SmsBody]]) -> None:
            for content, body in batch:
                with provider() as opened:
                    assert opened.send(content, body).provider_ref

        started = gateway.connections
        reused_rate = best_rate(lambda: reused(items), sends, repeat=1)
        reused_connections = gateway.connections - started
        started = gateway.connections
        # Fresh attempt ids, so that the gateway sends rather than replays.
        fresh = [(dataclasses.replace(c, attempt_id="n" + c.attempt_id), b) for c, b in items]
        new_rate = best_rate(lambda: one_connection_each(fresh), sends, repeat=1)
        new_connections = gateway.connections - started
    return {
        "sends_per_s_reused": round(reused_rate),
        "connections_reused": reused_connections,
        "sends_per_s_new_connection": round(new_rate),
        "connections_new": new_connections,
        "send_speedup": round(reused_rate / new_rate, 1),
    }


def measure(n: int, *, sends: int | None = None) -> dict[str, Any]:
    """Payload preparation over `n` messages; `sends` (≤ 500 by default) real sends each
    over TLS and over plain HTTP."""
    sends = min(n, 500) if sends is None else sends
    with tempfile.TemporaryDirectory() as directory:
        tls = loopback_tls(Path(directory))
        over_tls = measure_sends(sends, tls)
    plain = measure_sends(sends, None)
    return {
        "bench": "dispatch_sms",
        **measure_payloads(n),
        "sends": sends,
        **{f"https_{key}": value for key, value in over_tls.items()},
        **{f"http_{key}": value for key, value in plain.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="payloads to prepare")
    parser.add_argument("--sends", type=int, default=500, help="messages sent per way")
    args = parser.parse_args()
    print(json.dumps(measure(args.n, sends=args.sends)))


if __name__ == "__main__":
    main()
