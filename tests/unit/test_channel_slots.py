"""A connection's channels are capped: callers past the cap wait their turn, within their own deadline."""

from __future__ import annotations

import asyncio

import pytest

from fleetbus.hosts.channels import ChannelSlots
from fleetbus.hosts.errors import RemoteTimeout


async def test_a_caller_past_the_cap_waits_for_a_free_slot() -> None:
    slots = ChannelSlots("web01", 2)
    order: list[str] = []

    async def hold(name: str, seconds: float) -> None:
        async with slots.slot(5):
            order.append(f"{name} in")
            await asyncio.sleep(seconds)
        order.append(f"{name} out")

    first = asyncio.create_task(hold("a", 0.2))
    second = asyncio.create_task(hold("b", 0.2))
    await asyncio.sleep(0.05)
    assert slots.in_use == 2
    await hold("c", 0)
    await asyncio.gather(first, second)
    assert order.index("c in") > order.index("a out")
    assert slots.in_use == 0


async def test_a_caller_that_waits_past_its_deadline_is_told_the_channels_were_busy() -> None:
    slots = ChannelSlots("web01", 1)
    async with slots.slot(1):
        with pytest.raises(RemoteTimeout, match=r"^web01: all 1 SSH channels .* busy for 0.1 s"):
            async with slots.slot(0.1):
                pass
    async with slots.slot(0.1):  # the slot that timed out was never taken
        assert slots.in_use == 1


def test_a_connection_needs_one_channel_at_least() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ChannelSlots("web01", 0)
