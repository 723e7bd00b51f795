"""Cold start: from spawning the server to its answer to the first `tools/list` over stdio, the CPU time it took
to get there, and its RSS once started — fleetbus (`python -m fleetbus serve` on a sandbox's buses) against a bare
MCP SDK echo server (bench/echo_server.py, the floor: what Python and the SDK cost), measured alternately in one run.

The client is this script writing JSON-RPC lines to the server's stdin (initialize, initialized, tools/list at
once) and reading its stdout: no client library's start-up is counted. CPU seconds (user + system, from /proc) are
read at the answer: they move less than wall time when other work shares the cores. RSS is read once the server
has been idle for `--settle` seconds (background work started at start-up included).

`--compare SRC` also starts fleetbus from another checkout's `src` (e.g. the code before a change, unpacked with
`git archive COMMIT src | tar -x -C DIR`), so both are measured in the same run.

Run: python bench/bench_cold_start.py [--runs N] [--compare DIR/src]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fleetbus.sandbox import Sandbox

HERE = Path(__file__).resolve().parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
HANDSHAKE = b"".join(
    json.dumps(message).encode() + b"\n"
    for message in (
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "bench_cold_start", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    )
)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    # Fields after the command name (which may hold spaces, so split after its closing parenthesis).
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def read_answer(process: subprocess.Popen[bytes], request_id: int, deadline: float) -> dict[str, Any]:
    """The JSON-RPC response with `request_id` from the server's stdout (notifications and others skipped)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    buffer = b""
    while True:
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            message = json.loads(line)
            if message.get("id") == request_id:
                return dict(message)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError(f"no answer to request {request_id}")
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            raise EOFError(f"the server closed stdout before answering request {request_id}")
        buffer += chunk


def cold_start(argv: list[str], env: dict[str, str], settle: float) -> dict[str, float]:
    """Seconds to the tools/list answer, CPU seconds by then, RSS MiB after settling, tools listed."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert process.stdin is not None
        process.stdin.write(HANDSHAKE)
        process.stdin.flush()
        answer = read_answer(process, 2, time.monotonic() + 60)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(process.pid)
        tools = answer["result"]["tools"]
        time.sleep(settle)
        return {"seconds": elapsed, "cpu": cpu, "rss": rss_mib(process.pid), "tools": len(tools)}
    finally:
        if process.stdin is not None:
            process.stdin.close()  # end of input: the server stops
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="cold starts of each server (default 10)")
    parser.add_argument("--settle", type=float, default=1.0, help="idle seconds before RSS is read (default 1)")
    parser.add_argument("--compare", type=Path, metavar="SRC", help="also fleetbus from this src directory")
    args = parser.parse_args()
    with Sandbox.create(die_with_parent=True) as sandbox:
        env = {**sandbox.env(), "PATH": os.environ["PATH"]}
        servers = {
            "bare MCP SDK echo server": ([sys.executable, str(HERE / "echo_server.py")], {"PATH": os.environ["PATH"]}),
            "fleetbus serve (stdio)": ([sys.executable, "-m", "fleetbus", "serve"], env),
        }
        if args.compare:
            # PYTHONPATH comes before the editable install, so this checkout's fleetbus is the one imported.
            other = {**env, "PYTHONPATH": str(args.compare.resolve())}
            servers[f"fleetbus from {args.compare}"] = ([sys.executable, "-m", "fleetbus", "serve"], other)
        for argv, server_env in servers.values():
            cold_start(argv, server_env, 0)  # one unmeasured start each: the page cache holds the modules afterwards
        results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
        for _ in range(args.runs):
            for name, (argv, server_env) in servers.items():  # alternately: every server sees the same load
                results[name].append(cold_start(argv, server_env, args.settle))
    floor = {key: statistics.median(r[key] for r in results["bare MCP SDK echo server"]) for key in ("seconds", "cpu")}
    print(f"cold start to the first tools/list answer over stdio, median of {args.runs} (CPU seconds, RSS after start)")
    summary = {}
    for name, runs in results.items():
        median = {key: statistics.median(r[key] for r in runs) for key in ("seconds", "cpu", "rss")}
        summary[name] = {**{k: round(v, 3) for k, v in median.items()}, "tools": int(runs[0]["tools"])}
        print(
            f"  {name:<34} {median['seconds']:6.3f} s ({median['seconds'] / floor['seconds']:4.2f}× floor)"
            f"  CPU {median['cpu']:5.2f} s ({median['cpu'] / floor['cpu']:4.2f}×)"
            f"  RSS {median['rss']:5.1f} MiB  {int(runs[0]['tools'])} tools"
        )
    print(json.dumps({"runs": args.runs, "median": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
