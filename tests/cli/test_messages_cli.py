"""`parcours messages preview`: a journey step rendered as the debtor gets it."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from tests.cli.test_cli import invoke, text_of


def portfolio(directory: Path, debtors: str, invoices: str | None = None) -> None:
    """`parcours init`, then import these debtors (and invoices) for creditor "acme"."""
    assert invoke("init").exit_code == 0
    (directory / "d.csv").write_text(debtors, encoding="utf-8")
    assert invoke("import", "debtors", "d.csv", "-c", "acme").exit_code == 0
    if invoices is not None:
        header = "invoice_ref,debtor_ref,amount,currency,issue_date,due_date\n"
        (directory / "i.csv").write_text(header + invoices, encoding="utf-8")
        assert invoke("import", "invoices", "i.csv", "-c", "acme").exit_code == 0


@pytest.mark.parametrize("lang", ["fr", "nl", "en"])
def test_a_step_previews_by_sms_in_each_language(cli: Path, lang: str) -> None:
    result = invoke(
        "messages", "preview", "-j", "occasional", "-s", "send_r1", "-l", lang, "--channel", "sms"
    )
    assert result.exit_code == 0, result.output
    assert "+++123/4567/89002+++" in result.output and "GSM-7" in result.output
    free = {"fr": "gratuit", "nl": "kosteloos", "en": "free of charge"}[lang]
    assert free in text_of(result)


def test_an_email_preview_writes_the_real_message(cli: Path) -> None:
    target = cli / "r1.eml"
    result = invoke(
        "messages", "preview", "-j", "universal", "-s", "send_r1", "-l", "nl",
        "--channel", "email", "-o", str(target),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    message = message_from_bytes(target.read_bytes(), policy=default)
    assert message["Content-Language"] == "nl" and message.get_body(("html",)) is not None


def test_a_letter_preview_is_a_pdf(cli: Path) -> None:
    target = cli / "r1.pdf"
    result = invoke("messages", "preview", "-j", "universal", "-s", "send_r1", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes().startswith(b"%PDF") and "page" in result.output


def test_a_step_that_sends_nothing_or_does_not_exist_is_a_clear_error(cli: Path) -> None:
    missing = invoke("messages", "preview", "-j", "universal", "-s", "nowhere")
    assert missing.exit_code == 2 and "no step 'nowhere'" in text_of(missing)
    wait = invoke("messages", "preview", "-j", "universal", "-s", "wait_r1")
    assert wait.exit_code == 2 and "sends nothing" in text_of(wait)


def test_a_case_preview_uses_the_case_facts(cli_db: Path) -> None:
    portfolio(
        cli_db,
        "debtor_ref,name,email,phone,street,postcode,city\n"
        "D1,Alice Lambert,alice@example.be,0470123456,Rue Haute 1,1000,Bruxelles\n",
        "F1,D1,120.00,EUR,2026-10-01,2026-10-31\nF2,D1,30.00,EUR,2026-10-05,2026-11-04\n",
    )
    result = invoke(
        "messages", "preview", "-j", "universal", "-s", "send_r1", "--channel", "email",
        "--case", "C-D1", "-l", "en",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = text_of(result)
    assert "150,00" in text and "F1" in text and "F2" in text  # both invoices, their total
    assert "http://localhost:8000/p/" in text  # the case's own signed link
    assert (
        invoke(
            "messages", "preview", "-j", "universal", "-s", "send_r1", "--case", "C-NO"
        ).exit_code
        == 2
    )


def test_tasks_commands_name_what_is_wrong(cli_db: Path) -> None:
    portfolio(cli_db, "debtor_ref,name,phone\nD1,Alice,0470123456\n")
    assert invoke("tasks", "list").exit_code == 0
    unknown = invoke("tasks", "done", "nope", "-d", "no_answer")
    assert unknown.exit_code == 2 and "no agent task 'nope'" in text_of(unknown)
    bad = invoke("tasks", "done", "nope", "-d", "maybe")
    assert bad.exit_code == 2 and "right_party" in text_of(bad)
    half = invoke("tasks", "done", "nope", "-d", "promise", "--amount", "10.00")
    assert half.exit_code == 2 and "--amount and --on" in text_of(half)
    wrong = invoke(
        "tasks", "done", "nope", "-d", "promise", "--amount", "ten", "--on", "2030-01-01"
    )
    assert wrong.exit_code == 2 and "'ten' is not a number" in text_of(wrong)


def test_an_inbound_bounce_that_is_not_ours_is_reported(cli_db: Path) -> None:
    portfolio(cli_db, "debtor_ref,name\nD1,Alice\n")
    (cli_db / "hello.eml").write_bytes(b"From: a@example.be\r\nSubject: hi\r\n\r\nhello\r\n")
    result = invoke("messages", "inbound", "hello.eml")
    assert result.exit_code == 0 and "neither a bounce nor a reply" in text_of(result)
    assert invoke("messages", "inbound", "missing.eml").exit_code == 2


def test_run_sends_through_smtp_and_the_sms_gateway_when_configured(cli_db: Path) -> None:
    """`parcours run` with a channels file: e-mail to a real SMTP server, SMS to a gateway."""
    import yaml

    from tests.channels.fake_sms_gateway import ACCOUNT_SID, AUTH_TOKEN, FakeSmsGateway
    from tests.channels.smtp_server import HOST, running_server

    portfolio(
        cli_db,
        "debtor_ref,name,email,phone,street,postcode,city\n"
        "D1,Alice,alice@example.be,0470123456,Rue Haute 1,1000,Bruxelles\n"
        "D2,Bruno,bruno@example.be,0470654321,Kerkstraat 2,2000,Antwerpen\n",
        "F1,D1,120.00,EUR,2026-10-01,2026-10-31\nF2,D2,80.00,EUR,2026-10-01,2026-10-31\n",
    )
    # Alice's journey starts by SMS (the nonchalant), Bruno's by e-mail (the engaged).
    assert invoke("personas", "assign", "D1", "nonchalant").exit_code == 0
    assert invoke("personas", "assign", "D2", "engaged").exit_code == 0
    example = yaml.safe_load((cli_db / "channels.yaml").read_text(encoding="utf-8"))
    with running_server() as (controller, handler), FakeSmsGateway() as gateway:
        example["default"]["providers"] = {
            "email": {"provider": "smtp", "host": HOST, "port": controller.port, "security": "none"},
            "sms": {
                "provider": "sms-http", "preset": "twilio", "base_url": gateway.base_url,
                "account_sid": ACCOUNT_SID, "token": AUTH_TOKEN, "sender": "DemoEnergy",
            },
        }  # fmt: skip
        (cli_db / "channels.yaml").write_text(yaml.safe_dump(example), encoding="utf-8")
        result = invoke("run", "--at", "2026-12-01T10:00", "--json")
        assert result.exit_code == 0, result.output
        received, texts = len(handler.received), [m.to for m in gateway.messages]
    assert received == 1 and texts == ["+32470123456"], result.output
    assert not list((cli_db / "outbox").glob("*.eml")) and not list(
        (cli_db / "outbox").glob("*.sms.json")
    )


def test_a_bad_channels_file_is_named(cli_db: Path) -> None:
    portfolio(cli_db, "debtor_ref,name\nD1,Alice\n")
    (cli_db / "channels.yaml").write_text(
        "default:\n  profile: {name: X, iban: BE00}\n", encoding="utf-8"
    )
    result = invoke("run", "--at", "2026-12-01T10:00")
    assert result.exit_code == 2
    assert "channels.yaml: default.profile.iban" in text_of(result)


def test_a_days_letters_become_one_print_batch_with_a_manifest(cli_db: Path) -> None:
    import csv

    from pypdf import PdfReader

    portfolio(
        cli_db,
        "debtor_ref,name,street,postcode,city\n"
        "D1,Alice Lambert,Rue Haute 1,1000,Bruxelles\nD2,Bruno Peeters,Kerkstraat 2,2000,Antwerpen\n",
        "F1,D1,120.00,EUR,2026-10-01,2026-10-31\nF2,D2,80.00,EUR,2026-10-01,2026-10-31\n",
    )
    assert invoke("run", "--at", "2026-12-01T10:00").exit_code == 0
    letters = sorted((cli_db / "outbox").glob("*.pdf"))
    assert len(letters) == 2  # the universal ladder's first reminder, by post
    result = invoke("messages", "print-batch", "--day", "2026-12-01", "--out", "print")
    assert result.exit_code == 0, result.output
    batch = PdfReader(cli_db / "print" / "letters-2026-12-01.pdf")
    with (cli_db / "print" / "letters-2026-12-01.csv").open(encoding="utf-8") as handle:
        manifest = list(csv.DictReader(handle))
    assert sorted(r["case_ref"] for r in manifest) == ["C-D1", "C-D2"]
    pages = sum(len(PdfReader(p).pages) for p in letters)
    blanks = sum(len(PdfReader(p).pages) % 2 for p in letters)
    assert len(batch.pages) == pages + blanks  # each letter from a new sheet (duplex)
    first = [int(r["first_page"]) for r in manifest]
    assert first[0] == 1 and all(f % 2 == 1 for f in first)
    text = batch.pages[first[1] - 1].extract_text()
    assert manifest[1]["recipient_name"] in text
    empty = invoke("messages", "print-batch", "--day", "2026-12-02")
    assert empty.exit_code == 2 and "no letter to print" in text_of(empty)
