"""ISO 20022 camt.053 bank statements (BankToCustomerStatement 001.02 to 001.08): a streaming
parser for imports and a writer for tests, the simulator and benchmarks.

Reading
-------
A statement of a busy collection account holds a hundred thousand entries, so the parser
streams: `lxml.etree.iterparse` reports only `GrpHdr`, `Stmt` and `Ntry` ends, each entry is
read by walking its children against tag names built once for the document's namespace,
then cleared and dropped from the tree. Memory stays flat and there is no XPath per element.

What is read, and from where:

- statement: `Stmt/Id`; `Acct/Id/IBAN`; the date of `Stmt/CreDtTm` (else `GrpHdr/CreDtTm`:
  versions 07 and 08 make only the latter mandatory); `Acct/Ccy`, else the first balance's
  currency; the opening balance (`Bal` of type OPBD, else PRCD) and the closing one (CLBD),
  signed by their `CdtDbtInd`.
- entry: `Amt` and its `Ccy` in exact minor units (more decimals than the currency has is an
  error, never a rounding), `CdtDbtInd` (DBIT is negative), `RvslInd`, `BookgDt` and `ValDt`
  (`Dt`, or the date part of `DtTm` as the bank wrote it), `BkTxCd` (`Domn` as
  `PMNT/RCDT/ESCT`, else `Prtry/Cd`; a transaction's own code wins over the entry's).
- transaction details (`NtryDtls/TxDtls`): `Refs/EndToEndId` (not `NOTPROVIDED`),
  `RmtInf/Strd/CdtrRefInf/Ref` (a Belgian OGM loses its `+++`, `***`, `/` and spaces, an RF
  reference its spaces), `RmtInf/Ustrd` joined with spaces, and the counterparty.
- counterparty: the payer side of the original transfer, `Dbtr` and `DbtrAcct/Id/IBAN` for a
  credit, `Cdtr` and `CdtrAcct` for a debit. A reversal keeps the parties of the transfer it
  undoes, so a reversed credit (booked as a debit) still names its debtor. The name is `Nm`
  up to version 06 and `Pty/Nm` from 07 (Party35Choice, Party40Choice in 08); both are
  accepted in any version.
- entry reference: `AcctSvcrRef`, else `NtryRef`, else a digest of the entry's content with
  the statement id (with a counter for identical entries), so a re-import books nothing.
- batches: an entry with several `TxDtls` yields one line per transaction, with its own
  amount (`TxDtls/Amt`, else `AmtDtls/TxAmt/Amt`), sign (`TxDtls/CdtDbtInd`, else the
  entry's), references, remittance and party, and the reference `{entry reference}/{n}`.
  An entry with one `TxDtls` is one line with the entry's amount.
- entries whose status is not BOOK (PDNG, INFO) are not bookings and are left out.

Versions: namespaces `urn:iso:std:iso:20022:tech:xsd:camt.053.001.02` to `.08`, what banks in
Belgium emit (02 under the Febelfin guidelines, 08 since the ISO 20022 migration). 001.01 was
a pre-release that banks did not adopt, and 09 and later have not been checked against their
schemas here: both are refused with a clear error rather than read on trust.

Errors name the place: `entry 17 (line 345), Amt: missing`, `statement 1 (line 12),
Acct/Id/IBAN: missing`, `line 2041, after entry 96: the XML is malformed or truncated ...`.
A file that raises yields nothing: statements are returned once the whole file is read.

Writing
-------
`write_camt` produces a document valid against the schema of the version asked for. Lines
whose references read `{base}/1`, `{base}/2`, ... and that share dates, currency, reversal
and bank code become one batch entry, so `parse_camt(write_camt(x)) == x` for all the format
carries (text is written in `Ustrd` pieces of at most 140 characters, cut at spaces).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, NamedTuple, TypeAlias
from xml.sax.saxutils import escape

from lxml import etree

from parcours.domain.errors import DomainError
from parcours.domain.money import currency_exponent
from parcours.payments.statements import Statement, StatementError, StatementLine

__all__ = ["DEFAULT_VERSION", "SUPPORTED_VERSIONS", "parse_camt", "write_camt"]

_ISO_PREFIX: Final = "urn:iso:std:iso:20022:tech:xsd:"
SUPPORTED_VERSIONS: Final = tuple(f"camt.053.001.{n:02d}" for n in range(2, 9))
DEFAULT_VERSION: Final = "camt.053.001.08"

_OGM_NOISE = re.compile(r"[\s+*/]")
_NOT_PROVIDED: Final = "NOTPROVIDED"

_Element: TypeAlias = etree._Element
_Source: TypeAlias = bytes | str | Path | IO[bytes]


class _Tags:
    """The namespaced tag names of one camt.053 version, built once per document."""

    __slots__ = (
        "acct",
        "acct_svcr_ref",
        "amt",
        "amt_dtls",
        "bal",
        "bk_tx_cd",
        "bookg_dt",
        "ccy",
        "cd",
        "cd_or_prtry",
        "cdt_dbt_ind",
        "cdtr",
        "cdtr_acct",
        "cdtr_ref_inf",
        "cre_dt_tm",
        "dbtr",
        "dbtr_acct",
        "domn",
        "dt",
        "dt_tm",
        "end_to_end_id",
        "fmly",
        "iban",
        "id",
        "nm",
        "ntry",
        "ntry_dtls",
        "ntry_ref",
        "prtry",
        "pty",
        "ref",
        "refs",
        "rltd_pties",
        "rmt_inf",
        "rvsl_ind",
        "strd",
        "sts",
        "sub_fmly_cd",
        "tp",
        "tx_amt",
        "tx_dtls",
        "ustrd",
        "val_dt",
    )

    def __init__(self, namespace: str) -> None:
        def tag(name: str) -> str:
            return f"{{{namespace}}}{name}"

        self.acct = tag("Acct")
        self.acct_svcr_ref = tag("AcctSvcrRef")
        self.amt = tag("Amt")
        self.amt_dtls = tag("AmtDtls")
        self.bal = tag("Bal")
        self.bk_tx_cd = tag("BkTxCd")
        self.bookg_dt = tag("BookgDt")
        self.ccy = tag("Ccy")
        self.cd = tag("Cd")
        self.cd_or_prtry = tag("CdOrPrtry")
        self.cdt_dbt_ind = tag("CdtDbtInd")
        self.cdtr = tag("Cdtr")
        self.cdtr_acct = tag("CdtrAcct")
        self.cdtr_ref_inf = tag("CdtrRefInf")
        self.cre_dt_tm = tag("CreDtTm")
        self.dbtr = tag("Dbtr")
        self.dbtr_acct = tag("DbtrAcct")
        self.domn = tag("Domn")
        self.dt = tag("Dt")
        self.dt_tm = tag("DtTm")
        self.end_to_end_id = tag("EndToEndId")
        self.fmly = tag("Fmly")
        self.iban = tag("IBAN")
        self.id = tag("Id")
        self.nm = tag("Nm")
        self.ntry = tag("Ntry")
        self.ntry_dtls = tag("NtryDtls")
        self.ntry_ref = tag("NtryRef")
        self.prtry = tag("Prtry")
        self.pty = tag("Pty")
        self.ref = tag("Ref")
        self.refs = tag("Refs")
        self.rltd_pties = tag("RltdPties")
        self.rmt_inf = tag("RmtInf")
        self.rvsl_ind = tag("RvslInd")
        self.strd = tag("Strd")
        self.sts = tag("Sts")
        self.sub_fmly_cd = tag("SubFmlyCd")
        self.tp = tag("Tp")
        self.tx_amt = tag("TxAmt")
        self.tx_dtls = tag("TxDtls")
        self.ustrd = tag("Ustrd")
        self.val_dt = tag("ValDt")


class _Problem(Exception):
    """A field-level problem, located by the caller that knows the entry or statement."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _text(element: _Element) -> str:
    text = element.text
    return text.strip() if text else ""


