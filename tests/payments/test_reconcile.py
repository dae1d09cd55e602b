"""Reconciliation's pure core: OGMs and references found in free text, names normalised,
candidates scored and chosen (or left to a person), payments spread over invoices."""

from __future__ import annotations

import datetime as dt
import random
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parcours.domain import StructuredCommunication
from parcours.domain.names import name_key, normalise_name
from parcours.domain.structured_communication import structured_communication_digits
from parcours.payments.reconcile import (
    ACCEPT,
    MARGIN,
    Candidate,
    allocate,
    choose,
    classify_line,
    line_ogms,
    ogms_in_text,
    refs_in_text,
    score,
)
from parcours.payments.statements import StatementLine

DAY = dt.date(2026, 3, 1)
OGM = "123456789002"  # DOMAIN.md's example, base 1234567890
bases = st.integers(min_value=0, max_value=10**10 - 1)


def make_line(
    *,
    amount_minor: int = 12_500,
    text: str = "",
    structured: str | None = None,
    name: str | None = None,
    iban: str | None = None,
    currency: str = "EUR",
    reversal: bool = False,
    end_to_end_id: str | None = None,
) -> StatementLine:
    return StatementLine(
        ref="L1",
        booked_on=DAY,
        amount_minor=amount_minor,
        currency=currency,
        reversal=reversal,
        structured=structured,
        text=text,
        counterparty_name=name,
        counterparty_iban=iban,
        end_to_end_id=end_to_end_id,
    )


def make_candidate(
    case_id: object = 1,
    *,
    amounts: tuple[int, ...] = (12_500,),
    name: str = "Jan Peeters",
    iban: str | None = None,
    refs: frozenset[str] = frozenset(),
    ogms: frozenset[str] = frozenset(),
) -> Candidate:
    invoices = tuple(
        (f"F{case_id}-{n}", amount, DAY + dt.timedelta(days=30 * n))
        for n, amount in enumerate(amounts)
    )
    return Candidate(case_id, invoices, name, iban=iban, refs=refs, ogms=ogms)


def printed(digits: str) -> str:
    return f"{digits[:3]}/{digits[3:7]}/{digits[7:]}"


def belgian_iban(base: int) -> str:
    """A valid Belgian IBAN: its twelve-digit account number has an OGM's very check."""
    bban = structured_communication_digits(base)
    check = 98 - int(bban + "111400") % 97  # B = 11, E = 14
    assert int(bban + f"1114{check:02d}") % 97 == 1
    return f"BE{check:02d}{bban}"


def grouped(digits: str, size: int, separator: str) -> str:
    return separator.join(digits[i : i + size] for i in range(0, len(digits), size))


# ---------------------------------------------------------------------------------------
# Structured communications in free text
# ---------------------------------------------------------------------------------------

DEBTOR_FORMS = [
    lambda d: f"+++{printed(d)}+++",
    lambda d: f"***{printed(d)}***",
    printed,
    lambda d: d,
    lambda d: f"{d[:3]} {d[3:7]} {d[7:]}",
    lambda d: f"{d[:3]}.{d[3:7]}.{d[7:]}",
    lambda d: f"{d[:3]}-{d[3:7]}-{d[7:]}",
    lambda d: f"{d[:3]} / {d[3:7]} / {d[7:]}",
    lambda d: grouped(d, 4, " "),
    lambda d: grouped(d, 4, "."),
    lambda d: grouped(d, 4, "-"),
    lambda d: grouped(d, 6, " "),
]


@pytest.mark.parametrize("form", range(len(DEBTOR_FORMS)))
def test_every_form_debtors_type_is_found(form: int) -> None:
    text = f"Betaling factuur {DEBTOR_FORMS[form](OGM)} dank u"
    assert ogms_in_text(text) == [OGM]


@pytest.mark.parametrize(
    "text",
    [
        "2024 123/4567/89002 2025",
        "facture F2024 123/4567/89002",
        "123 4567 89002 2 pers.",
        "ref 123456789002 2025-03",
        "12.50 123456789002",
    ],
)
def test_printed_or_bare_ogm_is_found_next_to_other_numbers(text: str) -> None:
    assert ogms_in_text(text) == [OGM]


@pytest.mark.parametrize(
    "text",
    [
        "+++123/4567/89003+++",  # wrong check digits
        "+++123/4567/8900+++",  # eleven digits
        "1234567890020",  # thirteen
        "OGM123456789002",  # glued to a word: an identifier, not a typed communication
        "123456789002X",
        "AB1234 5678 9002",  # the tail of some account or identifier
    ],
)
def test_no_ogm_without_twelve_valid_free_standing_digits(text: str) -> None:
    assert ogms_in_text(text) == []


