"""E-mail over real SMTP: the message a server receives, connection reuse, outcomes, TLS,
AUTH, bounces and replies. Every send goes to an aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from parcours.channels.base import DeliveryKind, Outcome, Provider
from parcours.channels.content import Channel, EmailBody, MessageContent, SmsBody
from parcours.channels.email import (
    SmtpConfig,
    SmtpProvider,
    _compose,  # the provider's own rendering, checked against the stdlib's
    attempt_from_message_id,
    build_email,
    message_id,
    parse_bounce,
    parse_reply,
)
from tests.channels.conftest import make_content
from tests.channels.smtp_server import (
    HOST,
    CountingController,
    RecordingHandler,
    accept_only,
    free_port,
    make_certificate,
    running_server,
    server_tls_context,
)

DOMAIN = "mail.parcours.example"
AMOUNT = "132,00 €"  # make_content(): 84,50 + 40,00 open + 7,50 reminder fee
COMMUNICATION = "+++123/4567/89002+++"
PAY_LINK = "https://pay.parcours.example/p/tok3n"


def make_body() -> EmailBody:
    return EmailBody(
        subject="Rappel : facture impayée de 132,00 €",
        text=(
            "Bonjour Dennis,\n\n"
            f"Il reste {AMOUNT} à payer avant le 20 décembre (Noël approche).\n"
            f"Communication structurée : {COMMUNICATION}\n"
            f"Payer en ligne : {PAY_LINK}\n"
        ),
        html=(
            "<html><body><p>Bonjour Dennis,</p>"
            f"<p>Il reste <strong>{AMOUNT}</strong> à payer avant le 20 décembre "
            "(Noël approche).</p>"
            f"<p>Communication structurée : <code>{COMMUNICATION}</code></p>"
            f'<p><a href="{PAY_LINK}">Payer en ligne</a></p></body></html>'
        ),
    )


def provider_for(controller: CountingController, **config: Any) -> SmtpProvider:
    settings_ = {"host": HOST, "port": controller.port, "security": "none", "domain": DOMAIN}
    return SmtpProvider(SmtpConfig(**(settings_ | config)))


def parsed(data: bytes) -> EmailMessage:
    msg = message_from_bytes(data, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


def part_text(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert isinstance(part, EmailMessage) and part.get_content_subtype() == subtype
    text: str = part.get_content()
    return text


def rfc2047_mailbox(data: bytes, header: str) -> tuple[str, str]:
    """A mailbox header decoded as RFC 2047 says: whitespace between encoded words is not
    text. (The modern stdlib parser keeps it inside display names, so it is not used.)"""
    name, address = parseaddr(message_from_bytes(data)[header])
    return str(make_header(decode_header(name))), address


def contents(count: int, **changes: Any) -> list[MessageContent]:
    return [make_content(attempt_id=f"att-{i:04d}", **changes) for i in range(count)]


# -- the message ------------------------------------------------------------------------


def test_the_server_receives_a_complete_mime_message(content: MessageContent) -> None:
    with running_server() as (controller, handler), provider_for(controller) as provider:
        result = provider.send(content, make_body())

    assert result.outcome is Outcome.SENT
    assert result.provider_ref == f"<{content.attempt_id}@{DOMAIN}>"
    [received] = handler.received
    assert received.mail_from == content.creditor.email_from
    assert received.rcpt_tos == (content.email,)
    msg = parsed(received.data)
    assert msg["Message-ID"] == result.provider_ref
    assert msg["X-Parcours-Attempt"] == content.attempt_id
    assert msg["List-Unsubscribe"] == f"<{content.opt_out_link}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Content-Language"] == "fr"
    assert msg["Subject"] == "Rappel : facture impayée de 132,00 €"
    [sender] = msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (
        "Demo Energy SA",
        content.creditor.email_from,
    )
    [to] = msg["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Dennis Peeters", content.email)
    assert msg["Date"].datetime.tzinfo is not None
    assert msg.get_content_type() == "multipart/alternative"
    for subtype in ("plain", "html"):
        text = part_text(msg, subtype)
        for expected in (AMOUNT, COMMUNICATION, PAY_LINK, "décembre", "Noël", "€"):
            assert expected in text, (subtype, expected)
    # What travelled is 7-bit clean: the accents went as quoted-printable, not raw bytes.
    assert received.data.isascii()


def test_list_unsubscribe_post_only_for_an_https_link(content: MessageContent) -> None:
    plain = make_content(opt_out_link="http://pay.parcours.example/o/tok3n")
    assert "List-Unsubscribe-Post" in build_email(content, make_body(), domain=DOMAIN)
    msg = build_email(plain, make_body(), domain=DOMAIN)
    assert msg["List-Unsubscribe"] == "<http://pay.parcours.example/o/tok3n>"
    assert "List-Unsubscribe-Post" not in msg


def test_content_language_follows_the_message_language() -> None:
    msg = build_email(make_content(language="nl"), make_body(), domain=DOMAIN)
    assert msg["Content-Language"] == "nl"


_words = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=12,
)
_lines = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=120
)


@settings(max_examples=80, deadline=None)
@given(
    subject=st.lists(_words, min_size=1, max_size=12).map(" ".join),
    text=st.lists(_lines, min_size=1, max_size=6).map("\n".join),
    html=st.lists(_lines, min_size=1, max_size=6).map("\n".join),
    debtor=st.lists(_words, min_size=1, max_size=6).map(" ".join),
    attempt=st.from_regex(r"[A-Za-z0-9]{1,20}(\.[A-Za-z0-9_-]{1,10}){0,2}", fullmatch=True),
)
def test_any_words_survive_the_trip_and_the_message_id_names_the_attempt(
    subject: str, text: str, html: str, debtor: str, attempt: str
) -> None:
    """Whatever the words, the receiver reads them back unchanged (line ends aside)."""
    body = EmailBody(subject=subject, text=text, html=html)
    content = make_content(attempt_id=attempt, debtor_name=debtor)
    composed = _compose(content, body, domain=DOMAIN)
    data = composed.message().as_bytes()
    # What the provider sends is written directly; it must be what the stdlib writes.
    assert composed.wire() == data
    head = data.split(b"\r\n\r\n", 1)[0]
    assert data.count(b"\n") == data.count(b"\r\n") and data.isascii()
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    msg = parsed(data)
    assert msg["Subject"] == subject
    assert rfc2047_mailbox(data, "To") == (debtor, content.email)
    for subtype, sent in (("plain", text), ("html", html)):
        got = part_text(msg, subtype).replace("\r\n", "\n")
        assert got.rstrip("\n") == sent.rstrip("\n")
    assert attempt_from_message_id(msg["Message-ID"], domain=DOMAIN) == attempt


@pytest.mark.parametrize(
    "subject",
    [
        "Rappel : facture impayée de 132,00 € — à régler avant le 20 décembre, merci de "
        "votre compréhension",
        "Laatste herinnering: uw onbetaalde factuur van € 1.234,56 — graag vóór 20 januari "
        "te betalen, alvast bedankt",
    ],
)
def test_a_long_subject_keeps_its_spaces(subject: str) -> None:
    """The stdlib folder (before CPython gh-144156) would glue "à régler" into "àrégler"."""
    body = EmailBody(subject=subject, text="x", html="<p>x</p>")
    data = build_email(make_content(), body, domain=DOMAIN).as_bytes()
    assert all(len(line) <= 78 for line in data.split(b"\r\n\r\n")[0].split(b"\r\n"))
    assert parsed(data)["Subject"] == subject


def test_message_ids_are_ours_only_when_well_formed() -> None:
    assert message_id("a1b2", "x.example") == "<a1b2@x.example>"
    assert attempt_from_message_id("<a1b2@x.example>") == "a1b2"
    assert attempt_from_message_id(" <a1b2@X.example> ", domain="x.example") == "a1b2"
    assert attempt_from_message_id("<a1b2@other.example>", domain="x.example") is None
    assert attempt_from_message_id("<no-at-sign>") is None
    assert attempt_from_message_id("<a b@x.example>") is None
    with pytest.raises(ValueError, match="dot-atom"):
        message_id("has space", "x.example")


def test_smtp_provider_is_an_email_provider() -> None:
    provider: Provider = SmtpProvider()
    assert (provider.name, provider.Config) == ("smtp", SmtpConfig)
    assert SmtpProvider.channel is Channel.EMAIL


def test_config_refuses_what_would_corrupt_a_command_or_a_message_id() -> None:
    with pytest.raises(ValidationError, match="envelope_from"):
        SmtpConfig(envelope_from="bounces@x.example>\r\nRCPT TO:<victim@x.example")
    with pytest.raises(ValidationError, match="domain"):
        SmtpConfig(domain="not a domain")
    with pytest.raises(ValidationError):
        SmtpConfig(password="x", max_per_connection=0)
    assert "s3cret" not in repr(SmtpConfig(password="s3cret"))


def test_bounces_go_to_the_configured_envelope_sender() -> None:
    bounces = "bounces@mail.parcours.example"
    with (
        running_server() as (controller, handler),
        provider_for(controller, envelope_from=bounces) as provider,
    ):
        assert provider.send(make_content(), make_body()).outcome is Outcome.SENT
    [received] = handler.received
    assert received.mail_from == bounces
    assert parsed(received.data)["From"].addresses[0].addr_spec == "factures@demo-energy.example"


# -- one connection, kept --------------------------------------------------------------


def test_many_sends_share_one_connection_and_close_says_quit() -> None:
    with running_server() as (controller, handler):
        provider = provider_for(controller)
        results = [provider.send(c, make_body()) for c in contents(20)]
        provider.close()  # returns once the server answered QUIT (so counted it)
        assert controller.connections == 1
        assert handler.quits == 1
    assert {r.outcome for r in results} == {Outcome.SENT}
    ids = [parsed(r.data)["Message-ID"] for r in handler.received]
    assert ids == [r.provider_ref for r in results]
    assert len(set(ids)) == 20


def test_max_per_connection_opens_a_new_connection_every_n_messages() -> None:
    with running_server() as (controller, handler):
        with provider_for(controller, max_per_connection=4) as provider:
            results = [provider.send(c, make_body()) for c in contents(10)]
        assert controller.connections == 3  # 4 + 4 + 2
        assert handler.quits == 3
    assert [r.outcome for r in results] == [Outcome.SENT] * 10
    assert len(handler.received) == 10


def test_a_server_that_drops_the_connection_gets_each_message_exactly_once() -> None:
    """After messages 3 and 7 the server closes the connection right after its 250."""
    handler = RecordingHandler(close_after=frozenset({3, 7}))
    with running_server(handler) as (controller, _), provider_for(controller) as provider:
        results = [provider.send(c, make_body()) for c in contents(10)]
        assert controller.connections == 3
    assert [r.outcome for r in results] == [Outcome.SENT] * 10
    received = [parsed(r.data)["X-Parcours-Attempt"] for r in handler.received]
    assert received == [f"att-{i:04d}" for i in range(10)]


def test_an_idle_connection_closed_by_the_server_is_reopened() -> None:
    with running_server(timeout=0.1) as (controller, handler), provider_for(controller) as p:
        first, second = contents(2)
        assert p.send(first, make_body()).outcome is Outcome.SENT
        time.sleep(0.6)  # the server's idle timeout closes the connection
        assert p.send(second, make_body()).outcome is Outcome.SENT
        assert controller.connections == 2
    assert len(handler.received) == 2


def test_a_connection_lost_during_data_is_transient_and_not_resent() -> None:
    """Lost after the text went out: the server may have kept it, so no second try."""
    lost, ok = "lost@example.be", "ok@example.be"
    handler = RecordingHandler(lose_data_for=frozenset({lost}))
    with running_server(handler) as (controller, _), provider_for(controller) as provider:
        before = provider.send(make_content(email=ok, attempt_id="before"), make_body())
        result = provider.send(make_content(email=lost), make_body())  # a reused connection
        after = provider.send(make_content(email=ok, attempt_id="after"), make_body())
        assert controller.connections == 2  # the first, and one after the loss: no retry
    assert result.outcome is Outcome.TRANSIENT
    assert result.detail == "connection lost during DATA, outcome unknown"
    assert (before.outcome, after.outcome) == (Outcome.SENT, Outcome.SENT)
    assert [r.rcpt_tos for r in handler.received] == [(ok,), (ok,)]


# -- outcomes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replies", "outcome", "detail"),
    [
        ({"rcpt": "451 4.3.0 Try again later"}, Outcome.TRANSIENT, "RCPT refused: 451 4.3.0"),
        ({"rcpt": "452 4.2.2 Mailbox full"}, Outcome.TRANSIENT, "RCPT refused: 452 4.2.2"),
        ({"rcpt": "550 5.1.1 No such user"}, Outcome.PERMANENT, "RCPT refused: 550 5.1.1"),
        ({"rcpt": "553 5.1.3 Bad address syntax"}, Outcome.PERMANENT, "RCPT refused: 553 5.1.3"),
        ({"rcpt": "550 Mailbox unavailable"}, Outcome.PERMANENT, "RCPT refused: 550"),
        ({"data": "554 5.7.1 Message rejected"}, Outcome.PERMANENT, "DATA refused: 554 5.7.1"),
        ({"data": "450 4.7.1 Greylisted"}, Outcome.TRANSIENT, "DATA refused: 450 4.7.1"),
    ],
)
def test_smtp_replies_map_to_outcomes_and_the_connection_stays_usable(
    replies: dict[str, str], outcome: Outcome, detail: str
) -> None:
    refused = "refused.person@example.be"
    # Servers quote the address in their replies; the detail must not.
    reply = {k: f"{v} <{refused}>" for k, v in replies.items()}
    handler = RecordingHandler(
        rcpt_replies={refused: reply["rcpt"]} if "rcpt" in reply else {},
        data_replies={refused: reply["data"]} if "data" in reply else {},
    )
    with (
        running_server(handler) as (controller, _),
        provider_for(controller) as provider,
        structlog.testing.capture_logs() as logs,
    ):
        result = provider.send(make_content(email=refused), make_body())
        after = provider.send(make_content(attempt_id="next"), make_body())
        assert controller.connections == 1
    assert (result.outcome, result.detail) == (outcome, detail)
    assert after.outcome is Outcome.SENT
    assert len(handler.received) == 1
    assert refused not in repr(logs) and "Dennis" not in repr(logs)
    [failed] = [e for e in logs if e["event"] == "email.send_failed"]
    assert (failed["attempt_id"], failed["detail"]) == (make_content().attempt_id, detail)


def test_a_refused_connection_is_transient() -> None:
    provider = SmtpProvider(SmtpConfig(host=HOST, port=free_port(), security="none"))
    result = provider.send(make_content(), make_body())
    assert (result.outcome, result.detail) == (Outcome.TRANSIENT, "connection refused")


def test_a_server_that_never_greets_times_out_as_transient() -> None:
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen()  # the kernel completes the handshake; nobody ever says 220
        port = silent.getsockname()[1]
        config = SmtpConfig(host=HOST, port=port, security="none", timeout=0.2)
        started = time.monotonic()
        result = SmtpProvider(config).send(make_content(), make_body())
    assert (result.outcome, result.detail) == (Outcome.TRANSIENT, "timed out (connect)")
    assert time.monotonic() - started < 2


def test_content_without_an_email_or_with_another_body_is_permanent() -> None:
    with running_server() as (controller, handler), provider_for(controller) as provider:
        no_email = provider.send(make_content(email=None), make_body())
        sms = provider.send(make_content(), SmsBody("Rappel"))
        bad = provider.send(make_content(email="not an address"), make_body())
        odd_id = provider.send(make_content(attempt_id="a b"), make_body())
    assert (odd_id.outcome, odd_id.detail) == (
        Outcome.PERMANENT,
        "attempt id unfit for a Message-ID",
    )
    assert (no_email.outcome, no_email.detail) == (Outcome.PERMANENT, "no e-mail address")
    assert (sms.outcome, sms.detail) == (Outcome.PERMANENT, "not an e-mail body")
    assert (bad.outcome, bad.detail) == (Outcome.PERMANENT, "invalid address or header")
    assert handler.received == []


def test_an_internationalised_domain_travels_as_idna() -> None:
    """Even to a server offering SMTPUTF8: the ASCII form reaches every receiver."""
    with running_server() as (controller, handler), provider_for(controller) as provider:
        result = provider.send(make_content(email="dennis@exämple.be"), make_body())
    assert result.outcome is Outcome.SENT
    [received] = handler.received
    assert received.rcpt_tos == ("dennis@xn--exmple-cua.be",)
    assert "SMTPUTF8" not in received.mail_options


def test_an_internationalised_mailbox_needs_smtputf8() -> None:
    address = "rené.noël@exemple.be"
    content = make_content(email=address)
    with (
        running_server(enable_SMTPUTF8=False) as (controller, handler),
        provider_for(controller) as provider,
    ):
        refused = provider.send(content, make_body())
        assert handler.received == []
    with (
        running_server(enable_SMTPUTF8=True) as (controller, handler),
        provider_for(controller) as provider,
    ):
        sent = provider.send(content, make_body())
    assert refused.outcome is Outcome.PERMANENT and "SMTPUTF8" in (refused.detail or "")
    assert sent.outcome is Outcome.SENT
    [received] = handler.received
    assert received.rcpt_tos == (address,)
    assert "SMTPUTF8" in received.mail_options
    # The header is raw UTF-8 (RFC 6532), not encoded words.
    assert f"To: Dennis Peeters <{address}>\r\n".encode() in received.data


# -- TLS and AUTH ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def starttls_server(
    certificate: tuple[Path, Path],
) -> Iterator[tuple[CountingController, RecordingHandler]]:
    with running_server(
        tls_context=server_tls_context(*certificate),
        require_starttls=True,
        authenticator=accept_only("parcours", "s3cret"),
        auth_required=True,
    ) as server:
        yield server


def test_starttls_and_auth_deliver(
    starttls_server: tuple[CountingController, RecordingHandler], certificate: tuple[Path, Path]
) -> None:
    controller, handler = starttls_server
    config = {"security": "starttls", "ca_file": certificate[0]}
    with provider_for(controller, username="parcours", password="s3cret", **config) as p:
        results = [p.send(c, make_body()) for c in contents(3)]
        assert controller.connections == 1
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert all(r.tls and r.authenticated for r in handler.received)


def test_a_wrong_password_pauses_the_provider_with_a_clear_detail(
    starttls_server: tuple[CountingController, RecordingHandler], certificate: tuple[Path, Path]
) -> None:
    controller, handler = starttls_server
    config = {"security": "starttls", "ca_file": certificate[0]}
    with provider_for(controller, username="parcours", password="wrong", **config) as p:
        result = p.send(make_content(), make_body())
    assert result.outcome is Outcome.PROVIDER
    assert result.detail == "authentication refused: 535 5.7.8"
    assert handler.received == []


def test_an_untrusted_certificate_is_refused(
    starttls_server: tuple[CountingController, RecordingHandler],
) -> None:
    controller, handler = starttls_server
    with provider_for(controller, security="starttls", username="parcours", password="s3cret") as p:
        result = p.send(make_content(), make_body())
    assert result.outcome is Outcome.PROVIDER
    assert (result.detail or "").startswith("TLS certificate verification failed")
    assert handler.received == []


def test_starttls_required_but_not_offered_pauses_the_provider() -> None:
    with (
        running_server() as (controller, _),
        provider_for(controller, security="starttls") as provider,
    ):
        result = provider.send(make_content(), make_body())
    assert result.outcome is Outcome.PROVIDER
    assert "STARTTLS" in (result.detail or "")


def test_implicit_tls_delivers(certificate: tuple[Path, Path]) -> None:
    tls = server_tls_context(*certificate)
    with (
        running_server(ssl_context=tls) as (controller, handler),
        provider_for(controller, security="tls", ca_file=certificate[0]) as provider,
    ):
        result = provider.send(make_content(), make_body())
    assert result.outcome is Outcome.SENT
    assert len(handler.received) == 1


# -- bounces and replies ---------------------------------------------------------------


def sent_message(attempt_id: str = "3f9a1c2e4b5d6f708192a3b4c5d6e7f8") -> EmailMessage:
    return build_email(make_content(attempt_id=attempt_id), make_body(), domain=DOMAIN)


def postfix_dsn(original: EmailMessage, *, action: str, status: str) -> bytes:
    """A delivery status notification as Postfix writes one (text/rfc822-headers)."""
    headers = original.as_bytes().split(b"\r\n\r\n", 1)[0].decode()
    return (
        "Return-Path: <>\r\n"
        "From: MAILER-DAEMON@mx.example.be (Mail Delivery System)\r\n"
        "To: factures@demo-energy.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Date: Mon, 7 Dec 2026 10:15:02 +0100 (CET)\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n'
        "\r\n"
        "--B1\r\n"
        "Content-Description: Notification\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n"
        "\r\n"
        "--B1\r\n"
        "Content-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.example.be\r\n"
        "X-Postfix-Queue-ID: 4Fh2kQ0Zb3z9v\r\n"
        "Arrival-Date: Mon,  7 Dec 2026 10:15:01 +0100 (CET)\r\n"
        "\r\n"
        "Final-Recipient: rfc822; dennis.peeters@example.be\r\n"
        "Original-Recipient: rfc822;dennis.peeters@example.be\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mx2.example.be\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <dennis.peeters@example.be>: Recipient address\r\n"
        "    rejected: User unknown in virtual mailbox table\r\n"
        "\r\n"
        "--B1\r\n"
        "Content-Description: Undelivered Message Headers\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        f"{headers}\r\n"
        "\r\n"
        "--B1--\r\n"
    ).encode()


def exchange_dsn(original: EmailMessage) -> bytes:
    """A DSN quoting the whole original as message/rfc822, as Exchange does."""
    return (
        b"From: postmaster@example.be\r\n"
        b"Subject: Undeliverable: Rappel\r\n"
        b"Date: Tue, 08 Dec 2026 08:00:00 +0000\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type="delivery-status";\r\n'
        b'\tboundary="EXB"\r\n'
        b"\r\n"
        b"--EXB\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n"
        b"\r\n"
        b"Delivery has failed to these recipients or groups.\r\n"
        b"\r\n"
        b"--EXB\r\n"
        b"Content-Type: message/delivery-status\r\n"
        b"\r\n"
        b"Reporting-MTA: dns;EX01.example.be\r\n"
        b"Received-From-MTA: dns;EX02.example.be\r\n"
        b"\r\n"
        b"Final-Recipient: rfc822;dennis.peeters@example.be\r\n"
        b"Action: failed\r\n"
        b"Status: 5.2.1\r\n"
        b"Diagnostic-Code: smtp;550 5.2.1 mailbox disabled\r\n"
        b"\r\n"
        b"--EXB\r\n"
        b"Content-Type: message/rfc822\r\n"
        b"\r\n" + original.as_bytes() + b"\r\n"
        b"--EXB--\r\n"
    )


def test_a_hard_bounce_names_the_attempt_and_the_address() -> None:
    original = sent_message()
    event = parse_bounce(postfix_dsn(original, action="failed", status="5.1.1"), domain=DOMAIN)
    assert event is not None
    assert event.kind is DeliveryKind.BOUNCED
    assert event.attempt_id == "3f9a1c2e4b5d6f708192a3b4c5d6e7f8"
    assert event.provider_ref == original["Message-ID"]
    assert event.address == "dennis.peeters@example.be"
    assert event.at == dt.datetime(2026, 12, 7, 9, 15, 2, tzinfo=dt.UTC)


def test_a_bounce_quoting_the_whole_message_is_understood() -> None:
    event = parse_bounce(exchange_dsn(sent_message("att-77")), domain=DOMAIN)
    assert event is not None and event.kind is DeliveryKind.BOUNCED
    assert (event.attempt_id, event.address) == ("att-77", "dennis.peeters@example.be")


@pytest.mark.parametrize(
    ("action", "status"), [("delayed", "4.4.1"), ("failed", "4.2.2"), ("delivered", "2.0.0")]
)
def test_delays_and_temporary_failures_are_not_bounces(action: str, status: str) -> None:
    assert parse_bounce(postfix_dsn(sent_message(), action=action, status=status)) is None


def test_a_bounce_for_another_domain_keeps_no_message_id_attempt() -> None:
    """Without our Message-ID, the attempt still comes from our own header."""
    original = sent_message("att-5")
    event = parse_bounce(postfix_dsn(original, action="failed", status="5.1.1"), domain="x.example")
    assert event is not None and event.attempt_id == "att-5"
    del original["X-Parcours-Attempt"]
    event = parse_bounce(postfix_dsn(original, action="failed", status="5.1.1"), domain="x.example")
    assert event is not None and event.attempt_id is None


def test_an_ordinary_message_is_not_a_bounce() -> None:
    assert parse_bounce(sent_message().as_bytes()) is None


def reply_to(original: EmailMessage, **headers: str) -> bytes:
    reply = EmailMessage(policy=default_policy)
    reply["From"] = "Dennis Peeters <dennis.peeters@example.be>"
    reply["To"] = original["From"]
    reply["Subject"] = "Re: " + original["Subject"]
    reply["Date"] = "Wed, 09 Dec 2026 19:30:00 +0100"
    reply["Message-ID"] = "<CAF+reply1@mail.example.be>"
    for name, value in headers.items():
        reply[name.replace("_", "-")] = value
    reply.set_content("Bonjour, je paierai vendredi. Désolé du retard.\n\n> Il reste 132,00 €")
    return reply.as_bytes()


def test_a_reply_names_the_attempt_it_answers() -> None:
    original = sent_message("att-9")
    mid = original["Message-ID"]
    event = parse_reply(reply_to(original, In_Reply_To=mid, References=mid), domain=DOMAIN)
    assert event is not None
    assert event.kind is DeliveryKind.REPLIED
    assert (event.attempt_id, event.provider_ref) == ("att-9", mid)
    assert event.address == "dennis.peeters@example.be"
    assert event.text is not None and "je paierai vendredi" in event.text
    assert event.at == dt.datetime(2026, 12, 9, 18, 30, tzinfo=dt.UTC)


def test_a_reply_deep_in_a_thread_is_found_through_references() -> None:
    mid = sent_message("att-10")["Message-ID"]
    refs = f"<older@mail.example.be> {mid} <CAF+x@mail.example.be>"
    raw = reply_to(sent_message("att-10"), In_Reply_To="<CAF+x@mail.example.be>", References=refs)
    event = parse_reply(raw, domain=DOMAIN)
    assert event is not None and event.attempt_id == "att-10"


def test_automatic_answers_and_strangers_are_not_replies() -> None:
    original = sent_message()
    mid = original["Message-ID"]
    assert parse_reply(reply_to(original, In_Reply_To=mid, Auto_Submitted="auto-replied")) is None
    assert (
        parse_reply(reply_to(original, In_Reply_To="<other@elsewhere.example>"), domain=DOMAIN)
        is None
    )
    assert parse_reply(reply_to(original, In_Reply_To=mid), domain="other.example") is None
    assert parse_reply(reply_to(original)) is None
    assert parse_reply(postfix_dsn(original, action="failed", status="5.1.1")) is None
