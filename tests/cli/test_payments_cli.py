"""`parcours payments`: statements, the unmatched queue, promises, plans and disputes from
the command line, with clear errors that book nothing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import invoke, text_of
from tests.cli.test_messages_cli import portfolio

DEBTORS = (
    "debtor_ref,name,email,language\n"
    "D1,Alice Martin,alice@example.be,fr\n"
    "D2,Bruno Peeters,bruno@example.be,nl\n"
)
INVOICES = "F1,D1,120.00,EUR,2026-11-05,2026-12-05\nF2,D2,900.00,EUR,2026-11-05,2026-12-05\n"
AT = "2026-12-07T10:00:00+00:00"


def test_a_sample_statement_is_imported_once(cli_db: Path) -> None:
    portfolio(cli_db, DEBTORS, INVOICES)
    for fmt in ("camt", "coda"):
        made = invoke(
            "payments", "sample-statement", "--out", f"s.{fmt}", "--lines", "2",
            "--format", fmt, "--seed", "3", "--at", AT,
        )  # fmt: skip
        assert made.exit_code == 0, made.output
    first = invoke("payments", "import", "s.camt", "--json", "--at", AT)
    assert first.exit_code == 0, first.output
    [report] = json.loads(first.output)
    assert report["lines"] == 2 and report["booked"] + report["unmatched"] == 2
    again = invoke("payments", "import", "s.camt", "--json", "--at", AT)
    assert json.loads(again.output)[0]["already_imported"] == 2
    coda = invoke("payments", "import", "s.coda", "--at", AT)
    assert coda.exit_code == 0 and "coda" in coda.output


def test_a_bad_statement_is_refused_and_books_nothing(cli_db: Path) -> None:
    portfolio(cli_db, DEBTORS, INVOICES)
    (cli_db / "bad.xml").write_text("<Document><BkToCstmrStmt>", encoding="utf-8")
    bad = invoke("payments", "import", "bad.xml")
    assert bad.exit_code == 2 and "nothing was booked" in text_of(bad)
    missing = invoke("payments", "import", "nowhere.xml")
    assert missing.exit_code == 2
    unmatched = invoke("payments", "unmatched", "--json")
    assert unmatched.exit_code == 0 and json.loads(unmatched.output) == []


def test_a_plan_writes_an_epc_qr_code_per_instalment(cli_db: Path) -> None:
    portfolio(cli_db, DEBTORS, INVOICES)  # `init` wrote the example profile
    plan = invoke(
        "payments", "plan", "C-D2", "-n", "2", "--first", "2026-12-20", "--at", AT,
        "--qr", "qr", "--json",
    )  # fmt: skip
    assert plan.exit_code == 0, plan.output
    made = json.loads(plan.output)
    codes = [Path(p) for p in made["qr_codes"]]
    assert len(codes) == 2 and all(p.read_bytes().startswith(b"\x89PNG") for p in codes)


def test_promises_plans_and_disputes(cli_db: Path) -> None:
    portfolio(cli_db, DEBTORS, INVOICES)
    promise = invoke(
        "payments", "promise", "C-D1", "--amount", "120.00", "--on", "2026-12-20", "--at", AT
    )
    assert promise.exit_code == 0, promise.output
    late = invoke(
        "payments", "promise", "C-D1", "--amount", "12.345", "--on", "2026-12-20", "--at", AT
    )
    assert late.exit_code == 2 and "--amount" in text_of(late)
    plan = invoke(
        "payments", "plan", "C-D2", "-n", "3", "--first", "2026-12-20", "--at", AT, "--json"
    )
    assert plan.exit_code == 0, plan.output
    made = json.loads(plan.output)
    assert [i["amount_minor"] for i in made["instalments"]] == [30_000, 30_000, 30_000]
    assert len(made["communication"]) == 12 and made["qr_codes"] == []
    twice = invoke("payments", "plan", "C-D2", "-n", "2", "--first", "2026-12-20", "--at", AT)
    assert twice.exit_code == 2 and "already" in text_of(twice)
    too_long = invoke("payments", "plan", "C-D1", "-n", "40", "--first", "2026-12-20", "--at", AT)
    assert too_long.exit_code == 2 and "max_instalments" in text_of(too_long)
    opened = invoke("payments", "dispute", "C-D1", "--reason", "amount_wrong", "--at", AT)
    assert opened.exit_code == 0, opened.output
    resolved = invoke("payments", "resolve", "C-D1", "--outcome", "rejected", "--at", AT)
    assert resolved.exit_code == 0 and "rejected" in resolved.output
    nothing = invoke("payments", "resolve", "C-D1", "--outcome", "rejected", "--at", AT)
    assert nothing.exit_code == 2 and "no open dispute" in text_of(nothing)
