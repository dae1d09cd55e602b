"""A message's content as the dispatcher builds it, for channel and template tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from parcours.channels.content import (
    Address,
    Channel,
    CreditorProfile,
    FeeLine,
    InvoiceLine,
    MessageContent,
)
from parcours.domain.structured_communication import StructuredCommunication

CREDITOR = CreditorProfile(
    name="Demo Energy SA",
    iban="BE71096123456769",
    bic="GKCCBEBB",
    address=Address("Demo Energy SA", "Rue de la Loi 16", "1000", "Bruxelles", "BE"),
    help_email="aide@demo-energy.example",
    help_phone="+3225550100",
    sms_sender="DemoEnergy",
    email_from="factures@demo-energy.example",
    company_number="0123.456.749",
)


def make_content(**changes: Any) -> MessageContent:
    """A realistic message: two open invoices, one partly paid, a reminder fee line."""
    base = MessageContent(
        attempt_id="3f9a1c2e4b5d6f708192a3b4c5d6e7f8",
        case_ref="C-D0000042",
        debtor_ref="D0000042",
        channel=Channel.EMAIL,
        template="reminder_1",
        language="fr",
        persona="occasional",
        creditor=CREDITOR,
        debtor_name="Dennis Peeters",
        email="dennis.peeters@example.be",
        mobile="+32470123456",
        address=Address("Dennis Peeters", "Kerkstraat 12 bus 3", "9000", "Gent", "BE"),
        invoices=(
            InvoiceLine("INV-2026-0042", dt.date(2026, 10, 1), dt.date(2026, 10, 31), 8450, 8450),
            InvoiceLine("INV-2026-0051", dt.date(2026, 11, 1), dt.date(2026, 11, 30), 12000, 4000),
        ),
        fees=(FeeLine("reminder_fee", 750, "Code de droit économique, art. XIX.4, § 2"),),
        currency="EUR",
        pay_by=dt.date(2026, 12, 20),
        structured_communication=StructuredCommunication.from_base(1234567890),
        pay_link="https://pay.parcours.example/p/tok3n",
        opt_out_link="https://pay.parcours.example/o/tok3n",
        chat_link="https://pay.parcours.example/p/tok3n#chat",
        reminder=True,
        sent_on=dt.date(2026, 12, 5),
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def content() -> MessageContent:
    return make_content()


def write_channels(path: Path, **setup: Any) -> Path:
    """A channels file whose `default` set-up is the test creditor "Acme" plus `setup`
    (providers, psp, limits...)."""
    profile = {
        "name": "Acme", "iban": "BE71096123456769", "street": "Rue 1", "postcode": "1000",
        "city": "Bruxelles", "help_email": "a@acme.be", "help_phone": "+3225550100",
        "email_from": "f@acme.be",
    }  # fmt: skip
    path.write_text(yaml.safe_dump({"default": {"profile": profile, **setup}}), encoding="utf-8")
    return path
