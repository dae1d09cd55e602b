"""Belgian CODA 2.x bank statements (Febelfin "Coded statement of account"): a parser for
imports and a writer for tests and the simulator.

A CODA file is lines of exactly 128 characters (cp1252), one block per statement:
0 header, 1 old balance, movements (21, with 22 and 23 continuing it), information
(31, 32, 33), 8 new balance, 4 free communication, 9 trailer. Positions below are 1-based,
as in the standard.

- 0: creation date (6-11, DDMMYY), version code (128, must be 2).
- 1: account structure (2: 0 Belgian number, 1 foreign number, 2 Belgian IBAN, 3 foreign
  IBAN), account and currency (6-42), old balance sign (43, 0 credit, 1 debit) and amount
  (44-58), coded statement sequence number (126-128; paper sequence 3-5 when zero).
- 21: sequence (3-6), detail (7-10), sign (32), amount (33-47), value date (48-53,
  000000 when unknown), transaction code (54-61: type, family, transaction, category),
  communication type (62: 1 structured), communication (63-115), entry date (116-121),
  globalisation code (125).
- 22: communication continued (11-63), customer reference (64-98, the end-to-end id),
  counterparty BIC (99-109), type of R-transaction (113).
- 23: counterparty account and currency (11-47), name (48-82), communication (83-125).
- 8: new balance sign (42) and amount (43-57), date (58-63).
- 9: number of records 1, 2x, 3x and 8 (17-22), sums of debit (23-37) and credit (38-52)
  movements, counted on the 21 records of detail 0000.

Decisions:

- Amounts have three decimals. A currency with two (EUR) must have a zero third decimal;
  anything else is refused rather than rounded.
- Structured communication 101/102 is the Belgian OGM (its twelve digits). Some producers
  put an ISO 11649 reference there, and a free communication that is nothing but a valid
  RF reference is read as that structured reference too: CODA has no slot of its own for it.
  Other structured types (SEPA direct debit 127, ...) become the line's text.
- Free communication continues in 22 and 23; the pieces are joined and runs of spaces
  collapsed, since banks pad the pieces differently.
- Reversal (storno): the transaction code says "cancellation or correction" (transaction
  49 or 99 in every family of the standard's annex II), or record 22 gives a type of
  R-transaction (1 reject, 2 return, 3 refund, 4 reversal, 5 cancellation).
- Globalisation: a movement whose sequence number has details (types 5, 6, 7, 8, 9 under a
  total of type 1, 2 or 3) yields its details, the individual payments reconciliation needs;
  a total is left out, and so is a subtotal (type 7) followed by its own details (type 9).
- Statement id `{year of the new balance date}/{coded statement sequence}`: the sequence
  starts again at 001 every year, so the year keeps ids and line references unique per
  account. Line reference `{statement id}/{movement sequence}/{detail}`, the movement
  sequence counting on past 9999 where the bank's number wraps to 0000.
- Trailer: the number of records 1, 2x, 3x and 8 (not 4, as the standard says) and the
  sums of debit and credit movements must match, or nothing of the file is read.
- Not carried by `StatementLine`: the counterparty's BIC (22), record 3 information and
  record 4 free communication.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from parcours.domain.errors import DomainError
from parcours.domain.money import currency_exponent
from parcours.payments.statements import Statement, StatementError, StatementLine

__all__ = ["RECORD_LENGTH", "parse_coda", "write_coda"]

RECORD_LENGTH: Final = 128
FORMAT: Final = "coda"

_REVERSAL_TRANSACTIONS: Final = frozenset({"49", "99"})
_R_TRANSACTION_TYPES: Final = frozenset("12345")
# Which record types detail which totals (standard, 3.1): 1 -> 5, 2 -> 6 and 7, 3 -> 8, 7 -> 9.
_DETAIL_TYPES: Final = {"1": "5", "2": "67", "3": "8", "7": "9"}
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}")
_RF = re.compile(r"RF[0-9]{2}[A-Z0-9]{1,21}")
_NOT_PROVIDED: Final = frozenset({"NOTPROVIDED", "NOT PROVIDED"})
_POWERS: Final = (1, 10, 100, 1000, 10_000)


def _mod97(text: str) -> int:
    """ISO 7064 MOD 97-10 of digits and letters (A = 10 ... Z = 35)."""
    return int("".join(str(int(char, 36)) for char in text)) % 97


def _belgian_iban(bban: str) -> str:
    """The IBAN of a twelve-digit Belgian account number."""
    check = 98 - _mod97(bban + "BE00")
    return f"BE{check:02d}{bban}"


def _rf_reference(text: str) -> str | None:
    compact = "".join(text.split()).upper()
    if _RF.fullmatch(compact) and _mod97(compact[4:] + compact[:4]) == 1:
        return compact
    return None


class _Problem(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _date(text: str, what: str) -> dt.date:
    if not (text.isascii() and text.isdigit()):
        raise _Problem(f"{what} {text!r} is not a date (DDMMYY)")
    try:
        return dt.date(2000 + int(text[4:6]), int(text[2:4]), int(text[0:2]))
    except ValueError:
        raise _Problem(f"{what} {text!r} is not a date (DDMMYY)") from None


def _thousandths(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise _Problem(f"{what} {text!r} is not 15 digits")
    return int(text)


def _minor(thousandths: int, currency: str, what: str) -> int:
    """Minor units of an amount written with three decimals."""
    exponent = currency_exponent(currency)
    if exponent >= 3:
        return thousandths * _POWERS[exponent - 3]
    minor, rest = divmod(thousandths, _POWERS[3 - exponent])
    if rest:
        amount = f"{thousandths // 1000}.{thousandths % 1000:03d}"
        raise _Problem(
            f"{what} {amount} has a non-zero third decimal but {currency} has {exponent}"
        )
    return minor


def _signed(sign: str, what: str) -> int:
    if sign == "0":
        return 1
    if sign == "1":
        return -1
    raise _Problem(f"{what} sign {sign!r} is neither 0 (credit) nor 1 (debit)")


def _format_thousandths(value: int) -> str:
    return f"{value // 1000}.{value % 1000:03d}"


@dataclass(slots=True)
class _Movement:
    """One record 21 with what its records 22 and 23 add."""

    line: int
    sequence: int  # counting on past 9999
    raw_sequence: str
    detail: str
    amount: int  # thousandths, signed: what the trailer adds up
    minor: int  # the same in minor units of the account's currency
    value_on: dt.date | None
    code: str
    structured_type: str | None  # the structured communication's type, None when free
    communication: str
    booked_on: dt.date
    r_transaction: str = ""
    end_to_end_id: str | None = None
    counterparty_iban: str | None = None
    counterparty_name: str | None = None


@dataclass(slots=True)
class _Block:
    """A statement being read, from its header (record 0) to its trailer (record 9)."""

    start: int
    created_on: dt.date
    currency: str | None = None
    account_iban: str | None = None
    sequence: str = ""
    opening: int | None = None
    closing: int | None = None
    closing_on: dt.date | None = None
    movements: list[_Movement] = field(default_factory=list)
    counted: int = 0  # records 1, 2x, 3x and 8
    free: int = 0  # records 4
    debit: int = 0  # thousandths, detail 0000
    credit: int = 0
    wraps: int = 0
    last_raw_sequence: int = -1


def _account(structure: str, zone: str) -> tuple[str, str]:
    """(IBAN, currency) from an account zone of 37 characters (old and new balance)."""
    if structure == "2":  # Belgian IBAN: 31 characters, 3 of extension, currency
        return zone[:31].strip(), zone[34:37].strip()
    if structure == "3":  # foreign IBAN: 34 characters, currency
        return zone[:34].strip(), zone[34:37].strip()
    if structure == "0":  # Belgian account number: 12 digits, blank, currency
        number = zone[:12]
        if not (number.isascii() and number.isdigit()):
            raise _Problem(f"Belgian account number {number!r} is not 12 digits")
        return _belgian_iban(number), zone[13:16].strip()
    if structure == "1":
        raise _Problem("account structure 1 (a foreign account without IBAN) is not supported")
    raise _Problem(f"account structure {structure!r} is not 0, 1, 2 or 3")


def _counterparty_account(zone: str) -> str | None:
    """The counterparty's IBAN from record 23 (a Belgian number becomes its IBAN)."""
    if zone[:12].isascii() and zone[:12].isdigit() and zone[12:13] == " ":
        return _belgian_iban(zone[:12])
    account = "".join(zone[:34].split()).upper()
    return account if _IBAN.fullmatch(account) else None


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    while lines and not lines[-1].strip("\r\x1a "):
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _decode(data: bytes) -> str:
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # cp1252 leaves five bytes undefined; latin-1 has them all
        return data.decode("latin-1")


