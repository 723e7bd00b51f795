"""One MCP client in a process of its own, for bench_call_overhead.py: it connects to every server it is given (over
stdio, with the SDK's `ClientSession`, whose API the 1.x and 2.x SDKs share), says "ready", then for each "go" line
on stdin makes `calls` timed calls to each server, one server after the other, and prints one JSON line
{server: [seconds…]}.

With `raw_get` in the config it also makes dbus-fast's `Properties.Get` on a persistent connection as one more
"server" in the same turn: a D-Bus round trip under the conditions fleetbus's own is made in (dbus-daemon and the
service idle while the other servers answer, as they do before each fleetbus call), not in a tight loop that
keeps them awake.

It runs under this project's venv (the 2.x client) or bench/.venv-mcp1 (the 1.x client, with dbus-fast added), so
it imports nothing of fleetbus. Run by bench_call_overhead.py: python bench/call_worker.py CONFIG_JSON
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main(config: dict[str, Any]) -> None:
    async with AsyncExitStack() as stack:
        sessions = {}
        for name, server in config["servers"].items():
            parameters = StdioServerParameters(command=server["argv"][0], args=server["argv"][1:], env=server["env"])
            read, write = await stack.enter_async_context(stdio_client(parameters))
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            await session.list_tools()  # the SDK checks results against the output schemas it has listed
            sessions[name] = session

        def tool_call(name: str) -> Callable[[], Awaitable[None]]:
            server = config["servers"][name]

            async def call() -> None:
                result = await sessions[name].call_tool(server["tool"], server["arguments"])
                # 2.x says is_error, 1.x isError.
                if getattr(result, "is_error", None) or getattr(result, "isError", None):
                    raise SystemExit(f"{name}: {server['tool']} failed: {result.content}")

            return call

        calls = {name: tool_call(name) for name in sessions}
        if "raw_get" in config:
            bus = await MessageBus(bus_address=config["raw_get"]["address"]).connect()
            calls[RAW_GET] = raw_get(bus, config["raw_get"])
        for call in calls.values():
            for _ in range(config["warmup"]):
                await call()
        print("ready", flush=True)
        while await asyncio.to_thread(sys.stdin.readline):
            samples: dict[str, list[float]] = {name: [] for name in calls}
            # One call to each server in turn: every server's samples are taken under the same load, however
            # the machine's load drifts during the round.
            for _ in range(config["calls"]):
                for name, taken in samples.items():
                    started = time.perf_counter()
                    await calls[name]()
                    taken.append(time.perf_counter() - started)
            print(json.dumps(samples), flush=True)


RAW_GET = "raw Get"


def raw_get(bus: MessageBus, target: dict[str, str]) -> Callable[[], Awaitable[None]]:
    """dbus-fast's Properties.Get of `target` on `bus`, one call per await (bench_call_overhead.py times it too)."""

    async def call() -> None:
        reply = await bus.call(
            Message(
                destination=target["service"],
                path=target["path"],
                interface="org.freedesktop.DBus.Properties",
                member="Get",
                signature="ss",
                body=[target["interface"], target["property"]],
            )
        )
        if reply.message_type != MessageType.METHOD_RETURN:
            raise SystemExit(f"raw Get failed: {reply.body}")

    return call


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
