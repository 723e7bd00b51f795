"""Rate limits per client identity: token buckets, one budget for reads and one for changes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Budget:
    rate: float
    """Tokens per second."""
    burst: float
    """Bucket size: how many may go at once after a quiet spell."""

    def __post_init__(self) -> None:
        # A bucket smaller than one token never lets anything through, however long the client waits.
        if not self.burst >= 1:
            raise ValueError(f"a rate-limit burst must be at least 1, got {self.burst:g}")
        if not self.rate > 0:
            raise ValueError(f"a rate limit must be a positive rate, got {self.rate:g}/s")

    def describe(self) -> str:
        per_minute = self.rate * 60
        return (
            f"{per_minute:g}/min (bursts of {self.burst:g})"
            if per_minute < 120
            else f"{self.rate:g}/s (bursts of {self.burst:g})"
        )


TOLERANCE = 1e-9


@dataclass
class Bucket:
    budget: Budget
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0 when a token was taken, else seconds until one will be there."""
        # max(): a clock that steps back must not drain the bucket.
        self.tokens = min(self.budget.burst, self.tokens + max(0.0, now - self.updated) * self.budget.rate)
        self.updated = max(self.updated, now)
        # The tolerance keeps float rounding (3 × 1/3 s = 0.99999…) from refusing a token that is due.
        if self.tokens >= 1 - TOLERANCE:
            self.tokens = max(0.0, self.tokens - 1)
            return 0.0
        return (1 - self.tokens) / self.budget.rate


class RateLimited(Exception):
    def __init__(self, client: str, kind: str, budget: Budget, retry_after: float) -> None:
        super().__init__(
            f"rate limit for {kind} reached for client {client!r} ({budget.describe()}); "
            f"retry in {max(retry_after, 0.1):.1f} s"
        )
        self.client = client
        self.kind = kind
        self.retry_after = retry_after


@dataclass
class RateLimiter:
    reads: Budget
    changes: Budget
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, str, str], Bucket] = field(default_factory=dict)

    def check(self, client: str, is_read: bool, host: str = "local") -> None:
        """One bucket per (client, host, reads|changes): a client busy on one host keeps its budget on the others."""
        kind = "reads" if is_read else "changes"
        budget = self.reads if is_read else self.changes
        now = self.clock()
        bucket = self._buckets.setdefault((client, host, kind), Bucket(budget, budget.burst, now))
        wait = bucket.take(now)
        if wait > 0:
            where = kind if host == "local" else f"{kind} on {host}"
            raise RateLimited(client, where, budget, wait)
