"""What deciding on a unit job costs, on one sandbox in one run: the median time of the gateway's decision
(`Gateway.assess`, the unit graph reads and their audit record included) for

  restart   RestartUnit of a web service that requires a database, on a manager running 30 other services,
  stop      StopUnit of basic.target (every service requires it: the largest take-down there is),

against one reference measured in the same run: a single method call on the same connection (GetUnit), so the
figures read as "so many bus round trips". The script uses only APIs every fleetbus version has, so the same
run against an older checkout (PYTHONPATH=OLD/src) gives the "before" figures.

Run: python bench/bench_unit_decision.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from fleetbus.config import load_settings
from fleetbus.gateway import dbus_call
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from timing import ms, timed

SD, PATH, MANAGER = "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"
APPS = 30


def install(sandbox: Sandbox) -> None:
    sandbox.write_unit("bench-db.service", "[Service]\nExecStart=/bin/sleep infinity\n")
    sandbox.write_unit(
        "bench-web.service",
        "[Unit]\nRequires=bench-db.service\nAfter=bench-db.service\n[Service]\nExecStart=/bin/sleep infinity\n",
    )
    for index in range(APPS):
        sandbox.write_unit(f"bench-app-{index}.service", "[Service]\nExecStart=/bin/sleep infinity\n")
    for unit in ("bench-web.service", *(f"bench-app-{i}.service" for i in range(APPS))):
        sandbox.systemd("StartUnit", "ss", unit, "replace")


async def measure(sandbox: Sandbox, state: Path, calls: int) -> dict[str, float]:
    settings = load_settings(
        system_bus=sandbox.system_bus_address,
        session_bus=sandbox.session_bus_address,
        state_dir=state,
        safety="admin",
        audit_journal=False,
    )
    runtime = Runtime.build(settings)
    try:
        gateway = runtime.gateway
        link = await gateway.hosts.link("local", "system")
        restart = dbus_call(SD, PATH, MANAGER, "RestartUnit", "ss", ["bench-web.service", "replace"], host="local")
        stop = dbus_call(SD, PATH, MANAGER, "StopUnit", "ss", ["basic.target", "replace"], host="local")

        async def one_call() -> None:
            await link.call(SD, PATH, MANAGER, "GetUnit", "s", ["bench-web.service"], timeout=5)

        async def decide_restart() -> None:
            await gateway.assess(restart)

        async def decide_stop() -> None:
            await gateway.assess(stop)

        return {
            "reference": ms(await timed(calls, one_call, warmup=20)),
            "restart": ms(await timed(calls, decide_restart, warmup=5)),
            "stop": ms(await timed(calls, decide_stop, warmup=5)),
        }
    finally:
        runtime.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with Sandbox.create(die_with_parent=True) as sandbox, tempfile.TemporaryDirectory() as state:
        install(sandbox)
        figures = await measure(sandbox, Path(state), args.calls)
    reference = figures["reference"]
    print(f"median of {args.calls} decisions, ms (reference: one GetUnit round trip, {reference:.3f} ms)")
    print(f"  restart decision  {figures['restart']:8.3f} ms   {figures['restart'] / reference:6.1f}x reference")
    print(f"  stop basic.target {figures['stop']:8.3f} ms   {figures['stop'] / reference:6.1f}x reference")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
