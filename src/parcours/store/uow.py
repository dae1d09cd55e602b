"""The unit of work: one session, its repositories, and the single commit point."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from parcours.store.repositories import (
    AuditLog,
    CaseRepository,
    CreditorRepository,
    DebtorRepository,
    EventLog,
)

__all__ = ["UnitOfWork"]


class UnitOfWork:
    """Use as a context manager; nothing is kept unless `commit()` is called inside it."""

    session: Session

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __enter__(self) -> UnitOfWork:
        self.session = Session(self.engine, expire_on_commit=False)
        self.creditors = CreditorRepository(self.session)
        self.debtors = DebtorRepository(self.session)
        self.cases = CaseRepository(self.session)
        self.events = EventLog(self.session)
        self.audit = AuditLog(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.session.rollback()
        self.session.close()

    def connection(self) -> Connection:
        """The session's connection, for set-based bulk work in the same transaction."""
        return self.session.connection()

    def commit(self) -> None:
        self.session.commit()
