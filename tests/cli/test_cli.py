"""The `parcours` command line, end to end on SQLite and PostgreSQL through Typer's runner."""

from __future__ import annotations

import csv
import gc
import json
import stat
import warnings
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from parcours.cli import app
from parcours.domain import StructuredCommunication
from parcours.settings import SECRET_KEY_FILE
from parcours.store.repositories import AuditLog
from parcours.store.uow import UnitOfWork

runner = CliRunner()

DEBTOR_HEADER = "debtor_ref,name,email,phone"
INVOICE_HEADER = "invoice_ref,debtor_ref,amount,currency,issue_date,due_date"
PAYMENT_HEADER = "invoice_ref,amount,paid_at,payment_ref"
ALICE = "D1,Alice Martin,alice@example.be,0470123456"
BRUNO = "D2,Bruno Peeters,bruno@example.be,0470654321"


def invoke(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input)


def text_of(result: Result) -> str:
    """Everything the command printed, with Rich's line wrapping undone."""
    return " ".join(result.output.split())


def run_json(*args: str) -> Any:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def write_csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8")
    return path


def import_file(kind: str, path: Path, creditor: str, *flags: str) -> Result:
    return invoke("import", kind, str(path), "--creditor", creditor, *flags)


def seed(directory: Path, creditor: str = "Acme") -> None:
    """Two debtors: D1 owes 69.50 EUR (100.00 less 30.50) and 5000 JPY; D2 has paid in full."""
    folder = directory / creditor
    folder.mkdir()
    files = [
        ("debtors", write_csv(folder / "debtors.csv", DEBTOR_HEADER, ALICE, BRUNO)),
        (
            "invoices",
            write_csv(
                folder / "invoices.csv",
                INVOICE_HEADER,
                "I1,D1,100.00,EUR,2026-01-01,2026-01-31",
                "I2,D1,5000,JPY,2026-03-01,2026-03-31",
                "I3,D2,40.00,EUR,2026-02-01,2026-02-28",
            ),
        ),
        (
            "payments",
            write_csv(
                folder / "payments.csv",
                PAYMENT_HEADER,
                "I1,30.50,2026-02-15,P1",
                "I3,40.00,2026-03-01,P2",
            ),
        ),
    ]
    for kind, path in files:
        result = import_file(kind, path, creditor)
        assert result.exit_code == 0, result.output


def audit_actions(engine: Engine, creditor_name: str, subject: str) -> list[str]:
    with UnitOfWork(engine) as uow:
        creditor = uow.creditors.by_name(creditor_name)
        assert creditor is not None
        return [entry.action for entry in AuditLog(uow.session).for_subject(creditor, subject)]


# -- set-up ------------------------------------------------------------------------------


def test_init_creates_a_private_secret_key_once_and_never_prints_it(cli_db: Path) -> None:
    first = invoke("init")
    assert first.exit_code == 0, first.output
    key_file = cli_db / SECRET_KEY_FILE
    key = key_file.read_text(encoding="ascii").strip()
    assert len(key) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "secret key generated" in first.output
    assert key not in first.output

    second = invoke("init")
    assert second.exit_code == 0, second.output
    assert "secret key generated" not in second.output
    assert key_file.read_text(encoding="ascii").strip() == key
    assert key not in second.output