class _Reader:
    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self.block: _Block | None = None
        self.current: _Movement | None = None
        self.stage = ""  # the last record type seen in the block

    def record(self, number: int, line: str) -> None:
        kind = line[0]
        if kind == "0":
            self.header(number, line)
            return
        block = self.block
        if block is None:
            raise _Problem("a statement must start with a header (record 0)")
        if kind == "1":
            if self.stage != "0":
                raise _Problem("the old balance (record 1) must follow the header (record 0)")
            self.old_balance(block, line)
        elif kind == "2":
            self.movement(number, block, line)
        elif kind == "3":
            if self.stage not in ("2", "3"):
                raise _Problem("an information record (3) must follow a movement (record 2)")
            if line[1] not in "123":
                raise _Problem(f"record 3{line[1]} is not 31, 32 or 33")
            block.counted += 1
        elif kind == "8":
            if self.stage not in ("1", "2", "3"):
                raise _Problem("the new balance (record 8) must follow the movements")
            self.new_balance(block, line)
        elif kind == "4":
            if self.stage not in ("8", "4"):
                raise _Problem("a free communication (record 4) must follow the new balance")
            block.free += 1
        elif kind == "9":
            self.trailer(block, line)
            return
        else:
            raise _Problem(f"record type {kind!r} is not one of 0, 1, 2, 3, 4, 8, 9")
        self.stage = kind

    def header(self, number: int, line: str) -> None:
        if self.block is not None:
            raise _Problem(
                f"a new header (record 0) before the trailer (record 9) of the statement "
                f"that starts at line {self.block.start}"
            )
        if line[127] != "2":
            raise _Problem(f"CODA version {line[127]!r} is not supported (version 2 is read)")
        self.block = _Block(start=number, created_on=_date(line[5:11], "creation date"))
        self.stage = "0"

    def old_balance(self, block: _Block, line: str) -> None:
        block.account_iban, currency = _account(line[1], line[5:42])
        try:
            currency_exponent(currency)
        except DomainError as exc:
            raise _Problem(f"account currency: {exc}") from None
        block.currency = currency
        sequence = line[125:128]
        if not sequence.strip("0 "):
            sequence = line[2:5]  # the paper statement's number when the coded one is zero
        block.sequence = sequence.strip("0 ") and sequence
        amount = _thousandths(line[43:58], "old balance")
        block.opening = _signed(line[42], "old balance") * _minor(amount, currency, "old balance")
        block.counted += 1

    def movement(self, number: int, block: _Block, line: str) -> None:
        if self.stage not in ("1", "2", "3"):
            raise _Problem("a movement (record 2) must come between records 1 and 8")
        article = line[1]
        raw_sequence, detail = line[2:6], line[6:10]
        block.counted += 1
        if article == "1":
            self.movement_21(number, block, line)
            return
        current = self.current
        if current is None or (current.raw_sequence, current.detail) != (raw_sequence, detail):
            raise _Problem(
                f"record 2{article} of movement {raw_sequence}/{detail} does not follow a "
                "record 21 of the same movement"
            )
        if article == "2":
            current.communication += line[10:63]
            reference = line[63:98].strip()
            if reference and reference.upper() not in _NOT_PROVIDED:
                current.end_to_end_id = reference
            current.r_transaction = line[112]
        elif article == "3":
            current.counterparty_iban = _counterparty_account(line[10:47])
            current.counterparty_name = line[47:82].strip() or None
            current.communication += line[82:125]
        else:
            raise _Problem(f"record 2{article} is not 21, 22 or 23")

    def movement_21(self, number: int, block: _Block, line: str) -> None:
        raw_sequence, detail = line[2:6], line[6:10]
        if not (raw_sequence.isdigit() and detail.isdigit()):
            raise _Problem(f"sequence {raw_sequence!r} and detail {detail!r} must be digits")
        if int(raw_sequence) < block.last_raw_sequence:
            block.wraps += 1  # past 9999 the bank's sequence starts again at 0000
        block.last_raw_sequence = int(raw_sequence)
        assert block.currency is not None  # record 1 came first
        sign = _signed(line[31], "movement")
        amount = _thousandths(line[32:47], "amount")
        minor = sign * _minor(amount, block.currency, "amount")
        amount *= sign
        value = line[47:53]
        structured = line[61] == "1"
        if line[61] not in "01":
            raise _Problem(f"communication type {line[61]!r} is neither 0 nor 1")
        movement = _Movement(
            line=number,
            sequence=block.wraps * 10_000 + int(raw_sequence),
            raw_sequence=raw_sequence,
            detail=detail,
            amount=amount,
            minor=minor,
            value_on=None if value == "000000" else _date(value, "value date"),
            code=line[53:61],
            structured_type=line[62:65] if structured else None,
            communication=line[65:115] if structured else line[62:115],
            booked_on=_date(line[115:121], "entry date"),
        )
        if detail == "0000":
            if amount < 0:
                block.debit -= amount
            else:
                block.credit += amount
        block.movements.append(movement)
        self.current = movement

    def new_balance(self, block: _Block, line: str) -> None:
        assert block.currency is not None  # record 1 came first
        amount = _thousandths(line[42:57], "new balance")
        block.closing = _signed(line[41], "new balance") * _minor(
            amount, block.currency, "new balance"
        )
        block.closing_on = _date(line[57:63], "new balance date")
        block.counted += 1

    def trailer(self, block: _Block, line: str) -> None:
        if self.stage not in ("8", "4"):
            raise _Problem("the trailer (record 9) must follow the new balance (record 8)")
        count = _thousandths(line[16:22], "number of records")
        debit = _thousandths(line[22:37], "debit total")
        credit = _thousandths(line[37:52], "credit total")
        if count != block.counted:
            with_free = (
                f" ({block.counted + block.free} with the free communication records 4, "
                "which the standard does not count)"
                if block.free
                else ""
            )
            raise _Problem(
                f"number of records {count} does not match the {block.counted} records "
                f"1, 2x, 3x and 8 of the statement{with_free}"
            )
        if debit != block.debit:
            raise _Problem(
                f"debit total {_format_thousandths(debit)} does not match the sum of the "
                f"debit movements, {_format_thousandths(block.debit)}"
            )
        if credit != block.credit:
            raise _Problem(
                f"credit total {_format_thousandths(credit)} does not match the sum of the "
                f"credit movements, {_format_thousandths(block.credit)}"
            )
        self.statements.append(self.statement(block))
        self.block = None
        self.current = None
        self.stage = ""

    def statement(self, block: _Block) -> Statement:
        assert block.currency is not None  # records 1 and 8 came first
        assert block.account_iban is not None
        assert block.closing_on is not None
        if block.sequence:
            statement_id = f"{block.closing_on.year}/{block.sequence}"
        else:
            statement_id = block.closing_on.isoformat()
        return Statement(
            format=FORMAT,
            account_iban=block.account_iban,
            statement_id=statement_id,
            created_on=block.created_on,
            currency=block.currency,
            opening_minor=block.opening,
            closing_minor=block.closing,
            lines=[
                self.line(movement, statement_id, block.currency)
                for movement in _booked(block.movements)
            ],
        )

    @staticmethod
    def line(movement: _Movement, statement_id: str, currency: str) -> StatementLine:
        structured: str | None = None
        text = " ".join(movement.communication.split())
        if movement.structured_type in ("101", "102"):
            token = text.split(" ", 1)[0] if text else ""
            if len(token) >= 12 and token[:12].isascii() and token[:12].isdigit():
                structured, text = token[:12], ""
            elif (reference := _rf_reference(token)) is not None:
                structured, text = reference, ""
        elif movement.structured_type is None and text[:2].upper() == "RF":
            reference = _rf_reference(text)
            if reference is not None:
                structured, text = reference, ""
        reversal = (
            movement.code[3:5] in _REVERSAL_TRANSACTIONS
            or movement.r_transaction in _R_TRANSACTION_TYPES
        )
        return StatementLine(
            ref=f"{statement_id}/{movement.sequence:04d}/{movement.detail}",
            booked_on=movement.booked_on,
            amount_minor=movement.minor,
            currency=currency,
            value_on=movement.value_on,
            reversal=reversal,
            structured=structured,
            text=text,
            counterparty_name=movement.counterparty_name,
            counterparty_iban=movement.counterparty_iban,
            end_to_end_id=movement.end_to_end_id,
            bank_code=movement.code,
        )


