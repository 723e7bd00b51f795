"""Progress of a fan-out reaches a real MCP client in both protocol eras: a low-level SDK server whose tool fans
out over simulated hosts (async sleeps) and reports through `report_to(ctx.session)` — in process, and over
stdio in a child process (JSON-RPC framing, the real `notifications/progress`)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

from fleetbus.tools.fanout.engine import fan_out
from fleetbus.tools.fanout.progress import report_to

HOSTS = [f"host{n:02d}" for n in range(1, 6)]
ERAS = ["legacy", "2026-07-28"]
ROOT = Path(__file__).resolve().parents[2]


def fanout_server() -> Server[Any]:
    async def list_tools(ctx: ServerRequestContext[Any], params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[types.Tool(name="ping_fleet", input_schema={"type": "object", "properties": {}})]
        )

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        async def one(host: str) -> str:
            await asyncio.sleep(0.01 * int(host[-2:]))
            if host == "host04":
                raise ConnectionError("no route")
            return "pong"

        result = await fan_out(HOSTS, one, per_host_deadline=5, on_done=report_to(ctx.session))
        text = ",".join(f"{o.host}={o.value or o.kind}" for o in result.outcomes)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    return Server("fanout-test", on_list_tools=list_tools, on_call_tool=call_tool)


async def _serve_stdio() -> None:
    server = fanout_server()
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def _stdio() -> StdioServerParameters:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    return StdioServerParameters(command=sys.executable, args=[__file__], env=env, cwd=str(ROOT))


@pytest.mark.parametrize("over", ["in-process", "stdio"])
@pytest.mark.parametrize("era", ERAS)
async def test_one_progress_notification_per_finished_host(era: str, over: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []
    all_seen = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))
        if len(seen) == len(HOSTS):
            all_seen.set()

    async with Client(fanout_server() if over == "in-process" else _stdio(), mode=era) as client:
        result = await client.call_tool("ping_fleet", {}, progress_callback=on_progress)
        # Notifications travel ahead of the response, but give a loaded machine a moment, with a deadline.
        await asyncio.wait_for(all_seen.wait(), 5)
    assert "host04=error" in result.content[0].text  # type: ignore[union-attr]
    assert [p for p, _, _ in seen] == [1, 2, 3, 4, 5]
    assert {t for _, t, _ in seen} == {5}
    assert sorted(m or "" for _, _, m in seen) == [
        "host01: ok",
        "host02: ok",
        "host03: ok",
        "host04: error",
        "host05: ok",
    ]


@pytest.mark.parametrize("era", ERAS)
async def test_without_a_progress_token_nothing_is_sent_and_the_call_works(era: str) -> None:
    async with Client(fanout_server(), mode=era) as client:
        result = await client.call_tool("ping_fleet", {})
    assert result.content[0].text.count("=pong") == 4  # type: ignore[union-attr]


async def test_a_session_that_cannot_send_does_not_fail_the_fan_out() -> None:
    class Gone:
        calls = 0

        async def report_progress(
            self, progress: float, total: float | None = None, message: str | None = None
        ) -> None:
            Gone.calls += 1
            raise BrokenPipeError("client gone")

    async def one(host: str) -> str:
        return host

    result = await fan_out(HOSTS, one, per_host_deadline=1, on_done=report_to(Gone()))
    assert all(o.ok for o in result.outcomes)
    assert Gone.calls == 1  # the first failure stops further attempts
    assert report_to(None) is None


if __name__ == "__main__":
    anyio.run(_serve_stdio)
