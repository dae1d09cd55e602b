"""Portfolio import: CSV files of debtors, invoices and payments, validated row by row.

Valid rows are stored, every rejected row is reported with its line, field and reason,
and a file that cannot be read at all stores nothing.
"""

from parcours.ingest.importer import ImportKind, import_file
from parcours.ingest.report import FileRejected, ImportReport, RowError

__all__ = ["FileRejected", "ImportKind", "ImportReport", "RowError", "import_file"]
