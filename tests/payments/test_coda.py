"""CODA 2 statements: what is read from a real-looking file (structured and free
communication, globalisation, storno, R-transactions), how bad files are refused naming the
line and record, and the writer's round trip.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parcours.domain.structured_communication import structured_communication_digits
from parcours.payments.coda import parse_coda, write_coda
from parcours.payments.statements import Statement, StatementError, StatementLine

D = dt.date

# One statement of account BE68 5390 0754 7034: an OGM credit, a direct debit whose free
# communication runs on in record 22 (and whose counterparty has an old Belgian account
# number), a globalisation of two credits by the bank, a storno, an SDD return, information
# records 31/32 and a free communication record 4.
RECORDS = [
    "0000004032530005        0000061   PARCOURS RECOUVREMENT     KREDBEBB   00123456789 00000                                       2",
    "12061BE68539007547034                  EUR1000000000012500030325PARCOURS RECOUVREMENT SRL COMPTE A VUE                       061",
    "2100010000EBPB00417BSCTOBAOVERS0000000000125500030325001500001101123456789002                                      03032506101 0",
    "2200010000                                                     PEETERS-INV-0042                   GKCCBEBB                   1 0",
    "2300010000BE71096123456769                  EURJAN PEETERS                                                                   0 0",
    "2100020000EBPB00418BSDDDOMUCVDI1000000000045000040325005010000FACTURE 2025/0042 CLIENT 77001  PROXIMUS MOBILE ABONN03032506101 0",
    "2200020000EMENT MARS 2025                                      NOTPROVIDED                        BBRUBEBB                   1 0",
    "2300020000310180203454 EUR                     PROXIMUS SA                                                                   0 0",
    "2100030000EBPB00419BSCTOBAGLOBA0000000000300000030325201500000                                                     03032506110 0",
    "2100030001EBPB00419BSCTOBAGLOBA0000000000100000030325601500001101987654321009                                      03032506111 0",
    "2200030001                                                     CLAES-2025-03                      KREDBEBB                   1 0",
    "2300030001BE62510007547061                  EURSOFIE CLAES                                                                   0 0",
    "2100030002EBPB00419BSCTOBAGLOBA0000000000200000030325601500000RF18 5390 0754 7034                                  03032506111 1",
    "2200030002                                                                                        ABNANL2A                   1 1",
    "2300030002NL91ABNA0417164300                EURPIETER DE VRIES                                                               0 1",
    "3100030002EBPB00419BSCTOBAGLOBA601500001001PIETER DE VRIES                                                                   1 0",
    "3200030002KEIZERSGRACHT 1                    1015 AMSTERDAM                                                                  0 0",
    "2100040000EBPB00420BSCTOBASTORN1000000000080000030325001490000RETOUR FONDS / STORNO                                03032506101 0",
    "2200040000                                                     DUBOIS-0007                        GEBABEBB                   1 0",
    "2300040000BE62510007547061                  EURMARIE DUBOIS                                                                  0 0",
    "2100050000EBPB00421BSDDRETURN011000000000030000030325005030000RETOUR DOMICILIATION                                 03032506101 0",
    "2200050000                                                     SDD-2025-77                                      2AM04        0 0",
    "8061BE68539007547034                  EUR0000000000258000030325                                                                1",
    "4 00010000                      VOTRE EXTRAIT DE COMPTE NUMERIQUE                                                              0",
    "9               000022000000000155000000000000425500                                                                           2",
]
CODA = "\r\n".join(RECORDS) + "\r\n"


def _with(number: int, record: str) -> str:
    """The sample with line `number` (1-based) replaced."""
    records = list(RECORDS)
    records[number - 1] = record
    return "\n".join(records)


def _without(*numbers: int) -> str:
    return "\n".join(r for n, r in enumerate(RECORDS, 1) if n not in numbers)


def _error(data: str | bytes) -> StatementError:
    with pytest.raises(StatementError) as caught:
        parse_coda(data)
    return caught.value


def test_sample_records_are_128_characters() -> None:
    assert {len(record) for record in RECORDS} == {128}


# -- reading ---------------------------------------------------------------------------------


def test_statement_header_and_balances() -> None:
    (statement,) = parse_coda(CODA)
    assert statement.format == "coda"
    assert statement.account_iban == "BE68539007547034"
    assert statement.statement_id == "2025/061"  # year of the new balance, coded number
    assert statement.created_on == D(2025, 3, 4)
    assert statement.currency == "EUR"
    assert statement.opening_minor == -1250  # sign 1: debit
    assert statement.closing_minor == 25800
    assert statement.opening_minor + sum(line.amount_minor for line in statement.lines) == (
        statement.closing_minor
    )


def test_credit_with_structured_communication_101() -> None:
    line = parse_coda(CODA)[0].lines[0]
    assert line == StatementLine(
        ref="2025/061/0001/0000",
        booked_on=D(2025, 3, 3),
        amount_minor=12550,
        currency="EUR",
        value_on=D(2025, 3, 3),
        structured="123456789002",
        counterparty_name="JAN PEETERS",
        counterparty_iban="BE71096123456769",
        end_to_end_id="PEETERS-INV-0042",
        bank_code="00150000",
    )


def test_free_communication_continues_in_record_22() -> None:
    line = parse_coda(CODA)[0].lines[1]
    assert line.amount_minor == -4500
    assert line.value_on == D(2025, 3, 4)
    assert line.text == "FACTURE 2025/0042 CLIENT 77001 PROXIMUS MOBILE ABONNEMENT MARS 2025"
    assert line.structured is None
    assert line.end_to_end_id is None  # NOTPROVIDED
    assert line.counterparty_name == "PROXIMUS SA"
    assert line.counterparty_iban == "BE42310180203454"  # from account number 310-1802034-54
    assert line.reversal is False


def test_globalisation_yields_its_details_not_its_total() -> None:
    lines = parse_coda(CODA)[0].lines[2:4]
    assert [line.ref for line in lines] == ["2025/061/0003/0001", "2025/061/0003/0002"]
    assert [line.amount_minor for line in lines] == [10000, 20000]
    assert [line.structured for line in lines] == ["987654321009", "RF18539007547034"]
    assert [line.text for line in lines] == ["", ""]
    assert [line.counterparty_name for line in lines] == ["SOFIE CLAES", "PIETER DE VRIES"]
    assert [line.counterparty_iban for line in lines] == [
        "BE62510007547061",
        "NL91ABNA0417164300",
    ]
    assert [line.bank_code for line in lines] == ["60150000", "60150000"]


def test_storno_code_and_r_transaction_are_reversals() -> None:
    storno, sdd_return = parse_coda(CODA)[0].lines[4:6]
    assert (storno.reversal, storno.amount_minor, storno.bank_code) == (True, -8000, "00149000")
    assert storno.counterparty_name == "MARIE DUBOIS"
    assert storno.text == "RETOUR FONDS / STORNO"
    assert (sdd_return.reversal, sdd_return.amount_minor) == (True, -3000)
    assert sdd_return.end_to_end_id == "SDD-2025-77"
    assert len(parse_coda(CODA)[0].lines) == 6


def test_every_kind_of_source_and_line_ending_gives_the_same_statements(tmp_path: Path) -> None:
    path = tmp_path / "statement.cod"
    path.write_bytes(CODA.encode("cp1252"))
    expected = parse_coda(CODA)
    assert parse_coda(path) == expected
    assert parse_coda(CODA.encode("cp1252")) == expected
    assert parse_coda(CODA.replace("\r\n", "\n")) == expected
    assert parse_coda("\n".join(RECORDS)) == expected  # no final line break
    assert parse_coda(CODA + "\x1a") == expected  # an old DOS end-of-file mark


def test_cp1252_accents_and_euro_sign_are_decoded() -> None:
    record = RECORDS[4].replace("JAN PEETERS ", "FRÉDÉRIQUE €")
    data = _with(5, record).encode("cp1252")
    assert parse_coda(data)[0].lines[0].counterparty_name == "FRÉDÉRIQUE €"
    # A byte cp1252 leaves undefined falls back to latin-1 rather than failing.
    undefined = _with(5, RECORDS[4].replace("JAN ", "JA\x81 ")).encode("latin-1")
    assert parse_coda(undefined)[0].lines[0].counterparty_name == "JA\x81 PEETERS"


def test_belgian_account_number_structure_becomes_an_iban() -> None:
    old = RECORDS[1].replace("12061BE68539007547034   ", "10061539007547034 EUR   ")
    new = RECORDS[22].replace("8061BE68539007547034   ", "8061539007547034 EUR   ")
    assert len(old) == len(new) == 128
    records = list(RECORDS)
    records[1], records[22] = old, new
    (statement,) = parse_coda("\n".join(records))
    assert statement.account_iban == "BE68539007547034"
    assert statement.currency == "EUR"


def test_paper_sequence_stands_in_when_the_coded_sequence_is_zero() -> None:
    record = RECORDS[1][:125] + "000"
    assert parse_coda(_with(2, record))[0].statement_id == "2025/061"
    no_sequence = record[:2] + "000" + record[5:]
    assert parse_coda(_with(2, no_sequence))[0].statement_id == "2025-03-03"


def test_two_statements_in_one_file() -> None:
    second = list(RECORDS)
    second[1] = RECORDS[1][:2] + "062" + RECORDS[1][5:125] + "062"  # paper and coded numbers
    second[22] = "8062" + RECORDS[22][4:]
    first, other = parse_coda("\n".join(RECORDS + second))
    assert (first.statement_id, other.statement_id) == ("2025/061", "2025/062")
    assert other.lines[0].ref == "2025/062/0001/0000"


# -- refusing --------------------------------------------------------------------------------


def test_a_line_of_the_wrong_length_is_named() -> None:
    error = _error(_with(6, RECORDS[5][:-1]))
    assert str(error) == "line 6 (record 21): 127 characters; every CODA record has 128"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "000022",
            "000021",
            "line 25 (record 9): number of records 21 does not match the 22 records 1, 2x, 3x "
            "and 8 of the statement (23 with the free communication records 4, which the "
            "standard does not count)",
        ),
        (
            "000000000155000",
            "000000000155100",
            "line 25 (record 9): debit total 155.100 does not match the sum of the debit "
            "movements, 155.000",
        ),
        (
            "000000000425500",
            "000000000425000",
            "line 25 (record 9): credit total 425.000 does not match the sum of the credit "
            "movements, 425.500",
        ),
    ],
)
def test_a_wrong_trailer_is_refused(old: str, new: str, message: str) -> None:
    assert RECORDS[24].count(old) == 1
    assert str(_error(_with(25, RECORDS[24].replace(old, new)))) == message


def test_a_missing_record_is_caught_by_the_trailer() -> None:
    assert "number of records" in str(_error(_without(7)))  # a record 22
    # A detail of a globalisation: its total, not the detail, enters the sums.
    assert "number of records 22 does not match the 19 records" in str(_error(_without(10, 11, 12)))


def test_a_non_zero_third_decimal_is_refused_for_euro() -> None:
    record = RECORDS[2].replace("0000000000125500", "0000000000125505")
    error = _error(_with(3, record))
    assert str(error) == (
        "line 3 (record 21): amount 125.505 has a non-zero third decimal but EUR has 2"
    )
    balance = RECORDS[1].replace("1000000000012500", "1000000000012501")
    assert "line 2 (record 1): old balance 12.501" in str(_error(_with(2, balance)))


def test_a_truncated_file_is_refused() -> None:
    error = _error(_without(24, 25))
    assert "ends before the trailer (record 9) of the statement that starts at line 1" in str(error)
    cut = CODA[: CODA.index(RECORDS[20]) + 50]
    assert "line 21 (record 21): 50 characters" in str(_error(cut))


@pytest.mark.parametrize(
    ("number", "record", "message"),
    [
        (1, RECORDS[0][:-1] + "1", "line 1 (record 0): CODA version '1' is not supported"),
        (
            3,
            RECORDS[2].replace("03032506101 0", "31022506101 0"),
            "line 3 (record 21): entry date '310225' is not a date (DDMMYY)",
        ),
        (
            3,
            RECORDS[2].replace("BSCTOBAOVERS0", "BSCTOBAOVERS2"),
            "line 3 (record 21): movement sign '2' is neither 0 (credit) nor 1 (debit)",
        ),
        (
            3,
            RECORDS[2].replace("0000000000125500", "00000000001255X0"),
            "line 3 (record 21): amount '0000000001255X0' is not 15 digits",
        ),
        (4, "7" + RECORDS[3][1:], "line 4 (record 7): record type '7' is not one of"),
        (
            4,
            RECORDS[3].replace("2200010000", "2200020000"),
            "line 4 (record 22): record 22 of movement 0002/0000 does not follow a record 21",
        ),
        (
            2,
            RECORDS[1].replace("12061", "11061"),
            "line 2 (record 1): account structure 1 (a foreign account without IBAN)",
        ),
        (
            2,
            RECORDS[1].replace("   EUR1", "   XYZ1"),
            "line 2 (record 1): account currency: 'XYZ' is not an ISO 4217 currency",
        ),
    ],
)
def test_bad_records_are_named(number: int, record: str, message: str) -> None:
    assert len(record) == 128
    assert record != RECORDS[number - 1]
    assert str(_error(_with(number, record))).startswith(message)


def test_records_out_of_order_are_refused() -> None:
    assert "must start with a header" in str(_error("\n".join(RECORDS[1:])))
    assert "must come between records 1 and 8" in str(_error(_without(2)))
    assert "must follow the new balance" in str(_error(_without(23)))
    twice = "\n".join(RECORDS[:3] + RECORDS)
    assert "line 4 (record 0): a new header" in str(_error(twice))


def test_an_empty_file_is_refused() -> None:
    assert "empty" in str(_error(b""))
    assert "empty" in str(_error("\r\n"))


# -- writing ---------------------------------------------------------------------------------


def _rf(body: str) -> str:
    digits = "".join(str(int(char, 36)) for char in body + "RF00")
    return f"RF{98 - int(digits) % 97:02d}{body}"


def _is_rf(text: str) -> bool:
    compact = "".join(text.split()).upper()
    if not (compact.startswith("RF") and compact[2:4].isdigit() and compact.isalnum()):
        return False
    digits = "".join(str(int(char, 36)) for char in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def _belgian_iban(bban: int) -> str:
    digits = f"{bban:012d}"
    return f"BE{98 - int(digits + '111400') % 97:02d}{digits}"


# Printable cp1252 characters that are not spaces (no-break space counts as one).
_CP1252 = "".join(
    char
    for char in bytes(range(0x21, 0x100)).decode("cp1252", errors="ignore")
    if char.isprintable() and not char.isspace()
)
words = st.text(alphabet=_CP1252, min_size=1, max_size=20)
ibans = st.one_of(
    st.integers(0, 10**12 - 1).map(_belgian_iban),
    st.sampled_from(
        ["NL91ABNA0417164300", "FR1420041010050500013M02606", "DE89370400440532013000"]
    ),
)
days = st.dates(min_value=D(2000, 1, 1), max_value=D(2099, 12, 31))
amounts = st.integers(-(10**11), 10**11)
remittances = st.one_of(
    st.tuples(st.integers(0, 10**10 - 1).map(structured_communication_digits), st.just("")),
    st.tuples(st.from_regex(r"[A-Z0-9]{1,21}", fullmatch=True).map(_rf), st.just("")),
    st.tuples(
        st.none(),
        st.lists(words, max_size=10)
        .map(" ".join)
        .filter(lambda text: len(text) <= 149 and not _is_rf(text)),
    ),
)
names = st.lists(words, min_size=1, max_size=4).map(" ".join).filter(lambda name: len(name) <= 35)


@st.composite
def bank_codes(draw: st.DrawFn, reversal: bool) -> str:
    transaction = draw(st.integers(0, 99).filter(lambda n: reversal or n not in (49, 99)))
    return f"0{draw(st.integers(0, 99)):02d}{transaction:02d}{draw(st.integers(0, 999)):03d}"


@st.composite
def statements(draw: st.DrawFn) -> Statement:
    currency = draw(st.sampled_from(["EUR", "EUR", "USD", "JPY"]))
    created_on = draw(days)
    statement_id = f"{created_on.year}/{draw(st.integers(1, 999)):03d}"
    lines: list[StatementLine] = []
    sequence = 0
    for _ in range(draw(st.integers(0, 6))):
        sequence += draw(st.integers(1, 3))
        details = draw(st.sampled_from([0, 0, 1, 2, 3]))
        for detail in range(1, details + 1) if details else [0]:
            structured, text = draw(remittances)
            reversal = draw(st.booleans())
            lines.append(
                StatementLine(
                    ref=f"{statement_id}/{sequence:04d}/{detail:04d}",
                    booked_on=draw(days),
                    amount_minor=draw(amounts),
                    currency=currency,
                    value_on=draw(st.none() | days),
                    reversal=reversal,
                    structured=structured,
                    text=text,
                    counterparty_name=draw(st.none() | names),
                    counterparty_iban=draw(st.none() | ibans),
                    end_to_end_id=draw(
                        st.none()
                        | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9/\-]{0,34}", fullmatch=True).filter(
                            lambda ref: ref.upper() != "NOTPROVIDED"
                        )
                    ),
                    bank_code=draw(bank_codes(reversal)),
                )
            )
    return Statement(
        format="coda",
        account_iban=draw(ibans),
        statement_id=statement_id,
        created_on=created_on,
        currency=currency,
        opening_minor=draw(amounts),
        closing_minor=draw(amounts),
        lines=lines,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(statements(), min_size=1, max_size=3))
def test_parse_of_write_gives_back_the_statements(written: list[Statement]) -> None:
    assert parse_coda(write_coda(written)) == written


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statements(), st.data())
def test_removing_any_record_of_a_written_file_is_refused(
    statement: Statement, data: st.DataObject
) -> None:
    records = write_coda([statement]).decode("cp1252").splitlines()
    missing = data.draw(st.integers(0, len(records) - 1))
    with pytest.raises(StatementError):
        parse_coda("\n".join(records[:missing] + records[missing + 1 :]))


def _statement(*lines: StatementLine) -> Statement:
    return Statement(
        format="coda",
        account_iban="BE68539007547034",
        statement_id="2025/061",
        created_on=D(2025, 3, 3),
        currency="EUR",
        opening_minor=0,
        closing_minor=sum(line.amount_minor for line in lines),
        lines=list(lines),
    )


def _line(sequence: int, detail: int = 0, **changes: object) -> StatementLine:
    line = StatementLine(
        ref=f"2025/061/{sequence:04d}/{detail:04d}",
        booked_on=D(2025, 3, 3),
        amount_minor=1000,
        currency="EUR",
        bank_code="00150000",
    )
    return dataclasses.replace(line, **changes)  # type: ignore[arg-type]


def test_written_file_has_records_of_128_characters_and_a_correct_trailer() -> None:
    statement = _statement(_line(1, amount_minor=-250), _line(2, 1), _line(2, 2, amount_minor=7))
    records = write_coda([statement]).decode("cp1252").split("\r\n")
    assert records[-1] == ""
    assert {len(record) for record in records[:-1]} == {128}
    # The globalisation total counts in the trailer, its details do not.
    assert records[-2][16:52] == "000006" + "000000000002500" + "000000000010070"


def test_movement_sequences_past_9999_wrap_as_banks_number_them() -> None:
    lines = [_line(sequence) for sequence in (9998, 9999, 10000, 10001)]
    data = write_coda([_statement(*lines)])
    assert [record[2:6] for record in data.decode().splitlines() if record[:2] == "21"] == [
        "9998",
        "9999",
        "0000",
        "0001",
    ]
    assert parse_coda(data)[0].lines == lines


def test_a_line_without_bank_code_is_written_as_a_transfer() -> None:
    lines = [_line(1, bank_code=None), _line(2, amount_minor=-5, bank_code=None)]
    read = parse_coda(write_coda([_statement(*lines)]))[0].lines
    assert [line.bank_code for line in read] == ["00150000", "00101000"]


@pytest.mark.parametrize(
    ("statement", "where", "field", "message"),
    [
        (
            _statement(_line(1, structured="123456789002", text="and text")),
            "statement 1, line 1",
            "text",
            "not both",
        ),
        (
            _statement(_line(1, structured="INV-42")),
            "statement 1, line 1",
            "structured",
            "OGM",
        ),
        (
            _statement(_line(1, structured="12345678900A")),
            "statement 1, line 1",
            "structured",
            "OGM",
        ),
        (_statement(_line(1, text="x" * 150)), "statement 1, line 1", "text", "149"),
        (_statement(_line(1, bank_code="00149000")), "statement 1, line 1", "bank_code", "storno"),
        (_statement(_line(2), _line(1)), "statement 1, line 2", "ref", "must increase"),
        (_statement(_line(1, 2)), "statement 1, line 1", "ref", "details"),
        (
            dataclasses.replace(_statement(), statement_id="2024/061"),
            "statement 1",
            "statement_id",
            "2025/NNN",
        ),
        (
            dataclasses.replace(_statement(), closing_minor=None),
            "statement 1",
            "opening_minor",
            "both",
        ),
    ],
)
def test_writer_refuses_what_coda_cannot_carry(
    statement: Statement, where: str, field: str, message: str
) -> None:
    with pytest.raises(StatementError) as caught:
        write_coda([statement])
    assert (caught.value.where, caught.value.field) == (where, field)
    assert message in str(caught.value)
