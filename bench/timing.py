"""Sampling and summarising round trips, shared by the benchmarks (run as scripts: `bench/` is on sys.path)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable


async def timed(calls: int, once: Callable[[], Awaitable[object]], warmup: int = 5) -> list[float]:
    """Seconds per call of `once`, after `warmup` calls that are not counted (connections, caches, imports)."""
    for _ in range(warmup):
        await once()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await once()
        samples.append(time.perf_counter() - started)
    return samples


def ms(samples: list[float]) -> float:
    """The median in milliseconds: one slow outlier (a GC pause, a scheduler hiccup) does not move it."""
    return statistics.median(samples) * 1000


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
