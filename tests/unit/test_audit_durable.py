"""A change's record flushed to disk off the event loop: the loop keeps serving (and appending) while the disk is
slow, the record is on disk before append_durable returns, and concurrent durable appends keep the chain exact."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from fleetbus.guard.audit import AuditLog, iter_records, verify

FLUSH = 0.5
"""Seconds one flush of the fake slow disk takes."""


class SlowDisk:
    """os.fsync that takes FLUSH seconds and remembers which thread called it and how many records were flushed."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.calls = 0
        self.threads: set[int] = set()
        self.lock = threading.Lock()

    def __call__(self, fd: int) -> None:
        with self.lock:
            self.calls += 1
            self.threads.add(threading.get_ident())
        time.sleep(FLUSH)


async def ticks_during(work: asyncio.Future[object] | asyncio.Task[object]) -> list[float]:
    """The delays of a 10 ms ticker running on the loop while `work` runs."""
    delays: list[float] = []
    while not work.done():
        began = time.monotonic()
        await asyncio.sleep(0.01)
        delays.append(time.monotonic() - began - 0.01)
    return delays


async def test_a_slow_flush_does_not_stop_the_loop(tmp_path: Path) -> None:
    disk = SlowDisk(tmp_path)
    log = AuditLog(tmp_path, sync_file=disk)
    log.open()
    began = time.monotonic()
    change = asyncio.ensure_future(log.append_durable({"event": "allowed", "client": "c", "n": 0}))
    delays = await ticks_during(change)
    record = await change
    took = time.monotonic() - began
    # The record was waited for (two flushes: the log, then the head) ...
    assert took >= 2 * FLUSH * 0.9
    assert disk.calls == 2
    assert threading.get_ident() not in disk.threads
    # ... while the loop ticked on: with the flush on the loop it would have stalled for the whole second.
    assert len(delays) >= 10
    assert max(delays) < FLUSH / 2, delays
    # Reads' records are written meanwhile without waiting for the disk.
    read_began = time.monotonic()
    flushing = asyncio.ensure_future(log.append_durable({"event": "allowed", "client": "c", "n": 1}))
    await asyncio.sleep(0.05)
    log.append({"event": "succeeded", "client": "c", "n": 2})
    assert time.monotonic() - read_began < FLUSH
    await flushing
    assert record["seq"] == 1
    log.close()
    assert verify(tmp_path).ok


async def test_concurrent_durable_appends_keep_order_and_chain(tmp_path: Path) -> None:
    disk = SlowDisk(tmp_path)
    log = AuditLog(tmp_path, sync_file=disk)
    log.open()
    records = await asyncio.gather(
        *(log.append_durable({"event": "allowed", "client": f"c{n % 3}", "n": n}) for n in range(40))
    )
    # Each returned with its own place in the chain, in the order they were started.
    assert [r["seq"] for r in records] == list(range(1, 41))
    assert [r["n"] for r in records] == list(range(40))
    # Flushes that overlapped in time were shared: far fewer than two per record.
    assert disk.calls < 20, disk.calls
    log.close()
    result = verify(tmp_path)
    assert (result.ok, result.records) == (True, 40), result
    on_disk = [r["n"] for _, _, r in iter_records(tmp_path) if "n" in r]
    assert on_disk == list(range(40))


async def test_the_record_is_flushed_before_append_durable_returns(tmp_path: Path) -> None:
    flushed_sizes: list[int] = []
    current = tmp_path / "audit.log"

    def note(fd: int) -> None:
        flushed_sizes.append(current.stat().st_size)

    log = AuditLog(tmp_path, sync_file=note)
    log.open()
    await log.append_durable({"event": "allowed", "client": "c"})
    size = current.stat().st_size
    # The flush happened after the whole record was in the file.
    assert flushed_sizes[:1] == [size]
    log.close()


async def test_a_flush_that_fails_fails_the_append(tmp_path: Path) -> None:
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    log = AuditLog(tmp_path, sync_file=broken)
    log.open()
    with pytest.raises(OSError, match="Input/output error"):
        await log.append_durable({"event": "allowed", "client": "c"})
    log.fsync = False
    log.close()
