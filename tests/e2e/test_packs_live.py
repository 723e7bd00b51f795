"""Tool packs follow the bus: a service that appears gets tools within a second and connected clients hear
`list_changed` (handshake-era sessions and 2026-07-28 listen streams); calls through the new tools return the
service's answers; when the service goes, its tools go and clients hear it again."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
import pytest
from mcp import Client

from fleetbus.sandbox import Sandbox
from fleetbus.tools.packs import snake
from tests.e2e.client import call, serve, text
from tests.services.spawn import example_service

pytestmark = pytest.mark.sandbox


class Heard:
    """Counts tools/list_changed notifications, however they arrive."""

    def __init__(self) -> None:
        self.count = 0
        self.event = asyncio.Event()

    def hear(self) -> None:
        self.count += 1
        self.event.set()

    async def handshake(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.hear()

    async def wait(self, timeout: float) -> None:
        await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()

    async def wait_beyond(self, count: int, timeout: float) -> None:
        """Until more than `count` notifications were heard: one already heard must not stand in for the next
        (a burst can bring two, and the tool list changes a moment before its notification goes out)."""
        async with asyncio.timeout(timeout):
            while self.count <= count:
                await self.wait(timeout)


@asynccontextmanager
async def listening(client: Client, era: str, heard: Heard) -> AsyncIterator[None]:
    if era == "legacy":
        yield  # the session's message handler hears the notifications
        return
    async with client.listen(tools_list_changed=True) as subscription:

        async def pump() -> None:
            async for _event in subscription:
                heard.hear()

        task = asyncio.create_task(pump())
        try:
            yield
        finally:
            task.cancel()


async def wait_for_tools(client: Client, present: Callable[[set[str]], bool], timeout: float) -> float:
    started = time.monotonic()
    while True:
        names = {tool.name for tool in (await client.list_tools()).tools}
        if present(names):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"tools did not change within {timeout} s: {sorted(names)}")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_a_service_coming_and_going_changes_the_tools_and_clients_hear_it(sandbox: Sandbox, era: str) -> None:
    name = f"com.example.Live{era.replace('-', '')}"
    prefix = f"example_{snake(name.rsplit('.', 1)[-1])}"
    packs = json.dumps([{"name": "example", "service": "com.example.Live*"}])
    heard = Heard()
    # A roomy budget: this is about following the bus; the default list's size is tested on its own.
    roomy = serve(sandbox, era, messages=heard.handshake, packs=packs, tool_budget="200", tool_budget_chars="200000")
    async with roomy as client, listening(client, era, heard):
        before = {tool.name for tool in (await client.list_tools()).tools}
        assert not any(n.startswith(prefix) for n in before)
        with example_service(sandbox.system_bus_address, name):
            appeared = await wait_for_tools(client, lambda names: f"{prefix}_add_pair" in names, timeout=5)
            assert appeared < 1.0, f"tools appeared after {appeared:.2f} s"
            await heard.wait(timeout=2)
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert {f"{prefix}_echo", f"{prefix}_describe", f"{prefix}_add_pair", f"{prefix}_checksum"} <= set(tools)
            assert tools[f"{prefix}_add_pair"].input_schema["required"] == ["pair"]

            pair = await call(client, f"{prefix}_add_pair", pair=[3, 4])
            echo = await call(client, f"{prefix}_echo", text="héllo")
            described = await call(
                client, f"{prefix}_describe", options={"colour": "blue", "size": {"signature": "u", "value": 7}}
            )
            checksum = await call(client, f"{prefix}_checksum", data="AQID")  # base64 of bytes 1, 2, 3
        for result in (pair, echo, described, checksum):
            assert not result.is_error, text(result)
        assert pair.structured_content == {"arg0": [7, 12]}
        assert echo.structured_content == {"arg0": "héllo"}
        assert described.structured_content == {"arg0": ["2 options", {"colour": "blue", "size": 7}]}
        assert checksum.structured_content == {"arg0": [6, "AwIB"]}

        count = heard.count
        gone = await wait_for_tools(client, lambda names: f"{prefix}_add_pair" not in names, timeout=5)
        assert gone < 1.0, f"tools lingered {gone:.2f} s"
        await heard.wait_beyond(count, timeout=2)
