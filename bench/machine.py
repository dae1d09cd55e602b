"""This machine's speed at the time of a bench, to read its figures against.

The shared host's speed drifts by up to a third within an hour: the same tick took
10.3 s and 11.6 s an hour apart without a change. Each near-target bench prints
`speed_reference_seconds` — a fixed pure-Python workload timed in the same run — so
that figures from different runs can be compared (stop 18: 0.112 s beside a 9.99 s
tick on SQLite).
"""

from __future__ import annotations

import time


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