def _booked(movements: list[_Movement]) -> list[_Movement]:
    """The movements that are payments: details of a globalisation rather than its totals."""
    booked: list[_Movement] = []
    index = 0
    while index < len(movements):
        end = index + 1
        while end < len(movements) and movements[end].sequence == movements[index].sequence:
            end += 1
        group = movements[index:end]
        if len(group) == 1:
            booked.extend(group)
        else:
            for position, movement in enumerate(group):
                if position == 0:
                    continue  # the total of the globalisation
                following = group[position + 1] if position + 1 < len(group) else None
                details = _DETAIL_TYPES.get(movement.code[0], "")
                if following is not None and following.code[0] in details:
                    continue  # a subtotal whose details follow
                booked.append(movement)
        index = end
    return booked


def parse_coda(source: bytes | str | Path) -> list[Statement]:
    """Read every statement of a CODA 2 file: bytes, decoded text, or a path.

    Raises `StatementError` naming the line (1-based) and record; nothing is returned from
    a file that fails.
    """
    if isinstance(source, Path):
        source = source.read_bytes()
    text = _decode(source) if isinstance(source, bytes) else source
    lines = _lines(text)
    if not lines:
        raise StatementError("the CODA file is empty")
    reader = _Reader()
    for number, line in enumerate(lines, 1):
        record = line[:2] if line[:1] in ("2", "3") else line[:1]
        if len(line) != RECORD_LENGTH:
            raise StatementError(
                f"{len(line)} characters; every CODA record has {RECORD_LENGTH}",
                where=f"line {number} (record {record or 'empty'})",
            )
        try:
            reader.record(number, line)
        except _Problem as problem:
            raise StatementError(
                problem.message, where=f"line {number} (record {record})"
            ) from None
    if reader.block is not None:
        raise StatementError(
            f"the file ends before the trailer (record 9) of the statement that starts at "
            f"line {reader.block.start}: it is truncated",
            where=f"line {len(lines)}",
        )
    return reader.statements