def test_ogms_come_in_order_of_appearance_each_once() -> None:
    other = structured_communication_digits(42)
    text = f"{printed(other)}, +++{printed(OGM)}+++, {other}; {grouped(OGM, 4, ' ')}"
    assert ogms_in_text(text) == [other, OGM]


def _naive(text: str) -> set[str]:
    """Every valid twelve-digit window of the text's digits: what the boundaries prevent."""
    digits = re.sub(r"[^0-9]", "", text)
    windows = {digits[i : i + 12] for i in range(len(digits) - 11)}
    return {w for w in windows if (int(w[:10]) % 97 or 97) == int(w[10:])}


def test_never_inside_a_card_number() -> None:
    """Card numbers built to hold a valid OGM in their first or last twelve digits."""
    rng = random.Random(7)
    for _ in range(2_000):
        ogm = structured_communication_digits(rng.randrange(10**10))
        pad = f"{rng.randrange(10**4):04d}"
        for card in (ogm + pad, pad + ogm):
            for text in (card, grouped(card, 4, " "), grouped(card, 4, "-"), grouped(card, 4, ".")):
                assert ogm in _naive(f"card {text}")  # the trap is there
                assert ogms_in_text(f"card {text} exp 03/27") == []


def test_never_a_belgian_iban_or_account_number() -> None:
    """A Belgian account number has the OGM's check: its IBAN and old 3-7-2 layout must
    not pass for a structured communication."""
    rng = random.Random(11)
    for _ in range(2_000):
        iban = belgian_iban(rng.randrange(10**10))
        bban = iban[4:]
        texts = [
            iban,
            grouped(iban, 4, " "),
            f"{iban[:2]} {iban[2:4]} {grouped(bban, 4, ' ')}",
            f"{bban[:3]}-{bban[3:10]}-{bban[10:]}",
            f"{bban[:3]} {bban[3:10]} {bban[10:]}",
        ]
        for text in texts:
            assert bban in _naive(text)
            assert ogms_in_text(f"van rekening {text} betaald") == [], text


def test_never_across_the_end_of_one_number_and_the_start_of_another() -> None:
    rng = random.Random(5)
    for _ in range(2_000):
        ogm = structured_communication_digits(rng.randrange(10**10))
        cut = rng.randrange(1, 12)
        head = f"{rng.randrange(10**8):08d}{ogm[:cut]}"
        tail = f"{ogm[cut:]}{rng.randrange(10**8):08d}"
        for separator in (" ", "/", "-", "."):
            text = f"{head}{separator}{tail}"
            assert ogm in _naive(text)
            assert ogm not in ogms_in_text(text)


fillers = st.text(max_size=25)
boundaries = st.sampled_from([", ", ": ", " (", ") ", "+++", "***", "; ", " # ", "\n> "])


@given(bases, st.sampled_from(DEBTOR_FORMS), fillers, boundaries, boundaries, fillers)
def test_any_valid_ogm_embedded_in_text_is_found(
    base: int, form: Any, before: str, left: str, right: str, after: str
) -> None:
    ogm = structured_communication_digits(base)
    assert ogm in ogms_in_text(f"{before}{left}{form(ogm)}{right}{after}")


neighbours = st.lists(st.integers(0, 10**8).map(str), max_size=3)


@given(bases, st.booleans(), neighbours, neighbours)
def test_printed_or_bare_ogm_is_found_among_numbers(
    base: int, bare: bool, before: list[str], after: list[str]
) -> None:
    ogm = structured_communication_digits(base)
    text = " ".join([*before, ogm if bare else printed(ogm), *after])
    assert ogm in ogms_in_text(f"paid: {text}.")


@given(st.text(alphabet="0123456789 ./-+*BEabc\n", max_size=80))
def test_every_reported_ogm_is_mod97_valid_and_typed_in_the_text(text: str) -> None:
    digits_typed = re.sub(r"[^0-9]", "", text)
    found = ogms_in_text(text)
    assert len(found) == len(set(found))
    for ogm in found:
        assert len(ogm) == 12 and ogm.isdigit() and ogm.isascii()
        assert StructuredCommunication(ogm).digits == ogm  # raises unless mod-97 valid
        assert ogm in digits_typed


