"""How late the event loop gets while a change's audit record is flushed to a slow disk: append_durable (the flush
in a worker thread) against the reference measured in the same run, append(durable=True) flushing on the loop.

The disk is simulated by an fsync that sleeps FLUSH seconds (a real slow disk cannot be had on demand); a 10 ms
ticker on the loop measures how late it runs. Run: `python bench/bench_audit_flush.py`."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from fleetbus.guard.audit import AuditLog

FLUSH = 0.25
"""Seconds one simulated fsync takes (a record is two: the log, then its head)."""
ROUNDS = 5


def slow_fsync(fd: int) -> None:
    time.sleep(FLUSH)


async def worst_tick(work: asyncio.Future[object]) -> float:
    worst = 0.0
    while not work.done():
        began = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - began - 0.01)
    await work
    return worst


async def on_loop(log: AuditLog) -> None:
    await asyncio.sleep(0.02)  # let the ticker start
    log.append({"event": "allowed", "client": "bench"}, durable=True)


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        log = AuditLog(Path(directory), sync_file=slow_fsync)
        log.open()
        off, on = [], []
        for _ in range(ROUNDS):
            off.append(await worst_tick(asyncio.ensure_future(log.append_durable({"event": "allowed", "client": "b"}))))
            on.append(await worst_tick(asyncio.ensure_future(on_loop(log))))
        log.fsync = False
        log.close()
    worst_off, worst_on = max(off), max(on)
    print(f"simulated fsync {FLUSH * 1000:.0f} ms; worst lateness of a 10 ms ticker over {ROUNDS} change records")
    print(f"  reference, fsync on the loop (append durable=True): {worst_on * 1000:7.1f} ms")
    print(f"  append_durable, fsync in a worker thread:           {worst_off * 1000:7.1f} ms")
    print(f"  ratio: {worst_off / worst_on:.3f} of the reference")


if __name__ == "__main__":
    asyncio.run(main())
