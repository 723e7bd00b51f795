"""What the fan-out engine costs over the bare asyncio floor, for 1,000 simulated hosts (each an async sleep),
measured in one run:

  unbounded   fan_out(concurrency=1000) vs asyncio.gather of the same sleeps (the floor: no bound, no deadlines)
  bounded     fan_out(concurrency=64)   vs gather behind an asyncio.Semaphore(64) (the floor for a bound)
  slow hosts  1 host in 50 takes 10× longer: the sliding window vs lockstep batches of 64 (Ansible's linear
              strategy over forks) — what not waiting for a batch's slowest host is worth
  grouping    group_outcomes + compress_hosts over the 1,000 answers (two distinct answers, 20 failures)

Run: python bench/bench_fanout.py [--hosts N] [--sleep-ms MS] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable

from fleetbus.tools.fanout.engine import Outcome, fan_out
from fleetbus.tools.fanout.grouping import group_outcomes


async def clock(run: Callable[[], Awaitable[object]], rounds: int) -> float:
    await run()  # warm-up
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--sleep-ms", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    hosts = [f"host{n:04d}" for n in range(1, options.hosts + 1)]
    rng = random.Random(7)
    delay = {h: options.sleep_ms / 1000 * rng.uniform(0.5, 1.5) for h in hosts}
    slow = {h: d * (10 if i % 50 == 0 else 1) for i, (h, d) in enumerate(delay.items())}

    def sleeper(delays: dict[str, float]) -> Callable[[str], Awaitable[str]]:
        async def one(host: str) -> str:
            await asyncio.sleep(delays[host])
            return "ok"

        return one

    one, one_slow = sleeper(delay), sleeper(slow)

    async def gathered() -> None:
        await asyncio.gather(*(one(h) for h in hosts))

    async def bounded_floor(delays_one: Callable[[str], Awaitable[str]], bound: int) -> None:
        semaphore = asyncio.Semaphore(bound)

        async def guarded(host: str) -> str:
            async with semaphore:
                return await delays_one(host)

        await asyncio.gather(*(guarded(h) for h in hosts))

    async def lockstep(delays_one: Callable[[str], Awaitable[str]], bound: int) -> None:
        for start in range(0, len(hosts), bound):
            await asyncio.gather(*(delays_one(h) for h in hosts[start : start + bound]))

    async def engine(delays_one: Callable[[str], Awaitable[str]], bound: int) -> None:
        await fan_out(hosts, delays_one, per_host_deadline=30, overall_deadline=60, concurrency=bound)

    n = len(hosts)
    print(f"{n} simulated hosts, sleeps of {options.sleep_ms:g} ms ± 50 %, median of {options.rounds} rounds")
    floor = await clock(gathered, options.rounds)
    unbounded = await clock(lambda: engine(one, n), options.rounds)
    print(
        f"unbounded   gather {floor * 1000:8.1f} ms   fan_out {unbounded * 1000:8.1f} ms   "
        f"ratio {unbounded / floor:5.2f}   overhead {(unbounded - floor) / n * 1e6:6.1f} µs/host"
    )
    floor64 = await clock(lambda: bounded_floor(one, 64), options.rounds)
    bounded = await clock(lambda: engine(one, 64), options.rounds)
    print(
        f"bounded 64  gather+semaphore {floor64 * 1000:8.1f} ms   fan_out {bounded * 1000:8.1f} ms   "
        f"ratio {bounded / floor64:5.2f}"
    )
    steps = await clock(lambda: lockstep(one_slow, 64), options.rounds)
    sliding = await clock(lambda: engine(one_slow, 64), options.rounds)
    print(
        f"slow hosts  lockstep batches of 64 {steps * 1000:8.1f} ms   sliding window {sliding * 1000:8.1f} ms   "
        f"sliding/lockstep {sliding / steps:5.2f}"
    )
    outcomes: list[Outcome[object]] = [
        Outcome(h, kind="unreachable", message="connection refused")
        if i % 50 == 1
        else Outcome(h, value={"active": "failed" if i == 7 else "active", "main_pid": i, "since": str(i)})
        for i, h in enumerate(hosts)
    ]
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        grouped = group_outcomes(outcomes, volatile=["main_pid", "since"])
        rows = [group.row() for group in grouped.answers + grouped.failures]
    grouping = (time.perf_counter() - started) / rounds
    print(
        f"grouping    {grouping * 1000:6.2f} ms for {n} answers → {len(rows)} groups "
        f"({rows[0]['hosts'][:40]}…); {grouping / floor * 100:4.1f} % of the gather floor"
    )


if __name__ == "__main__":
    asyncio.run(main())
