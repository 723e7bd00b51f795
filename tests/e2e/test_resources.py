"""Resources over MCP stdio: the effective policy, the services of a bus (updated as names come and go, in both
protocol eras), and the introspection of any object through the dbus:// template."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated

from fleetbus.sandbox import Sandbox
from tests.e2e.client import serve
from tests.services.spawn import example_service

pytestmark = pytest.mark.sandbox

SERVICES = "dbus://system/services"


def text_of(result: types.ReadResourceResult) -> Any:
    content = result.contents[0]
    assert isinstance(content, types.TextResourceContents)
    return json.loads(content.text)


async def test_resources_list_read_and_template(sandbox: Sandbox) -> None:
    async with serve(sandbox, "legacy") as client:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        services = text_of(await client.read_resource(SERVICES))
        hostname1 = text_of(
            await client.read_resource("dbus://system/org.freedesktop.hostname1/org/freedesktop/hostname1")
        )
        with pytest.raises(MCPError, match="no service"):
            await client.read_resource("dbus://system/org.example.Nobody/")
        with pytest.raises(MCPError, match="expected dbus://"):
            await client.read_resource("dbus://system/not a name/x")
        with pytest.raises(MCPError, match="unknown resource"):
            await client.read_resource("file:///etc/shadow")
    assert {"policy://effective", SERVICES, "dbus://session/services"} <= listed
    assert "dbus://system/org.freedesktop.systemd1/org/freedesktop/systemd1" in listed  # a packed object
    assert templates == ["dbus://{bus}/{service}{+path}", "dbus://{bus}@{host}/{service}{+path}"]
    assert "org.freedesktop.hostname1" in {row["name"] for row in services["services"]}
    assert [i["name"] for i in hostname1["interfaces"]] == ["org.freedesktop.hostname1"]


class Updates:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.arrived = asyncio.Event()

    def note(self, kind: str) -> None:
        self.events.append(kind)
        self.arrived.set()

    async def handshake(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.note(f"updated:{message.params.uri}")
        elif isinstance(message, types.ResourceListChangedNotification):
            self.note("list_changed")

    async def until(self, wanted: set[str], timeout: float = 5) -> None:
        async def wait() -> None:
            while not wanted <= set(self.events):
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(wait(), timeout)


async def test_services_resource_updates_reach_handshake_era_subscribers(sandbox: Sandbox) -> None:
    updates = Updates()
    async with serve(sandbox, "legacy", messages=updates.handshake) as client:
        await client.session.subscribe_resource(SERVICES)
        with example_service(sandbox.system_bus_address, "com.example.ResourceWatch"):
            await updates.until({f"updated:{SERVICES}", "list_changed"})


async def test_services_resource_updates_reach_2026_listen_streams(sandbox: Sandbox) -> None:
    updates = Updates()
    server = serve(sandbox, "2026-07-28")
    async with (
        server as client,
        client.listen(resources_list_changed=True, resource_subscriptions=[SERVICES]) as stream,
    ):

        async def pump() -> None:
            async for event in stream:
                updates.note(f"updated:{event.uri}" if isinstance(event, ResourceUpdated) else "list_changed")

        task = asyncio.create_task(pump())
        try:
            with example_service(sandbox.system_bus_address, "com.example.ResourceListen"):
                await updates.until({f"updated:{SERVICES}", "list_changed"})
        finally:
            task.cancel()