def _child(element: _Element, tag: str) -> _Element | None:
    for child in element:
        if child.tag == tag:
            return child
    return None


_scales: dict[str, int] = {}


def _exponent(currency: str, field: str) -> int:
    exponent = _scales.get(currency)
    if exponent is None:
        try:
            exponent = currency_exponent(currency)
        except DomainError as exc:
            raise _Problem(field, str(exc)) from exc
        _scales[currency] = exponent
    return exponent


def _minor(element: _Element, field: str) -> tuple[int, str]:
    """The non-negative amount of an `Amt`-like element in minor units, and its currency."""
    currency = element.get("Ccy")
    if not currency:
        raise _Problem(f"{field}/@Ccy", "missing")
    exponent = _exponent(currency, f"{field}/@Ccy")
    text = _text(element)
    whole, _, fraction = text.partition(".")
    # Exact decimal arithmetic on the digits: at most 18 of them, 5 after the point.
    if not (
        whole.isascii()
        and whole.isdigit()
        and len(whole) <= 18
        and (not fraction or (fraction.isascii() and fraction.isdigit() and len(fraction) <= 5))
    ):
        raise _Problem(field, f"{text!r} is not an amount like 1234.50")
    significant = fraction.rstrip("0")
    if len(significant) > exponent:
        raise _Problem(
            field, f"{text} has {len(significant)} decimals but {currency} has {exponent}"
        )
    minor = int(whole) * 10**exponent
    if significant:
        minor += int(significant.ljust(exponent, "0"))
    return minor, currency


def _sign(code: str | None, field: str) -> int:
    if code is None:
        raise _Problem(field, "missing")
    if code == "CRDT":
        return 1
    if code == "DBIT":
        return -1
    raise _Problem(field, f"{code!r} is neither CRDT nor DBIT")


_dates: dict[str, dt.date] = {}


def _date(element: _Element, t: _Tags, field: str) -> dt.date:
    """`Dt` or the date part of `DtTm` (the bank's own calendar day, as written)."""
    for child in element:
        tag = child.tag
        if tag == t.dt or tag == t.dt_tm:
            text = child.text or ""
            day = _dates.get(text)  # a statement has few distinct days: parse each once
            if day is None:
                try:
                    day = dt.date.fromisoformat(text.strip()[:10])
                except ValueError:
                    name = "Dt" if tag == t.dt else "DtTm"
                    raise _Problem(f"{field}/{name}", f"{text!r} is not an ISO date") from None
                if len(_dates) < 4096:
                    _dates[text] = day
            return day
    raise _Problem(f"{field}/Dt", "missing")


