"""`fleetbus serve` over stdio, driven by the official SDK client in both protocol eras."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from fleetbus.sandbox import Sandbox
from tests.e2e.client import ERAS, ROOT, call, serve, text
from tests.tool_names import READONLY_TOOLS

pytestmark = pytest.mark.sandbox

HOSTNAME1 = {
    "service": "org.freedesktop.hostname1",
    "path": "/org/freedesktop/hostname1",
    "interface": "org.freedesktop.hostname1",
}
PACKS = {"systemd1", "login1", "hostname1", "timedate1", "packagekit"}


@pytest.mark.parametrize("era", ERAS)
async def test_tools_are_listed_with_schemas_and_annotations(sandbox: Sandbox, era: str) -> None:
    async with serve(sandbox, era) as client:
        listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    # The built-in tools, and pack tools within the budget (tests/e2e/test_tool_list.py looks at those).
    assert set(tools) >= READONLY_TOOLS
    assert all(name in READONLY_TOOLS or name.split("_")[0] in PACKS for name in tools)
    for tool in tools.values():
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None
        assert tool.output_schema["type"] == "object"
        assert tool.annotations is not None
    assert tools["get_property"].annotations.read_only_hint is True  # type: ignore[union-attr]
    # Under the default readonly preset only reads can pass, so even call_method is read-only.
    assert tools["call_method"].annotations.read_only_hint is True  # type: ignore[union-attr]
    # destructive/idempotent mean nothing for a read-only tool, so they are left out.
    assert tools["call_method"].annotations.destructive_hint is None  # type: ignore[union-attr]


@pytest.mark.parametrize("era", ERAS)
async def test_the_done_means_reads(sandbox: Sandbox, era: str) -> None:
    inside = sandbox.run(["hostname"], capture_output=True, text=True, check=True).stdout.strip()
    async with serve(sandbox, era) as client:
        hostname = await call(client, "get_property", **HOSTNAME1, property="Hostname")
        names = await call(
            client,
            "call_method",
            service="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            method="ListNames",
        )
        manager = await call(
            client,
            "introspect",
            service="org.freedesktop.systemd1",
            path="/org/freedesktop/systemd1",
            interface="org.freedesktop.systemd1.Manager",
        )
    assert not hostname.is_error, text(hostname)
    assert hostname.structured_content == {"property": "Hostname", "signature": "s", "value": inside}

    assert not names.is_error, text(names)
    assert names.structured_content is not None
    assert "org.freedesktop.hostname1" in names.structured_content["values"][0]

    assert not manager.is_error, text(manager)
    assert manager.structured_content is not None
    methods = manager.structured_content["interfaces"][0]["methods"]
    start_unit = next(m for m in methods if m["name"] == "StartUnit")
    assert (start_unit["in"], start_unit["out"]) == ("ss", "o")


@pytest.mark.parametrize("era", ERAS)
async def test_errors_come_back_as_results_and_the_server_keeps_serving(
    sandbox: Sandbox, example_service: str, era: str
) -> None:
    fleet = {"service": example_service, "path": "/com/example/Fleet1", "interface": "com.example.Fleet1"}
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {
                "service": "org.freedesktop.systemd1",
                "path": "/org/freedesktop/systemd1",
                "interface": "org.freedesktop.systemd1.Manager",
                "method": "GetUnit",
                "args": [42],
            },
            "argument 0 ('name'): expected string, got integer 42",
        ),
        (
            {"service": "org.example.Nobody", "path": "/", "interface": "org.example.Nobody", "method": "Hello"},
            "no service 'org.example.Nobody'",
        ),
        ({**fleet, "method": "NoSuchMethod"}, "no method 'NoSuchMethod'"),
        ({**fleet, "method": "GetNoReply", "timeout": 1}, "no reply within 1 s"),
    ]
    async with serve(sandbox, era) as client:
        for arguments, expected in cases:
            started = time.monotonic()
            result = await call(client, "call_method", **arguments)
            elapsed = time.monotonic() - started
            assert result.is_error, arguments
            assert expected in text(result)
            assert elapsed < float(arguments.get("timeout", 10)) + 1.0, (arguments, elapsed)
        unknown = await call(client, "no_such_tool")
        still = await call(client, "get_property", **HOSTNAME1, property="Hostname")
    assert unknown.is_error
    assert "unknown tool 'no_such_tool'" in text(unknown)
    assert not still.is_error, text(still)


async def test_the_readme_main_job_serves_the_sandbox_over_stdio() -> None:
    # scripts/run.sh is what the README tells people (and MCP clients) to run. This machine has no
    # system bus, so it must bring up the sandbox and serve MCP on stdio from inside it.
    env = {"PATH": os.environ["PATH"]}
    server = StdioServerParameters(command=str(ROOT / "scripts" / "run.sh"), env=env)
    async with Client(server, mode="legacy") as client:
        listed = await client.list_tools()
        hostname = await call(client, "get_property", **HOSTNAME1, property="Hostname")
    assert {tool.name for tool in listed.tools} >= READONLY_TOOLS
    assert not hostname.is_error, text(hostname)
    assert hostname.structured_content is not None
    assert str(hostname.structured_content["value"]).startswith("sandbox-")
