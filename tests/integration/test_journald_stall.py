"""A stalled journald (SIGSTOP, the sandbox's real one) holds up no client: while two clients make changes and
reads whose audit copies journald cannot take, a third client's `get_property` keeps its latency, and the audit
log file still holds every record."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import time
from pathlib import Path

import psutil
import pytest

from fleetbus.gateway import Caller
from fleetbus.guard.audit import iter_records, verify
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.integration.effects_setup import guarded

pytestmark = pytest.mark.sandbox

FLEET = {"service": "com.example.Fleet", "path": "/com/example/Fleet1", "interface": "com.example.Fleet1"}
BUS_PROPERTY = {
    "service": "org.freedesktop.DBus",
    "path": "/org/freedesktop/DBus",
    "interface": "org.freedesktop.DBus",
    "property": "Features",
}
SAMPLES = 400
P99_LIMIT_MS = 50.0
PACE = 0.003
"""Each writer's pause between its change-and-read pairs: busy clients, not a loop that never yields."""
POLICY = """
[[classify]]
interface = "com.example.Fleet1"
member = ["Get*", "Echo", "AddPair", "Checksum", "Describe"]
risk = "read"
reason = "computes answers"

[[classify]]
interface = "com.example.Fleet1"
member = "Collect"
risk = "routine"
reason = "treated as a change here, so its records are a change's: synced, and copied to journald at once"
"""


def journald_pid(sandbox: Sandbox) -> int:
    """The sandbox's own journald, among the keeper's descendants (never the machine's)."""
    for child in psutil.Process(sandbox.keeper_pid).children(recursive=True):
        if child.name() in ("systemd-journald", "systemd-journal"):  # comm may be cut at 15 characters
            return child.pid
    raise AssertionError(f"no journald under sandbox keeper {sandbox.keeper_pid}")


async def tool(runtime: Runtime, client: str, name: str, **arguments: object) -> float:
    """Run one tool call as `client`; its latency in ms. Every call has its deadline."""
    started = time.perf_counter()
    async with asyncio.timeout(10):
        result = await runtime.registry.run(runtime.context(Caller(client)), name, arguments)
    assert not result.is_error, result.text
    return (time.perf_counter() - started) * 1000


async def test_a_stalled_journald_does_not_hold_up_other_clients(
    sandbox: Sandbox, example_service: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    state = tmp_path / "state"
    async with guarded(
        sandbox,
        state,
        safety="admin",
        policy_file=policy,
        read_rate=10_000,
        read_burst=10_000,
        change_rate=10_000,
        change_burst=10_000,
    ) as runtime:
        await runtime.start(follow=False)
        for client in ("writer-a", "writer-b", "watcher"):  # connections and caches warm before measuring
            await tool(runtime, client, "get_property", **BUS_PROPERTY)
            await tool(runtime, client, "call_method", **FLEET, method="Collect", args=[1])
        mirror = runtime.gateway.audit_log._mirror
        assert mirror is not None
        pid = journald_pid(sandbox)
        calls = {"writer-a": 0, "writer-b": 0}

        async def phase() -> list[float]:
            """The watcher's latencies while two clients each make a change and a read every few ms."""
            stop = asyncio.Event()

            async def flood(client: str) -> None:
                while not stop.is_set():
                    await tool(runtime, client, "call_method", **FLEET, method="Collect", args=[1])
                    await tool(runtime, client, "get_property", **BUS_PROPERTY)
                    calls[client] += 2
                    await asyncio.sleep(PACE)

            writers = [asyncio.create_task(flood(client)) for client in calls]
            latencies = []
            try:
                for _ in range(SAMPLES):
                    latencies.append(await tool(runtime, "watcher", "get_property", **BUS_PROPERTY))
                    await asyncio.sleep(0.002)
            finally:
                stop.set()
                await asyncio.gather(*writers)
            return sorted(latencies)

        # The same load with journald running: what this machine gives now, measured in the same run.
        reference = await phase()
        before = sum(calls.values())
        os.kill(pid, signal.SIGSTOP)
        try:
            stalled = await phase()
            stalled_copies = mirror.waiting + mirror.dropped
        finally:
            os.kill(pid, signal.SIGCONT)
        runtime.gateway.audit_log.sync()

    def p99(latencies: list[float]) -> float:
        return latencies[int(len(latencies) * 0.99) - 1]

    summary = (
        f"watcher get_property over {SAMPLES} calls: journald stopped p50 {statistics.median(stalled):.1f} ms, "
        f"p99 {p99(stalled):.1f} ms; journald running p50 {statistics.median(reference):.1f} ms, "
        f"p99 {p99(reference):.1f} ms; writers' calls {calls}"
    )
    print(summary)
    # journald really was stalled: copies waited for it (or were dropped, counted) while the calls went on.
    assert stalled_copies > 20, summary
    assert sum(calls.values()) - before > 100, summary
    # ≤ 50 ms; on a machine so loaded that the same load without a stall already passes that, a stalled journald
    # still must add nothing noticeable (before, each change held every client for 0.2 s).
    assert p99(stalled) <= max(P99_LIMIT_MS, 1.5 * p99(reference)), summary
    # The file has every record of every call, chained: nothing waited for journald, nothing was lost.
    records = [record for _, _, record in iter_records(state / "audit")]
    for client, made in calls.items():
        done = [r for r in records if r.get("client") == client and r.get("event") == "succeeded"]
        assert len(done) >= made, (client, len(done), made)
    assert verify(state / "audit").ok
    assert json.dumps(records[-1])  # the last record parses and is complete
