"""What a host's figures cost when its host is remote: HostFigures over one persistent SSH connection to a
simulated host, against the same snapshot of this machine (in-process /proc reads) in the same run.

  runner `true`      one command over the connection: the floor of any remote read,
  system             load, CPU, memory, disks, pressure (warm: a CPU sample of the last seconds at hand),
  identity           boot id, uptime, hostname, os-release,
  processes memory   every process's status and cmdline (find + grep remotely),
  network            ip -j addr, ss -Htuanp.

Prints medians and each remote figure as a multiple of the local one and of the runner floor.
Run: python bench/bench_remote_figures.py [--calls N]   (needs root: it starts a simulated host)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from fleetbus.executors.host_facts import HostFacts
from fleetbus.hosts.ssh import SshHost, SshTarget
from fleetbus.sandbox import Sandbox
from timing import ms, timed

SNAPSHOTS: dict[str, tuple[str, dict[str, Any]]] = {
    "system": ("system", {}),
    "identity": ("identity", {}),
    "processes memory": ("processes", {"sort": "memory", "limit": 10}),
    "network": ("network", {}),
}


async def measure(sandbox: Sandbox, calls: int) -> dict[str, float]:
    assert sandbox.fleet is not None
    paths = sandbox.fleet.paths
    host = SshHost(SshTarget("host01", config=(paths.ssh_config,), known_hosts=(paths.known_hosts,)))
    connection = await host.connect()
    local, remote = HostFacts.local(), HostFacts.remote(connection.runner)
    medians: dict[str, float] = {}
    try:

        async def floor() -> None:
            await connection.runner.run(["true"], timeout=10, max_bytes=1024)

        medians["runner true"] = ms(await timed(calls, floor, warmup=3))
        for label, (name, params) in SNAPSHOTS.items():
            for where, facts in (("local", local), ("remote", remote)):

                async def once(facts: HostFacts = facts, name: str = name, params: dict[str, Any] = params) -> None:
                    await facts.figures.snapshot(name, params, timeout=20)

                medians[f"{label} {where}"] = ms(await timed(calls, once, warmup=3))
    finally:
        local.close()
        await host.close()
    return medians


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    with Sandbox.create(hosts=1, die_with_parent=True) as sandbox:
        medians = await measure(sandbox, args.calls)
    floor = medians["runner true"]
    print(f"median per snapshot ({args.calls} calls each), host01 over one SSH connection vs this machine")
    print(f"  {'runner true':<22} {floor:9.2f} ms")
    for label in SNAPSHOTS:
        here, there = medians[f"{label} local"], medians[f"{label} remote"]
        print(
            f"  {label:<22} local {here:8.2f} ms   remote {there:8.2f} ms   "
            f"{there / here:7.1f}× local   {there / floor:5.2f}× runner true"
        )
    print(json.dumps({"median_ms": medians, "calls": args.calls}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
