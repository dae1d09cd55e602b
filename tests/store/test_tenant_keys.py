"""The schema itself refuses a record that points at another creditor's record."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from parcours.ingest import ImportKind
from parcours.store.repositories import new_id
from parcours.store.schema import CaseRow, CreditorRow, DebtorRow
from tests.conftest import NOW
from tests.ingest.test_import import run_import, write_csv


def test_a_case_cannot_belong_to_one_creditor_and_point_at_anothers_debtor(
    engine: Engine, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, "d.csv", "debtor_ref,name", ["D1,Ann"])
    run_import(engine, ImportKind.DEBTORS, path, creditor="alpha")
    run_import(engine, ImportKind.DEBTORS, path, creditor="beta")
    with engine.connect() as connection:
        beta = connection.execute(
            select(CreditorRow.id).where(CreditorRow.name == "beta")
        ).scalar_one()
        alphas_debtor = connection.execute(
            select(DebtorRow.id)
            .join(CreditorRow, CreditorRow.id == DebtorRow.creditor_id)
            .where(CreditorRow.name == "alpha")
        ).scalar_one()
        row = {
            "creditor_id": beta,
            "debtor_id": alphas_debtor,
            "ref": "C-X",
            "status": "open",
            "opened_at": NOW,
        }
        with pytest.raises(IntegrityError):
            connection.execute(insert(CaseRow).values(id=new_id(), **row))
