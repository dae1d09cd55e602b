"""Rate limits of the web app, counted in this process's memory (`limits`' moving window).

One worker process serves the app (see `parcours serve`), so memory is where every
request of it is seen; the counts are lost on a restart, which only ever lets someone try
again sooner. What is limited, by whom:

- back-office sign-ins that fail, per client address: the per-account lock (five wrong
  passwords) does not stop one address trying a few passwords on many accounts;
- chat messages of a debtor, per case: a page left open in a loop, or a script, must not
  flood the agents' inbox.

Keys are never logged (an address is personal data).
"""

from __future__ import annotations

import math
import time

from limits import parse_many, storage, strategies

__all__ = ["Throttle"]


class Throttle:
    """Limits such as "30 per 15 minutes" (several with `;`) on events per key."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._limits = parse_many(spec)
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    def allows(self, key: str) -> bool:
        """Whether one more event of `key` fits every limit (nothing is counted)."""
        return all(self._limiter.test(limit, key) for limit in self._limits)

    def hit(self, key: str) -> bool:
        """Count one event of `key`; False when it went over a limit."""
        # Every limit counts it: no short cut at the first one over.
        went = [self._limiter.hit(limit, key) for limit in self._limits]
        return all(went)

    def retry_after(self, key: str) -> int:
        """Seconds until `key` may go on (0 when it may now)."""
        waits = [
            stats.reset_time - time.time()
            for limit in self._limits
            if (stats := self._limiter.get_window_stats(limit, key)).remaining <= 0
        ]
        return max(0, math.ceil(max(waits, default=0)))