def test_random_numbers_rarely_pass_for_an_ogm() -> None:
    """Free texts of random numbers and separators: only the 1-in-97 twelve-digit numbers
    that happen to pass the check are reported, and nothing else."""
    rng = random.Random(3)
    reported = 0
    for _ in range(20_000):
        numbers = [str(rng.randrange(10 ** rng.randint(1, 16))) for _ in range(rng.randint(1, 5))]
        text = "".join(n + rng.choice([" ", "/", "-", ".", ", ", " x "]) for n in numbers)
        for ogm in ogms_in_text(text):
            StructuredCommunication(ogm)  # raises unless mod-97 valid
            reported += 1
    assert reported < 20_000 * 0.01


def test_line_ogms_puts_the_structured_field_first_and_skips_an_invalid_one() -> None:
    other = structured_communication_digits(42)
    line = make_line(structured=OGM, text=f"{printed(other)} {printed(OGM)}")
    assert line_ogms(line) == [OGM, other]
    mistyped = make_line(structured="123456789003", text=printed(other))
    assert line_ogms(mistyped) == [other]
    assert line_ogms(make_line(structured="RF18539007547034")) == []


# ---------------------------------------------------------------------------------------
# References in free text
# ---------------------------------------------------------------------------------------


def test_refs_are_alphanumeric_tokens_with_a_digit_upper_cased_each_once() -> None:
    text = "Facture f2024-0012, dossier abc-12; 12/34 --A1B2-- merci F2024-0012 2025 " + "Z9" * 21
    assert refs_in_text(text) == ["F2024-0012", "ABC-12", "A1B2", "2025"]


@pytest.mark.parametrize("text", ["", "merci beaucoup", "12/34 a-1 xy9", "café-crème"])
def test_no_refs_in_words_or_short_tokens(text: str) -> None:
    assert refs_in_text(text) == []


_TOKEN = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*")


@given(st.text(max_size=80))
def test_every_ref_is_a_whole_token_of_the_text(text: str) -> None:
    upper = text.upper()
    found = refs_in_text(text)
    assert len(found) == len(set(found))
    for ref in found:
        assert _TOKEN.fullmatch(ref) and 4 <= len(ref) <= 40
        assert any(c.isdigit() for c in ref)
        whole = rf"(?<![A-Z0-9])(?<![A-Z0-9]-){re.escape(ref)}(?![A-Z0-9]|-[A-Z0-9])"
        assert re.search(whole, upper)


@given(st.from_regex(r"[A-Z]{1,4}[0-9]{1,8}(-[0-9]{1,6})?", fullmatch=True), fillers)
def test_a_reference_among_words_is_found(ref: str, words: str) -> None:
    words = re.sub(r"[A-Za-z0-9-]", " ", words)
    if len(ref) >= 4:
        assert ref in refs_in_text(f"{words} facture {ref.lower()}, merci {words}")


# ---------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "normalised"),
    [
        ("M. Jean-Pierre Dupont", "jean pierre dupont"),
        ("Dhr. en Mevr. PEETERS", "peeters"),
        ("Mme Zoë Ça-Vâ", "zoe ca va"),
        ("ACME S.A.", "acme"),
        ("Bvba De Smet", "de smet"),
        ("O'Brien Ltd.", "obrien"),
        ("N.V Verhaegen", "verhaegen"),
        ("J.P. Dupont", "jp dupont"),
        ("  Straße   &  Söhne GmbH ", "strasse sohne"),
    ],
)
def test_normalise_name_drops_titles_forms_accents_and_punctuation(
    name: str, normalised: str
) -> None:
    assert normalise_name(name) == normalised


def test_name_key_is_the_same_whatever_the_word_order() -> None:
    assert name_key("Peeters Jan") == name_key("MR JAN PEETERS") == "jan peeters"


@given(st.lists(st.text(alphabet="abcdeéèçëABCXYZ'.-", min_size=1, max_size=8), max_size=5))
def test_name_key_ignores_word_order_and_normalising_twice_changes_nothing(
    words: list[str],
) -> None:
    name = " ".join(words)
    assert name_key(" ".join(reversed(words))) == name_key(name)
    assert normalise_name(normalise_name(name)) == normalise_name(name)


# ---------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------

IBAN = "BE71096123456769"


def test_iban_and_exact_balance_are_accepted() -> None:
    value, reasons = score(make_line(iban="BE71 0961 2345 6769"), make_candidate(iban=IBAN))
    assert value >= ACCEPT
    assert reasons == ("IBAN known for this debtor", "amount equals the case balance")