def _date_time(element: _Element, field: str) -> dt.date:
    text = _text(element)
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise _Problem(field, f"{text!r} is not an ISO date and time") from None


def _structured(raw: str) -> str | None:
    """A creditor reference without print formatting: twelve digits for an OGM."""
    if len(raw) == 12 and raw.isascii() and raw.isdigit():
        return raw
    compact = _OGM_NOISE.sub("", raw)
    if len(compact) == 12 and compact.isdigit():
        return compact
    spaceless = "".join(raw.split())
    if spaceless[:2].upper() == "RF":
        return spaceless.upper()
    return spaceless or None


def _iban(element: _Element | None, t: _Tags) -> str | None:
    """`…Acct/Id/IBAN` in electronic form."""
    if element is None:
        return None
    # `_child` twice, inlined: this runs for every transaction.
    id_tag, iban_tag = t.id, t.iban
    for identification in element:
        if identification.tag == id_tag:
            for iban in identification:
                if iban.tag == iban_tag:
                    return "".join((iban.text or "").split()).upper() or None
            return None
    return None


def _party_name(element: _Element | None, t: _Tags) -> str | None:
    """`Nm` (versions 02 to 06) or `Pty/Nm` (07 and 08)."""
    if element is None:
        return None
    for child in element:
        tag = child.tag
        if tag == t.nm:
            return _text(child) or None
        if tag == t.pty:
            name = _child(child, t.nm)
            return None if name is None else _text(name) or None
    return None


def _bank_code(element: _Element, t: _Tags) -> str | None:
    domain = _child(element, t.domn)
    if domain is not None:
        code = family = sub_family = ""
        for child in domain:
            if child.tag == t.cd:
                code = _text(child)
            elif child.tag == t.fmly:
                for part in child:
                    if part.tag == t.cd:
                        family = _text(part)
                    elif part.tag == t.sub_fmly_cd:
                        sub_family = _text(part)
        return f"{code}/{family}/{sub_family}"
    proprietary = _child(element, t.prtry)
    if proprietary is not None:
        code_element = _child(proprietary, t.cd)
        if code_element is not None:
            return _text(code_element) or None
    return None


def _transaction(tx: _Element, t: _Tags) -> tuple[_Transaction, _Element | None, str | None]:
    """What one `TxDtls` says, with its own amount element and sign (None when absent)."""
    # Tag names as locals: this runs once per transaction, 100,000 times a large statement.
    rltd_pties, rmt_inf, refs, amt, cdt_dbt_ind = (
        t.rltd_pties,
        t.rmt_inf,
        t.refs,
        t.amt,
        t.cdt_dbt_ind,
    )
    end_to_end_id = structured = bank_code = None
    debtor_name = debtor_iban = creditor_name = creditor_iban = None
    text = ""
    amount: _Element | None = None
    tx_amount: _Element | None = None
    sign: str | None = None
    for child in tx:
        tag = child.tag
        if tag == rltd_pties:
            dbtr, dbtr_acct, cdtr, cdtr_acct = t.dbtr, t.dbtr_acct, t.cdtr, t.cdtr_acct
            for party in child:
                ptag = party.tag
                if ptag == dbtr:
                    debtor_name = _party_name(party, t)
                elif ptag == dbtr_acct:
                    debtor_iban = _iban(party, t)
                elif ptag == cdtr:
                    creditor_name = _party_name(party, t)
                elif ptag == cdtr_acct:
                    creditor_iban = _iban(party, t)
        elif tag == rmt_inf:
            ustrd, strd = t.ustrd, t.strd
            texts: list[str] = []
            for part in child:
                ptag = part.tag
                if ptag == ustrd:
                    piece = (part.text or "").strip()
                    if piece:
                        texts.append(piece)
                elif ptag == strd and structured is None:
                    # Strd/CdtrRefInf/Ref: `_child` twice, inlined.
                    info_tag, ref_tag = t.cdtr_ref_inf, t.ref
                    for reference in part:
                        if reference.tag == info_tag:
                            for ref_element in reference:
                                if ref_element.tag == ref_tag:
                                    structured = _structured((ref_element.text or "").strip())
                                    break
                            break
            text = " ".join(texts)
        elif tag == refs:
            end_to_end = t.end_to_end_id
            for ref in child:
                if ref.tag == end_to_end:
                    value = (ref.text or "").strip()
                    if value and value != _NOT_PROVIDED:
                        end_to_end_id = value
        elif tag == amt:
            amount = child
        elif tag == cdt_dbt_ind:
            sign = (child.text or "").strip()
        elif tag == t.amt_dtls and amount is None:
            tx_amt = _child(child, t.tx_amt)
            if tx_amt is not None:
                tx_amount = _child(tx_amt, amt)
        elif tag == t.bk_tx_cd:
            bank_code = _bank_code(child, t)
    details = _Transaction(
        end_to_end_id,
        structured,
        text,
        debtor_name,
        debtor_iban,
        creditor_name,
        creditor_iban,
        bank_code,
    )
    return details, amount if amount is not None else tx_amount, sign


