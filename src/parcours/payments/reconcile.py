"""Reconciliation's pure core: which case a credit on a bank statement pays, and how it is
spread over the case's open invoices. The store looks things up; this module decides.

Order (DOMAIN.md): 1) the structured communication (OGM/VCS), given as such or typed in the
free text, matches exactly; 2) otherwise candidates are scored on amount, the payer's IBAN,
name and references in the text, and the best is taken only when it is both strong and
clearly ahead; 3) otherwise the line waits in the unmatched queue for a person.

It runs once per statement line (100,000 lines in a few seconds), so patterns are compiled
once, candidates precompute what they compare, and a line's evidence is read once for all
its candidates.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

from rapidfuzz import fuzz

from parcours.domain.names import normalise_name
from parcours.payments.statements import StatementLine

__all__ = [
    "ACCEPT",
    "MARGIN",
    "Candidate",
    "Match",
    "allocate",
    "choose",
    "classify_line",
    "line_ogms",
    "ogms_in_text",
    "refs_in_text",
    "score",
]

InvoiceId = TypeVar("InvoiceId")

# ---------------------------------------------------------------------------------------
# Structured communications typed in free text
# ---------------------------------------------------------------------------------------

# Digit groups joined by short runs of the separators debtors type inside a number
# (spaces, dots, dashes, slashes: "123/4567/89012", "123 / 4567 / 89012", "1234.5678.9012").
# `+` and `*` are not separators: `+++…+++` delimits the communication. The two classes
# are disjoint, so matching is linear. The lookahead skips, inside the regex engine, every
# number too short to hold twelve digits (most of them: dates, amounts, house numbers);
# it cannot make a match start inside a number, since from there even less would follow.
_NUMBER: Final = re.compile(r"(?=[0-9][0-9\s./\-]{11})[0-9]+(?:[\s./\-]{1,3}[0-9]+)*")
_GROUP: Final = re.compile(r"[0-9]+")
# The printed layout of an OGM (3/4/5), recognised even inside a longer run of numbers.
_OGM_LAYOUT: Final = (3, 4, 5)
# The layout of an old Belgian account number (539-0075470-34): twelve digits with the
# very same mod-97 check, so it would pass for an OGM. Belgian IBANs carry it too
# (BE68 5390 0754 7034), which is why digits glued to letters are distrusted below.
_ACCOUNT_LAYOUT: Final = (3, 7, 2)


def _is_ogm(digits: str) -> bool:
    check = int(digits[:10]) % 97 or 97
    return check == int(digits[10:])


def ogms_in_text(text: str) -> list[str]:
    """Every mod-97-valid structured communication typed in `text`, as twelve digits, in
    order of appearance, each once.

    A *number* is a run of digit groups joined by short separators; it is *glued* when a
    letter touches either end ("BE68 5390 …", "F2024 …"). Candidates are:
    - a whole unglued number of exactly twelve digits, unless laid out 3-7-2 like an
      account number ("+++123/4567/89002+++", "1234 5678 9002", "123456789002");
    - inside a longer or glued number, only a bare twelve-digit group or three groups laid
      out 3/4/5, neither touching a letter ("2024 123/4567/89002").
    Twelve digits are never taken out of a longer number (a card number, an IBAN) nor
    made of the tail of one number and the head of another: a debtor who types the
    communication types it whole. A bare old-style account number (twelve digits, same
    check) cannot be told apart: the store's lookup of known communications decides.
    """
    found: list[str] = []
    for number in _NUMBER.finditer(text):
        start, end = number.span()
        if end - start < 12:
            continue  # fewer than twelve digits, separators included
        glued_left = start > 0 and text[start - 1].isalnum()
        glued_right = end < len(text) and text[end].isalnum()
        chunk = number.group()
        if chunk.isdigit():
            if len(chunk) == 12 and not (glued_left or glued_right) and _is_ogm(chunk):
                found.append(chunk)
            continue
        groups = _GROUP.findall(chunk)
        sizes = tuple(len(g) for g in groups)
        if not (glued_left or glued_right) and sum(sizes) == 12:
            digits = "".join(groups)
            if sizes != _ACCOUNT_LAYOUT and _is_ogm(digits):
                found.append(digits)
            continue
        last = len(groups) - 1
        for i, size in enumerate(sizes):
            if size == 12:
                touches = (i == 0 and glued_left) or (i == last and glued_right)
                if not touches and _is_ogm(groups[i]):
                    found.append(groups[i])
            elif (
                size == 3
                and sizes[i : i + 3] == _OGM_LAYOUT
                and not (i == 0 and glued_left)
                and not (i + 2 == last and glued_right)
            ):
                digits = "".join(groups[i : i + 3])
                if _is_ogm(digits):
                    found.append(digits)
    if len(found) > 1:
        return list(dict.fromkeys(found))
    return found


def line_ogms(line: StatementLine) -> list[str]:
    """The structured communications of a line: the structured field first when it is a
    valid OGM (a bank may pass on a mistyped one), then those typed in the text."""
    found = ogms_in_text(line.text) if line.text else []
    given = line.structured
    if given and len(given) == 12 and given.isascii() and given.isdigit() and _is_ogm(given):
        return [given, *(o for o in found if o != given)]
    return found


# ---------------------------------------------------------------------------------------
# References and names
# ---------------------------------------------------------------------------------------

# A token starts where no letter or digit precedes it and holds a digit (the lookahead
# finds it among the leading letters and dashes); it is taken whole, dashes inside.
_REF_TOKEN: Final = re.compile(r"(?<![A-Z0-9])(?=[A-Z-]*[0-9])[A-Z0-9]+(?:-[A-Z0-9]+)*")


def refs_in_text(text: str) -> list[str]:
    """Tokens that may be an invoice or case reference (letters, digits and inner dashes,
    4 to 40 characters, at least one digit), upper-cased, in order, each once."""
    if not text:
        return []
    found = [token for token in _REF_TOKEN.findall(text.upper()) if 4 <= len(token) <= 40]
    return list(dict.fromkeys(found)) if len(found) > 1 else found


def _compact_iban(iban: str) -> str:
    return iban.replace(" ", "").upper()


# ---------------------------------------------------------------------------------------
# Candidates and scores
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """A case the store thinks a line may pay, with what a score compares.

    `invoices` are the case's open invoices as (invoice id, open amount in minor units,
    due date); `iban` is an account the debtor paid from before; `refs` are the invoice
    and case references a debtor may type; `ogms` the case's structured communications;
    `name_key` the debtor's name as stored for lookups (`parcours.domain.names.name_key`):
    names are compared word by word in any order, so it stands for the normalised name.
    """

    case_id: object
    invoices: tuple[tuple[object, int, dt.date], ...]
    debtor_name: str
    iban: str | None = None
    refs: frozenset[str] = frozenset()
    ogms: frozenset[str] = frozenset()
    name_key: str | None = field(default=None, repr=False, compare=False)
    # Precomputed once, compared for every line the candidate is offered for.
    balance_minor: int = field(init=False, repr=False, compare=False)
    _name: str = field(init=False, repr=False, compare=False)
    _iban: str | None = field(init=False, repr=False, compare=False)
    _refs: frozenset[str] = field(init=False, repr=False, compare=False)
    # Open amount → the invoice a payment of exactly that amount pays (the oldest of equals).
    _by_amount: dict[int, object] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_amount: dict[int, object] = {}
        balance = 0
        for n, (invoice_id, open_minor, _due) in enumerate(self.invoices):
            if open_minor < 0:
                raise ValueError(
                    f"case {self.case_id!r}, invoice {n + 1} ({invoice_id!r}), open amount: "
                    f"{open_minor} is negative"
                )
            balance += open_minor
        for invoice_id, open_minor, _due in _oldest_first(self.invoices):
            by_amount.setdefault(open_minor, invoice_id)
        object.__setattr__(self, "balance_minor", balance)
        key = self.name_key
        object.__setattr__(
            self, "_name", key if key is not None else normalise_name(self.debtor_name)
        )
        object.__setattr__(self, "_iban", _compact_iban(self.iban) if self.iban else None)
        object.__setattr__(self, "_refs", frozenset(r.upper() for r in self.refs))
        object.__setattr__(self, "_by_amount", by_amount)


@dataclass(frozen=True, slots=True)
class Match:
    """The case a line is booked on, with the score and the reasons a person can read."""

    candidate: Candidate
    score: float
    reasons: tuple[str, ...]


# Weights: each piece of evidence is read as the chance that it alone points at the right
# case, and independent pieces combine as a noisy-OR, score = 1 - Π(1 - w). The score stays
# in 0..1, grows with every piece, and no order of the pieces matters.
#
# - Structured communication (1.0): exact by construction (mod 97, unique per invoice).
# - Reference in the text (0.8): the debtor named our invoice or case; alone it is enough.
# - IBAN known for the debtor (0.55): strong but not alone — households share accounts and
#   a debtor may have several cases; it needs an amount or the name to be accepted.
# - Amount equals the case balance (0.5) or one invoice (0.45): common amounts (€50.00)
#   recur across a million invoices, so never enough alone. A smaller amount (a partial
#   payment, 0.1) barely counts; a larger one not at all.
# - Name similarity (up to 0.5): linear from 0 at 65 % to 0.5 at 95 %; names recur
#   (Peeters, Dubois), so a name alone, or with another amount, stays below ACCEPT.
#
# What clears ACCEPT (0.7): a reference (0.8); IBAN + balance (0.78) or an invoice's amount
# (0.75); IBAN + name ≥ 85 % whatever the amount (≥ 81 % with a partial payment); name
# ≥ 89 % + balance (0.71 at 90 %); name ≥ 93 % + an invoice's amount (0.72 at 95 %).
# What does not: a name with any other amount (≤ 0.55), IBAN alone (0.55), an amount
# alone (≤ 0.5). MARGIN then keeps two look-alike cases (same name, same amount) for a
# person.
W_OGM: Final = 1.0
W_REF: Final = 0.8
W_IBAN: Final = 0.55
W_BALANCE: Final = 0.5
W_INVOICE: Final = 0.45
W_PARTIAL: Final = 0.1
W_NAME_MAX: Final = 0.5
_NAME_FLOOR: Final = 65.0  # similarity (%) under which a name says nothing
_NAME_FULL: Final = 95.0  # similarity (%) from which a name counts fully

ACCEPT: Final = 0.7
MARGIN: Final = 0.15


@dataclass(slots=True)  # not frozen: built once per line, and a frozen init costs more
class _Evidence:
    """What a line says, read once for all its candidates."""

    amount_minor: int
    ogms: tuple[str, ...]
    refs: tuple[str, ...]
    iban: str | None
    name: str

    @classmethod
    def of(cls, line: StatementLine) -> _Evidence:
        refs = refs_in_text(line.text)
        # An RF creditor reference, or the payer's own id carrying our invoice number.
        if line.structured or line.end_to_end_id:
            extra = refs_in_text(f"{line.structured or ''} {line.end_to_end_id or ''}")
            refs = list(dict.fromkeys([*refs, *extra]))
        return cls(
            amount_minor=line.amount_minor,
            ogms=tuple(line_ogms(line)),
            refs=tuple(refs),
            iban=_compact_iban(line.counterparty_iban) if line.counterparty_iban else None,
            name=normalise_name(line.counterparty_name) if line.counterparty_name else "",
        )


def _name_similarity(a: str, b: str) -> float:
    """0..100. Same words in any order score 100; one name's words all found in the other
    ("Peeters" in "Jan Peeters", a joint account) score 90 at most, as they say less."""
    if not a or not b:
        return 0.0
    whole = fuzz.token_sort_ratio(a, b, processor=None, score_cutoff=_NAME_FLOOR)
    subset = 0.9 * fuzz.token_set_ratio(a, b, processor=None, score_cutoff=_NAME_FLOOR / 0.9)
    return max(whole, subset)


def _score(evidence: _Evidence, candidate: Candidate) -> tuple[float, tuple[str, ...]]:
    miss = 1.0  # Π(1 - w): the chance that every piece of evidence is misleading
    reasons: list[str] = []
    for ogm in evidence.ogms:
        if ogm in candidate.ogms:
            miss *= 1.0 - W_OGM
            reasons.append(f"structured communication +++{ogm[:3]}/{ogm[3:7]}/{ogm[7:]}+++")
            break
    for ref in evidence.refs:
        if ref in candidate._refs:
            miss *= 1.0 - W_REF
            reasons.append(f"reference {ref} in the text")
            break
    if evidence.iban is not None and evidence.iban == candidate._iban:
        miss *= 1.0 - W_IBAN
        reasons.append("IBAN known for this debtor")
    amount = evidence.amount_minor
    if amount > 0:
        if amount == candidate.balance_minor:
            miss *= 1.0 - W_BALANCE
            reasons.append("amount equals the case balance")
        elif amount in candidate._by_amount:
            miss *= 1.0 - W_INVOICE
            reasons.append(f"amount equals invoice {candidate._by_amount[amount]}")
        elif amount < candidate.balance_minor:
            miss *= 1.0 - W_PARTIAL
            reasons.append("amount is part of the case balance")
    similarity = _name_similarity(evidence.name, candidate._name)
    if similarity > _NAME_FLOOR:
        weight = W_NAME_MAX * min(1.0, (similarity - _NAME_FLOOR) / (_NAME_FULL - _NAME_FLOOR))
        miss *= 1.0 - weight
        reasons.append(f"name {similarity:.0f}% similar")
    return 1.0 - miss, tuple(reasons)


def score(line: StatementLine, candidate: Candidate) -> tuple[float, tuple[str, ...]]:
    """How surely `line` pays `candidate`'s case (0..1), with the reasons."""
    return _score(_Evidence.of(line), candidate)