def test_iban_and_one_invoices_amount_are_accepted_and_name_the_invoice() -> None:
    candidate = make_candidate(7, amounts=(4_000, 12_500), iban=IBAN)
    value, reasons = score(make_line(iban=IBAN), candidate)
    assert value >= ACCEPT
    assert "amount equals invoice F7-1" in reasons


def test_a_reference_in_the_text_is_enough() -> None:
    line = make_line(amount_minor=999, text="paiement facture f2026-0042")
    value, reasons = score(line, make_candidate(refs=frozenset({"F2026-0042"})))
    assert value >= ACCEPT
    assert reasons == ("reference F2026-0042 in the text", "amount is part of the case balance")


def test_a_reference_in_the_payers_end_to_end_id_counts() -> None:
    line = make_line(amount_minor=999, end_to_end_id="F2026-0042")
    assert score(line, make_candidate(refs=frozenset({"f2026-0042"})))[0] >= ACCEPT


def test_same_name_with_another_amount_is_weak() -> None:
    candidate = make_candidate(name="Jan Peeters")
    for amount in (5_000, 20_000):
        value, reasons = score(make_line(amount_minor=amount, name="PEETERS JAN"), candidate)
        assert value < ACCEPT
        assert "name 100% similar" in reasons


@pytest.mark.parametrize(
    "line",
    [
        make_line(),  # the amount alone
        make_line(amount_minor=20_000, iban=IBAN),  # the IBAN alone
        make_line(name="Marie Dubois"),  # the amount and another name
    ],
)
def test_one_piece_of_evidence_is_not_enough(line: StatementLine) -> None:
    assert score(line, make_candidate(iban=IBAN))[0] < ACCEPT


def test_same_name_and_exact_balance_are_accepted() -> None:
    value, reasons = score(make_line(name="MR PEETERS JAN"), make_candidate(name="Jan Peeters"))
    assert value >= ACCEPT
    assert reasons == ("amount equals the case balance", "name 100% similar")


def test_a_surname_alone_says_less_than_the_full_name() -> None:
    candidate = make_candidate(name="Jan Peeters")
    full = score(make_line(amount_minor=1, name="Jan Peeters"), candidate)[0]
    surname = score(make_line(amount_minor=1, name="Peeters"), candidate)[0]
    assert 0 < surname < full


def test_the_structured_communication_scores_one() -> None:
    line = make_line(amount_minor=1, text=f"+++{printed(OGM)}+++")
    value, reasons = score(line, make_candidate(ogms=frozenset({OGM})))
    assert value == 1.0
    assert reasons[0] == f"structured communication +++{printed(OGM)}+++"


lines = st.builds(
    make_line,
    amount_minor=st.sampled_from([-100, 0, 4_000, 12_500, 16_500, 20_000]),
    text=st.sampled_from(["", "f2026-0042", f"+++{printed(OGM)}+++", "merci"]),
    name=st.sampled_from([None, "Jan Peeters", "PEETERS", "Marie Dubois", "J. Peters"]),
    iban=st.sampled_from([None, IBAN, "BE68539007547034"]),
)
candidates = st.builds(
    make_candidate,
    st.integers(0, 5),
    amounts=st.lists(st.sampled_from([4_000, 12_500]), min_size=1, max_size=3).map(tuple),
    name=st.sampled_from(["Jan Peeters", "Marie Dubois", "Peeters-Janssens"]),
    iban=st.sampled_from([None, IBAN]),
    refs=st.sampled_from([frozenset(), frozenset({"F2026-0042"})]),
    ogms=st.sampled_from([frozenset(), frozenset({OGM})]),
)


@given(lines, candidates)
def test_scores_stay_in_0_1_and_knowing_the_iban_never_lowers_them(
    line: StatementLine, candidate: Candidate
) -> None:
    value, reasons = score(line, candidate)
    assert 0.0 <= value <= 1.0
    assert (value == 0.0) == (not reasons)
    with_iban = Candidate(
        candidate.case_id, candidate.invoices, candidate.debtor_name, IBAN,
        candidate.refs, candidate.ogms,
    )  # fmt: skip
    assert score(line, with_iban)[0] >= value


# ---------------------------------------------------------------------------------------
# Choosing
# ---------------------------------------------------------------------------------------


def test_choose_takes_a_strong_best_clearly_ahead() -> None:
    line = make_line(iban=IBAN, name="Jan Peeters")
    ours = make_candidate(1, iban=IBAN)
    other = make_candidate(2, amounts=(3_000,), name="Marie Dubois")
    match = choose(line, [other, ours])
    assert match is not None
    assert match.candidate is ours
    assert match.score >= ACCEPT
    assert "IBAN known for this debtor" in match.reasons


