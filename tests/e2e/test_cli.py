"""The CLI as a person types it: typed `key=value` arguments, the times `query_journal` takes, one form for every
failure, each command with only its own options, no state directory when nothing was written, and a
`client-config` whose stdio command works on this machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from fleetbus.sandbox import Sandbox
from tests.e2e.client import ROOT, call, server_env, text

pytestmark = pytest.mark.sandbox

HOSTNAME = {
    "service": "org.freedesktop.hostname1",
    "path": "/org/freedesktop/hostname1",
    "interface": "org.freedesktop.hostname1",
    "property": "Hostname",
}
NO_BUS = "unix:path=/nonexistent/fleetbus-test/system_bus_socket"


def fleetbus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetbus", *args],
        env=env if env is not None else {"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_key_value_words_are_typed_by_the_tool_schema(sandbox: Sandbox, tmp_path: Path) -> None:
    env = server_env(sandbox, state_dir=str(tmp_path / "state"))
    status = fleetbus("tool", "unit_status", "unit=dbus.service", "lines=2", env=env)
    unreadable = fleetbus("tool", "unit_status", "unit=dbus.service", "lines=two", env=env)
    assert status.returncode == 0, status.stderr
    answer = json.loads(status.stdout)
    assert answer["unit"] == "dbus.service"
    assert len(answer["lines"]) <= 2
    assert unreadable.returncode == 2
    assert last_line(unreadable.stderr) == "fleetbus tool: error: argument 'lines' takes an integer, not 'two'"


def test_audit_query_takes_the_times_query_journal_takes(sandbox: Sandbox, tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    env = server_env(sandbox, state_dir=state)
    read = fleetbus("tool", "get_property", *(f"{k}={v}" for k, v in HOSTNAME.items()), env=env)
    assert read.returncode == 0, read.stderr

    def succeeded(*since: str) -> list[dict[str, Any]]:
        done = fleetbus("audit", "query", "--event", "succeeded", *since, "--state-dir", state, env=env)
        assert done.returncode == 0, (since, done.stderr)
        return [json.loads(line) for line in done.stdout.splitlines()]

    recent = succeeded("--since", "-15m")
    assert [record["operation"]["member"] for record in recent] == ["Get"]
    assert succeeded("--since", "1 hour ago") == recent
    assert succeeded("--since=-15m") == recent
    assert succeeded("--since", "+1h") == []  # nothing was recorded in the future


def test_every_failure_is_reported_in_one_form(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    env = {"PATH": os.environ["PATH"], "DBUS_SYSTEM_BUS_ADDRESS": NO_BUS}
    failures = {
        "fleetbus tool": ["tool", "unit_status", "unit=x.service", "lines=two", "--state-dir", state],
        "fleetbus approve": ["approve", "0badcafe", "--state-dir", state],
        "fleetbus audit query": ["audit", "query", "--since", "bogus", "--state-dir", state],
        "fleetbus sandbox exec": ["sandbox", "exec", "--", "true"],
        "fleetbus token revoke": ["token", "--state-dir", state, "revoke", "nobody"],
        "fleetbus serve": ["serve", "--transport", "http", "--listen", "127.0.0.1:9", "--state-dir", state],
    }
    for prog, args in failures.items():
        failed = fleetbus(*args, env=env)
        assert failed.returncode != 0, args
        assert re.match(rf"{prog}: error: \S", last_line(failed.stderr)), (args, failed.stderr)


def test_each_command_offers_only_the_options_it_uses() -> None:
    def options(*command: str) -> set[str]:
        shown = fleetbus(*command, "--help")
        assert shown.returncode == 0, shown.stderr
        return set(re.findall(r"(--[a-z][a-z-]+)", shown.stdout))

    bus_and_policy = {"--system-bus", "--session-bus", "--safety", "--policy"}
    for command in (("approve",), ("deny",), ("approvals",), ("audit", "query"), ("token",)):
        assert not options(*command) & bus_and_policy, command
        assert "--state-dir" in options(*command), command
    assert "--approvals-dir" in options("approve")
    assert options("serve") >= {*bus_and_policy, "--state-dir", "--transport"}
    assert options("tool") >= bus_and_policy


def test_commands_that_write_nothing_make_no_state_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {"PATH": os.environ["PATH"], "DBUS_SYSTEM_BUS_ADDRESS": NO_BUS}
    for args in (
        ["approvals", "--all"],
        ["approve", "0badcafe"],
        ["tool", "unit_status"],  # refused before anything runs: 'unit' is missing
        ["explain", "service=org.freedesktop.systemd1"],  # the same
        ["audit", "verify"],
        ["audit", "query", "--since", "-1h"],
    ):
        fleetbus(*args, "--state-dir", str(state), env=env)
        assert not state.exists(), args


def stdio_block(config: str) -> dict[str, Any]:
    first = re.search(r"^\{.*?^\}", config, re.MULTILINE | re.DOTALL)
    assert first is not None, config
    block: dict[str, Any] = json.loads(first.group(0))["mcpServers"]["fleetbus"]
    return block


async def hostname_through(block: dict[str, Any], env: dict[str, str]) -> str:
    """Start the offered stdio command as an MCP client would, and read the hostname through it."""
    server = StdioServerParameters(command=block["command"], args=block["args"], env=env)
    async with Client(server, mode="legacy") as client:
        answer = await call(client, "get_property", **HOSTNAME)
    assert not answer.is_error, text(answer)
    assert answer.structured_content is not None
    return str(answer.structured_content["value"])


async def test_client_config_offers_what_works_here(sandbox: Sandbox, tmp_path: Path) -> None:
    inside = sandbox.run(["hostname"], capture_output=True, text=True, check=True).stdout.strip()
    plain = {"PATH": os.environ["PATH"]}
    with_bus = {**plain, "DBUS_SYSTEM_BUS_ADDRESS": sandbox.system_bus_address}
    without_bus = {**plain, "DBUS_SYSTEM_BUS_ADDRESS": NO_BUS, "TMPDIR": str(tmp_path)}

    served = stdio_block(fleetbus("client-config", env=with_bus).stdout)
    assert served["args"] == ["serve"]
    assert await hostname_through(served, {**with_bus, "FLEETBUS_STATE_DIR": str(tmp_path / "state")}) == inside

    # No system bus: not `fleetbus serve`, which could reach nothing, but run.sh and its sandbox of real services.
    fallback = stdio_block(fleetbus("client-config", env=without_bus).stdout)
    assert fallback == {"command": str(ROOT / "scripts" / "run.sh"), "args": []}
    assert (await hostname_through(fallback, without_bus)).startswith("sandbox-")

    # run.sh stands where a fleetbus command does: `--exec run.sh` gives it `serve`, which it takes.
    given = stdio_block(fleetbus("client-config", "--exec", str(ROOT / "scripts" / "run.sh"), env=plain).stdout)
    assert given == {"command": str(ROOT / "scripts" / "run.sh"), "args": ["serve"]}
    assert await hostname_through(given, {**with_bus, "FLEETBUS_STATE_DIR": str(tmp_path / "state")}) == inside
