"""Portfolio import: CSV files of debtors, invoices and payments, validated row by row.

Valid rows are stored, every rejected row is reported with its line, field and reason,
and a file that cannot be read at all stores nothing.
"""

from typing import TYPE_CHECKING, Any

from parcours.ingest.report import FileRejected, ImportReport, RowError
from parcours.ingest.rows import ImportKind, ImportOptions

if TYPE_CHECKING:
    from parcours.ingest.importer import import_file, report_allows_commit

__all__ = [
    "FileRejected",
    "ImportKind",
    "ImportOptions",
    "ImportReport",
    "RowError",
    "import_file",
    "report_allows_commit",
]


def __getattr__(name: str) -> Any:
    # The importer needs the database layer; importing it lazily keeps the row-checking
    # worker processes (which import this package) free of SQLAlchemy.
    if name in ("import_file", "report_allows_commit"):
        from parcours.ingest import importer

        return getattr(importer, name)
    raise AttributeError(name)
