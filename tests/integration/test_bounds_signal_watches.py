"""Signal watches are capped per client and in total: 10× a client's cap of concurrent wait_signal calls gets
the cap served and the rest a clear error, other clients keep theirs, and every watch is given back at the end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from fleetbus.dbus.signals import WatchLimits
from fleetbus.gateway import Caller
from fleetbus.runtime import Runtime

pytestmark = pytest.mark.sandbox

PER_CLIENT = 4
TOTAL = 10
WATCH = {"service": "org.freedesktop.DBus", "member": "NameOwnerChanged", "timeout": 3, "max_count": 1000}


async def wait_signal(runtime: Runtime, client: str) -> tuple[bool, str]:
    result = await runtime.registry.run(runtime.context(Caller(client)), "wait_signal", WATCH)
    return result.is_error, result.text


async def test_ten_times_a_clients_cap_of_watches(runtime: Runtime) -> None:
    runtime.gateway.watches = limits = WatchLimits(PER_CLIENT, TOTAL)
    flood = [asyncio.create_task(wait_signal(runtime, "flooder")) for _ in range(10 * PER_CLIENT)]
    # The refused answer at once; the admitted are waiting for their timeout.
    await asyncio.wait_for(_until(lambda: limits.held("flooder") == PER_CLIENT), 10)
    other = asyncio.create_task(wait_signal(runtime, "neighbour"))
    outcomes = await asyncio.gather(*flood)
    refused = [text for is_error, text in outcomes if is_error]
    assert len(refused) == 9 * PER_CLIENT
    assert all(f"flooder already holds {PER_CLIENT} signal watches" in text for text in refused)
    assert (await other)[0] is False
    assert limits.held() == 0


async def test_ten_times_the_total_cap_of_watches(runtime: Runtime) -> None:
    runtime.gateway.watches = limits = WatchLimits(PER_CLIENT, TOTAL)
    calls = [asyncio.create_task(wait_signal(runtime, f"client-{index}")) for index in range(10 * TOTAL)]
    outcomes = await asyncio.gather(*calls)
    served = [text for is_error, text in outcomes if not is_error]
    refused = [text for is_error, text in outcomes if is_error]
    assert len(served) == TOTAL
    assert all(f"already holds {TOTAL} signal watches for all clients" in text for text in refused)
    assert limits.held() == 0
    # The bus connection's rules for clients are all removed again.
    link = await runtime.gateway.hosts.link("local", "system")
    assert not link._client_rules


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 — a count in another object; the caller bounds it with wait_for
        await asyncio.sleep(0.02)
