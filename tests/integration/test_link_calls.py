"""BusLink.call's deadline is a timer on the reply: a call out of time is not sent, a call that times out or is
cancelled leaves no reply handler behind in dbus-fast (one per call would pile up against a peer that never
answers), and the link goes on working after both. The peer that never answers: hostnamed, stopped (SIGSTOP)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from fleetbus.dbus.errors import CallTimeout
from fleetbus.dbus.link import PROPERTIES, BusLink
from fleetbus.runtime import Runtime

pytestmark = pytest.mark.sandbox
HOSTNAME1 = ("org.freedesktop.hostname1", "/org/freedesktop/hostname1")


async def get_hostname(link: BusLink, timeout: float) -> object:
    reply = await link.call(*HOSTNAME1, PROPERTIES, "Get", "ss", [HOSTNAME1[0], "Hostname"], timeout=timeout)
    return reply.body[0]


def handlers(link: BusLink) -> int:
    bus = link._require_bus()
    return len(bus._method_return_handlers)


@contextmanager
def silent(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def hostnamed_pid(link: BusLink) -> int:
    await get_hostname(link, 5)  # started (bus-activated) and answering
    reply = await link.call_bus("GetConnectionUnixProcessID", "s", HOSTNAME1[0])
    return int(reply.body[0])


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan")])
async def test_a_call_with_no_time_left_is_not_sent(runtime: Runtime, timeout: float) -> None:
    link = await runtime.gateway.hosts.link("local", "system")
    before = handlers(link)
    with pytest.raises(CallTimeout, match="no time left"):
        await get_hostname(link, timeout)
    assert handlers(link) == before


async def test_a_call_that_times_out_or_is_cancelled_leaves_no_handler(runtime: Runtime) -> None:
    link = await runtime.gateway.hosts.link("local", "system")
    pid = await hostnamed_pid(link)
    before = handlers(link)
    with silent(pid):
        with pytest.raises(CallTimeout, match=r"no reply within 0\.2 s"):
            await get_hostname(link, 0.2)
        assert handlers(link) == before
        waiting = asyncio.create_task(get_hostname(link, 30))
        await asyncio.sleep(0.1)
        assert handlers(link) == before + 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert handlers(link) == before
    assert await get_hostname(link, 5), "the link works on, and late replies are ignored"
    await asyncio.sleep(0.1)
    assert handlers(link) == before
