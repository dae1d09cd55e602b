"""This machine's speed at the time of a bench, to read its figures against.

The shared host's speed drifts by up to a third within an hour: the same tick took
10.3 s and 11.6 s an hour apart without a change. Each near-target bench prints two
references timed in the same run, so that figures from different runs can be compared:

- `speed_reference_seconds`: a fixed pure-Python workload (stop 18: 0.112 s beside a
  9.99 s tick on SQLite);
- `memory_reference_seconds`: the first touch of 256 MiB of new memory. The kernel
  clears each page the first time a process writes it, and on this host that cost
  swings on its own (stop 19: the same tick took 9.2 s and 12.4 s within twenty minutes
  while the Python reference stayed at 0.115-0.12 s; the system time of such ticks
  ranged from 1.7 to 4.8 s). A tick's page cache, rows and staged tables are all new
  memory.
"""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path

_MIB = 1 << 20


def speed_reference() -> float:
    """Seconds for a fixed pure-Python workload (the best of three): higher is slower."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(4_000_000):
            total += i & 7
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


def memory_reference(mib: int = 256) -> float:
    """Seconds to write one byte in each page of `mib` MiB of new anonymous memory (the
    best of three, each a fresh mapping): higher is slower."""
    page = mmap.PAGESIZE
    best = float("inf")
    for _ in range(3):
        with mmap.mmap(-1, mib * _MIB) as memory:
            started = time.perf_counter()
            for offset in range(0, mib * _MIB, page):
                memory[offset] = 1
            best = min(best, time.perf_counter() - started)
    return round(best, 3)


def written_out(path: Path) -> None:
    """Wait until a fresh copy of a bench database is on disk: otherwise the kernel
    writes it out (gigabytes) while the timed run goes on, on the same two cores. A
    database in service is at rest when its work starts."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
