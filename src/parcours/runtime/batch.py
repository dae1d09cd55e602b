"""Helpers of the big batch jobs (the tick, the statement import): timing their parts and
keeping Python's cycle collector out of their way."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Stopwatch", "cycle_collection_paused"]


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