class _Transaction(NamedTuple):
    """The remittance, references and parties of one `TxDtls`."""

    end_to_end_id: str | None
    structured: str | None
    text: str
    debtor_name: str | None
    debtor_iban: str | None
    creditor_name: str | None
    creditor_iban: str | None
    bank_code: str | None


def _line(
    ref: str,
    booked_on: dt.date,
    value_on: dt.date | None,
    amount: int,
    sign: int,
    currency: str,
    reversal: bool,
    bank_code: str | None,
    details: _Transaction | None,
) -> StatementLine:
    """A statement line; `sign` is the credit/debit indicator (+1/-1) of a non-negative amount."""
    amount_minor = amount * sign
    if details is None:
        return StatementLine(
            ref, booked_on, amount_minor, currency, value_on, reversal, bank_code=bank_code
        )
    # The payer side of the original transfer: the debtor of a credit, the creditor of a
    # debit; a reversal is booked with the opposite sign but keeps the original parties.
    # (Fields in StatementLine's order, positional: a line is made 100,000 times.)
    if (sign > 0) != reversal:
        name, iban = details.debtor_name, details.debtor_iban
    else:
        name, iban = details.creditor_name, details.creditor_iban
    return StatementLine(
        ref, booked_on, amount_minor, currency, value_on, reversal, details.structured,
        details.text, name, iban, details.end_to_end_id, details.bank_code or bank_code,
    )  # fmt: skip


def _digest(entry: _Element, statement_id: str) -> str:
    """A reference for an entry the bank gave none: its content, not its layout."""
    digest = hashlib.blake2b(statement_id.encode(), digest_size=12)
    for element in entry.iter():
        if not isinstance(element.tag, str):
            continue
        digest.update(element.tag.encode())
        for name, value in sorted(element.attrib.items()):
            digest.update(f"@{name!s}={value!s}".encode())
        digest.update(b"=" + _text(element).encode() + b"\x1f")
    return f"digest:{digest.hexdigest()}"


@dataclass(slots=True)
class _StatementHead:
    statement_id: str
    created_on: dt.date
    account_iban: str
    currency: str
    opening_minor: int | None
    closing_minor: int | None


