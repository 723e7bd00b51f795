"""Status of one unit three ways, and the size of a unit list three ways, measured in one run on one sandbox:

  fleetbus   `unit_status` through `fleetbus serve` over MCP stdio (SDK client): typed D-Bus reads plus the
             unit's last journal lines,
  linux-mcp  linux-mcp-server's `get_service_status` over MCP stdio, installed from PyPI into
             bench/.venv-linux-mcp and run inside the sandbox, so its `systemctl` sees the sandbox's manager,
  systemctl  `systemctl status UNIT` inside the sandbox, a process per call;

and the cl100k token count of the service list: fleetbus `list_units type=service` as TOON and as compact JSON,
against linux-mcp-server's `list_services`. Prints medians and ratios.

Run: python bench/bench_operator_tools.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import bpe_openai
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from fleetbus.sandbox import Sandbox
from timing import ms, timed

HERE = Path(__file__).resolve().parent
LINUX_MCP_VENV = HERE / ".venv-linux-mcp"
LINUX_MCP_PACKAGE = "linux-mcp-server==1.7.0"
UNIT = "bench-web.service"
APPS = 30
"""Extra running services, so the list is the size of a small real host's."""


def ensure_linux_mcp() -> Path:
    python = LINUX_MCP_VENV / "bin" / "python"
    if not (LINUX_MCP_VENV / "bin" / "linux-mcp-server").exists():
        venv.create(LINUX_MCP_VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", LINUX_MCP_PACKAGE], check=True)
    return LINUX_MCP_VENV / "bin" / "linux-mcp-server"


def prepare(sandbox: Sandbox) -> None:
    sandbox.write_unit(UNIT, "[Unit]\nDescription=Bench web server\n[Service]\nExecStart=/bin/sleep infinity\n")
    for index in range(APPS):
        name = f"bench-app-{index:02d}.service"
        (sandbox.paths.unit_dir / name).write_text(
            f"[Unit]\nDescription=Bench application {index}, a worker\n[Service]\nExecStart=/bin/sleep infinity\n"
        )
    sandbox.reload()
    for name in [UNIT, *(f"bench-app-{i:02d}.service" for i in range(APPS))]:
        sandbox.systemd("StartUnit", "ss", name, "replace")


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def fleetbus_side(sandbox: Sandbox, calls: int) -> tuple[list[float], list[float], str, str, str]:
    env = {**sandbox.env(), "PATH": os.environ["PATH"], "FLEETBUS_READ_RATE": "1000000"}
    server = StdioServerParameters(command=sys.executable, args=["-m", "fleetbus", "serve"], env=env)
    async with Client(server, mode="legacy") as client:

        async def once() -> None:
            result = await client.call_tool("unit_status", {"unit": UNIT})
            assert not result.is_error, text(result)

        async def bus_only() -> None:
            result = await client.call_tool("unit_status", {"unit": UNIT, "lines": 0})
            assert not result.is_error, text(result)

        samples = await timed(calls, once)
        without_journal = await timed(calls, bus_only)
        status = text(await client.call_tool("unit_status", {"unit": UNIT}))
        listed = await client.call_tool("list_units", {"type": "service", "limit": 1000})
        assert not listed.is_error, text(listed)
        compact = json.dumps(listed.structured_content, separators=(",", ":"), ensure_ascii=False)
        return samples, without_journal, status, text(listed), compact


async def linux_mcp_side(sandbox: Sandbox, calls: int, executable: Path) -> tuple[list[float], str, str]:
    with tempfile.TemporaryDirectory(prefix="linux-mcp-home-") as home:
        argv = sandbox.command([str(executable)])
        env = {**os.environ, **sandbox.env(inside=True), "HOME": home, "LINUX_MCP_LOG_DIR": home, "SYSTEMD_COLORS": "0"}
        server = StdioServerParameters(command=argv[0], args=argv[1:], env=env)
        async with Client(server, mode="legacy") as client:

            async def once() -> None:
                result = await client.call_tool("get_service_status", {"service_name": UNIT, "host": "localhost"})
                assert not result.is_error, text(result)

            samples = await timed(calls, once)
            status = text(await client.call_tool("get_service_status", {"service_name": UNIT, "host": "localhost"}))
            listed = text(await client.call_tool("list_services", {"host": "localhost"}))
            return samples, status, listed


async def systemctl_side(sandbox: Sandbox, calls: int) -> tuple[list[float], str]:
    argv = sandbox.command(["systemctl", "status", "--no-pager", "--full", UNIT])
    env = {**os.environ, **sandbox.env(inside=True), "SYSTEMD_COLORS": "0"}

    def run() -> str:
        return subprocess.run(argv, env=env, capture_output=True, text=True, check=False).stdout

    async def once() -> None:
        assert "active (running)" in await asyncio.to_thread(run)

    samples = await timed(calls, once)
    return samples, await asyncio.to_thread(run)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100, help="status calls per way")
    args = parser.parse_args()
    executable = ensure_linux_mcp()
    encoding = bpe_openai.get_encoding("cl100k_base")

    def tokens(value: str) -> int:
        return len(encoding.encode(value))

    with Sandbox.create(die_with_parent=True) as sandbox:
        prepare(sandbox)
        ours, ours_bus_only, our_status, toon, compact = await fleetbus_side(sandbox, args.calls)
        theirs, their_status, their_list = await linux_mcp_side(sandbox, args.calls, executable)
        plain, plain_status = await systemctl_side(sandbox, args.calls)

    medians = {
        "fleetbus unit_status (MCP stdio)": ms(ours),
        "fleetbus unit_status lines=0 (D-Bus only)": ms(ours_bus_only),
        "linux-mcp-server get_service_status (MCP stdio)": ms(theirs),
        "systemctl status (a process per call)": ms(plain),
    }
    base = medians["fleetbus unit_status (MCP stdio)"]
    print(f"status of {UNIT}, median of {args.calls} calls each")
    for name, value in medians.items():
        print(f"  {name:<50} {value:8.2f} ms   {value / base:5.2f}× fleetbus")
    answers = {"fleetbus": our_status, "linux-mcp-server": their_status, "systemctl": plain_status}
    print("size of one status answer (cl100k tokens): " + ", ".join(f"{k} {tokens(v)}" for k, v in answers.items()))
    sizes = {
        "fleetbus list_units type=service, TOON": tokens(toon),
        "fleetbus list_units type=service, compact JSON": tokens(compact),
        "linux-mcp-server list_services": tokens(their_list),
    }
    print(f"service list of the same host ({APPS + 1} bench services + the sandbox's own), cl100k tokens")
    toon_tokens = sizes["fleetbus list_units type=service, TOON"]
    for name, value in sizes.items():
        print(f"  {name:<50} {value:6d}   {value / toon_tokens:5.2f}× TOON")
    print(json.dumps({"median_ms": medians, "tokens": sizes, "calls": args.calls}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