def choose(line: StatementLine, candidates: Iterable[Candidate]) -> Match | None:
    """The case the line pays, or None when a person must decide.

    A candidate whose structured communication the line carries wins outright — unless
    the line carries those of several cases (one transfer for two cases: a person splits
    it). Otherwise the best score is taken when it reaches ACCEPT and leads the runner-up
    by MARGIN. Candidates for one case count once (the best of them); the result does
    not depend on the candidates' order. Debits and reversals are never matched.
    """
    if line.amount_minor <= 0 or line.reversal:
        return None
    evidence = _Evidence.of(line)
    best: dict[object, tuple[float, tuple[str, ...], Candidate]] = {}
    for candidate in candidates:
        value, reasons = _score(evidence, candidate)
        held = best.get(candidate.case_id)
        if held is None or value > held[0]:
            best[candidate.case_id] = (value, reasons, candidate)
    if not best:
        return None
    if evidence.ogms:
        exact = [entry for entry in best.values() if entry[2].ogms.intersection(evidence.ogms)]
        if exact:
            if len(exact) > 1:
                return None
            value, reasons, candidate = exact[0]
            return Match(candidate, value, reasons)
    ranked = sorted(best.values(), key=lambda entry: entry[0], reverse=True)
    value, reasons, candidate = ranked[0]
    runner_up = ranked[1][0] if len(ranked) > 1 else 0.0
    if value >= ACCEPT and value - runner_up >= MARGIN:
        return Match(candidate, value, reasons)
    return None