def test_a_command_on_an_uninitialised_sqlite_file_says_to_run_init(
    cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARCOURS_DATABASE_URL", f"sqlite:///{cli / 'fresh.db'}")
    result = invoke("status")
    assert result.exit_code == 2
    assert "run `parcours init`" in text_of(result)


def test_init_migrates_a_fresh_sqlite_file_so_commands_work(
    cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARCOURS_DATABASE_URL", f"sqlite:///{cli / 'fresh.db'}")
    assert invoke("init").exit_code == 0
    assert run_json("status")["creditors"] == []


def test_unreachable_postgresql_is_named_with_its_password_masked(
    cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARCOURS_DATABASE_URL", "postgresql://bob:hunter2@127.0.0.1:1/x")
    result = invoke("status")
    assert result.exit_code == 2
    assert "hunter2" not in result.output
    assert "bob:***@127.0.0.1:1/x" in text_of(result)


def test_commands_close_their_database_connections(cli_db: Path) -> None:
    """A command leaves no open connection behind for the garbage collector to find."""
    seed(cli_db)
    assert invoke("status").exit_code == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


# -- import ------------------------------------------------------------------------------


def test_import_of_valid_files_exits_0_and_reports_counts(cli_db: Path) -> None:
    debtors = write_csv(cli_db / "debtors.csv", DEBTOR_HEADER, ALICE, BRUNO)
    report = run_json("import", "debtors", str(debtors), "--creditor", "Acme")
    assert report["rows"] == report["inserted"] == report["accepted"] == 2
    assert (report["rejected"], report["stored"], report["exit_code"]) == (0, True, 0)

    invoices = write_csv(
        cli_db / "invoices.csv", INVOICE_HEADER, "I1,D1,100.00,EUR,2026-01-01,2026-01-31"
    )
    report = run_json("import", "invoices", str(invoices), "--creditor", "Acme")
    assert (report["inserted"], report["side_effects"]) == (1, {"cases_opened": 1})

    payments = write_csv(cli_db / "payments.csv", PAYMENT_HEADER, "I1,30.50,2026-02-15,P1")
    report = run_json("import", "payments", str(payments), "--creditor", "Acme")
    assert (report["inserted"], report["rejected"]) == (1, 0)


def test_reimporting_the_same_file_reports_rows_unchanged(cli_db: Path) -> None:
    debtors = write_csv(cli_db / "debtors.csv", DEBTOR_HEADER, ALICE, BRUNO)
    run_json("import", "debtors", str(debtors), "--creditor", "Acme")
    report = run_json("import", "debtors", str(debtors), "--creditor", "Acme")
    assert (report["inserted"], report["updated"], report["unchanged"]) == (0, 0, 2)


def test_import_with_a_rejected_row_exits_2_and_stores_the_valid_rows(cli_db: Path) -> None:
    debtors = write_csv(
        cli_db / "debtors.csv", DEBTOR_HEADER, ALICE, "D9,Nobody,not-an-email,", BRUNO
    )
    result = import_file("debtors", debtors, "Acme", "--json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert (report["rows"], report["inserted"], report["rejected"]) == (3, 2, 1)
    assert report["stored"] is True
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(3, "email")]
    [status] = run_json("status")["creditors"]
    assert status["debtors"] == 2


@pytest.mark.parametrize(
    ("kind", "header", "rows", "field"),
    [
        pytest.param(
            "invoices",
            INVOICE_HEADER,
            ("I4,D1,10.00,EUR,2026-01-01,2026-01-31", "I5,D404,10.00,EUR,2026-01-01,2026-01-31"),
            "debtor_ref",
            id="invoice-of-unknown-debtor",
        ),
        pytest.param(
            "payments",
            PAYMENT_HEADER,
            ("I1,1.00,2026-02-01,P3", "I404,1.00,2026-02-01,P4"),
            "invoice_ref",
            id="payment-of-unknown-invoice",
        ),
    ],
)
def test_rows_pointing_at_unknown_refs_are_rejected_with_exit_2(
    cli_db: Path, kind: str, header: str, rows: tuple[str, str], field: str
) -> None:
    seed(cli_db)
    result = import_file(kind, write_csv(cli_db / "more.csv", header, *rows), "Acme", "--json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert (report["inserted"], report["rejected"], report["stored"]) == (1, 1, True)
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(3, field)]


def test_strict_import_with_a_rejected_row_stores_nothing(cli_db: Path) -> None:
    debtors = write_csv(cli_db / "debtors.csv", DEBTOR_HEADER, ALICE, "D9,Nobody,not-an-email,")
    result = import_file("debtors", debtors, "Acme", "--strict", "--json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert (report["stored"], report["inserted"], report["rejected"]) == (False, 0, 1)
    # Not even the creditor that the import would have created.
    assert run_json("status")["creditors"] == []


def test_strict_import_without_rejections_stores_and_exits_0(cli_db: Path) -> None:
    debtors = write_csv(cli_db / "debtors.csv", DEBTOR_HEADER, ALICE)
    result = import_file("debtors", debtors, "Acme", "--strict")
    assert result.exit_code == 0, result.output
    assert run_json("status")["creditors"][0]["debtors"] == 1


def test_errors_option_writes_the_rejected_rows_as_csv(cli_db: Path) -> None:
    debtors = write_csv(
        cli_db / "debtors.csv", DEBTOR_HEADER, ALICE, "D9,Nobody,not-an-email,", ",No Ref,,"
    )
    errors = cli_db / "rejected.csv"
    result = import_file("debtors", debtors, "Acme", "--errors", str(errors))
    assert result.exit_code == 2
    with errors.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["line", "field", "reason"]
    assert [(line, field) for line, field, _ in rows[1:]] == [("3", "email"), ("4", "debtor_ref")]
    assert "not-an-email" in rows[1][2]


def test_a_missing_file_exits_2_and_stores_nothing(cli_db: Path) -> None:
    result = import_file("debtors", cli_db / "nope.csv", "Acme")
    assert result.exit_code == 2
    assert "nothing was stored" in text_of(result)
    assert run_json("status")["creditors"] == []


def test_the_import_report_prints_rejected_values_verbatim(cli_db: Path) -> None:
    """Values from the file are data, not Rich markup: `[/]` must neither vanish nor crash."""
    debtors = write_csv(cli_db / "debtors.csv", DEBTOR_HEADER, ALICE, "D9,Nobody,x[/]@example,")
    result = import_file("debtors", debtors, "Acme")
    assert result.exit_code == 2, result.exception
    assert isinstance(result.exception, SystemExit)
    assert "x[/]@example" in result.output


# -- inspection --------------------------------------------------------------------------


def test_status_json_counts_records_and_open_amount_per_currency(cli_db: Path) -> None:
    seed(cli_db)
    status = run_json("status")
    assert "database" in status
    [acme] = status["creditors"]
    assert acme["creditor"] == "Acme"
    assert (acme["debtors"], acme["invoices"], acme["cases"], acme["payments"]) == (2, 3, 2, 2)
    assert acme["open_invoices"] == 2
    assert acme["open_amount"] == {"EUR": "69.50", "JPY": "5000"}


def test_cases_list_json_puts_the_oldest_open_due_date_first(cli_db: Path) -> None:
    seed(cli_db)
    cases = run_json("cases", "list")
    assert [c["ref"] for c in cases] == ["C-D1", "C-D2"]
    first, second = cases
    assert first["debtor_ref"] == "D1"
    assert (first["status"], first["invoices"]) == ("open", 2)
    assert first["balance"] == {"EUR": "69.50", "JPY": "5000"}
    assert first["oldest_open_due_date"] == "2026-01-31"
    assert (second["balance"], second["oldest_open_due_date"]) == ({"EUR": "0.00"}, None)


def test_cases_list_debtor_option_keeps_only_that_debtors_cases(cli_db: Path) -> None:
    seed(cli_db)
    assert [c["ref"] for c in run_json("cases", "list", "--debtor", "D2")] == ["C-D2"]
    assert run_json("cases", "list", "--debtor", "D404") == []


def test_cases_show_json_gives_invoices_balance_and_structured_communications(
    cli_db: Path,
) -> None:
    seed(cli_db)
    case = run_json("cases", "show", "C-D1")
    assert (case["ref"], case["debtor_ref"], case["status"]) == ("C-D1", "D1", "open")
    assert case["balance"] == {"EUR": "69.50", "JPY": "5000"}
    first, second = case["invoices"]
    assert (first["ref"], first["amount"], first["paid"], first["balance"]) == (
        "I1",
        "100.00",
        "30.50",
        "69.50",
    )
    assert (second["ref"], second["currency"], second["balance"]) == ("I2", "JPY", "5000")
    communications = [i["structured_communication"] for i in case["invoices"]]
    for formatted in communications:
        assert StructuredCommunication.parse(formatted).formatted == formatted
    assert len(set(communications)) == 2


def test_cases_show_of_an_unknown_ref_exits_2_naming_it_verbatim(cli_db: Path) -> None:
    """The ref is printed as typed, not read as Rich markup (`[c-404]` is not a style)."""
    seed(cli_db)
    result = invoke("cases", "show", "[c-404]")
    assert result.exit_code == 2
    assert "no case '[c-404]'" in text_of(result)


def test_omitting_creditor_when_there_are_two_lists_them(cli_db: Path) -> None:
    seed(cli_db, "Alpha")
    seed(cli_db, "Beta")
    result = invoke("cases", "list")
    assert result.exit_code == 2
    message = text_of(result)
    assert "--creditor" in message
    assert "Alpha, Beta" in message
    assert len(run_json("cases", "list", "--creditor", "Beta")) == 2
    assert [c["creditor"] for c in run_json("status")["creditors"]] == ["Alpha", "Beta"]


def test_an_unknown_creditor_exits_2(cli_db: Path) -> None:
    seed(cli_db)
    result = invoke("cases", "list", "--creditor", "Nobody")
    assert result.exit_code == 2
    assert "no creditor named 'Nobody'" in text_of(result)


# -- privacy -----------------------------------------------------------------------------


def test_debtors_export_prints_the_debtors_data_and_audits_it(cli_db: Path, engine: Engine) -> None:
    seed(cli_db)
    result = invoke("debtors", "export", "D1")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["debtor"]["email"] == "alice@example.be"
    assert [i["ref"] for i in data["invoices"]] == ["I1", "I2"]
    assert [p["ref"] for p in data["payments"]] == ["P1"]
    assert audit_actions(engine, "Acme", "debtor:D1") == ["debtor.exported"]


def test_debtors_erase_removes_personal_data_keeps_amounts_and_audits_it(
    cli_db: Path, engine: Engine
) -> None:
    seed(cli_db)
    result = invoke("debtors", "erase", "D1", "--yes")
    assert result.exit_code == 0, result.output
    exported = invoke("debtors", "export", "D1")
    assert exported.exit_code == 0, exported.output
    assert "alice@example.be" not in exported.stdout
    assert "Alice Martin" not in exported.stdout
    data = json.loads(exported.stdout)
    assert data["debtor"]["email"] is None
    assert data["debtor"]["erased_at"] is not None
    assert [e["type"] for e in data["events"]] == ["debtor.erased"]
    assert [i["amount_minor"] for i in data["invoices"]] == [10000, 5000]
    assert run_json("status")["creditors"][0]["open_amount"] == {"EUR": "69.50", "JPY": "5000"}
    assert audit_actions(engine, "Acme", "debtor:D1") == ["debtor.erased", "debtor.exported"]


def test_debtors_erase_asks_first_and_a_no_keeps_the_data(cli_db: Path, engine: Engine) -> None:
    seed(cli_db)
    result = invoke("debtors", "erase", "D1", input="n\n")
    assert result.exit_code == 1
    data = json.loads(invoke("debtors", "export", "D1").stdout)
    assert data["debtor"]["email"] == "alice@example.be"
    assert audit_actions(engine, "Acme", "debtor:D1") == ["debtor.exported"]


@pytest.mark.parametrize("args", [("export", "D404"), ("erase", "D404", "--yes")])
def test_privacy_commands_on_an_unknown_debtor_exit_2(cli_db: Path, args: tuple[str, ...]) -> None:
    seed(cli_db)
    result = invoke("debtors", *args)
    assert result.exit_code == 2
    assert "no debtor 'D404'" in text_of(result)
