"""Dispatch through real carriers: e-mail to an SMTP server on loopback, SMS to a local
gateway speaking Twilio's API — claims, retries, fallbacks, carrier reports, on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from parcours.channels.base import DeliveryEvent, DeliveryKind
from parcours.channels.content import Channel
from parcours.channels.email import SmtpProvider, attempt_from_message_id
from parcours.channels.file import FileConfig, FileOutbox
from parcours.channels.links import Links
from parcours.channels.render import get_renderer
from parcours.channels.sms import SmsHttpConfig, SmsHttpProvider
from parcours.domain.journey import Journey
from parcours.journeys.library import Library
from parcours.runtime.dispatch import ChannelSet, dispatch, record_delivery
from parcours.runtime.tick import run_tick
from parcours.store.schema import DebtorRow, EventRow, OutboxRow
from parcours.store.uow import UnitOfWork
from tests.channels.conftest import CREDITOR
from tests.channels.fake_sms_gateway import ACCOUNT_SID, AUTH_TOKEN, FakeSmsGateway
from tests.channels.smtp_server import HOST, running_server
from tests.runtime.test_tick import START, load, rows

DAY_TWO = START + dt.timedelta(days=1)  # the pre-due nudge is due (10:00 in Brussels)

# A nudge by SMS (falling back to e-mail, then a letter) and nothing else.
NUDGE: dict[str, Any] = {
    "key": "nudge",
    "version": 1,
    "persona": None,
    "description": "one message before the due date",
    "start": "wait",
    "nodes": [
        {"id": "wait", "type": "wait", "anchor": "due_date", "days": -3, "next": "send"},
        {"id": "send", "type": "send", "template": "pre_due", "channels": ["sms"], "fallback": ["email", "letter"], "reminder": False, "next": "done"},
        {"id": "done", "type": "exit", "reason": "completed"},
    ],
}  # fmt: skip
EVERYWHERE: dict[str, Any] = {
    **NUDGE,
    "key": "everywhere",
    "nodes": [
        NUDGE["nodes"][0],
        {**NUDGE["nodes"][1], "channels": ["email", "sms"], "mode": "all", "fallback": ["letter"]},
        NUDGE["nodes"][2],
    ],
}


def journeys(definition: dict[str, Any] = NUDGE) -> Library:
    return Library([Journey.model_validate(definition)])


def channel_set(tmp_path: Path, library: Library, **providers: Any) -> ChannelSet:
    files = FileOutbox(FileConfig(directory=tmp_path / "outbox"))
    return ChannelSet(
        "acme",
        CREDITOR,
        {c: (providers.get(c.value, files), None) for c in Channel},
        get_renderer(),
        Links("test-secret", "https://pay.example"),
        library,
    )


def sms_provider(gateway: FakeSmsGateway, token: str = AUTH_TOKEN) -> SmsHttpProvider:
    return SmsHttpProvider(
        SmsHttpConfig(
            preset="twilio",
            base_url=gateway.base_url,
            account_sid=ACCOUNT_SID,
            token=SecretStr(token),
            sender="DemoEnergy",
            read_timeout_s=2.0,
        )
    )


def plan(engine: Engine, tmp_path: Path, library: Library, at: dt.datetime = DAY_TWO) -> Any:
    load(engine, tmp_path)
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name("acme")
        assert creditor is not None
        run_tick(uow.connection(), creditor.id, library, START)
        run_tick(uow.connection(), creditor.id, library, at)
        uow.commit()
        return creditor.id


def outbox(engine: Engine) -> list[tuple[Any, ...]]:
    return rows(
        engine,
        OutboxRow.channel,
        OutboxRow.status,
        OutboxRow.attempts,
        OutboxRow.provider_ref,
        OutboxRow.reason,
        OutboxRow.attempt_id,
    )


def test_email_goes_out_over_real_smtp_and_sms_to_the_gateway(
    engine: Engine, tmp_path: Path
) -> None:
    library = journeys(EVERYWHERE)
    creditor = plan(engine, tmp_path, library)
    with running_server() as (controller, handler), FakeSmsGateway() as gateway:
        smtp = SmtpProvider(
            SmtpProvider.Config(
                host=HOST, port=controller.port, security="none", domain="acme.example"
            )
        )
        channels = channel_set(tmp_path, library, email=smtp, sms=sms_provider(gateway))
        try:
            done = dispatch(engine, creditor, channels, DAY_TWO)
        finally:
            channels.close()
        sms = gateway.messages
    # Alice: e-mail and SMS; Bruno: SMS; Chris (no e-mail, no mobile): the fallback letter.
    assert done["sent"] == 4
    assert len(list((tmp_path / "outbox").glob("*.pdf"))) == 1
    assert len(handler.received) == 1 and len(sms) == 2
    message = email.message_from_bytes(handler.received[0].data, policy=email.policy.default)
    attempt = attempt_from_message_id(str(message["Message-ID"]))
    sent = {r[5]: r for r in outbox(engine) if r[1] == "sent"}
    assert attempt in sent and sent[attempt][3] == str(message["Message-ID"]).strip()
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "+++" in text and "https://pay.example/p/" in text  # structured communication, link
    assert message["Content-Language"] == "fr"
    assert {m.to for m in sms} == {"+32470123456", "+32470654321"}
    assert all(r[2] == 1 for r in sent.values())  # one attempt each


def test_a_number_that_does_not_exist_falls_back_to_the_next_channel(
    engine: Engine, tmp_path: Path
) -> None:
    library = journeys()
    creditor = plan(engine, tmp_path, library)
    with FakeSmsGateway() as gateway:
        gateway.no_such_number("+32470123456")  # Alice's mobile: Twilio error 21211
        channels = channel_set(tmp_path, library, sms=sms_provider(gateway))
        first = dispatch(engine, creditor, channels, DAY_TWO)
        second = dispatch(engine, creditor, channels, DAY_TWO)
        channels.close()
    assert first["failed"] == 1 and first["sent"] == 2  # Bruno's SMS, Chris's letter
    assert second["sent"] == 1  # the fallback: Alice's e-mail
    by_channel = Counter((r[0], r[1]) for r in outbox(engine))
    assert by_channel[("sms", "failed")] == 1 and by_channel[("email", "sent")] == 1
    failed = next(r for r in outbox(engine) if r[1] == "failed")
    assert "21211" in failed[4]
    bounced = rows(engine, EventRow.type, EventRow.payload)
    assert [t for t, _ in bounced if t == "message.bounced"] == ["message.bounced"]
    assert (tmp_path / "outbox").is_dir() and len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_a_gateway_outage_is_retried_later_with_backoff(engine: Engine, tmp_path: Path) -> None:
    library = journeys()
    creditor = plan(engine, tmp_path, library)
    with FakeSmsGateway() as gateway:
        gateway.fail_next(5, 503)
        channels = channel_set(tmp_path, library, sms=sms_provider(gateway))
        done = dispatch(engine, creditor, channels, DAY_TWO)
        assert done["retry"] == 2 and not gateway.messages
        retrying = [r for r in outbox(engine) if r[0] == "sms"]
        assert all(r[1] == "delayed" and r[2] == 1 for r in retrying)
        assert not dispatch(engine, creditor, channels, DAY_TWO + dt.timedelta(seconds=59))
        done = dispatch(engine, creditor, channels, DAY_TWO + dt.timedelta(minutes=1))
        assert done["retry"] == 2  # the outage goes on: next try 4 minutes later
        done = dispatch(engine, creditor, channels, DAY_TWO + dt.timedelta(minutes=6))
        channels.close()
        assert done["sent"] == 1 and done["retry"] == 1  # the fifth failure, then one through
        assert len(gateway.messages) == 1


def test_a_carrier_refusing_our_credentials_pauses_the_channel_without_fallback(
    engine: Engine, tmp_path: Path
) -> None:
    library = journeys()
    creditor = plan(engine, tmp_path, library)
    with FakeSmsGateway() as gateway:
        channels = channel_set(tmp_path, library, sms=sms_provider(gateway, token="wrong"))
        done = dispatch(engine, creditor, channels, DAY_TWO)
        channels.close()
    assert done["paused"] == 1 and done["released"] == 1  # one tried, the other held back
    statuses = Counter((r[0], r[1]) for r in outbox(engine) if r[0] is not None)
    # Both SMS wait; nothing fell back to e-mail (Chris's letter was his only channel).
    assert statuses == Counter({("sms", "delayed"): 2, ("letter", "sent"): 1})


def test_two_dispatchers_at_once_send_each_message_once(engine: Engine, tmp_path: Path) -> None:
    library = journeys(EVERYWHERE)
    creditor = plan(engine, tmp_path, library)
    with FakeSmsGateway() as gateway:
        results: list[Counter[str]] = []

        def run() -> None:
            channels = channel_set(tmp_path, library, sms=sms_provider(gateway))
            try:
                results.append(dispatch(engine, creditor, channels, DAY_TWO, limit=1))
                results.append(dispatch(engine, creditor, channels, DAY_TWO, limit=1))
                results.append(dispatch(engine, creditor, channels, DAY_TWO, limit=1))
            finally:
                channels.close()

        workers = [threading.Thread(target=run) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        texts = [m.to for m in gateway.messages]
    assert sum(r["sent"] for r in results) == 4  # two SMS, Alice's e-mail, Chris's letter
    assert sorted(texts) == ["+32470123456", "+32470654321"]  # each SMS once
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_carrier_reports_become_events_and_stop_reaches_the_debtor(
    engine: Engine, tmp_path: Path
) -> None:
    library = journeys()
    creditor = plan(engine, tmp_path, library)
    with FakeSmsGateway() as gateway:
        channels = channel_set(tmp_path, library, sms=sms_provider(gateway))
        dispatch(engine, creditor, channels, DAY_TWO)
        channels.close()
        refs = {m.to: m.ref for m in gateway.messages}
    later = DAY_TWO + dt.timedelta(hours=1)
    delivered = DeliveryEvent(DeliveryKind.DELIVERED, later, provider_ref=refs["+32470654321"])
    assert record_delivery(engine, creditor, delivered, library, later) == "delivered"
    stop = DeliveryEvent(DeliveryKind.OPTED_OUT, later, provider_ref=refs["+32470123456"])
    assert record_delivery(engine, creditor, stop, library, later) == "opted out of sms"
    unknown = DeliveryEvent(DeliveryKind.DELIVERED, later, provider_ref="SMnothing")
    assert record_delivery(engine, creditor, unknown, library, later) == "unknown message"
    events = Counter(t for t, _ in rows(engine, EventRow.type, EventRow.payload))
    assert events["message.delivered"] == 1 and events["message.opted_out"] == 1
    consent = dict(rows(engine, DebtorRow.ref, DebtorRow.phone_consent))
    assert consent == {"D1": "opted_out", "D2": "unknown", "D3": "unknown"}
    # A bounce reported after the carrier accepted the message: the next channel is queued.
    bounce = DeliveryEvent(DeliveryKind.BOUNCED, later, provider_ref=refs["+32470654321"])
    assert record_delivery(engine, creditor, bounce, library, later).startswith("bounced")
    queued = [r for r in outbox(engine) if r[1] == "queued"]
    assert [r[0] for r in queued] == ["email"] or [r[0] for r in queued] == ["letter"]


@pytest.mark.parametrize("kind", ["pre_due"])
def test_every_channel_leaves_a_real_file_in_the_outbox(
    engine: Engine, tmp_path: Path, kind: str
) -> None:
    """The embedded default: an .eml, the SMS JSON and a PDF letter, each named by attempt."""
    letters = {**EVERYWHERE, "nodes": [
        EVERYWHERE["nodes"][0],
        {**EVERYWHERE["nodes"][1], "template": kind, "channels": ["email", "sms", "letter"], "fallback": []},
        EVERYWHERE["nodes"][2],
    ]}  # fmt: skip
    library = journeys(letters)
    creditor = plan(engine, tmp_path, library)
    channels = channel_set(tmp_path, library)
    done = dispatch(engine, creditor, channels, DAY_TWO)
    files = sorted(p.name.split(".", 1)[1] for p in (tmp_path / "outbox").iterdir())
    # Alice: e-mail, SMS, letter; Bruno: SMS, letter; Chris: letter.
    assert done["sent"] == 6
    assert Counter(files) == Counter({"eml": 1, "sms.json": 2, "pdf": 3})
    pdf = next((tmp_path / "outbox").glob("*.pdf")).read_bytes()
    assert pdf.startswith(b"%PDF")


class _Dies:
    """A provider whose process dies (not an error dispatch could catch) at its `n`-th send."""

    def __init__(self, inner: FileOutbox, n: int) -> None:
        self.inner, self.n, self.sent = inner, n, 0

    def send(self, content: Any, rendered: Any) -> Any:
        self.sent += 1
        if self.sent == self.n:
            raise SystemExit("killed")
        return self.inner.send(content, rendered)


@pytest.mark.parametrize(("record_every", "recorded"), [(1, 3), (2, 2), (50, 0)])
def test_a_crash_loses_at_most_the_unrecorded_batch(
    engine: Engine, tmp_path: Path, record_every: int, recorded: int
) -> None:
    """Results are booked every `record_every` sends: a process killed at the fourth send
    leaves the first batches sent and the rest claimed (sent again when the lease ends)."""
    letters = {**EVERYWHERE, "nodes": [
        EVERYWHERE["nodes"][0],
        {**EVERYWHERE["nodes"][1], "channels": ["email", "sms", "letter"], "fallback": []},
        EVERYWHERE["nodes"][2],
    ]}  # fmt: skip
    library = journeys(letters)
    creditor = plan(engine, tmp_path, library)
    files = FileOutbox(FileConfig(directory=tmp_path / "outbox"))
    dies = _Dies(files, 4)
    channels = channel_set(tmp_path, library, **{c.value: dies for c in Channel})
    with pytest.raises(SystemExit):
        dispatch(engine, creditor, channels, DAY_TWO, record_every=record_every)
    statuses = Counter(status for _, status, *_ in outbox(engine))
    assert statuses == Counter({"sent": recorded, "queued": 6 - recorded})
    # After the lease, the unrecorded ones go again (the file outbox dedupes by attempt).
    later = DAY_TWO + dt.timedelta(minutes=11)
    assert dispatch(engine, creditor, channel_set(tmp_path, library), later)["sent"] == 6 - recorded
    assert Counter(status for _, status, *_ in outbox(engine)) == {"sent": 6}
