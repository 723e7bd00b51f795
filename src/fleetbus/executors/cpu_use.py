"""CPU use of a whole machine as the change of its /proc/stat counters between two samples, and over what window.

A reading needs an earlier sample. Sleeping for one on every call made system_status cost 0.2 s, so the
samples come from elsewhere: `CpuHistory` keeps the last few (from a background sampler and from every
reading), and a reading is measured against the newest sample at least MIN_WINDOW old. Only when there is
none fresh enough (the first second after start) does a reading wait, at most FIRST_WINDOW, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fleetbus.executors.procfs import CpuTicks

MIN_WINDOW = 1.0
"""Shortest window a reading is measured over when the history allows: at 100 ticks a second per CPU, a
shorter one makes the figure jump by whole percent steps."""
MAX_AGE = 10.0
"""An older sample no longer says how busy the machine is now."""
FIRST_WINDOW = 0.2
"""What a reading without any usable sample waits for (today's psutil.cpu_percent(interval=0.2))."""
TICK = 1.0
"""How often the background sampler records a sample: one /proc/stat read, about 20 µs."""
SPACING = 0.5
"""Samples kept are at least this far apart, so a burst of readings cannot push the older ones out."""
KEEP = 32
"""With SPACING, at least 16 s of history: more than MAX_AGE."""


@dataclass(frozen=True)
class CpuSample:
    at: float
    """time.monotonic() when it was read."""
    ticks: CpuTicks


@dataclass(frozen=True)
class CpuUse:
    percent: float
    """Busy share of all CPUs together: 100 means every CPU was busy for the whole window."""
    window_s: float


def use_between(earlier: CpuSample, later: CpuSample) -> CpuUse:
    total = later.ticks.total - earlier.ticks.total
    busy = later.ticks.busy - earlier.ticks.busy
    percent = 0.0 if total <= 0 else min(100.0, max(0.0, 100.0 * busy / total))
    return CpuUse(percent, later.at - earlier.at)


class CpuHistory:
    """The last few samples of one machine's CPU counters, at least `spacing` apart. Thread-safe: a sampler
    adds while readers read."""

    def __init__(self, keep: int = KEEP, spacing: float = SPACING) -> None:
        self._samples: deque[CpuSample] = deque(maxlen=keep)
        self._spacing = spacing
        self._lock = threading.Lock()

    def add(self, sample: CpuSample) -> None:
        with self._lock:
            if not self._samples or sample.at >= self._samples[-1].at + self._spacing:
                self._samples.append(sample)

    def baseline(self, now: float, *, min_window: float = MIN_WINDOW, max_age: float = MAX_AGE) -> CpuSample | None:
        """The newest sample at least `min_window` before `now`, if it is not older than `max_age`."""
        with self._lock:
            for sample in reversed(self._samples):
                age = now - sample.at
                if age >= min_window:
                    return sample if age <= max_age else None
        return None

    def newest(self) -> CpuSample | None:
        with self._lock:
            return self._samples[-1] if self._samples else None


class CpuMeter:
    """CPU use of one host from samples of its /proc/stat counters, however they are read (in-process here, over
    SSH for a remote host). Every reading's own sample joins the history; `CpuSampler` adds more in the
    background where sampling is cheap (this machine), so that a reading rarely waits."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.history = CpuHistory()

    def record(self, ticks: CpuTicks) -> CpuSample:
        sample = CpuSample(self._clock(), ticks)
        self.history.add(sample)
        return sample

    async def reading(self, ticks: CpuTicks, read_ticks: Callable[[], Awaitable[CpuTicks]]) -> CpuUse:
        """CPU use up to `ticks` (just read) over the last MIN_WINDOW to MIN_WINDOW + TICK seconds. Without a
        sample that old (right after start, or a remote host not asked for a while): over what there is, waiting
        until FIRST_WINDOW has passed and reading again with `read_ticks` (at most that long, plus one read)."""
        now = self.record(ticks)
        earlier = self.history.baseline(now.at) or self.history.baseline(now.at, min_window=FIRST_WINDOW)
        if earlier is None:
            young = self.history.baseline(now.at, min_window=1e-6)
            start = young if young is not None else now
            await self._sleep(FIRST_WINDOW - (now.at - start.at))
            earlier, now = start, self.record(await read_ticks())
        return use_between(earlier, now)


class CpuSampler:
    """Records a sample into `meter` every `tick` seconds from a thread (`read_ticks` is a /proc/stat read and
    parse, about 20 µs here). `close` stops it."""

    def __init__(self, meter: CpuMeter, read_ticks: Callable[[], CpuTicks], tick: float = TICK) -> None:
        self._meter = meter
        self._read_ticks = read_ticks
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._sample, args=(tick,), name="fleetbus-cpu-sampler", daemon=True)
        self.thread.start()

    def _sample(self, tick: float) -> None:
        while True:
            # One missed sample only lengthens the next window, and a reading says how long its window was.
            with contextlib.suppress(OSError, ValueError):
                self._meter.record(self._read_ticks())
            if self._stopping.wait(tick):
                return

    def close(self) -> None:
        self._stopping.set()
        self.thread.join(timeout=2)