def test_two_look_alike_cases_are_left_to_a_person() -> None:
    line = make_line(name="Jan Peeters")
    assert choose(line, [make_candidate(1)]) is not None
    assert choose(line, [make_candidate(1), make_candidate(2)]) is None


def test_a_runner_up_within_the_margin_makes_it_ambiguous() -> None:
    line = make_line(iban=IBAN, name="Jan Peeters")
    best = make_candidate(1, iban=IBAN)  # IBAN + balance + name
    close = make_candidate(2, amounts=(20_000,), iban=IBAN)  # IBAN + partial + name
    best_score, close_score = score(line, best)[0], score(line, close)[0]
    assert best_score >= ACCEPT and best_score - close_score < MARGIN
    assert choose(line, [best, close]) is None
    far = make_candidate(3, amounts=(20_000,), name="Marie Dubois")
    assert best_score - score(line, far)[0] >= MARGIN
    assert choose(line, [best, far]) is not None


def test_a_weak_best_is_left_to_a_person() -> None:
    assert choose(make_line(amount_minor=1, name="Jan Peeters"), [make_candidate(1)]) is None


def test_the_structured_communication_wins_over_any_score() -> None:
    line = make_line(amount_minor=1, text=f"{printed(OGM)} f2026-0042", iban=IBAN)
    by_ogm = make_candidate(1, name="X", ogms=frozenset({OGM}))
    by_score = make_candidate(2, iban=IBAN, refs=frozenset({"F2026-0042"}))
    match = choose(line, [by_score, by_ogm])
    assert match is not None and match.candidate is by_ogm and match.score == 1.0


def test_structured_communications_of_two_cases_are_left_to_a_person() -> None:
    other = structured_communication_digits(42)
    line = make_line(text=f"{printed(OGM)} + {printed(other)}")
    both = [make_candidate(1, ogms=frozenset({OGM})), make_candidate(2, ogms=frozenset({other}))]
    assert choose(line, both) is None


def test_one_case_offered_twice_counts_once() -> None:
    line = make_line(iban=IBAN)
    match = choose(line, [make_candidate(1, iban=IBAN), make_candidate(1, iban=IBAN)])
    assert match is not None and match.candidate.case_id == 1


@pytest.mark.parametrize(
    "line", [make_line(amount_minor=-12_500), make_line(reversal=True), make_line(amount_minor=0)]
)
def test_debits_reversals_and_zero_amounts_are_never_chosen(line: StatementLine) -> None:
    assert choose(line, [make_candidate(1, iban=IBAN, refs=frozenset({"F1"}))]) is None


def test_no_candidates_no_match() -> None:
    assert choose(make_line(), []) is None


@given(lines, st.lists(candidates, max_size=5, unique_by=lambda c: c.case_id), st.randoms())
@settings(max_examples=300)
def test_choose_is_deterministic_and_independent_of_candidate_order(
    line: StatementLine, offered: list[Candidate], rng: random.Random
) -> None:
    shuffled = offered[:]
    rng.shuffle(shuffled)
    first, again, other_order = choose(line, offered), choose(line, offered), choose(line, shuffled)
    assert first == again == other_order
    if first is not None:
        assert first.score >= ACCEPT


# ---------------------------------------------------------------------------------------
# Lines never matched
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (make_line(), None),
        (make_line(amount_minor=-500), "debit"),
        (make_line(reversal=True), "reversal"),
        (make_line(amount_minor=-500, reversal=True), "reversal"),
        (make_line(amount_minor=0), "zero amount"),
        (make_line(currency="USD"), "foreign currency"),
    ],
)
def test_classify_line_says_why_a_line_is_never_matched(
    line: StatementLine, why: str | None
) -> None:
    assert classify_line(line, "EUR") == why


def test_classify_line_compares_with_the_expected_currency() -> None:
    assert classify_line(make_line(currency="USD"), expected_currency="USD") is None


# ---------------------------------------------------------------------------------------
# Allocation over open invoices
# ---------------------------------------------------------------------------------------

INVOICES = [
    ("B", 3_000, dt.date(2026, 2, 1)),
    ("A", 5_000, dt.date(2026, 1, 1)),
    ("C", 2_000, dt.date(2026, 2, 1)),
]


def test_oldest_due_date_first_ties_in_the_order_given() -> None:
    assert allocate(9_000, INVOICES) == ([("A", 5_000), ("B", 3_000), ("C", 1_000)], 0)


