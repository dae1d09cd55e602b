"""Tests for the synthetic portfolio generator: formats, invariants and persona behaviour."""

from __future__ import annotations

import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import emval
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import parcours
from parcours.sim.portfolio import LATENT_PERSONAS, PortfolioSummary, generate_portfolio

AS_OF = date(2026, 3, 15)
FILES = (
    "debtors.csv",
    "invoices.csv",
    "payments.csv",
    "ground_truth.csv",
    "survey_answers.csv",
    "manifest.json",
)

EMAIL_VALIDATOR = emval.EmailValidator(
    allow_smtputf8=True,
    allow_empty_local=False,
    allow_quoted_local=False,
    allow_domain_literal=False,
    deliverable_address=False,
)

Row = dict[str, str]


def read_csv(path: Path) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def header(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        return next(csv.reader(fh))


def cents(amount: str) -> int:
    euros, _, fraction = amount.partition(".")
    return int(euros) * 100 + int(fraction)


class Portfolio:
    """A generated portfolio read back from disk, with a few lookups tests share."""

    def __init__(self, summary: PortfolioSummary) -> None:
        self.summary = summary
        root = summary.out_dir
        self.debtors = read_csv(root / "debtors.csv")
        self.invoices = read_csv(root / "invoices.csv")
        self.payments = read_csv(root / "payments.csv")
        self.truth = read_csv(root / "ground_truth.csv")
        self.surveys = read_csv(root / "survey_answers.csv")
        self.persona = {r["debtor_ref"]: r["latent_persona"] for r in self.truth}
        self.invoice = {r["invoice_ref"]: r for r in self.invoices}
        self.payments_of: dict[str, list[Row]] = defaultdict(list)
        for p in self.payments:
            self.payments_of[p["invoice_ref"]].append(p)


def make_portfolio(out_dir: Path, *, debtors: int = 200, seed: int = 7) -> PortfolioSummary:
    return generate_portfolio(out_dir, debtors=debtors, seed=seed, as_of=AS_OF)


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory) -> Portfolio:
    summary = make_portfolio(tmp_path_factory.mktemp("portfolio"), debtors=2000, seed=20260315)
    return Portfolio(summary)


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    make_portfolio(tmp_path / "a", seed=11)
    make_portfolio(tmp_path / "b", seed=11)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_output_does_not_depend_on_the_process_hash_seed(tmp_path: Path) -> None:
    """Another interpreter with another PYTHONHASHSEED writes the same bytes."""
    make_portfolio(tmp_path / "here", seed=5)
    script = (
        "import sys; from datetime import date; from pathlib import Path;"
        "from parcours.sim.portfolio import generate_portfolio;"
        "generate_portfolio(Path(sys.argv[1]), debtors=200, seed=5, as_of=date(2026, 3, 15))"
    )
    src = Path(parcours.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(src)}
    subprocess.run(  # noqa: S603 - our own interpreter running a fixed script
        [sys.executable, "-c", script, str(tmp_path / "there")], check=True, env=env
    )
    for name in FILES:
        here = (tmp_path / "here" / name).read_bytes()
        assert here == (tmp_path / "there" / name).read_bytes(), name