class _Reader:
    """One pass over one document; holds what a statement needs until its end tag."""

    def __init__(self, version: str, t: _Tags) -> None:
        self.version = version
        self.t = t
        self.group_created: dt.date | None = None
        self.statements: list[Statement] = []
        self.statement_number = 0
        self.entry_number = 0
        self.head: _StatementHead | None = None
        self.lines: list[StatementLine] = []
        self.digests: dict[str, int] = {}

    # -- group header and statement ------------------------------------------------------

    def group_header(self, header: _Element) -> None:
        created = _child(header, self.t.cre_dt_tm)
        if created is not None:
            try:
                self.group_created = _date_time(created, "GrpHdr/CreDtTm")
            except _Problem as problem:
                raise StatementError(
                    problem.message, where=f"line {header.sourceline}", field=problem.field
                ) from None

    def statement_head(self, statement: _Element) -> _StatementHead:
        t = self.t
        self.statement_number += 1
        where = f"statement {self.statement_number} (line {statement.sourceline})"
        statement_id: str | None = None
        created_on: dt.date | None = None
        account_iban: str | None = None
        account_currency: str | None = None
        first_balance_currency: str | None = None
        opening: int | None = None
        previous_closing: int | None = None
        closing: int | None = None
        balance_number = 0
        try:
            for child in statement:
                tag = child.tag
                if tag == t.ntry:
                    break
                if tag == t.id:
                    statement_id = _text(child)
                elif tag == t.cre_dt_tm:
                    created_on = _date_time(child, "CreDtTm")
                elif tag == t.acct:
                    account_iban = _iban(child, t)
                    currency_element = _child(child, t.ccy)
                    if currency_element is not None:
                        account_currency = _text(currency_element) or None
                elif tag == t.bal:
                    balance_number += 1
                    kind, minor, balance_currency = self.balance(child, f"Bal[{balance_number}]")
                    first_balance_currency = first_balance_currency or balance_currency
                    if kind == "OPBD" and opening is None:
                        opening = minor
                    elif kind == "PRCD" and previous_closing is None:
                        previous_closing = minor
                    elif kind == "CLBD" and closing is None:
                        closing = minor
            if not statement_id:
                raise _Problem("Id", "missing")
            if account_iban is None:
                raise _Problem("Acct/Id/IBAN", "missing")
            created_on = created_on or self.group_created
            if created_on is None:
                raise _Problem("CreDtTm", "missing (in the statement and in GrpHdr)")
            currency = account_currency or first_balance_currency
            if currency is None:
                raise _Problem("Acct/Ccy", "missing, and no balance gives a currency")
            _exponent(currency, "Acct/Ccy")
        except _Problem as problem:
            raise StatementError(problem.message, where=where, field=problem.field) from None
        return _StatementHead(
            statement_id=statement_id,
            created_on=created_on,
            account_iban=account_iban,
            currency=currency,
            opening_minor=opening if opening is not None else previous_closing,
            closing_minor=closing,
        )

    def balance(self, balance: _Element, field: str) -> tuple[str, int, str | None]:
        t = self.t
        kind = ""
        amount: _Element | None = None
        sign: str | None = None
        for child in balance:
            tag = child.tag
            if tag == t.tp:
                choice = _child(child, t.cd_or_prtry)
                code = None if choice is None else _child(choice, t.cd)
                kind = "" if code is None else _text(code)
            elif tag == t.amt:
                amount = child
            elif tag == t.cdt_dbt_ind:
                sign = _text(child)
        if kind not in ("OPBD", "PRCD", "CLBD"):
            return kind, 0, None if amount is None else amount.get("Ccy") or None
        if amount is None:
            raise _Problem(f"{field}/Amt", "missing")
        minor, currency = _minor(amount, f"{field}/Amt")
        return kind, minor * _sign(sign, f"{field}/CdtDbtInd"), currency

    def statement_end(self, statement: _Element) -> None:
        head = self.head or self.statement_head(statement)
        self.statements.append(
            Statement(
                format=self.version,
                account_iban=head.account_iban,
                statement_id=head.statement_id,
                created_on=head.created_on,
                currency=head.currency,
                opening_minor=head.opening_minor,
                closing_minor=head.closing_minor,
                lines=self.lines,
            )
        )
        self.head = None
        self.lines = []
        self.digests = {}

    # -- entries -------------------------------------------------------------------------

    def entry(self, entry: _Element) -> None:
        self.entry_number += 1
        if self.head is None:
            parent = entry.getparent()
            assert parent is not None  # an end event's element always has its Stmt
            self.head = self.statement_head(parent)
        try:
            self.lines.extend(self.entry_lines(entry, self.head))
        except _Problem as problem:
            raise StatementError(
                problem.message,
                where=f"entry {self.entry_number} (line {entry.sourceline})",
                field=problem.field,
            ) from None

    def entry_lines(self, entry: _Element, head: _StatementHead) -> list[StatementLine]:
        t = self.t
        amt, cdt_dbt_ind, ntry_dtls, bookg_dt, acct_svcr_ref, bk_tx_cd, val_dt = (
            t.amt,
            t.cdt_dbt_ind,
            t.ntry_dtls,
            t.bookg_dt,
            t.acct_svcr_ref,
            t.bk_tx_cd,
            t.val_dt,
        )
        amount: _Element | None = None
        sign: str | None = None
        reversal = False
        booked: _Element | None = None
        valued: _Element | None = None
        servicer_ref = entry_ref = ""
        bank_code: str | None = None
        transactions: list[_Element] = []
        for child in entry:
            tag = child.tag
            if tag == amt:
                amount = child
            elif tag == cdt_dbt_ind:
                sign = (child.text or "").strip()
            elif tag == ntry_dtls:
                tx_dtls = t.tx_dtls
                for tx in child:
                    if tx.tag == tx_dtls:
                        transactions.append(tx)
            elif tag == bookg_dt:
                booked = child
            elif tag == acct_svcr_ref:
                servicer_ref = (child.text or "").strip()
            elif tag == bk_tx_cd:
                bank_code = _bank_code(child, t)
            elif tag == val_dt:
                valued = child
            elif tag == t.sts:
                code = _text(child)
                for part in child:  # Sts/Cd (or Prtry) from version 07
                    code = _text(part)
                    break
                if code and code != "BOOK":
                    return []  # pending or information only: not a booking
            elif tag == t.rvsl_ind:
                reversal = _text(child) in ("true", "1")
            elif tag == t.ntry_ref:
                entry_ref = _text(child)
        if amount is None:
            raise _Problem("Amt", "missing")
        minor, currency = _minor(amount, "Amt")
        entry_sign = _sign(sign, "CdtDbtInd")
        if booked is None:
            raise _Problem("BookgDt", "missing")
        booked_on = _date(booked, t, "BookgDt")
        value_on = None if valued is None else _date(valued, t, "ValDt")
        ref = servicer_ref or entry_ref or self.unnamed(entry, head.statement_id)

        if len(transactions) <= 1:
            details = _transaction(transactions[0], t)[0] if transactions else None
            return [
                _line(
                    ref,
                    booked_on,
                    value_on,
                    minor,
                    entry_sign,
                    currency,
                    reversal,
                    bank_code,
                    details,
                )
            ]
        lines: list[StatementLine] = []
        for number, tx in enumerate(transactions, 1):
            field = f"NtryDtls/TxDtls[{number}]"
            details, tx_amount, tx_sign = _transaction(tx, t)
            if tx_amount is None:
                raise _Problem(f"{field}/Amt", "missing (each transaction of a batch needs one)")
            name = "Amt" if tx_amount.getparent() is tx else "AmtDtls/TxAmt/Amt"
            tx_minor, tx_currency = _minor(tx_amount, f"{field}/{name}")
            direction = entry_sign if tx_sign is None else _sign(tx_sign, f"{field}/CdtDbtInd")
            lines.append(
                _line(
                    f"{ref}/{number}",
                    booked_on,
                    value_on,
                    tx_minor,
                    direction,
                    tx_currency,
                    reversal,
                    bank_code,
                    details,
                )
            )
        return lines

    def unnamed(self, entry: _Element, statement_id: str) -> str:
        digest = _digest(entry, statement_id)
        seen = self.digests.get(digest, 0) + 1
        self.digests[digest] = seen
        return digest if seen == 1 else f"{digest}#{seen}"