# -- writing ---------------------------------------------------------------------------------

_STATEMENT_ID = re.compile(r"([0-9]{4})/([0-9]{3})")
_REF = re.compile(r"(?P<statement>.+)/(?P<sequence>[0-9]{4,})/(?P<detail>[0-9]{4})")
_CODE = re.compile(r"[0-9]{8}")
_OGM = re.compile(r"[0-9]{12}")
_CREDIT_CODE: Final = "00150000"  # type 0, family 01 transfers, 50 transfer in your favour
_DEBIT_CODE: Final = "00101000"  # type 0, family 01 transfers, 01 individual transfer order
_COMMUNICATION_MAX: Final = 53 + 53 + 43


class _WriteProblem(Exception):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _ddmmyy(day: dt.date) -> str:
    if not 2000 <= day.year <= 2099:
        raise _WriteProblem(f"{day} is outside 2000-2099, which DDMMYY dates cover", "date")
    return day.strftime("%d%m%y")


def _amount_field(minor: int, currency: str) -> tuple[str, str, int]:
    """(sign, 15 digits, thousandths) of a signed amount in minor units."""
    exponent = currency_exponent(currency)
    if exponent > 3:
        raise _WriteProblem(f"{currency} has more decimals than CODA's three", "currency")
    thousandths = abs(minor) * _POWERS[3 - exponent]
    if thousandths >= 10**15:
        raise _WriteProblem("amount exceeds the 15 digits of CODA", "amount_minor")
    return ("1" if minor < 0 else "0"), f"{thousandths:015d}", thousandths