def test_other_seed_gives_different_files(tmp_path: Path) -> None:
    make_portfolio(tmp_path / "a", seed=11)
    make_portfolio(tmp_path / "b", seed=12)
    for name in ("debtors.csv", "invoices.csv", "payments.csv"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes(), name


def test_headers_are_exact(portfolio: Portfolio) -> None:
    root = portfolio.summary.out_dir
    assert header(root / "debtors.csv") == [
        "debtor_ref", "name", "email", "phone", "language", "country", "street", "postcode",
        "city", "birth_year", "timezone",
    ]  # fmt: skip
    assert header(root / "invoices.csv") == [
        "invoice_ref", "debtor_ref", "amount", "currency", "issue_date", "due_date", "description",
    ]  # fmt: skip
    assert header(root / "payments.csv") == ["payment_ref", "invoice_ref", "amount", "paid_at"]
    assert header(root / "ground_truth.csv") == ["debtor_ref", "latent_persona", "vulnerable"]


def test_files_are_utf8_with_unix_line_endings(portfolio: Portfolio) -> None:
    for name in FILES:
        data = (portfolio.summary.out_dir / name).read_bytes()
        data.decode("utf-8")
        assert b"\r" not in data, name


def test_refs_are_well_formed_and_unique(portfolio: Portfolio) -> None:
    for rows, column, pattern in (
        (portfolio.debtors, "debtor_ref", r"D\d{7}"),
        (portfolio.invoices, "invoice_ref", r"F\d{8}"),
        (portfolio.payments, "payment_ref", r"P\d{9}"),
    ):
        refs = [r[column] for r in rows]
        assert all(re.fullmatch(pattern, ref) for ref in refs), column
        assert len(set(refs)) == len(refs), column


def test_every_phone_is_a_valid_number_of_the_debtors_country(portfolio: Portfolio) -> None:
    phones = [(d["phone"], d["country"]) for d in portfolio.debtors if d["phone"]]
    assert len(phones) > 1500
    for phone, country in phones:
        number = phonenumbers.parse(phone, country)
        assert phonenumbers.is_valid_number(number), (phone, country)
        assert phonenumbers.region_code_for_number(number) == country, (phone, country)


def test_phones_are_mostly_mobile_in_varied_styles(portfolio: Portfolio) -> None:
    phones = [(d["phone"], d["country"]) for d in portfolio.debtors if d["phone"]]
    mobile = sum(
        phonenumbers.number_type(phonenumbers.parse(p, c)) == phonenumbers.PhoneNumberType.MOBILE
        for p, c in phones
    )
    assert mobile / len(phones) > 0.8
    styles = {re.sub(r"\d", "9", p) for p, c in phones if c == "BE"}
    assert {"+99999999999", "9999 99 99 99", "+99 999 99 99 99", "9999/99.99.99"} <= styles


def test_every_email_passes_emval_and_is_lower_case_ascii(portfolio: Portfolio) -> None:
    emails = [d["email"] for d in portfolio.debtors if d["email"]]
    assert len(emails) > 1400
    for email in emails:
        validated = EMAIL_VALIDATOR.validate_email(email)
        assert "." in validated.domain_name, email
        assert email.isascii(), email
        assert email == email.lower(), email
    assert len(set(emails)) / len(emails) > 0.9


def test_debtor_fields_look_right_for_their_country(portfolio: Portfolio) -> None:
    postcode = {
        "BE": r"[1-9]\d{3}",
        "NL": r"[1-9]\d{3} [A-Z]{2}",
        "FR": r"\d{5}",
        "LU": r"(L-)?\d{4}",
        "DE": r"\d{5}",
    }
    timezone = {
        "BE": "Europe/Brussels",
        "NL": "Europe/Amsterdam",
        "FR": "Europe/Paris",
        "LU": "Europe/Luxembourg",
        "DE": "Europe/Berlin",
    }
    for d in portfolio.debtors:
        assert re.fullmatch(postcode[d["country"]], d["postcode"]), d
        if d["country"] == "BE":
            assert 1000 <= int(d["postcode"]) <= 9992, d
        assert d["language"] in {"fr", "nl", "en"}, d
        assert d["timezone"] in {"", timezone[d["country"]]}, d
        for column in ("name", "street", "city"):
            assert d[column].strip(), d
        if d["birth_year"]:
            assert AS_OF.year - 90 <= int(d["birth_year"]) <= AS_OF.year - 18, d
    countries = Counter(d["country"] for d in portfolio.debtors)
    assert 0.80 < countries["BE"] / len(portfolio.debtors) < 0.90
    assert set(countries) == {"BE", "NL", "FR", "LU", "DE"}


def test_belgian_language_follows_the_region(portfolio: Portfolio) -> None:
    flemish = [d for d in portfolio.debtors if d["country"] == "BE" and int(d["postcode"]) >= 8000]
    walloon = [
        d for d in portfolio.debtors if d["country"] == "BE" and 4000 <= int(d["postcode"]) < 8000
    ]
    assert sum(d["language"] == "nl" for d in flemish) / len(flemish) > 0.9
    assert sum(d["language"] == "fr" for d in walloon) / len(walloon) > 0.9


def test_invoices_have_positive_amounts_and_due_on_or_after_issue(portfolio: Portfolio) -> None:
    earliest = AS_OF - timedelta(days=731)
    for inv in portfolio.invoices:
        assert re.fullmatch(r"\d+\.\d{2}", inv["amount"]), inv
        assert cents(inv["amount"]) > 0, inv
        assert inv["currency"] == "EUR"
        issue, due = date.fromisoformat(inv["issue_date"]), date.fromisoformat(inv["due_date"])
        assert due >= issue, inv
        assert (due - issue).days in {14, 30}, inv
        assert earliest <= issue <= AS_OF, inv
        assert inv["description"], inv
    amounts = sorted(cents(i["amount"]) for i in portfolio.invoices)
    median = amounts[len(amounts) // 2]
    assert 3_000 < median < 20_000


def test_every_debtor_has_invoices_with_the_requested_mean(portfolio: Portfolio) -> None:
    per_debtor = Counter(i["debtor_ref"] for i in portfolio.invoices)
    assert set(per_debtor) == {d["debtor_ref"] for d in portfolio.debtors}
    assert abs(len(portfolio.invoices) / len(portfolio.debtors) - 10 / 3) < 0.15


def test_payments_never_exceed_the_invoice_and_fall_between_issue_and_as_of(
    portfolio: Portfolio,
) -> None:
    assert portfolio.payments
    for ref, payments in portfolio.payments_of.items():
        invoice = portfolio.invoice[ref]
        assert sum(cents(p["amount"]) for p in payments) <= cents(invoice["amount"]), ref
        for p in payments:
            assert cents(p["amount"]) > 0, p
            paid_at = date.fromisoformat(p["paid_at"])
            assert date.fromisoformat(invoice["issue_date"]) <= paid_at <= AS_OF, p


def test_most_recent_invoice_of_each_debtor_is_open(portfolio: Portfolio) -> None:
    latest: dict[str, Row] = {}
    for inv in portfolio.invoices:
        latest[inv["debtor_ref"]] = inv  # invoices are written oldest first per debtor
    offsets = []
    for inv in latest.values():
        assert not portfolio.payments_of.get(inv["invoice_ref"]), inv
        offsets.append((date.fromisoformat(inv["due_date"]) - AS_OF).days)
    assert min(offsets) >= -120
    assert max(offsets) <= 20
    not_yet_due = sum(o > 0 for o in offsets) / len(offsets)
    assert 0.1 < not_yet_due < 0.4


def test_ground_truth_covers_every_debtor_with_a_known_persona(portfolio: Portfolio) -> None:
    assert [r["debtor_ref"] for r in portfolio.truth] == [
        d["debtor_ref"] for d in portfolio.debtors
    ]
    assert {r["latent_persona"] for r in portfolio.truth} == set(LATENT_PERSONAS)
    assert {r["vulnerable"] for r in portfolio.truth} == {"true", "false"}


def test_persona_mix_is_roughly_as_specified(portfolio: Portfolio) -> None:
    expected = {
        "engaged": 0.35,
        "occasional": 0.20,
        "nonchalant": 0.15,
        "struggling": 0.20,
        "problem_payer": 0.10,
    }
    counts = Counter(portfolio.persona.values())
    for persona, share in expected.items():
        assert abs(counts[persona] / len(portfolio.truth) - share) < 0.04, persona
    assert portfolio.summary.persona_counts == {p: counts[p] for p in LATENT_PERSONAS}


def test_vulnerability_is_rare_and_more_common_among_struggling(portfolio: Portfolio) -> None:
    vulnerable = [r for r in portfolio.truth if r["vulnerable"] == "true"]
    assert 0.02 < len(vulnerable) / len(portfolio.truth) < 0.09

    def share(persona: str) -> float:
        group = [r for r in portfolio.truth if r["latent_persona"] == persona]
        return sum(r["vulnerable"] == "true" for r in group) / len(group)

    assert share("struggling") > share("engaged")


def test_days_late_grow_from_engaged_to_nonchalant_to_problem_payer(portfolio: Portfolio) -> None:
    late: dict[str, list[int]] = defaultdict(list)
    for ref, payments in portfolio.payments_of.items():
        invoice = portfolio.invoice[ref]
        first = min(date.fromisoformat(p["paid_at"]) for p in payments)
        days = (first - date.fromisoformat(invoice["due_date"])).days
        late[portfolio.persona[invoice["debtor_ref"]]].append(days)
    mean = {persona: statistics.mean(days) for persona, days in late.items()}
    assert mean["engaged"] < mean["occasional"] < mean["nonchalant"] < mean["problem_payer"]
    assert mean["engaged"] <= 0


def test_occasional_payers_always_have_a_mobile_and_an_email(portfolio: Portfolio) -> None:
    occasional = [
        d for d in portfolio.debtors if portfolio.persona[d["debtor_ref"]] == "occasional"
    ]
    assert occasional
    for d in occasional:
        assert d["email"], d
        number = phonenumbers.parse(d["phone"], d["country"])
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE, d
        assert 30 <= AS_OF.year - int(d["birth_year"]) <= 55, d


def test_contact_gaps_concentrate_on_struggling_and_problem_payers(portfolio: Portfolio) -> None:
    def without_email(persona: str) -> float:
        group = [d for d in portfolio.debtors if portfolio.persona[d["debtor_ref"]] == persona]
        return sum(not d["email"] for d in group) / len(group)

    assert without_email("engaged") < without_email("struggling")
    assert without_email("engaged") < without_email("problem_payer")
    unreachable = [
        d
        for d in portfolio.debtors
        if portfolio.persona[d["debtor_ref"]] == "problem_payer"
        and not d["email"]
        and not d["phone"]
    ]
    assert unreachable


def test_only_struggling_and_problem_payers_pay_in_instalments(portfolio: Portfolio) -> None:
    split = Counter(
        portfolio.persona[portfolio.invoice[ref]["debtor_ref"]]
        for ref, payments in portfolio.payments_of.items()
        if len(payments) > 1
    )
    assert split["struggling"] > 0
    assert set(split) <= {"struggling", "problem_payer"}


def test_occasional_payers_pay_in_full_in_one_go(portfolio: Portfolio) -> None:
    paid = [
        (ref, payments)
        for ref, payments in portfolio.payments_of.items()
        if portfolio.persona[portfolio.invoice[ref]["debtor_ref"]] == "occasional"
    ]
    assert paid
    for ref, payments in paid:
        assert len(payments) == 1, ref
        assert payments[0]["amount"] == portfolio.invoice[ref]["amount"], ref


def test_problem_payers_leave_more_past_invoices_unpaid(portfolio: Portfolio) -> None:
    def unpaid_share(persona: str) -> float:
        refs = [
            i["invoice_ref"]
            for i in portfolio.invoices
            if portfolio.persona[i["debtor_ref"]] == persona
        ]
        return sum(ref not in portfolio.payments_of for ref in refs) / len(refs)

    assert unpaid_share("problem_payer") > unpaid_share("engaged") + 0.2


def test_summary_and_manifest_match_the_files(portfolio: Portfolio) -> None:
    summary = portfolio.summary
    assert (summary.debtors, summary.invoices, summary.payments) == (
        len(portfolio.debtors),
        len(portfolio.invoices),
        len(portfolio.payments),
    )
    manifest = json.loads((summary.out_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["seed"] == summary.seed == 20260315
    assert manifest["as_of"] == AS_OF.isoformat()
    assert manifest["generator"]
    assert manifest["files"] == {
        "debtors.csv": len(portfolio.debtors),
        "invoices.csv": len(portfolio.invoices),
        "payments.csv": len(portfolio.payments),
        "ground_truth.csv": len(portfolio.truth),
        "survey_answers.csv": len(portfolio.surveys),
    }
    assert manifest["persona_counts"] == summary.persona_counts


def test_about_the_asked_share_answered_the_survey_with_valid_options(
    portfolio: Portfolio,
) -> None:
    from parcours.personas.catalog import load_catalog

    survey = load_catalog().survey
    assert 0.035 < len(portfolio.surveys) / len(portfolio.debtors) < 0.065
    assert len({r["debtor_ref"] for r in portfolio.surveys}) == len(portfolio.surveys)
    for row in portfolio.surveys:
        assert row["debtor_ref"] in portfolio.persona
        assert date.fromisoformat(row["answered_at"]) < AS_OF
        for question in survey.questions:
            answer = row[question.key]
            assert answer == "" or question.option(answer) is not None, (question.key, answer)


def test_survey_answers_differ_by_latent_persona(tmp_path: Path) -> None:
    summary = generate_portfolio(tmp_path, debtors=4000, seed=11, as_of=AS_OF, survey_share=1.0)
    rows = read_csv(summary.out_dir / "survey_answers.csv")
    persona = {
        r["debtor_ref"]: r["latent_persona"] for r in read_csv(tmp_path / "ground_truth.csv")
    }

    def share(who: str, question: str, option: str) -> float:
        theirs = [r for r in rows if persona[r["debtor_ref"]] == who and r[question]]
        return sum(r[question] == option for r in theirs) / len(theirs)

    assert share("struggling", "late_reason", "short_of_money") > 0.5
    assert share("engaged", "late_reason", "short_of_money") < 0.15
    assert share("occasional", "payment_method", "banking_app") > 0.5
    assert (
        share("struggling", "plan_interest", "yes") > share("engaged", "plan_interest", "yes") + 0.4
    )


def test_the_survey_share_does_not_change_the_other_files(tmp_path: Path) -> None:
    without = generate_portfolio(tmp_path / "a", debtors=300, seed=5, as_of=AS_OF, survey_share=0)
    with_survey = generate_portfolio(tmp_path / "b", debtors=300, seed=5, as_of=AS_OF)
    for name in ("debtors.csv", "invoices.csv", "payments.csv", "ground_truth.csv"):
        assert (without.out_dir / name).read_bytes() == (with_survey.out_dir / name).read_bytes()
    assert len(read_csv(without.out_dir / "survey_answers.csv")) == 0
    assert len(read_csv(with_survey.out_dir / "survey_answers.csv")) > 0


def test_progress_reports_growing_counts_up_to_all_debtors(tmp_path: Path) -> None:
    seen: list[int] = []
    generate_portfolio(tmp_path, debtors=10_000, seed=3, as_of=AS_OF, progress=seen.append)
    assert seen == sorted(seen)
    assert len(seen) >= 2
    assert seen[-1] == 10_000


def test_zero_debtors_writes_headers_only(tmp_path: Path) -> None:
    summary = make_portfolio(tmp_path, debtors=0)
    assert (summary.invoices, summary.payments) == (0, 0)
    assert (tmp_path / "debtors.csv").read_text(encoding="utf-8").count("\n") == 1


@pytest.mark.parametrize(
    ("debtors", "seed", "mean"),
    [(-1, 1, 3.0), (10, -1, 3.0), (10, 1, 0.5), (10, 1, float("nan"))],
)
def test_rejects_invalid_arguments(tmp_path: Path, debtors: int, seed: int, mean: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        generate_portfolio(
            tmp_path, debtors=debtors, seed=seed, as_of=AS_OF, invoices_per_debtor=mean
        )


@settings(max_examples=10, deadline=None, database=None)
@given(
    seed=st.integers(min_value=0, max_value=2**63 - 1),
    debtors=st.integers(min_value=1, max_value=60),
    as_of=st.dates(min_value=date(2001, 1, 1), max_value=date(2090, 12, 31)),
    mean=st.floats(min_value=1.0, max_value=6.0),
)
def test_payments_stay_within_invoice_amount_and_dates_for_any_input(
    seed: int, debtors: int, as_of: date, mean: float
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        summary = generate_portfolio(
            root, debtors=debtors, seed=seed, as_of=as_of, invoices_per_debtor=mean
        )
        invoices = {r["invoice_ref"]: r for r in read_csv(root / "invoices.csv")}
        payments = read_csv(root / "payments.csv")
        assert summary.invoices == len(invoices) >= debtors
        assert {r["debtor_ref"] for r in invoices.values()} == {
            r["debtor_ref"] for r in read_csv(root / "debtors.csv")
        }
        paid: Counter[str] = Counter()
        for p in payments:
            invoice = invoices[p["invoice_ref"]]
            paid[p["invoice_ref"]] += cents(p["amount"])
            assert invoice["issue_date"] <= p["paid_at"] <= as_of.isoformat()
        for ref, total in paid.items():
            assert total <= cents(invoices[ref]["amount"])
        for invoice in invoices.values():
            assert invoice["issue_date"] <= invoice["due_date"]
            assert invoice["issue_date"] <= as_of.isoformat()