def _version(root: _Element) -> str:
    tag = root.tag if isinstance(root.tag, str) else ""
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    if local != "Document" or not namespace.startswith(_ISO_PREFIX):
        raise StatementError(
            f"the root element is {local or tag!r} in namespace {namespace!r}, not an ISO 20022 "
            f"Document ({_ISO_PREFIX}camt.053.001.NN)",
            where=f"line {root.sourceline}",
        )
    version = namespace.removeprefix(_ISO_PREFIX)
    if version not in SUPPORTED_VERSIONS:
        kind = "version" if version.startswith("camt.053.") else "message, not a bank statement"
        raise StatementError(
            f"{version} is an unsupported {kind}; camt.053.001.02 to camt.053.001.08 are read",
            where=f"line {root.sourceline}",
        )
    return version


def _input(source: _Source) -> str | IO[bytes]:
    if isinstance(source, Path):
        return str(source)
    if isinstance(source, bytes):
        return io.BytesIO(source)
    if isinstance(source, str):
        # Text was decoded already: re-encode it as UTF-8 and say so in the declaration.
        source = source.removeprefix("\ufeff")
        declaration = re.match(r"\s*<\?xml[^>]*\?>", source)
        if declaration is not None:
            fixed = re.sub(
                r"""encoding\s*=\s*["'][^"']*["']""", 'encoding="UTF-8"', declaration.group()
            )
            source = fixed + source[declaration.end() :]
        return io.BytesIO(source.encode("utf-8"))
    return source


def parse_camt(source: _Source) -> list[Statement]:
    """Read every statement of a camt.053 document: bytes, text, a path or a binary file.

    Raises `StatementError` naming the entry (1-based, across the file) or statement, its
    line and the element at fault; nothing is returned from a document that fails.
    """
    events = etree.iterparse(
        _input(source),
        events=("end",),
        tag=("{*}GrpHdr", "{*}Stmt", "{*}Ntry"),
        resolve_entities=False,
        no_network=True,
        remove_comments=True,
        remove_pis=True,
    )
    reader: _Reader | None = None
    ntry_tag = stmt_tag = ""
    try:
        for _event, element in events:
            if reader is None:
                root = element.getroottree().getroot()
                version = _version(root)
                namespace = root.tag[1:].partition("}")[0]
                tags = _Tags(namespace)
                reader = _Reader(version, tags)
                ntry_tag, stmt_tag = tags.ntry, f"{{{namespace}}}Stmt"
            tag = element.tag
            if tag == ntry_tag:
                reader.entry(element)
            elif tag == stmt_tag:
                reader.statement_end(element)
            else:
                reader.group_header(element)
            # Drop what has been read, so a large statement is held one entry at a time.
            element.clear(keep_tail=True)
            parent = element.getparent()
            if parent is not None:
                while element.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as exc:
        if reader is None and ("no element found" in exc.msg or "empty" in exc.msg):
            raise StatementError("the document is empty") from None
        line = exc.position[0] if exc.position else exc.lineno
        after = f", after entry {reader.entry_number}" if reader and reader.entry_number else ""
        raise StatementError(
            f"the XML is malformed or truncated: {exc.msg}", where=f"line {line}{after}"
        ) from None
    if reader is None:
        root = events.root
        if root is None:
            raise StatementError("the document is empty")
        _version(root)
        raise StatementError("no statement in the document", field="BkToCstmrStmt/Stmt")
    if not reader.statements:
        raise StatementError("no statement in the document", field="BkToCstmrStmt/Stmt")
    return reader.statements


