"""Helpers of the big batch jobs (the tick, the statement import): timing their parts,
keeping Python's cycle collector out of their way, and letting the database work beside
their Python."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from sqlalchemy import Connection

from parcours.store.db import in_memory

__all__ = ["Stopwatch", "beside", "cycle_collection_paused"]


class Stopwatch:
    """Adds the wall seconds since the previous lap to a named part of `timings`."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.timings[part] = self.timings.get(part, 0.0) + now - self.last
        self.last = now


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Pause Python's cycle collector for a batch: a tick or an import keeps millions of
    small rows, tuples and lists alive until it ends, which the collector would walk
    again and again (half of a million-case tick's Python time, a tenth of an import's)
    to find nothing — they form no cycles, and reference counting frees them as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def beside(connection: Connection, work: Callable[[], object] | None) -> Iterator[None]:
    """Run `work` in a thread while the block runs: database work on `connection` done
    in one statement (SQLite and PostgreSQL run a statement without Python's lock), beside
    Python that does not touch the connection. Leaving the block waits for `work` and
    raises its error; an error of the block waits for it too, so that the caller's
    rollback never meets it running. SQLite in memory does not share its connection with
    other threads: `work` runs first there."""
    if work is None:
        yield
        return
    if in_memory(connection):
        work()
        yield
        return
    with ThreadPoolExecutor(1, thread_name_prefix="parcours-beside") as pool:
        done = pool.submit(work)
        yield
        done.result()
