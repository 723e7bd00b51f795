"""Toolsets over MCP, both protocol eras: a client enables one, hears list_changed, and sees its tools next
time it lists — and a tool of a toolset nobody enabled still answers when called by name."""

from __future__ import annotations

import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e.client import ERAS, call, serve, text
from tests.e2e.test_packs_live import Heard, listening

pytestmark = pytest.mark.sandbox


@pytest.mark.parametrize("era", ERAS)
async def test_enabling_a_toolset_lists_its_tools_and_tells_the_client(sandbox: Sandbox, era: str) -> None:
    heard = Heard()
    async with serve(sandbox, era, messages=heard.handshake) as client, listening(client, era, heard):
        before = {tool.name for tool in (await client.list_tools()).tools}
        assert "host_info" not in before
        direct = await call(client, "host_info")  # not listed, still callable by name
        assert not direct.is_error, text(direct)
        enabled = await call(client, "enable_toolset", toolset="host")
        assert not enabled.is_error, text(enabled)
        await heard.wait(timeout=3)
        after = {tool.name for tool in (await client.list_tools()).tools}
        assert {"host_info", "network_status", "time_status", "list_sessions"} <= after
        assert len(after) <= 40
        found = await call(client, "find_tools", query="listening sockets")
        assert not found.is_error, text(found)
        assert found.structured_content is not None
        assert found.structured_content["tools"][0]["name"] == "network_status"
        assert found.structured_content["tools"][0]["listed"] is True
        unknown = await call(client, "enable_toolset", toolset="hots")
        assert unknown.is_error
        assert "unknown toolset 'hots'; toolsets: core, bus, units, host, guard" in text(unknown)
