"""Open a portfolio CSV: check encoding, delimiter, header and kind before any row is read."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from parcours.ingest.report import FileRejected

__all__ = ["CsvFile", "Header", "open_csv"]

# Magic numbers of files people export by mistake instead of CSV.
_NOT_CSV = {
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx?): export the sheet as CSV UTF-8",
    b"\xd0\xcf\x11\xe0": "an old Excel/Office file: export the sheet as CSV UTF-8",
    b"%PDF": "a PDF document",
    b"<?xml": "an XML document (a bank statement? use `parcours payments import`)",
}


@dataclass(frozen=True, slots=True)
class Header:
    columns: tuple[str, ...]


@dataclass(slots=True)
class CsvFile:
    """An opened CSV whose header is known; iterate `rows()` for (line number, fields)."""

    path: Path
    header: Header
    delimiter: str
    handle: IO[str]

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        reader = csv.reader(self.handle, delimiter=self.delimiter, strict=True)
        try:
            for fields in reader:
                if fields and not (len(fields) == 1 and not fields[0].strip()):
                    # The header was read before the reader existed: it is line 1.
                    yield reader.line_num + 1, fields
        except UnicodeDecodeError:
            raise FileRejected(_encoding_message(self.path)) from None
        except csv.Error as exc:
            raise FileRejected(
                f"{self.path.name}: line {reader.line_num + 1}: broken CSV ({exc})"
            ) from None

    def position(self) -> int:
        """Bytes read so far, for a progress bar."""
        buffer = getattr(self.handle, "buffer", None)
        return int(buffer.tell()) if buffer is not None else 0

    def close(self) -> None:
        self.handle.close()


def open_csv(path: Path, required: tuple[str, ...]) -> CsvFile:
    """Open `path` and read its header; raise `FileRejected` for anything not a usable CSV."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise FileRejected(f"cannot open {path}: {exc.strerror}") from None
    head = raw.read(8)
    raw.seek(0)
    for magic, what in _NOT_CSV.items():
        if head.startswith(magic):
            raw.close()
            raise FileRejected(f"{path.name} is {what}, not a CSV file")
    # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark.
    handle = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")
    try:
        first = handle.readline()
    except UnicodeDecodeError:
        handle.close()
        raise FileRejected(_encoding_message(path)) from None
    if not first.strip():
        handle.close()
        raise FileRejected(
            f"{path.name} is empty: expected a header line with {', '.join(required)}"
        )
    delimiter = max((",", ";", "\t"), key=first.count)
    names = next(csv.reader([first], delimiter=delimiter))
    columns = tuple(name.strip().lower() for name in names)
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        handle.close()
        raise FileRejected(f"{path.name}: header repeats column(s) {', '.join(duplicates)}")
    return CsvFile(path, Header(columns), delimiter, handle)


def _encoding_message(path: Path) -> str:
    """Locate the first byte that is not UTF-8, to name its line."""
    with path.open("rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                byte = line[exc.start : exc.start + 1].hex()
                return (
                    f"{path.name} is not UTF-8 text: line {number} has byte 0x{byte} "
                    "(re-export the file as CSV UTF-8; Windows-1252/Latin-1 are not accepted)"
                )
    return f"{path.name} is not UTF-8 text"