def test_an_amount_equal_to_one_invoice_pays_that_invoice() -> None:
    assert allocate(2_000, INVOICES) == ([("C", 2_000)], 0)
    assert allocate(3_000, INVOICES) == ([("B", 3_000)], 0)
    # Several equal: the oldest of them.
    assert allocate(100, [("X", 100, DAY), ("Y", 100, DAY - dt.timedelta(1))]) == ([("Y", 100)], 0)


def test_what_is_left_once_all_are_paid_is_an_overpayment() -> None:
    assert allocate(11_000, INVOICES) == ([("A", 5_000), ("B", 3_000), ("C", 2_000)], 1_000)
    assert allocate(700, []) == ([], 700)
    assert allocate(0, INVOICES) == ([], 0)


def test_invoices_already_paid_get_nothing() -> None:
    assert allocate(500, [("P", 0, DAY), ("Q", 800, DAY)]) == ([("Q", 500)], 0)


def test_bad_amounts_are_refused_naming_the_invoice() -> None:
    with pytest.raises(ValueError, match="amount -1 is negative"):
        allocate(-1, INVOICES)
    with pytest.raises(ValueError, match=r"invoice 2 \('Q'\), open amount: -5 is negative"):
        allocate(10, [("P", 1, DAY), ("Q", -5, DAY)])
    with pytest.raises(ValueError, match=r"case 9, invoice 1 \('F9-0'\), open amount"):
        make_candidate(9, amounts=(-5,))


open_invoices = st.lists(
    st.tuples(st.integers(0, 10_000), st.dates(dt.date(2025, 1, 1), dt.date(2025, 3, 1))),
    max_size=6,
).map(lambda rows: [(n, amount, due) for n, (amount, due) in enumerate(rows)])


@given(st.integers(0, 40_000), open_invoices)
def test_allocation_invariants(amount: int, invoices: list[tuple[int, int, dt.date]]) -> None:
    allocations, overpayment = allocate(amount, invoices)
    open_by_id = {invoice_id: open_minor for invoice_id, open_minor, _ in invoices}
    assert sum(part for _, part in allocations) + overpayment == amount
    assert len({invoice_id for invoice_id, _ in allocations}) == len(allocations)
    assert all(0 < part <= open_by_id[invoice_id] for invoice_id, part in allocations)
    assert overpayment >= 0
    if overpayment > 0:
        assert dict(allocations) == {i: o for i, o in open_by_id.items() if o > 0}


@given(st.integers(1, 40_000), open_invoices)
def test_allocation_pays_the_named_invoice_or_the_oldest_first(
    amount: int, invoices: list[tuple[int, int, dt.date]]
) -> None:
    allocations, _ = allocate(amount, invoices)
    exact = [row for row in invoices if row[1] == amount]
    if exact:
        oldest = min(exact, key=lambda row: (row[2], row[0]))
        assert allocations == [(oldest[0], amount)]
        return
    paid = dict(allocations)
    ordered = sorted(invoices, key=lambda row: (row[2], row[0]))
    short = [
        n
        for n, (invoice_id, open_minor, _) in enumerate(ordered)
        if paid.get(invoice_id, 0) < open_minor
    ]
    if short:  # nothing newer than the first invoice not paid in full gets anything
        assert not any(paid.get(invoice_id) for invoice_id, _, _ in ordered[short[0] + 1 :])


_WORDS = st.sampled_from(
    ["Jan", "Peeters", "peeters", "Dubois", "Marie-Claire", "Van", "den", "Bossche", "Dhr.",
     "Mme", "NV", "Gérard", "José", "O'Brien", "jan", "S.A.", "&", "Ëlise", "Janssens"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_WORDS, min_size=1, max_size=4).map(" ".join),
    st.lists(_WORDS, min_size=1, max_size=4).map(" ".join),
    st.sampled_from([12_500, 12_000, 30_000]),
)
def test_a_candidate_given_its_stored_name_key_scores_as_with_its_name(
    debtor: str, payer: str, amount: int
) -> None:
    """The store hands over each debtor's `name_key` (its normalised words, sorted), so the
    name is not normalised again for every candidate; names are compared word by word in
    any order, so the score and the reasons are the same."""
    line = make_line(amount_minor=amount, name=payer, text="paiement")
    plain = make_candidate(name=debtor)
    keyed = Candidate(plain.case_id, plain.invoices, debtor, name_key=name_key(debtor))
    assert score(line, keyed) == score(line, plain)
