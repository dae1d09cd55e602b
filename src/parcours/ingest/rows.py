"""Field-by-field checks of one CSV row per kind, free of any database access.

Refs repeated within a file are found by `row_key` before parsing, since that needs the
whole file's history; `parse_batch` itself keeps no state between batches.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import UUID

from parcours.domain.names import name_key
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
    batch_size: int = 10000
    # Read and check rows in a second process; None: for files of a few MB and more.
    parallel: bool | None = None


class ParsedRow(NamedTuple):
    """A row that passed the field checks: its key, storage values and content digest.

    A tuple, because batches of them cross process boundaries: tuples pickle fastest.
    """

    line: int
    ref: str
    values: tuple[Any, ...]
    digest: int
    extra: tuple[Any, ...] = ()


def digest(*values: Any) -> int:
    """A stable 64-bit digest of a row's stored content (Python's hash() is salted)."""
    return int.from_bytes(
        hashlib.blake2b(repr(values).encode(), digest_size=8).digest(), signed=True
    )


class RowParser:
    """Checks rows of one kind of file, given its header.

    Rows first become `cells`: stripped values in the order of `REQUIRED + OPTIONAL` for
    the kind, "" for a column the file lacks, so each check reads a fixed position.
    """

    def __init__(self, kind: ImportKind, columns: tuple[str, ...], options: ImportOptions) -> None:
        self.kind = kind
        self.options = options
        self.today = options.now.astimezone(options.default_zone).date()
        index = {name: i for i, name in enumerate(columns)}
        # -1 reads the "" that `cells` appends for absent columns.
        self.order = [index.get(name, -1) for name in (*REQUIRED[kind], *OPTIONAL[kind])]
        self._parse: Callable[[int, list[str], list[RowError]], ParsedRow | None] = {
            ImportKind.DEBTORS: self._debtor,
            ImportKind.INVOICES: self._invoice,
            ImportKind.PAYMENTS: self._payment,
        }[kind]

    def cells(self, fields: list[str]) -> list[str]:
        """The row's stripped values in this kind's column order."""
        fields.append("")
        return [fields[i].strip() for i in self.order]

    def row_key(self, cells: list[str]) -> tuple[str, str] | None:
        """(field, value) that identifies the row within its file, when it has one."""
        if self.kind is ImportKind.PAYMENTS:
            invoice_ref, amount, paid_at, payment_ref, _ = cells
            if payment_ref:
                return "payment_ref", payment_ref
            # Without a payment_ref, the row's own content is its identity.
            return "row", "H" + f"{digest(invoice_ref, amount, paid_at) & (2**63 - 1):016x}"
        # Debtors and invoices both start with their own ref.
        name = REQUIRED[self.kind][0]
        return (name, cells[0]) if cells[0] else None

    def parse_batch(
        self, rows: list[tuple[int, list[str]]]
    ) -> tuple[list[ParsedRow], list[RowError]]:
        """Check a batch of (line, cells); returns the good rows and the errors found."""
        parsed: list[ParsedRow] = []
        errors: list[RowError] = []
        parse = self._parse
        for line, cells in rows:
            row = parse(line, cells, errors)
            if row is not None:
                parsed.append(row)
        return parsed, errors

    # -- the kinds: each field checked once, every problem of a row reported -------------

    def _debtor(self, line: int, c: list[str], errors: list[RowError]) -> ParsedRow | None:
        ref, name, email, phone, language, country, street, postcode, city, year, zone = c
        before = len(errors)
        _ref("debtor_ref", ref, line, errors)
        if name:
            _check(errors, line, "name", parse_text, name, 200)
        else:
            errors.append(RowError(line, "name", _MISSING))
        country = country and _check(errors, line, "country", parse_country, country)
        language = (
            language and _check(errors, line, "language", parse_language, language)
        ) or self.options.default_language
        email = email and _check(errors, line, "email", parse_email, email)
        if phone:
            region = country or self.options.default_region
            phone = _check(errors, line, "phone", parse_phone, phone, region)
        zone = zone and _check(errors, line, "timezone", parse_timezone, zone)
        birth_year = year and _check(errors, line, "birth_year", parse_birth_year, year, self.today)
        street = street and _check(errors, line, "street", parse_text, street, 200)
        postcode = postcode and _check(errors, line, "postcode", parse_text, postcode, 16)
        city = city and _check(errors, line, "city", parse_text, city, 100)
        address = (street or None, postcode or None, city or None)
        if any(address) and not all(address):
            missing = next(
                p for p, a in zip(("street", "postcode", "city"), address, strict=True) if not a
            )
            errors.append(
                RowError(line, missing, "is empty but the rest of the postal address is given")
            )
        if len(errors) > before:
            return None
        values = (
            name,
            language,
            country or None,
            zone or None,
            birth_year or None,
            email or None,
            phone or None,
            *address,
        )
        # The name as reconciliation looks payers up (computed here, in the parse
        # workers): not a field of its own, so not in the digest.
        return ParsedRow(line, ref, values, digest(*values), (name_key(name),))

    def _invoice(self, line: int, c: list[str], errors: list[RowError]) -> ParsedRow | None:
        ref, debtor_ref, amount, currency, issue, due, description = c
        before = len(errors)
        _ref("invoice_ref", ref, line, errors)
        _ref("debtor_ref", debtor_ref, line, errors)
        if currency:
            currency = _check(errors, line, "currency", parse_currency, currency)
        else:
            errors.append(RowError(line, "currency", _MISSING))
        if not amount:
            errors.append(RowError(line, "amount", _MISSING))
        elif currency:
            amount = _check(errors, line, "amount", parse_money, amount, currency)
        dates = []
        for field_name, value in (("issue_date", issue), ("due_date", due)):
            if not value:
                errors.append(RowError(line, field_name, _MISSING))
            dates.append(value and _check(errors, line, field_name, parse_date, value))
        if all(dates) and due < issue:
            errors.append(RowError(line, "due_date", f"{due} is before the issue date {issue}"))
        if description:
            _check(errors, line, "description", parse_text, description, 500)
        if len(errors) > before:
            return None
        values = (amount, currency, issue, due, description or None)
        return ParsedRow(line, ref, values, digest(debtor_ref, *values), (debtor_ref,))

    def _payment(self, line: int, c: list[str], errors: list[RowError]) -> ParsedRow | None:
        invoice_ref, amount, paid_at, payment_ref, currency = c
        before = len(errors)
        _ref("invoice_ref", invoice_ref, line, errors)
        if len(payment_ref) > MAX_REF:
            errors.append(RowError(line, "payment_ref", f"is longer than {MAX_REF} characters"))
        if not amount:
            errors.append(RowError(line, "amount", _MISSING))
        zone, moment = self.options.default_zone, None
        if not paid_at:
            errors.append(RowError(line, "paid_at", _MISSING))
        else:
            moment = _check(errors, line, "paid_at", parse_timestamp, paid_at, zone)
            if moment is not None and moment > self.options.now:
                errors.append(RowError(line, "paid_at", f"{paid_at!r} is in the future"))
        currency = currency and _check(errors, line, "currency", parse_currency, currency)
        key = self.row_key(c)
        if len(errors) > before or key is None:
            return None
        # The amount's decimals depend on the invoice's currency: checked when storing.
        return ParsedRow(line, key[1], (moment,), 0, (invoice_ref, amount, currency or None))


_MISSING = "is required but empty"


def _ref(name: str, value: str, line: int, errors: list[RowError]) -> None:
    if not value:
        errors.append(RowError(line, name, _MISSING))
    elif len(value) > MAX_REF:
        errors.append(RowError(line, name, f"is longer than {MAX_REF} characters"))


def _check(
    errors: list[RowError], line: int, name: str, parse: Callable[..., Any], *args: Any
) -> Any:
    """`parse(*args)`, or None with the failure recorded as this row's error on `name`."""
    try:
        return parse(*args)
    except FieldError as exc:
        errors.append(RowError(line, name, str(exc)))
        return None
