"""`parcours journeys …`, `parcours run` and `parcours policy explain` through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from parcours.journeys.library import builtin_library_dir, load_library
from parcours.settings import get_settings
from tests.cli.test_cli import invoke, run_json, text_of


def test_journeys_list_and_show_with_a_mermaid_diagram(cli: Path) -> None:
    listed = text_of(invoke("journeys", "list"))
    for key in ("universal", "occasional", "struggling", "problem_payer", "engaged", "nonchalant"):
        assert key in listed
    shown = invoke("journeys", "show", "occasional")
    assert shown.exit_code == 0, shown.output
    assert "flowchart TD" in shown.output and "send" in shown.output
    diagram = invoke("journeys", "show", "universal", "--mermaid")
    assert diagram.output.startswith("flowchart TD")
    assert invoke("journeys", "show", "nope").exit_code == 2


def test_journeys_validate_names_file_node_and_field(cli: Path) -> None:
    good = builtin_library_dir() / "universal.yaml"
    assert "OK" in text_of(invoke("journeys", "validate", str(good)))
    data = yaml.safe_load(good.read_text(encoding="utf-8"))
    data["nodes"][0]["days"] = "soon"
    bad = cli / "bad.yaml"
    bad.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = invoke("journeys", "validate", str(bad))
    assert result.exit_code == 2
    assert f"bad.yaml: node '{data['nodes'][0]['id']}'.days" in text_of(result)


def test_journeys_schema_is_json_schema(cli: Path) -> None:
    assert invoke("journeys", "schema", "--out", "journey.schema.json").exit_code == 0
    schema = json.loads((cli / "journey.schema.json").read_text(encoding="utf-8"))
    assert schema["title"] == "parcours journey" and "nodes" in schema["properties"]


def test_run_enrols_plans_dispatches_and_is_idempotent(cli_db: Path) -> None:
    assert invoke("init").exit_code == 0
    (cli_db / "d.csv").write_text(
        "debtor_ref,name,email,phone,street,postcode,city\n"
        "D1,Alice,alice@example.be,0470123456,Rue Haute 1,1000,Bruxelles\n",
        encoding="utf-8",
    )
    (cli_db / "i.csv").write_text(
        "invoice_ref,debtor_ref,amount,currency,issue_date,due_date\n"
        "F1,D1,120.00,EUR,2026-10-01,2026-10-31\n",
        encoding="utf-8",
    )
    assert invoke("import", "debtors", "d.csv", "-c", "acme").exit_code == 0
    assert invoke("import", "invoices", "i.csv", "-c", "acme").exit_code == 0
    first = run_json("run", "--at", "2026-12-01T10:00")
    assert first["enrolled"] == 1 and first["due"] == 1
    assert first["outbox_rows"] >= 1 and first["dispatched"].get("sent", 0) >= 1
    files = sorted((cli_db / "outbox").iterdir())
    again = run_json("run", "--at", "2026-12-01T10:00")
    assert again["outbox_rows"] == 0 and not again["dispatched"]
    assert sorted((cli_db / "outbox").iterdir()) == files
    explained = run_json("policy", "explain", "C-D1", "--at", "2026-12-01T22:30")
    assert explained["channels"]["email"]["verdict"] == "delay"
    assert explained["law"]["flat_indemnity_cap_minor"] == 2_000
    assert invoke("policy", "explain", "C-NOPE").exit_code == 2


def test_two_workers_tick_together_and_stop_gracefully_on_sigterm(
    cli_db: Path, db_url: str
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    assert invoke("init").exit_code == 0
    (cli_db / "d.csv").write_text(
        "debtor_ref,name,email\n" + "".join(f"D{i},Name {i},d{i}@example.be\n" for i in range(20)),
        encoding="utf-8",
    )
    (cli_db / "i.csv").write_text(
        "invoice_ref,debtor_ref,amount,currency,issue_date,due_date\n"
        + "".join(f"F{i},D{i},50.00,EUR,2026-10-01,2026-10-31\n" for i in range(20)),
        encoding="utf-8",
    )
    assert invoke("import", "debtors", "d.csv", "-c", "acme").exit_code == 0
    assert invoke("import", "invoices", "i.csv", "-c", "acme").exit_code == 0
    env = {**os.environ, "PARCOURS_DATABASE_URL": db_url, "PYTHONDONTWRITEBYTECODE": "1"}
    command = [
        sys.executable,
        "-c",
        "from parcours.cli import app; app()",
        "worker",
        "--interval",
        "0.5",
    ]
    workers = [
        subprocess.Popen(command, cwd=cli_db, env=env, stderr=subprocess.PIPE, text=True)  # noqa: S603
        for _ in range(2)
    ]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _enrolled(db_url):
        time.sleep(0.3)
    time.sleep(1.5)  # a few more ticks, both workers at it
    for process in workers:
        process.send_signal(signal.SIGTERM)
    outputs = [process.communicate(timeout=30)[1] for process in workers]
    assert [p.returncode for p in workers] == [0, 0], outputs
    assert all("worker.stopped" in output for output in outputs)
    assert _enrolled(db_url) == 20
    attempts = _attempts(db_url)
    assert len(attempts) == len(set(attempts)) > 0


def _enrolled(url: str) -> int:
    from sqlalchemy import func, select

    from parcours.store.db import connect
    from parcours.store.schema import EnrolmentRow

    engine = connect(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(EnrolmentRow)).scalar_one()
            )
    finally:
        engine.dispose()


def _attempts(url: str) -> list[str]:
    from sqlalchemy import select

    from parcours.store.db import connect
    from parcours.store.schema import OutboxRow

    engine = connect(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(OutboxRow.attempt_id)).scalars())
    finally:
        engine.dispose()


def test_migrate_moves_cases_to_a_new_version_only_when_every_node_maps(
    cli_db: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke("init").exit_code == 0
    (cli_db / "d.csv").write_text(
        "debtor_ref,name,street,postcode,city\nD1,A,Rue 1,1000,Bruxelles\n", encoding="utf-8"
    )
    (cli_db / "i.csv").write_text(
        "invoice_ref,debtor_ref,amount,currency,issue_date,due_date\nF1,D1,50.00,EUR,2026-10-01,2026-11-20\n",
        encoding="utf-8",
    )
    assert invoke("import", "debtors", "d.csv", "-c", "acme").exit_code == 0
    assert invoke("import", "invoices", "i.csv", "-c", "acme").exit_code == 0
    assert run_json("run", "--at", "2026-12-01T10:00")["enrolled"] == 1
    in_use = _nodes(db_url)
    old = load_library().latest("universal").version
    new = old + 1
    assert list(in_use) and all(v == old for v, _ in in_use.values())
    name = "universal.yaml" if old == 1 else f"universal_v{old}.yaml"
    data = yaml.safe_load((builtin_library_dir() / name).read_text(encoding="utf-8"))
    data["version"] = new
    renamed = {n["id"]: f"{n['id']}_v{new}"[:48] for n in data["nodes"]}
    data["start"] = renamed[data["start"]]
    for node in data["nodes"]:  # every node renamed, edges included
        node["id"] = renamed[node["id"]]
        for field in ("next", "on_event", "on_timeout", "default"):
            if field in node:
                node[field] = renamed[node[field]]
        for edge in [*node.get("cases", []), *node.get("arms", [])]:
            edge["next"] = renamed[edge["next"]]
    operator = cli_db / "journeys"
    operator.mkdir()
    (operator / f"universal_v{new}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv("PARCOURS_JOURNEYS_DIR", str(operator))
    get_settings.cache_clear()
    refused = invoke("journeys", "migrate", "universal", "--from", str(old), "--dry-run")
    assert refused.exit_code == 2 and "give --map" in text_of(refused)
    node = next(iter(in_use))
    maps = ["--map", f"{node}={renamed[node]}"]
    dry = invoke("journeys", "migrate", "universal", "--from", str(old), *maps, "--dry-run")
    assert dry.exit_code == 0 and "nothing changed" in text_of(dry)
    assert _nodes(db_url) == in_use
    moved = invoke("journeys", "migrate", "universal", "--from", str(old), *maps)
    assert f"moved 1 cases from universal@{old} to universal@{new}" in text_of(moved)
    assert _nodes(db_url) == {renamed[node]: (new, in_use[node][1])}
    assert run_json("run", "--at", "2026-12-20T10:00")["due"] == 1  # the new version runs


def _nodes(url: str) -> dict[str, tuple[int, int]]:
    """node → (journey version, step) of the enrolments."""
    from sqlalchemy import select

    from parcours.store.db import connect
    from parcours.store.schema import EnrolmentRow

    engine = connect(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(EnrolmentRow.node_id, EnrolmentRow.journey_version, EnrolmentRow.step)
            )
            return {node: (version, step) for node, version, step in rows}
    finally:
        engine.dispose()
