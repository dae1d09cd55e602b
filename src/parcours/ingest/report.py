"""What an import did: counts, and each rejected row with its line, field and reason."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FileRejected", "ImportReport", "RowError"]


class FileRejected(Exception):
    """The whole file is unusable (encoding, header, kind); nothing from it is stored."""


@dataclass(frozen=True, slots=True, order=True)
class RowError:
    """One reason a row was rejected; `line` is the file's line number (header = 1)."""

    line: int
    field: str
    reason: str


@dataclass(slots=True)
class ImportReport:
    """Counts and rejections of one import run."""

    kind: str
    file: str
    creditor: str
    strict: bool = False
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stored: bool = False
    file_error: str | None = None
    # Extra inserts the rows caused (e.g. cases opened for invoices), by kind.
    side_effects: Counter[str] = field(default_factory=Counter)

    @property
    def rejected(self) -> int:
        return len({error.line for error in self.errors})

    @property
    def exit_code(self) -> int:
        """0 when every row was accepted and stored, 2 otherwise."""
        return 0 if self.stored and not self.errors and self.file_error is None else 2

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            "creditor": self.creditor,
            "strict": self.strict,
            "stored": self.stored,
            "rows": self.rows,
            "accepted": self.rows - self.rejected,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "side_effects": dict(self.side_effects),
            "file_error": self.file_error,
            "warnings": self.warnings,
            "errors": [asdict(error) for error in sorted(self.errors)],
            "exit_code": self.exit_code,
        }

    def write_errors_csv(self, path: Path) -> None:
        """Write the rejected rows as `line,field,reason` so they can be fixed and re-sent."""
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["line", "field", "reason"])
            writer.writerows((e.line, e.field, e.reason) for e in sorted(self.errors))