def _text_field(value: str | None, width: int, what: str) -> str:
    value = value or ""
    if len(value) > width:
        raise _WriteProblem(f"at most {width} characters, got {len(value)}", what)
    try:
        value.encode("cp1252")
    except UnicodeEncodeError:
        raise _WriteProblem("has a character cp1252 cannot carry", what) from None
    if any(char in "\r\n" for char in value):
        raise _WriteProblem("has a line break", what)
    return value.ljust(width)


@dataclass(slots=True)
class _Written:
    records: list[str] = field(default_factory=list)
    counted: int = 0
    debit: int = 0
    credit: int = 0


class _CodaWriter:
    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self.out = _Written()
        match = _STATEMENT_ID.fullmatch(statement.statement_id)
        if match is None or int(match.group(1)) != statement.created_on.year:
            raise _WriteProblem(
                f"a CODA statement id reads '{statement.created_on.year}/NNN' (the year of "
                f"its date and the coded statement number), not {statement.statement_id!r}",
                "statement_id",
            )
        self.sequence = match.group(2)
        if self.sequence == "000":
            raise _WriteProblem("the coded statement number 000 means none", "statement_id")
        iban = statement.account_iban
        if not _IBAN.fullmatch(iban) or len(iban) > 34:
            raise _WriteProblem(f"{iban!r} is not an IBAN", "account_iban")
        self.account = (
            f"{iban.ljust(31)}   {statement.currency}"
            if iban.startswith("BE")
            else f"{iban.ljust(34)}{statement.currency}"
        )
        self.structure = "2" if iban.startswith("BE") else "3"

    def write(self) -> _Written:
        statement = self.statement
        if statement.opening_minor is None or statement.closing_minor is None:
            raise _WriteProblem("CODA needs both the old and the new balance", "opening_minor")
        day = _ddmmyy(statement.created_on)
        records = self.out.records
        records.append(
            f"0{'0' * 4}{day}{'0' * 3}05{' ' * 8}{' ' * 10}{' ' * 26}{' ' * 11}"
            f"{'0' * 11} {'0' * 5}{' ' * 32}{' ' * 7}2"
        )
        sign, amount, _ = _amount_field(statement.opening_minor, statement.currency)
        records.append(
            f"1{self.structure}{self.sequence}{self.account}{sign}{amount}{day}"
            f"{' ' * 26}{' ' * 35}{self.sequence}"
        )
        self.out.counted += 1
        self.movements()
        sign, amount, _ = _amount_field(statement.closing_minor, statement.currency)
        records.append(f"8{self.sequence}{self.account}{sign}{amount}{day}{' ' * 64}0")
        self.out.counted += 1
        return self.out

    def movements(self) -> None:
        """Group the lines by movement sequence: details get a globalisation total."""
        lines = self.statement.lines
        groups: list[tuple[int, list[tuple[int, StatementLine, str]]]] = []
        last_raw, wraps, previous = -1, 0, -1
        for position, line in enumerate(lines, 1):
            match = _REF.fullmatch(line.ref)
            if match is None or match.group("statement") != self.statement.statement_id:
                raise _WriteProblem(
                    f"reference {line.ref!r} is not '{self.statement.statement_id}/SSSS/DDDD' "
                    "(movement sequence and detail)",
                    f"line {position}: ref",
                )
            sequence, detail = int(match.group("sequence")), match.group("detail")
            if groups and sequence == groups[-1][0]:
                groups[-1][1].append((position, line, detail))
                continue
            raw = sequence % 10_000
            wraps += raw < last_raw
            if sequence <= previous or wraps * 10_000 + raw != sequence:
                raise _WriteProblem(
                    f"movement sequence {sequence} after {previous}: sequences must increase, "
                    "by less than 10000 at a time",
                    f"line {position}: ref",
                )
            last_raw, previous = raw, sequence
            groups.append((sequence, [(position, line, detail)]))
        for sequence, group in groups:
            details = [detail for _, _, detail in group]
            if details == ["0000"]:
                self.movement(sequence, "0000", group[0][1], group[0][0], globalised=False)
                continue
            if details != [f"{n:04d}" for n in range(1, len(group) + 1)]:
                raise _WriteProblem(
                    f"movement {sequence:04d} has details {', '.join(details)}: either one "
                    "line of detail 0000, or details 0001, 0002, ... under a total",
                    f"line {group[0][0]}: ref",
                )
            first = group[0][1]
            amount = sum(line.amount_minor for _, line, _ in group)
            family = (first.bank_code or _CREDIT_CODE)[1:3]
            total = StatementLine(
                ref=f"{self.statement.statement_id}/{sequence:04d}/0000",
                booked_on=first.booked_on,
                amount_minor=amount,
                currency=first.currency,
                value_on=first.value_on,
                # Type 2, a total globalised by the bank: a transfer out or in of the family.
                bank_code=f"2{family}{'01' if amount < 0 else '50'}000",
            )
            self.movement(sequence, "0000", total, group[0][0], globalised=True)
            for position, line, detail in group:
                self.movement(sequence, detail, line, position, globalised=True)

    def movement(
        self, sequence: int, detail: str, line: StatementLine, position: int, *, globalised: bool
    ) -> None:
        try:
            self._movement(sequence, detail, line, globalised=globalised)
        except _WriteProblem as problem:
            if not problem.field.startswith("line "):
                problem.field = f"line {position}: {problem.field}"
            raise

    def _movement(
        self, sequence: int, detail: str, line: StatementLine, *, globalised: bool
    ) -> None:
        statement = self.statement
        if line.currency != statement.currency:
            raise _WriteProblem(
                f"{line.currency} in a statement of {statement.currency}", "currency"
            )
        sign, amount, thousandths = _amount_field(line.amount_minor, line.currency)
        if detail == "0000":  # the trailer adds up the movements, not their details
            if sign == "1":
                self.out.debit += thousandths
            else:
                self.out.credit += thousandths
        code = line.bank_code or (_DEBIT_CODE if line.amount_minor < 0 else _CREDIT_CODE)
        if not _CODE.fullmatch(code):
            raise _WriteProblem(f"{code!r} is not an 8-digit CODA transaction code", "bank_code")
        if code[3:5] in _REVERSAL_TRANSACTIONS and not line.reversal:
            raise _WriteProblem(
                f"{code} is a cancellation or correction (storno): the line must be a reversal",
                "bank_code",
            )
        if line.structured is not None and line.text:
            raise _WriteProblem(
                "CODA carries a structured communication or free text, not both", "text"
            )
        if line.structured is not None and _OGM.fullmatch(line.structured):
            kind, communication = "1", f"101{line.structured}"
        elif line.structured is not None:
            if _rf_reference(line.structured) != line.structured:
                raise _WriteProblem(
                    "CODA carries a Belgian OGM (12 digits) or an RF reference", "structured"
                )
            kind, communication = "0", line.structured
        else:
            if line.text != " ".join(line.text.split()):
                raise _WriteProblem("has leading, trailing or repeated spaces", "text")
            kind, communication = "0", line.text
        if len(communication) > _COMMUNICATION_MAX:
            raise _WriteProblem(f"at most {_COMMUNICATION_MAX} characters of communication", "text")
        communication = _text_field(communication, _COMMUNICATION_MAX, "text")
        r_type = "4" if line.reversal and code[3:5] not in _REVERSAL_TRANSACTIONS else " "
        e2e = _text_field(line.end_to_end_id, 35, "end_to_end_id")
        name = _text_field(line.counterparty_name, 35, "counterparty_name")
        iban = line.counterparty_iban or ""
        if iban and (not _IBAN.fullmatch(iban) or len(iban) > 34):
            raise _WriteProblem(f"{iban!r} is not an IBAN", "counterparty_iban")
        need_23 = bool(iban or name.strip() or communication[106:].strip())
        need_22 = need_23 or bool(e2e.strip() or r_type.strip() or communication[53:].strip())
        raw = f"{sequence % 10_000:04d}"
        value = _ddmmyy(line.value_on) if line.value_on else "000000"
        records = self.out.records
        records.append(
            f"21{raw}{detail}{' ' * 21}{sign}{amount}{value}{code}{kind}{communication[:53]}"
            f"{_ddmmyy(line.booked_on)}{self.sequence}{int(globalised)}{int(need_22)} 0"
        )
        self.out.counted += 1
        if need_22:
            records.append(
                f"22{raw}{detail}{communication[53:106]}{e2e}{' ' * 11}   {r_type}"
                f"{' ' * 12}{int(need_23)} 0"
            )
            self.out.counted += 1
        if need_23:
            records.append(f"23{raw}{detail}{iban.ljust(37)}{name}{communication[106:]}0 0")
            self.out.counted += 1


