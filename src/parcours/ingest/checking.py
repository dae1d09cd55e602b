"""Reading and field-checking a CSV, in this process or in worker processes.

The worker side imports no database code, so a spawned worker starts quickly.
"""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import queue
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parcours.ingest.csvfile import CsvFile, open_csv
from parcours.ingest.report import FileRejected, RowError
from parcours.ingest.rows import REQUIRED, ImportKind, ImportOptions, ParsedRow, RowParser

__all__ = ["CheckedBatch", "checked_batches", "checked_in_workers", "paused_gc"]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: a bulk load allocates millions of acyclic
    objects, and full collections over a growing heap cost about 15 % of the import."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(slots=True)
class CheckedBatch:
    """Field-checked rows of one batch, with every row's key for the duplicate check."""

    rows: int
    keys: list[tuple[int, str, str]]  # (line, field, value) of each keyed row
    parsed: list[ParsedRow]
    errors: list[RowError]
    position: int  # bytes of the file read so far


def checked_batches(
    csv_file: CsvFile, parser: RowParser, size: int, share: int = 0, shares: int = 1
) -> Iterator[CheckedBatch]:
    """Read the file and field-check batches of `size` rows: those numbered `share`
    modulo `shares` (all of them by default; several processes each take a share)."""
    width = len(csv_file.header.columns)
    number, counted = 0, 0
    batch, rows = CheckedBatch(0, [], [], [], 0), []
    for line, fields in csv_file.rows():
        mine = number % shares == share
        if mine:
            batch.rows += 1
        if len(fields) != width:
            if mine:
                message = f"has {len(fields)} fields where the header has {width}"
                batch.errors.append(RowError(line, "row", message))
            continue
        if mine:
            cells = parser.cells(fields)
            key = parser.row_key(cells)
            if key is not None:
                batch.keys.append((line, *key))
            rows.append((line, cells))
        counted += 1
        if counted == size:
            if mine:
                yield _finish(batch, parser, rows, csv_file)
                batch, rows = CheckedBatch(0, [], [], [], 0), []
            number, counted = number + 1, 0
    if batch.rows:
        yield _finish(batch, parser, rows, csv_file)


def _finish(
    batch: CheckedBatch, parser: RowParser, rows: list[tuple[int, list[str]]], csv_file: CsvFile
) -> CheckedBatch:
    parsed, errors = parser.parse_batch(rows)
    batch.parsed, batch.position = parsed, csv_file.position()
    batch.errors.extend(errors)
    return batch


def checked_in_workers(
    path: Path, kind: ImportKind, options: ImportOptions, workers: int
) -> Iterator[CheckedBatch]:
    """`checked_batches` run by other processes, each checking every `workers`-th batch,
    so checking overlaps storing (the GIL rules out threads for CPU-bound checks)."""
    # spawn, not fork: this process holds database connections a fork would share.
    context = multiprocessing.get_context("spawn")
    # Bounded queues: memory stays flat on any file size.
    channels = [context.Queue(maxsize=3) for _ in range(workers)]
    processes = [
        context.Process(
            target=_check_for_parent,
            args=(path, kind, options, channel, share, workers),
            daemon=True,
        )
        for share, channel in enumerate(channels)
    ]
    for process in processes:
        process.start()
    try:
        for number in itertools.count():
            item = _receive(channels[number % workers], processes[number % workers])
            if item is None:
                return
            yield item
    finally:
        for process, channel in zip(processes, channels, strict=True):
            if process.is_alive():
                process.kill()
            process.join()
            channel.close()


def _receive(channel: Any, process: Any) -> CheckedBatch | None:
    """The next batch from one worker; None at the end of the file."""
    while True:
        try:
            item = channel.get(timeout=1)
        except queue.Empty:
            if not process.is_alive():
                raise RuntimeError("a process checking rows stopped unexpectedly") from None
            continue
        if item is None or isinstance(item, CheckedBatch):
            return item
        if item[0] == "rejected":
            raise FileRejected(item[1])
        raise RuntimeError(f"checking rows failed:\n{item[1]}")


def _check_for_parent(
    path: Path, kind: ImportKind, options: ImportOptions, channel: Any, share: int, shares: int
) -> None:
    """Worker side of `checked_in_workers`: send checked batches, then None or a failure."""
    try:
        csv_file = open_csv(path, REQUIRED[kind])
        try:
            parser = RowParser(kind, csv_file.header.columns, options)
            with paused_gc():
                for batch in checked_batches(csv_file, parser, options.batch_size, share, shares):
                    channel.put(batch)
        finally:
            csv_file.close()
        channel.put(None)
    except FileRejected as exc:
        channel.put(("rejected", str(exc)))
    except Exception:  # reported to the parent, which raises it
        channel.put(("failed", traceback.format_exc()))
