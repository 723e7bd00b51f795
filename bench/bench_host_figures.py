"""What the host-figure tools cost per call, against `get_property` measured in the same run on the same server:

  get_property      hostname1 `Hostname` through `fleetbus serve` over MCP stdio: the reference, one bus read
                    plus fleetbus's own per-call cost,
  system_status     load, CPU, memory, swap, disks and pressure of the host,
  top_processes     sort=memory (no CPU sampling window),
  health_check      the one-call triage (ListUnits, restart counters of running services, host figures).

Prints medians and each as a multiple of get_property. Run: python bench/bench_host_figures.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from fleetbus.sandbox import Sandbox
from timing import ms, timed

PROPERTY = {
    "service": "org.freedesktop.hostname1",
    "path": "/org/freedesktop/hostname1",
    "interface": "org.freedesktop.hostname1",
    "property": "Hostname",
}


async def measure(sandbox: Sandbox, calls: int, triage_calls: int) -> dict[str, float]:
    # Latency, not the rate limit (100 reads/s by default), is what is measured.
    env = {**sandbox.env(), "PATH": os.environ["PATH"], "FLEETBUS_READ_RATE": "1000000"}
    server = StdioServerParameters(command=sys.executable, args=["-m", "fleetbus", "serve"], env=env)
    async with Client(server, mode="legacy") as client:

        def calling(tool: str, arguments: dict[str, Any]) -> Any:
            async def once() -> None:
                result = await client.call_tool(tool, arguments)
                assert not result.is_error, result.content

            return once

        # Interleaved rounds, so a slow moment of the machine (2 cores, shared) falls on every tool alike.
        samples: dict[str, list[float]] = {"get_property": [], "system_status": [], "top_processes sort=memory": []}
        arguments = {"get_property": PROPERTY, "system_status": {}, "top_processes sort=memory": {"sort": "memory"}}
        for _ in range(10):
            for name, args in arguments.items():
                tool = name.split()[0]
                samples[name] += await timed(calls // 10, calling(tool, args), warmup=2)
        samples["health_check"] = await timed(triage_calls, calling("health_check", {}), warmup=2)
    return {name: ms(values) for name, values in samples.items()}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="calls per tool (health_check: --triage-calls)")
    parser.add_argument("--triage-calls", type=int, default=30, help="health_check calls")
    args = parser.parse_args()
    with Sandbox.create(die_with_parent=True) as sandbox:
        medians = await measure(sandbox, args.calls, args.triage_calls)
    reference = medians["get_property"]
    print(f"median round trip over MCP stdio ({args.calls} calls each; health_check {args.triage_calls})")
    for name, value in medians.items():
        print(f"  {name:<28} {value:8.3f} ms   {value / reference:6.2f}× get_property")
    print(json.dumps({"median_ms": medians, "calls": args.calls, "triage_calls": args.triage_calls}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
