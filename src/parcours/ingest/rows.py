"""Field-by-field checks of one CSV row per kind, free of any database access.

Refs repeated within a file are found by `row_key` before parsing, since that needs the
whole file's history; `parse_batch` itself keeps no state between batches.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from parcours.ingest.fields import (
    FieldError,
    parse_birth_year,
    parse_country,
    parse_currency,
    parse_date,
    parse_email,
    parse_language,
    parse_money,
    parse_phone,
    parse_text,
    parse_timestamp,
    parse_timezone,
)
from parcours.ingest.report import RowError

__all__ = [
    "OPTIONAL",
    "REQUIRED",
    "ImportKind",
    "ImportOptions",
    "ParsedRow",
    "RowParser",
    "digest",
]

MAX_REF = 64


class ImportKind(enum.StrEnum):
    DEBTORS = "debtors"
    INVOICES = "invoices"
    PAYMENTS = "payments"


REQUIRED: dict[ImportKind, tuple[str, ...]] = {
    ImportKind.DEBTORS: ("debtor_ref", "name"),
    ImportKind.INVOICES: (
        "invoice_ref",
        "debtor_ref",
        "amount",
        "currency",
        "issue_date",
        "due_date",
    ),
    ImportKind.PAYMENTS: ("invoice_ref", "amount", "paid_at"),
}
OPTIONAL: dict[ImportKind, tuple[str, ...]] = {
    ImportKind.DEBTORS: (
        "email",
        "phone",
        "language",
        "country",
        "street",
        "postcode",
        "city",
        "birth_year",
        "timezone",
    ),
    ImportKind.INVOICES: ("description",),
    ImportKind.PAYMENTS: ("payment_ref", "currency"),
}


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """Who the rows belong to, how to read what they leave out, and the clock to judge by."""

    creditor_id: UUID
    creditor_name: str
    now: dt.datetime
    default_region: str = "BE"
    default_language: str = "fr"
    default_zone: zoneinfo.ZoneInfo = field(
        default_factory=lambda: zoneinfo.ZoneInfo("Europe/Brussels")
    )
    strict: bool = False
    batch_size: int = 5000


@dataclass(slots=True)
class ParsedRow:
    """A row that passed the field checks: its key, storage values and content digest."""

    line: int
    ref: str
    values: tuple[Any, ...]
    digest: int
    extra: tuple[Any, ...] = ()


def digest(*values: Any) -> int:
    """A stable 64-bit digest of a row's stored content (Python's hash() is salted)."""
    text = "\x1f".join("" if v is None else str(v) for v in values)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), signed=True)


class RowParser:
    """Checks rows of one kind of file, given its header."""

    def __init__(self, kind: ImportKind, columns: tuple[str, ...], options: ImportOptions) -> None:
        self.kind = kind
        self.options = options
        self.today = options.now.astimezone(options.default_zone).date()
        index = {name: i for i, name in enumerate(columns)}
        self.at = {name: index.get(name) for name in (*REQUIRED[kind], *OPTIONAL[kind])}
        self._parse: Callable[[int, list[str], list[RowError]], ParsedRow | None] = {
            ImportKind.DEBTORS: self._debtor,
            ImportKind.INVOICES: self._invoice,
            ImportKind.PAYMENTS: self._payment,
        }[kind]

    def row_key(self, fields: list[str]) -> tuple[str, str] | None:
        """(field, value) that identifies the row within its file, when it has one."""
        at = self.at
        if self.kind is ImportKind.PAYMENTS:
            ref = _cell(fields, at["payment_ref"])
            if ref:
                return "payment_ref", ref
            # Without a payment_ref, the row's own content is its identity.
            content = (_cell(fields, at[name]) for name in ("invoice_ref", "amount", "paid_at"))
            return "row", "H" + f"{digest(*content) & (2**63 - 1):016x}"
        name = "debtor_ref" if self.kind is ImportKind.DEBTORS else "invoice_ref"
        value = _cell(fields, at[name])
        return (name, value) if value else None

    def parse_batch(
        self, rows: list[tuple[int, list[str]]]
    ) -> tuple[list[ParsedRow], list[RowError]]:
        """Check a batch of (line, fields); returns the good rows and the errors found."""
        parsed: list[ParsedRow] = []
        errors: list[RowError] = []
        for line, fields in rows:
            row = self._parse(line, fields, errors)
            if row is not None:
                parsed.append(row)
        return parsed, errors

    # -- shared field handling -----------------------------------------------------------

    def _values(self, fields: list[str]) -> dict[str, str]:
        return {name: _cell(fields, i) for name, i in self.at.items()}

    @staticmethod
    def _ref(name: str, value: str, line: int, errors: list[RowError]) -> str | None:
        if not value:
            errors.append(RowError(line, name, "is required but empty"))
            return None
        if len(value) > MAX_REF:
            errors.append(RowError(line, name, f"is longer than {MAX_REF} characters"))
            return None
        return value

    @staticmethod
    def _optional(
        name: str,
        v: dict[str, str],
        line: int,
        errors: list[RowError],
        parse: Callable[[str], Any],
    ) -> Any:
        """The parsed value, None when empty; a failure becomes a row error."""
        if not v[name]:
            return None
        try:
            return parse(v[name])
        except FieldError as exc:
            errors.append(RowError(line, name, str(exc)))
            return None

    def _required(
        self,
        name: str,
        v: dict[str, str],
        line: int,
        errors: list[RowError],
        parse: Callable[[str], Any],
    ) -> Any:
        if not v[name]:
            errors.append(RowError(line, name, "is required but empty"))
            return None
        return self._optional(name, v, line, errors, parse)

    # -- the kinds -----------------------------------------------------------------------

    def _debtor(self, line: int, fields: list[str], errors: list[RowError]) -> ParsedRow | None:
        v = self._values(fields)
        before = len(errors)
        ref = self._ref("debtor_ref", v["debtor_ref"], line, errors)
        name = self._required(
            "name", v, line, errors, functools.partial(parse_text, max_length=200)
        )
        country = self._optional("country", v, line, errors, parse_country)
        region = country or self.options.default_region
        language = (
            self._optional("language", v, line, errors, parse_language)
            or self.options.default_language
        )
        email = self._optional("email", v, line, errors, parse_email)
        phone = self._optional("phone", v, line, errors, lambda t: parse_phone(t, region))
        timezone = self._optional("timezone", v, line, errors, parse_timezone)
        birth_year = self._optional(
            "birth_year", v, line, errors, lambda t: parse_birth_year(t, self.today)
        )
        address = [
            self._optional(part, v, line, errors, functools.partial(parse_text, max_length=limit))
            for part, limit in (("street", 200), ("postcode", 16), ("city", 100))
        ]
        if any(address) and not all(address):
            missing = [
                p for p, a in zip(("street", "postcode", "city"), address, strict=True) if not a
            ]
            errors.append(
                RowError(line, missing[0], "is empty but the rest of the postal address is given")
            )
        if len(errors) > before or ref is None:
            return None
        values = (name, language, country, timezone, birth_year, email, phone, *address)
        return ParsedRow(line, ref, values, digest(*values))

    def _invoice(self, line: int, fields: list[str], errors: list[RowError]) -> ParsedRow | None:
        v = self._values(fields)
        before = len(errors)
        ref = self._ref("invoice_ref", v["invoice_ref"], line, errors)
        debtor_ref = self._ref("debtor_ref", v["debtor_ref"], line, errors)
        currency = self._required("currency", v, line, errors, parse_currency)
        amount = None
        if currency is not None:
            amount = self._required("amount", v, line, errors, lambda a: parse_money(a, currency))
        issue = self._required("issue_date", v, line, errors, parse_date)
        due = self._required("due_date", v, line, errors, parse_date)
        if issue and due and due < issue:
            errors.append(RowError(line, "due_date", f"{due} is before the issue date {issue}"))
        description = self._optional(
            "description", v, line, errors, functools.partial(parse_text, max_length=500)
        )
        if len(errors) > before or ref is None:
            return None
        values = (amount, currency, issue, due, description)
        return ParsedRow(line, ref, values, digest(debtor_ref, *values), (debtor_ref,))

    def _payment(self, line: int, fields: list[str], errors: list[RowError]) -> ParsedRow | None:
        v = self._values(fields)
        before = len(errors)
        invoice_ref = self._ref("invoice_ref", v["invoice_ref"], line, errors)
        if len(v["payment_ref"]) > MAX_REF:
            errors.append(RowError(line, "payment_ref", f"is longer than {MAX_REF} characters"))
        amount = v["amount"]
        if not amount:
            errors.append(RowError(line, "amount", "is required but empty"))
        paid_at = self._required(
            "paid_at", v, line, errors, lambda t: parse_timestamp(t, self.options.default_zone)
        )
        if paid_at is not None and paid_at > self.options.now:
            errors.append(RowError(line, "paid_at", f"{v['paid_at']!r} is in the future"))
        currency = self._optional("currency", v, line, errors, parse_currency)
        key = self.row_key(fields)
        if len(errors) > before or invoice_ref is None or key is None:
            return None
        # The amount's decimals depend on the invoice's currency: checked when storing.
        return ParsedRow(line, key[1], (paid_at,), 0, (invoice_ref, amount, currency))


def _cell(fields: list[str], index: int | None) -> str:
    return "" if index is None else fields[index].strip()
