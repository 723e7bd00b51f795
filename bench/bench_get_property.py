"""Round-trip time of one property read (hostname1 `Hostname`) three ways, measured in one run on one sandbox:

  raw      dbus-fast on a persistent connection (the floor: what the library costs),
  fleetbus get_property through `fleetbus serve` over MCP stdio (SDK client, both protocol eras),
  busctl   `busctl get-property` as a process per read (what shelling out costs).

Prints medians and ratios. Run: python bench/bench_get_property.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from fleetbus.sandbox import Sandbox
from timing import ms, timed

SERVICE, PATH, INTERFACE, PROPERTY = (
    "org.freedesktop.hostname1",
    "/org/freedesktop/hostname1",
    "org.freedesktop.hostname1",
    "Hostname",
)


async def raw_dbus_fast(sandbox: Sandbox, calls: int) -> list[float]:
    bus = await MessageBus(bus_address=sandbox.system_bus_address).connect()
    message = dict(
        destination=SERVICE,
        path=PATH,
        interface="org.freedesktop.DBus.Properties",
        member="Get",
        signature="ss",
        body=[INTERFACE, PROPERTY],
    )

    async def once() -> None:
        reply = await bus.call(Message(**message))  # type: ignore[arg-type]
        assert reply.message_type == MessageType.METHOD_RETURN, reply.body

    try:
        return await timed(calls, once, warmup=20)
    finally:
        bus.disconnect()


async def fleetbus_stdio(sandbox: Sandbox, calls: int, era: str) -> list[float]:
    # The benchmark measures latency, not the rate limit, which would otherwise cap it at 100 reads/s.
    env = {**sandbox.env(), "PATH": os.environ["PATH"], "FLEETBUS_READ_RATE": "1000000"}
    server = StdioServerParameters(command=sys.executable, args=["-m", "fleetbus", "serve"], env=env)
    arguments = {"service": SERVICE, "path": PATH, "interface": INTERFACE, "property": PROPERTY}
    async with Client(server, mode=era) as client:

        async def once() -> None:
            result = await client.call_tool("get_property", arguments)
            assert not result.is_error, result.content

        return await timed(calls, once, warmup=20)


async def busctl(sandbox: Sandbox, calls: int) -> list[float]:
    argv = ["busctl", f"--address={sandbox.system_bus_address}", "get-property", SERVICE, PATH, INTERFACE, PROPERTY]

    async def once() -> None:
        await asyncio.to_thread(subprocess.run, argv, check=True, capture_output=True)

    return await timed(calls, once, warmup=3)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500, help="reads per library/MCP measurement")
    parser.add_argument("--busctl-calls", type=int, default=100, help="reads for the process-per-read measurement")
    args = parser.parse_args()

    with Sandbox.create(die_with_parent=True) as sandbox:
        medians = {
            "raw dbus-fast": ms(await raw_dbus_fast(sandbox, args.calls)),
            "fleetbus MCP stdio (legacy)": ms(await fleetbus_stdio(sandbox, args.calls, "legacy")),
            "fleetbus MCP stdio (2026-07-28)": ms(await fleetbus_stdio(sandbox, args.calls, "2026-07-28")),
            "busctl get-property": ms(await busctl(sandbox, args.busctl_calls)),
        }
    raw = medians["raw dbus-fast"]
    print(f"get_property hostname1 Hostname, median round trip ({args.calls} reads; busctl {args.busctl_calls})")
    for name, value in medians.items():
        print(f"  {name:<34} {value:8.3f} ms   {value / raw:6.1f}× raw")
    mcp = medians["fleetbus MCP stdio (legacy)"]
    print(f"  busctl / fleetbus MCP: {medians['busctl get-property'] / mcp:.1f}×")
    print(json.dumps({"median_ms": medians, "calls": args.calls}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