# ---------------------------------------------------------------------------------------
# Lines never matched, and allocation over invoices
# ---------------------------------------------------------------------------------------


# Payment service providers whose payouts reach the creditor's account: the payments in
# a payout were booked one by one from the PSP's webhooks, so the payout itself is not.
PSP_PAYERS: Final = frozenset({"mollie", "stripe", "adyen", "buckaroo", "multisafepay"})
_PSP_IN_NAME: Final = re.compile("|".join(sorted(PSP_PAYERS)))


def classify_line(line: StatementLine, expected_currency: str = "EUR") -> str | None:
    """Why a line is never matched — "reversal", "zero amount", "debit", "foreign
    currency" (not `expected_currency`) or "psp payout" — or None when it is a credit to
    reconcile."""
    if line.reversal:
        return "reversal"
    if line.amount_minor == 0:
        return "zero amount"
    if line.amount_minor < 0:
        return "debit"
    if line.currency != expected_currency:
        return "foreign currency"
    name = (line.counterparty_name or "").casefold()
    # A substring test first: this runs for every line of a statement.
    if _PSP_IN_NAME.search(name) and PSP_PAYERS & set(normalise_name(name).split()):
        return "psp payout"
    return None


def _oldest_first(
    invoices: Sequence[tuple[InvoiceId, int, dt.date]],
) -> list[tuple[InvoiceId, int, dt.date]]:
    return sorted(invoices, key=lambda invoice: invoice[2])  # stable: ties keep their order


