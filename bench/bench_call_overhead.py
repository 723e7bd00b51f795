"""What fleetbus itself adds to one read: `get_property` (hostname1 `Hostname`) through `fleetbus serve` over MCP
stdio, against the two floors it stands on, measured in rounds in one run on one sandbox:

  raw Get     dbus-fast's `Properties.Get` on a persistent connection (what the D-Bus round trip costs), made by
              each client process in turn with its MCP calls, and — for reference — back to back in this process,
  echo        a bare MCP SDK server's `echo` tool (bench/echo_server.py: what the SDK and stdio cost),
  fleetbus    `get_property`: full schema validation, policy decision, rate limit, the audit record (and its
              journald copies), the D-Bus call, output shaping and hygiene, the MCP layer;

each MCP server driven by two clients: the SDK 2.x client (this venv) and the SDK 1.x client (installed on first
use into bench/.venv-mcp1). fleetbus's own cost per read = fleetbus − echo − raw Get in turn, per client.
Calls alternate (echo, fleetbus, raw Get: one call each in turn), so a busy machine weighs on all of them alike,
and the D-Bus round trip subtracted is made as fleetbus makes its own: after the bus and the service idled through
another call. Back to back they never idle, and a round trip then costs a third as much on this VM (0.24 against
0.6-0.8 ms, for dbus-daemon's and hostnamed's wake-ups, not for anything fleetbus does). Figures are medians of
every sample.

`--compare SRC` also serves fleetbus from another checkout's `src` (e.g. the code before a change, unpacked with
`git archive COMMIT src | tar -x -C DIR`) on a second sandbox, measured in the same rounds.

Run: python bench/bench_call_overhead.py [--calls N] [--rounds R] [--no-mcp1] [--compare DIR/src]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import venv
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
from dbus_fast.aio import MessageBus

from call_worker import raw_get
from fleetbus.sandbox import Sandbox
from timing import ms, timed

HERE = Path(__file__).resolve().parent
MCP1_VENV = HERE / ".venv-mcp1"
MCP1_PACKAGES = ("mcp==1.30.0", f"dbus-fast=={version('dbus-fast')}")  # the worker makes raw Gets too
COMPARED = "fleetbus --compare"
BACK_TO_BACK = "raw Get back to back"
IN_TURN = "raw Get"  # as call_worker.py names its in-turn Gets
SERVICE, PATH, INTERFACE, PROPERTY = (
    "org.freedesktop.hostname1",
    "/org/freedesktop/hostname1",
    "org.freedesktop.hostname1",
    "Hostname",
)


def ensure_mcp1() -> Path:
    python = MCP1_VENV / "bin" / "python"
    installed = MCP1_VENV / ".installed"
    if not installed.exists() or installed.read_text() != " ".join(MCP1_PACKAGES):
        venv.create(MCP1_VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *MCP1_PACKAGES], check=True)
        installed.write_text(" ".join(MCP1_PACKAGES))
    return python


def fleetbus_env(sandbox: Sandbox) -> dict[str, str]:
    # The rate limit would cap reads at 100/s: lifted, the benchmark measures latency, not the budget.
    return {
        **sandbox.env(),
        "PATH": os.environ["PATH"],
        "FLEETBUS_READ_RATE": "1000000",
        "FLEETBUS_READ_BURST": "1000000",
    }


def servers(sandbox: Sandbox, compare: tuple[Sandbox, Path] | None) -> dict[str, dict[str, Any]]:
    env = fleetbus_env(sandbox)
    chosen = {
        "echo": {
            "argv": [sys.executable, str(HERE / "echo_server.py")],
            "env": {"PATH": os.environ["PATH"]},
            "tool": "echo",
            "arguments": {"service": SERVICE, "path": PATH, "interface": INTERFACE, "property": PROPERTY},
        },
        "fleetbus": {
            "argv": [sys.executable, "-m", "fleetbus", "serve"],
            "env": env,
            "tool": "get_property",
            "arguments": {"service": SERVICE, "path": PATH, "interface": INTERFACE, "property": PROPERTY},
        },
    }
    if compare is not None:
        # On a sandbox of its own: the two servers' audit copies must not queue for one journald. PYTHONPATH comes
        # before the editable install, so that checkout's fleetbus is the one imported.
        other, src = compare
        chosen[COMPARED] = {**chosen["fleetbus"], "env": {**fleetbus_env(other), "PYTHONPATH": str(src.resolve())}}
    return chosen


class Worker:
    """A client process (bench/call_worker.py) connected to every server, making one round of calls per `round`."""

    def __init__(self, python: Path, config: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [str(python), str(HERE / "call_worker.py"), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit(f"the client {python} did not get ready")
        self.servers = {_server_name(child): child for child in psutil.Process(self.process.pid).children()}

    def round(self) -> tuple[dict[str, list[float]], dict[str, float]]:
        """Round trips per server, and each server's CPU seconds (user + system) over the round."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        before = {name: _cpu(server) for name, server in self.servers.items()}
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        samples = dict(json.loads(self.process.stdout.readline()))
        return samples, {name: _cpu(server) - before[name] for name, server in self.servers.items()}

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _server_name(process: psutil.Process) -> str:
    if any(part.endswith("echo_server.py") for part in process.cmdline()):
        return "echo"
    return COMPARED if "PYTHONPATH" in process.environ() else "fleetbus"


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="calls per measurement per round (default 300)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--no-mcp1", action="store_true", help="skip the SDK 1.x client")
    parser.add_argument("--compare", type=Path, metavar="SRC", help="also fleetbus from this src directory")
    args = parser.parse_args()
    clients = {"SDK 2.x client": Path(sys.executable)}
    if not args.no_mcp1:
        clients["SDK 1.x client"] = ensure_mcp1()
    samples: dict[str, list[float]] = {BACK_TO_BACK: []}
    cpu: dict[str, float] = {BACK_TO_BACK: 0.0}
    with contextlib.ExitStack() as sandboxes:
        sandbox = sandboxes.enter_context(Sandbox.create(die_with_parent=True))
        compare = (
            (sandboxes.enter_context(Sandbox.create(die_with_parent=True)), args.compare) if args.compare else None
        )
        target = {"address": sandbox.system_bus_address, "service": SERVICE, "path": PATH, "interface": INTERFACE}
        config = {
            "servers": servers(sandbox, compare),
            "raw_get": {**target, "property": PROPERTY},
            "calls": args.calls,
            "warmup": 50,
        }
        bus = await MessageBus(bus_address=sandbox.system_bus_address).connect()
        workers = {name: Worker(python, config) for name, python in clients.items()}
        try:
            for _ in range(args.rounds):
                started = time.process_time()
                samples[BACK_TO_BACK] += await timed(args.calls, raw_get(bus, config["raw_get"]), warmup=20)
                cpu[BACK_TO_BACK] += time.process_time() - started
                for client, worker in workers.items():
                    taken, spent = worker.round()
                    for server in taken:
                        samples.setdefault(f"{server} ({client})", []).extend(taken[server])
                    for server in spent:
                        cpu[f"{server} ({client})"] = cpu.get(f"{server} ({client})", 0.0) + spent[server]
        finally:
            for worker in workers.values():
                worker.close()
            bus.disconnect()
    medians = {name: ms(taken) for name, taken in samples.items()}
    # CPU milliseconds per call (raw Get: this process, which does nothing else meanwhile; warm-ups excluded): what
    # dbus-fast's side of a round trip costs the caller, which fleetbus's process pays too.
    cpu_ms = {name: spent * 1000 / len(samples[name]) for name, spent in cpu.items()}
    raw_cpu = cpu_ms[BACK_TO_BACK]
    print(f"one property read, median round trip ({args.rounds} rounds × {args.calls} calls)")
    print(f"  {'raw dbus-fast Get, back to back':<40} {medians[BACK_TO_BACK]:7.3f} ms")
    own = {}
    for client in clients:
        echo, fleetbus = medians[f"echo ({client})"], medians[f"fleetbus ({client})"]
        raw = medians[f"{IN_TURN} ({client})"]
        own[client] = fleetbus - echo - raw
        print(f"  {'raw dbus-fast Get in turn, ' + client:<40} {raw:7.3f} ms")
        print(f"  {'bare SDK echo server, ' + client:<40} {echo:7.3f} ms")
        print(f"  {'fleetbus get_property, ' + client:<40} {fleetbus:7.3f} ms   ({fleetbus / echo:4.2f}× echo)")
        print(f"  {'  fleetbus own cost (− echo − raw Get)':<40} {own[client]:7.3f} ms")
        own_cpu = cpu_ms[f"fleetbus ({client})"] - cpu_ms[f"echo ({client})"] - raw_cpu
        print(
            f"  {'  server CPU per call':<40} echo {cpu_ms[f'echo ({client})']:.3f} ms, fleetbus "
            f"{cpu_ms[f'fleetbus ({client})']:.3f} ms, raw Get {raw_cpu:.3f} ms: own {own_cpu:.3f} ms"
        )
        if args.compare:
            other = medians[f"{COMPARED} ({client})"]
            own[f"{client}, {args.compare}"] = other - echo - raw
            print(f"  {'fleetbus from ' + str(args.compare) + ', ' + client:<40} {other:7.3f} ms")
            print(f"  {'  its own cost (− echo − raw Get)':<40} {other - echo - raw:7.3f} ms")
            other_cpu = cpu_ms[f"{COMPARED} ({client})"] - cpu_ms[f"echo ({client})"] - raw_cpu
            print(
                f"  {'  its server CPU per call':<40} {cpu_ms[f'{COMPARED} ({client})']:.3f} ms: own {other_cpu:.3f} ms"
            )
    summary = {"median_ms": medians, "cpu_ms_per_call": cpu_ms, "fleetbus_own_ms": own}
    print(json.dumps({**summary, "calls": args.calls, "rounds": args.rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