# -- writing ---------------------------------------------------------------------------------

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_DOMAIN_CODE = re.compile(r"[A-Z0-9]{1,4}/[A-Z0-9]{1,4}/[A-Z0-9]{1,4}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_USTRD_MAX: Final = 140


class _WriteProblem(Exception):
    """A value the writer cannot put in the document; the caller says which line held it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.line: int | None = None


def _x(value: str, field: str, max_length: int) -> str:
    if not value:
        raise _WriteProblem(field, "empty")
    if len(value) > max_length:
        raise _WriteProblem(field, f"at most {max_length} characters, got {len(value)}")
    if _XML_ILLEGAL.search(value):
        raise _WriteProblem(field, "contains a character XML cannot carry")
    return escape(value)


def _decimal(minor: int, currency: str, field: str) -> str:
    if not _CURRENCY.fullmatch(currency):
        raise _WriteProblem(field, f"{currency!r} is not a currency code")
    try:
        exponent = currency_exponent(currency)
    except DomainError as exc:
        raise _WriteProblem(field, str(exc)) from exc
    digits = str(abs(minor))
    if len(digits) > 18:
        raise _WriteProblem(field, "more than the 18 digits an ISO 20022 amount has")
    if exponent == 0:
        return digits
    digits = digits.rjust(exponent + 1, "0")
    return f"{digits[:-exponent]}.{digits[-exponent:]}"


def _amount(minor: int, currency: str, field: str) -> str:
    return f'<Amt Ccy="{currency}">{_decimal(minor, currency, field)}</Amt>'


def _indicator(minor: int) -> str:
    return "<CdtDbtInd>DBIT</CdtDbtInd>" if minor < 0 else "<CdtDbtInd>CRDT</CdtDbtInd>"


def _ustrd_pieces(text: str) -> list[str]:
    """Text cut at spaces into pieces of at most 140 characters; joined by spaces it is back."""
    pieces: list[str] = []
    current = ""
    for word in text.split(" "):
        if len(word) > _USTRD_MAX:
            raise _WriteProblem("text", f"has a word longer than {_USTRD_MAX} characters")
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= _USTRD_MAX:
            current = candidate
        else:
            pieces.append(current)
            current = word
    if current:
        pieces.append(current)
    return pieces


def _same_entry(a: StatementLine, b: StatementLine) -> bool:
    return (
        a.booked_on == b.booked_on
        and a.value_on == b.value_on
        and a.reversal == b.reversal
        and a.currency == b.currency
        and a.bank_code == b.bank_code
    )


def _entries(lines: Sequence[StatementLine], signed: bool) -> Iterator[tuple[int, str, int]]:
    """(first index, entry reference, line count): `{base}/1`, `{base}/2`... form batches.

    Without a sign per transaction (`signed` false, version 02) a batch must be all credits
    or all debits, since each transaction takes the entry's sign.
    """
    index = 0
    while index < len(lines):
        line = lines[index]
        base, slash, number = line.ref.rpartition("/")
        if slash and base and number == "1":
            end = index + 1
            while (
                end < len(lines)
                and lines[end].ref == f"{base}/{end - index + 1}"
                and _same_entry(lines[end], line)
            ):
                end += 1
            group = lines[index:end]
            one_sign = all(g.amount_minor >= 0 for g in group) or all(
                g.amount_minor <= 0 for g in group
            )
            if len(group) > 1 and (signed or one_sign):
                yield index, base, len(group)
                index = end
                continue
        yield index, line.ref, 1
        index += 1


class _Writer:
    """Writes statements as text, the fastest way to a 100,000-entry benchmark document."""

    def __init__(self, version: str) -> None:
        number = int(version.rsplit(".", 1)[1])
        self.signed_transactions = number >= 3  # TxDtls/Amt and CdtDbtInd (mandatory 03-06)
        self.status_choice = number >= 7  # Sts/Cd instead of Sts
        self.party_choice = number >= 7  # Dbtr/Pty/Nm, not Dbtr/Nm (Party35Choice, 40Choice)
        self.out: list[str] = []

    def statement(self, statement: Statement) -> None:
        """Write one `Stmt`; a `_WriteProblem` carries the 1-based line number as `line`."""
        if statement.opening_minor is None and statement.closing_minor is None:
            raise _WriteProblem("closing_minor", "camt.053 needs at least one balance")
        created = statement.created_on.isoformat()
        currency = statement.currency
        iban = _x(statement.account_iban, "account_iban", 34)
        balances = []
        for kind, minor, field in (
            ("OPBD", statement.opening_minor, "opening_minor"),
            ("CLBD", statement.closing_minor, "closing_minor"),
        ):
            if minor is not None:
                balances.append(
                    f"<Bal><Tp><CdOrPrtry><Cd>{kind}</Cd></CdOrPrtry></Tp>"
                    f"{_amount(minor, currency, field)}{_indicator(minor)}"
                    f"<Dt><Dt>{created}</Dt></Dt></Bal>"
                )
        self.out.append(
            f"<Stmt><Id>{_x(statement.statement_id, 'statement_id', 35)}</Id>"
            f"<CreDtTm>{created}T00:00:00</CreDtTm>"
            f"<Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>{currency}</Ccy></Acct>{''.join(balances)}"
        )
        lines = statement.lines
        for first, ref, count in _entries(lines, self.signed_transactions):
            self.entry(ref, lines[first : first + count], first)
        self.out.append("</Stmt>")

    def entry(self, ref: str, group: Sequence[StatementLine], first: int) -> None:
        line = group[0]
        total = sum(g.amount_minor for g in group)
        batch = len(group) > 1
        try:
            head = (
                f"<Ntry>{_amount(total, line.currency, 'amount_minor')}{_indicator(total)}"
                + ("<RvslInd>true</RvslInd>" if line.reversal else "")
                + ("<Sts><Cd>BOOK</Cd></Sts>" if self.status_choice else "<Sts>BOOK</Sts>")
                + f"<BookgDt><Dt>{line.booked_on.isoformat()}</Dt></BookgDt>"
                + (f"<ValDt><Dt>{line.value_on.isoformat()}</Dt></ValDt>" if line.value_on else "")
                + f"<AcctSvcrRef>{_x(ref, 'ref', 35)}</AcctSvcrRef>"
                + self.bank_code(line.bank_code)
            )
        except _WriteProblem as problem:
            problem.line = first + 1
            raise
        transactions = []
        for offset, g in enumerate(group):
            try:
                transactions.append(self.transaction(g, batch, total))
            except _WriteProblem as problem:
                problem.line = first + offset + 1
                raise
        details = "".join(transactions)
        self.out.append(
            f"{head}<NtryDtls>{details}</NtryDtls></Ntry>" if details else f"{head}</Ntry>"
        )

    @staticmethod
    def bank_code(code: str | None) -> str:
        if code is None:
            return "<BkTxCd/>"
        if _DOMAIN_CODE.fullmatch(code):
            domain, family, sub_family = code.split("/")
            return (
                f"<BkTxCd><Domn><Cd>{domain}</Cd><Fmly><Cd>{family}</Cd>"
                f"<SubFmlyCd>{sub_family}</SubFmlyCd></Fmly></Domn></BkTxCd>"
            )
        return f"<BkTxCd><Prtry><Cd>{_x(code, 'bank_code', 35)}</Cd></Prtry></BkTxCd>"

    def transaction(self, line: StatementLine, batch: bool, total: int) -> str:
        """The line's `TxDtls`, or "" for a lone line with nothing beyond the entry."""
        refs = parties = remittance = ""
        if line.end_to_end_id is not None:
            e2e = _x(line.end_to_end_id, "end_to_end_id", 35)
            refs = f"<Refs><EndToEndId>{e2e}</EndToEndId></Refs>"
        # The sign the parser will see for this transaction decides the payer's side.
        written_sign = line.amount_minor if self.signed_transactions or not batch else total
        if line.counterparty_name is not None or line.counterparty_iban is not None:
            payer_is_debtor = (written_sign >= 0) != line.reversal
            party, account = ("Dbtr", "DbtrAcct") if payer_is_debtor else ("Cdtr", "CdtrAcct")
            if line.counterparty_name is not None:
                name = f"<Nm>{_x(line.counterparty_name, 'counterparty_name', 140)}</Nm>"
                if self.party_choice:
                    name = f"<Pty>{name}</Pty>"
                parties += f"<{party}>{name}</{party}>"
            if line.counterparty_iban is not None:
                iban = _x(line.counterparty_iban, "counterparty_iban", 34)
                parties += f"<{account}><Id><IBAN>{iban}</IBAN></Id></{account}>"
            parties = f"<RltdPties>{parties}</RltdPties>"
        if line.text or line.structured is not None:
            pieces = [
                f"<Ustrd>{_x(p, 'text', _USTRD_MAX)}</Ustrd>" for p in _ustrd_pieces(line.text)
            ]
            if line.structured is not None:
                issuer = "ISO" if line.structured.startswith("RF") else "BBA"
                pieces.append(
                    "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry>"
                    f"<Issr>{issuer}</Issr></Tp>"
                    f"<Ref>{_x(line.structured, 'structured', 35)}</Ref></CdtrRefInf></Strd>"
                )
            remittance = f"<RmtInf>{''.join(pieces)}</RmtInf>"
        if not (batch or refs or parties or remittance):
            return ""
        if self.signed_transactions:
            amounts = _amount(line.amount_minor, line.currency, "amount_minor") + _indicator(
                line.amount_minor
            )
        elif batch:
            amount = _amount(line.amount_minor, line.currency, "amount_minor")
            amounts = f"<AmtDtls><TxAmt>{amount}</TxAmt></AmtDtls>"
        else:
            amounts = ""
        return f"<TxDtls>{refs}{amounts}{parties}{remittance}</TxDtls>"


def write_camt(statements: Sequence[Statement], version: str = DEFAULT_VERSION) -> bytes:
    """A camt.053 document of the given version (02 to 08) holding the statements.

    Raises `StatementError` naming the statement, the line and the field that the format
    cannot carry (a reference over 35 characters, a statement without balances, ...).
    """
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"{version!r} is not one of {', '.join(SUPPORTED_VERSIONS)}")
    if not statements:
        raise StatementError("a camt.053 document needs at least one statement")
    writer = _Writer(version)
    created = max(statement.created_on for statement in statements).isoformat()
    ids = "\x1f".join(statement.statement_id for statement in statements)
    message_id = hashlib.blake2b(ids.encode(), digest_size=12).hexdigest()
    writer.out.append(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{_ISO_PREFIX}{version}">'
        f"<BkToCstmrStmt><GrpHdr><MsgId>{message_id}</MsgId>"
        f"<CreDtTm>{created}T00:00:00</CreDtTm></GrpHdr>"
    )
    for number, statement in enumerate(statements, 1):
        try:
            writer.statement(statement)
        except _WriteProblem as problem:
            where = f"statement {number}" + (f", line {problem.line}" if problem.line else "")
            raise StatementError(problem.message, where=where, field=problem.field) from None
    writer.out.append("</BkToCstmrStmt></Document>\n")
    return "".join(writer.out).encode("utf-8")
