"""The operator tools end to end over MCP stdio on the sandbox: a unit that fails with "out of memory" shows up
in list_units, health_check and the journal; under `operator` a restart needs a person's approval and then
reports the job's result and the state after; a protected unit is refused with the rule; prompts are listed."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from typing import Any

import mcp_types as types
import pytest
import toon_format
from mcp import Client

from fleetbus.sandbox import Sandbox
from tests.e2e.client import ERAS, call, serve, server_env, text

pytestmark = pytest.mark.sandbox

BROKEN = "[Service]\nExecStart=/bin/sh -c 'echo \"fatal: out of memory\" >&2; exit 1'\n"
FIXED = "[Service]\nExecStart=/bin/sleep infinity\n"


def approve(sandbox: Sandbox, message: str) -> None:
    marker = "Approval id "
    assert marker in message, message
    approval = message.split(marker, 1)[1].split(maxsplit=1)[0]
    done = subprocess.run(
        [sys.executable, "-m", "fleetbus", "approve", approval],
        env=server_env(sandbox),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


async def until(client: Client, tool: str, arguments: dict[str, Any], done: Any) -> dict[str, Any]:
    """Repeat a read until `done(structured)` holds: the unit fails and journald stores its line asynchronously."""
    for _ in range(100):
        result = await call(client, tool, **arguments)
        assert not result.is_error, text(result)
        assert result.structured_content is not None
        structured: dict[str, Any] = result.structured_content
        if done(structured):
            return structured
        await asyncio.sleep(0.05)
    raise AssertionError(f"{tool} {arguments} never showed what was expected: {result.structured_content}")


async def test_a_failed_worker_is_found_explained_and_restarted_with_approval(sandbox: Sandbox) -> None:
    unit = f"worker-oom-{secrets.token_hex(3)}.service"
    sandbox.write_unit(unit, BROKEN)
    sandbox.systemd("StartUnit", "ss", unit, "replace")
    async with serve(sandbox, "legacy", safety="operator") as client:
        failed = await until(
            client, "list_units", {"state": "failed"}, lambda r: unit in [u["unit"] for u in r["units"]]
        )
        row = next(u for u in failed["units"] if u["unit"] == unit)
        assert (row["active"], row["sub"]) == ("failed", "failed")

        listed = await call(client, "list_units", state="failed")
        assert toon_format.loads(text(listed)) == listed.structured_content  # the text is TOON, and only TOON

        health = await until(
            client,
            "health_check",
            {"limit": 50},
            lambda r: any(f["unit"] == unit and f["last_lines"] for f in r["failed_units"]),
        )
        assert health["healthy"] is False
        sick = next(f for f in health["failed_units"] if f["unit"] == unit)
        assert sick["result"] == "exit-code"
        assert "fatal: out of memory" in sick["last_lines"]

        journal = await call(client, "query_journal", unit=unit, since="-10m")
        assert journal.structured_content is not None
        assert "fatal: out of memory" in [e["message"] for e in journal.structured_content["entries"]]

        sandbox.write_unit(unit, FIXED)  # the operator fixes the unit, then asks for the restart
        asked = await call(client, "unit_job", unit=unit, action="restart")
        assert asked.is_error
        assert "needs a person's approval" in text(asked)
        assert "RestartUnit" in text(asked)
        approve(sandbox, text(asked))
        restarted = await call(client, "unit_job", unit=unit, action="restart")
        assert not restarted.is_error, text(restarted)
        body = restarted.structured_content
        assert body is not None
        assert (body["result"], body["finished"]) == ("done", True)
        assert (body["state"]["active"], body["state"]["sub"]) == ("active", "running")
        assert body["state"]["main_pid"] > 0

        refused = await call(client, "unit_job", unit="dbus.service", action="stop")
        assert refused.is_error
        assert "refused by policy rule 'protected-units'" in text(refused)
        assert "dbus.service is a protected unit" in text(refused)


async def test_readonly_hides_the_changing_tools_and_operator_shows_them(sandbox: Sandbox) -> None:
    names = {}
    for safety in ("readonly", "operator"):
        async with serve(sandbox, "legacy", safety=safety) as client:
            names[safety] = {tool.name: tool for tool in (await client.list_tools()).tools}
    for tool in ("list_units", "unit_status", "query_journal", "health_check", "system_status"):
        assert tool in names["readonly"]
        annotations = names["readonly"][tool].annotations
        assert annotations is not None
        assert annotations.read_only_hint is True
    assert "unit_job" not in names["readonly"]
    annotations = names["operator"]["unit_job"].annotations
    assert annotations is not None
    assert (annotations.read_only_hint, annotations.destructive_hint) == (False, True)


@pytest.mark.parametrize("era", ERAS)
async def test_the_three_scenario_prompts_are_offered(sandbox: Sandbox, era: str) -> None:
    async with serve(sandbox, era) as client:
        listed = await client.list_prompts()
        prompt = await client.get_prompt("remediate_failed_workers", {"pattern": "queue-*.service"})
    assert {p.name for p in listed.prompts} == {
        "investigate_performance",
        "security_review",
        "remediate_failed_workers",
    }
    message = prompt.messages[0]
    assert isinstance(message.content, types.TextContent)
    assert "queue-*.service" in message.content.text
    assert "unit_job unit=NAME action=restart" in message.content.text
