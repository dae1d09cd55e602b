"""Synthetic bank statements that pay a creditor's open invoices the way debtors do.

Most Belgian payers scan the QR code or copy the structured communication; some type it
in the free text; some write only their name or an invoice number; a few payments say
nothing useful. The mix below follows that order of frequency (an assumption, stated
in the demo and the benchmark output) and includes part payments and overpayments.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from typing import Any, Final

import numpy as np
from sqlalchemy import Connection

from parcours.payments.camt import write_camt
from parcours.payments.coda import write_coda
from parcours.payments.statements import Statement, StatementLine
from parcours.store.journeys import JourneyStore

__all__ = ["MIX", "for_coda", "synthetic_statement", "write_statement"]

ACCOUNT: Final = "BE71096123456769"  # the demo creditor's account (Febelfin's sample IBAN)
# How payers identify their payment (shares of the lines).
MIX: Final = {
    "ogm": 0.80,  # the structured communication, as such
    "ogm_text": 0.06,  # typed in the free text
    "name_amount": 0.10,  # the exact amount and the payer's name, nothing else
    "noise": 0.04,  # an amount and a name nobody owes
}


def _formatted(ogm: str) -> str:
    return f"+++{ogm[:3]}/{ogm[3:7]}/{ogm[7:]}+++"


def _iban(rng: np.random.Generator) -> str:
    """A valid Belgian IBAN: 10 digits, their mod-97 check (97 for 0), the IBAN check."""
    bank = "".join(str(d) for d in rng.integers(0, 10, 10))
    body = f"{bank}{int(bank) % 97 or 97:02d}"
    check = 98 - int(f"{body}111400") % 97  # "BE00" as digits after the BBAN
    return f"BE{check:02d}{body}"


def synthetic_statement(
    connection: Connection, creditor_id: Any, lines: int, day: dt.date, *, seed: int = 7
) -> tuple[Statement, Counter[str]]:
    """A statement of `lines` credits dated `day`, paying open invoices of the creditor."""
    store = JourneyStore(connection, creditor_id)
    rows = store._rows(
        "SELECT i.structured_communication, i.amount_minor - i.paid_minor, d.name, i.currency "
        "FROM invoices i JOIN cases c ON c.id = i.case_id AND c.creditor_id = i.creditor_id "
        "JOIN debtors d ON d.id = c.debtor_id AND d.creditor_id = c.creditor_id "
        "WHERE i.creditor_id = ? AND i.paid_minor < i.amount_minor "
        f"ORDER BY i.due_date LIMIT {int(lines) * 2}"
    )
    rng = np.random.default_rng(seed)
    kinds = list(MIX)
    drawn = rng.choice(len(kinds), size=lines, p=list(MIX.values()))
    picks = rng.permutation(len(rows))[:lines] if rows else np.zeros(0, dtype=np.int64)
    currency = rows[0][3] if rows else "EUR"
    out, mix = [], Counter[str]()
    for n in range(lines):
        kind = kinds[int(drawn[n])]
        if n >= len(picks):
            kind = "noise"
        ogm, amount, name, _ = rows[int(picks[n])] if kind != "noise" else ("", 0, "", "")
        amount = int(amount)
        structured, text = None, ""
        if kind == "ogm":
            structured = ogm
            roll = rng.random()
            if roll < 0.05:  # part payment
                amount = max(1, amount // 2)
            elif roll < 0.07:  # overpayment
                amount += 500
        elif kind == "ogm_text":
            text = f"facture {_formatted(ogm)}" if rng.random() < 0.5 else f"{ogm} merci"
        elif kind == "name_amount":
            text = "paiement"
        else:
            amount = int(rng.integers(1_000, 90_000))
            name = f"Payer {n}"
            text = "virement"
        mix[kind] += 1
        out.append(
            StatementLine(
                ref=f"{day:%Y%m%d}-{seed}-{n:07d}",
                booked_on=day,
                amount_minor=amount,
                currency=currency,
                value_on=day,
                structured=structured,
                text=text,
                counterparty_name=name or None,
                counterparty_iban=_iban(rng),
            )
        )
    statement = Statement(
        format="camt.053.001.08",
        account_iban=ACCOUNT,
        statement_id=f"{day:%Y%m%d}-{seed}",
        created_on=day,
        currency=currency,
        opening_minor=0,
        closing_minor=sum(x.amount_minor for x in out),
        lines=out,
    )
    return statement, mix


def for_coda(statement: Statement, number: int | None = None) -> Statement:
    """The statement numbered as CODA numbers it: `YYYY/NNN` within the year (default: the
    day of the year) and each movement `YYYY/NNN/SSSS/0000` in file order."""
    day = statement.created_on
    sid = f"{day.year}/{number or day.timetuple().tm_yday:03d}"
    lines = [
        dataclasses.replace(line, ref=f"{sid}/{n:04d}/0000")
        for n, line in enumerate(statement.lines, 1)
    ]
    return dataclasses.replace(statement, statement_id=sid, lines=lines)


def write_statement(statement: Statement, fmt: str) -> bytes:
    return write_coda([for_coda(statement)]) if fmt == "coda" else write_camt([statement])