def write_coda(statements: Sequence[Statement]) -> bytes:
    """A CODA 2 file (cp1252, CRLF) with one header-to-trailer block per statement.

    Each statement's id reads `{year of created_on}/{NNN}` and each line's reference
    `{statement id}/{movement sequence}/{detail}`, as `parse_coda` gives them, so that
    `parse_coda(write_coda(x)) == x`. Lines with details 0001, 0002, ... of one movement
    sequence are written under a globalisation total (type 2).
    """
    if not statements:
        raise StatementError("a CODA file needs at least one statement")
    blocks: list[str] = []
    for number, statement in enumerate(statements, 1):
        try:
            written = _CodaWriter(statement).write()
        except _WriteProblem as problem:
            where, _, field_name = problem.field.rpartition(": ")
            raise StatementError(
                problem.message,
                where=f"statement {number}" + (f", {where}" if where else ""),
                field=field_name,
            ) from None
        except DomainError as exc:
            raise StatementError(str(exc), where=f"statement {number}", field="currency") from None
        more = "1" if number < len(statements) else "2"
        written.records.append(
            f"9{' ' * 15}{written.counted:06d}{written.debit:015d}{written.credit:015d}"
            f"{' ' * 75}{more}"
        )
        blocks.extend(written.records)
    for record in blocks:
        assert len(record) == RECORD_LENGTH, (len(record), record)
    return ("\r\n".join(blocks) + "\r\n").encode("cp1252")