def allocate(
    amount_minor: int, invoices: Sequence[tuple[InvoiceId, int, dt.date]]
) -> tuple[list[tuple[InvoiceId, int]], int]:
    """Spread a payment over open invoices: (allocations, overpayment).

    An amount equal to one invoice's open amount pays that invoice (the payer paid that
    one; the oldest of several equal); otherwise invoices are paid oldest due date first,
    ties in the order given. What is left once all are paid is the overpayment.
    """
    if amount_minor < 0:
        raise ValueError(f"amount {amount_minor} is negative: only credits are allocated")
    for n, (invoice_id, open_minor, _due) in enumerate(invoices):
        if open_minor < 0:
            raise ValueError(
                f"invoice {n + 1} ({invoice_id!r}), open amount: {open_minor} is negative"
            )
    if amount_minor == 0:
        return [], 0
    ordered = _oldest_first(invoices)
    for invoice_id, open_minor, _due in ordered:
        if open_minor == amount_minor:
            return [(invoice_id, amount_minor)], 0
    allocations: list[tuple[InvoiceId, int]] = []
    left = amount_minor
    for invoice_id, open_minor, _due in ordered:
        if left == 0:
            break
        part = min(left, open_minor)
        if part > 0:
            allocations.append((invoice_id, part))
            left -= part
    return allocations, left
