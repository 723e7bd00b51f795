"""`get_property` (hostname1 `Hostname`) over Streamable HTTP with a bearer token, on one sandbox:

  throughput and latency  sustained calls/s and p50/p99 with 1, 4 and 16 concurrent clients (one session each),
  memory                  the server's RSS after 100 calls and after 10,000, on one server process.

Every call is a real one: token check, scope and policy decision, rate limit (lifted here: the benchmark measures
the server, not the budget), two audit records and their journald copies, the D-Bus round trip.
Clients and server share the machine's cores, so the figures are for both together.

Run: python bench/bench_http.py [--calls N] [--era legacy|2026-07-28]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx2
import psutil
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from fleetbus.sandbox import Sandbox
from timing import percentile

ARGUMENTS = {
    "service": "org.freedesktop.hostname1",
    "path": "/org/freedesktop/hostname1",
    "interface": "org.freedesktop.hostname1",
    "property": "Hostname",
}
LEVELS = (1, 4, 16)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(sandbox: Sandbox, state: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    env = {
        **sandbox.env(),
        "PATH": os.environ["PATH"],
        "FLEETBUS_STATE_DIR": str(state),
        "FLEETBUS_READ_RATE": "1000000",
        "FLEETBUS_READ_BURST": "1000000",
    }
    minted = subprocess.run(
        [sys.executable, "-m", "fleetbus", "token", "mint", "--name", "bench", "--scopes", "read"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "fleetbus", "serve", "--transport", "http", "--listen", f"127.0.0.1:{port}"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        server.kill()
        raise SystemExit("the server did not start listening")
    return server, f"http://127.0.0.1:{port}/mcp", minted.stdout.strip()


async def clients(stack: AsyncExitStack, url: str, token: str, era: str, count: int) -> list[Client]:
    opened = []
    for _ in range(count):
        http = await stack.enter_async_context(httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}))
        client = await stack.enter_async_context(Client(streamable_http_client(url, http_client=http), mode=era))
        await client.list_tools()  # the SDK checks results against output schemas it has listed
        opened.append(client)
    return opened


async def call_many(connected: list[Client], total: int) -> tuple[float, list[float]]:
    """`total` calls spread over the clients, each client one call at a time; (wall seconds, latencies)."""
    samples: list[float] = []

    async def one_client(client: Client, calls: int) -> None:
        for _ in range(calls):
            started = time.perf_counter()
            result = await client.call_tool("get_property", ARGUMENTS)
            samples.append(time.perf_counter() - started)
            assert not result.is_error, result.content

    share = total // len(connected)
    started = time.perf_counter()
    await asyncio.gather(*(one_client(client, share) for client in connected))
    return time.perf_counter() - started, samples


async def worker(url: str, token: str, era: str, calls: int) -> None:
    """One client in a process of its own (so clients do not share one Python's CPU): connect, say "ready", wait
    for "go", make `calls` calls, print the start, the end and every latency as JSON."""
    async with AsyncExitStack() as stack:
        (client,) = await clients(stack, url, token, era, 1)
        await call_many([client], 20)  # warm up
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        started = time.time()
        _, samples = await call_many([client], calls)
        print(json.dumps({"started": started, "ended": time.time(), "samples": samples}), flush=True)


async def throughput(url: str, token: str, era: str, calls: int) -> None:
    print(f"get_property over HTTP ({era}), {calls} calls per level, one process per client")
    print(f"{'clients':>7}  {'calls/s':>8}  {'p50 ms':>7}  {'p99 ms':>7}")
    for level in LEVELS:
        command = [sys.executable, __file__, "--worker", url, token, era, str(calls // level)]
        workers = [
            subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220
            for _ in range(level)
        ]
        for process in workers:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        for process in workers:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        reports = []
        for process in workers:
            assert process.stdout is not None
            reports.append(json.loads(process.stdout.readline()))
            process.wait(timeout=60)
        samples = [s for report in reports for s in report["samples"]]
        wall = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
        print(
            f"{level:>7}  {len(samples) / wall:>8.0f}  {statistics.median(samples) * 1000:>7.2f}  "
            f"{percentile(samples, 0.99) * 1000:>7.2f}"
        )


async def memory(url: str, token: str, era: str, pid: int) -> None:
    """RSS after 100 calls (the baseline), after 10,000, and after 20,000 — the last shows whether growth goes on."""
    process = psutil.Process(pid)
    marks = {}
    async with AsyncExitStack() as stack:
        connected = await clients(stack, url, token, era, 16)
        done = 0
        for mark in (100, 10_000, 20_000):
            batch = (mark - done) // 16 * 16
            await call_many(connected, batch)
            await call_many(connected[:1], mark - done - batch)
            done = mark
            marks[mark] = process.memory_info().rss / 2**20
    first, second = marks[10_000] - marks[100], marks[20_000] - marks[10_000]
    print(
        f"server RSS after 100 calls {marks[100]:.1f} MiB, after 10,000 {marks[10_000]:.1f} MiB ({first:+.1f}), "
        f"after 20,000 {marks[20_000]:.1f} MiB ({second:+.1f})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=4000, help="calls per concurrency level (default 4000)")
    parser.add_argument("--era", default="legacy", choices=["legacy", "2026-07-28"])
    parser.add_argument("--worker", nargs=4, metavar=("URL", "TOKEN", "ERA", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        url, token, era, calls = args.worker
        await worker(url, token, era, int(calls))
        return
    with Sandbox.create(die_with_parent=True) as sandbox, TemporaryDirectory() as scratch:
        # Memory first, on a fresh server: RSS after 100 calls is the baseline the 10,000 are compared with.
        for measure in ("memory", "throughput"):
            server, url, token = start_server(sandbox, Path(scratch) / measure)
            try:
                if measure == "memory":
                    await memory(url, token, args.era, server.pid)
                else:
                    await throughput(url, token, args.era, args.calls)
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)


if __name__ == "__main__":
    asyncio.run(main())
