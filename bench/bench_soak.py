"""Soak: 16 HTTP clients (one session each) make a fixed number of `get_property` calls against one
`fleetbus serve --transport http` on a sandbox; the server's RSS and open fds are printed at the start (after a
warm-up), in the middle and at the end. Growth after warm-up must stay within 5 MiB and the fds must come back to
the start figure: what a client can make the server hold is bounded, and a normal load leaks nothing.

Run: python bench/bench_soak.py [--calls 20000] [--clients 16]
(tests/e2e/test_soak.py runs the same with a short count, marked slow.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx2
import psutil
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ARGUMENTS = {
    "service": "org.freedesktop.hostname1",
    "path": "/org/freedesktop/hostname1",
    "interface": "org.freedesktop.hostname1",
    "property": "Hostname",
}
MiB = 2**20
RSS_GROWTH_LIMIT = 5 * MiB
WARMUP_CALLS = 50
"""Per client, before the start figure: imports, caches, the allocator's first arenas."""


class SoakFailed(Exception):
    pass


@dataclass(frozen=True)
class Mark:
    name: str
    calls: int
    rss: int
    fds: int

    def line(self) -> str:
        return f"{self.name:>6}: {self.calls:>6} calls  RSS {self.rss / MiB:7.1f} MiB  fds {self.fds}"


@dataclass(frozen=True)
class Soak:
    marks: tuple[Mark, ...]
    seconds: float
    fds_settled: int
    """Open fds at the end once connections closing at that moment are gone (≤ 5 s)."""

    @property
    def growth(self) -> int:
        return self.marks[-1].rss - self.marks[0].rss

    def problems(self) -> list[str]:
        found = []
        if self.growth > RSS_GROWTH_LIMIT:
            found.append(f"RSS grew {self.growth / MiB:.1f} MiB after warm-up (limit {RSS_GROWTH_LIMIT / MiB:.0f})")
        if self.fds_settled > self.marks[0].fds:
            found.append(f"{self.fds_settled} fds at the end, {self.marks[0].fds} at the start")
        return found

    def report(self) -> str:
        total = self.marks[-1].calls
        lines = [mark.line() for mark in self.marks]
        lines.append(
            f"{total} calls in {self.seconds:.1f} s ({total / self.seconds:.0f}/s); RSS growth after warm-up "
            f"{self.growth / MiB:+.1f} MiB (limit {RSS_GROWTH_LIMIT / MiB:.0f}); fds {self.marks[0].fds} at the "
            f"start, {self.fds_settled} at the end"
        )
        return "\n".join(lines)


async def soak(
    url: str, token: str, pid: int, *, calls: int, clients: int = 16, say: Callable[[str], None] = print
) -> Soak:
    """`calls` get_property calls spread over `clients` sessions, each one call at a time."""
    process = psutil.Process(pid)

    def mark(name: str, done: int) -> Mark:
        taken = Mark(name, done, int(process.memory_info().rss), process.num_fds())
        say(taken.line())
        return taken

    async with AsyncExitStack() as stack:
        connected = []
        for _ in range(clients):
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
            )
            client = await stack.enter_async_context(Client(streamable_http_client(url, http_client=http)))
            await client.list_tools()  # the SDK checks results against output schemas it has listed
            connected.append(client)

        async def each(count: int) -> None:
            async def one(client: Client) -> None:
                for _ in range(count):
                    result = await client.call_tool("get_property", ARGUMENTS)
                    if result.is_error:
                        raise SoakFailed(f"get_property failed: {result.content}")

            outcomes = await asyncio.gather(*(one(client) for client in connected), return_exceptions=True)
            failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
            if failures:
                say(f"{len(failures)} clients failed, first: {failures[0]!r}")
                raise failures[0]

        await each(WARMUP_CALLS)
        marks = [mark("start", 0)]
        share = max(calls // clients // 2, 1)
        started = time.perf_counter()
        await each(share)
        marks.append(mark("middle", share * clients))
        await each(share)
        seconds = time.perf_counter() - started
        marks.append(mark("end", 2 * share * clients))
        deadline = time.monotonic() + 5
        settled = process.num_fds()
        while settled > marks[0].fds and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            settled = process.num_fds()
    return Soak(tuple(marks), seconds, settled)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, str]:
    env = {**env, "FLEETBUS_READ_RATE": "1000000", "FLEETBUS_READ_BURST": "1000000"}
    minted = subprocess.run(
        [sys.executable, "-m", "fleetbus", "token", "mint", "--name", "soak", "--scopes", "read"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "fleetbus", "serve", "--transport", "http", "--listen", f"127.0.0.1:{port}"],
        env={**env, "FLEETBUS_LOG_LEVEL": "INFO"},
        stderr=open(os.environ.get("SOAK_SERVER_LOG", os.devnull), "w"),  # noqa: SIM115 — the server's, for its life
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


async def main() -> int:
    from fleetbus.sandbox import Sandbox  # noqa: PLC0415 — the test that imports soak() brings its own sandbox

    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000, help="calls after warm-up, in all (default 20,000)")
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    with Sandbox.create(die_with_parent=True) as sandbox, TemporaryDirectory() as scratch:
        env = {**sandbox.env(), "PATH": os.environ["PATH"], "FLEETBUS_STATE_DIR": str(Path(scratch) / "state")}
        server, url, token = start_server(env)
        try:
            print(f"soak: {args.clients} HTTP clients, {args.calls} get_property calls after {WARMUP_CALLS} each")
            result = await soak(url, token, server.pid, calls=args.calls, clients=args.clients)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    print(result.report())
    for problem in result.problems():
        print(f"FAIL: {problem}")
    return 1 if result.problems() else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
