"""Portfolio import: CSV files of debtors, invoices and payments, validated row by row.

Valid rows are stored, every rejected row is reported with its line, field and reason,
and a file that cannot be read at all stores nothing.
"""

from parcours.ingest.importer import import_file, report_allows_commit
from parcours.ingest.report import FileRejected, ImportReport, RowError
from parcours.ingest.rows import ImportKind, ImportOptions

__all__ = [
    "FileRejected",
    "ImportKind",
    "ImportOptions",
    "ImportReport",
    "RowError",
    "import_file",
    "report_allows_commit",
]
