"""The issue's Done means over MCP, as a client sees them: `fleetbus serve` started in the environment a
`fleetbus sandbox run --hosts 3` gives (its FLEETBUS_INVENTORY, ssh_config, known_hosts, key), talked to over
stdio (and HTTP for tokens) by the official SDK client."""

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

from fleetbus.sandbox import Sandbox
from tests.e2e.client import ROOT, call, serve, text
from tests.e2e.serving import fleetbus, http_client, http_server, mint

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-e2e")]

HOSTNAME1 = {
    "service": "org.freedesktop.hostname1",
    "path": "/org/freedesktop/hostname1",
    "interface": "org.freedesktop.hostname1",
    "property": "Hostname",
}
RESTART = {"unit": "fleet-everywhere.service", "action": "restart", "wait": 20}


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, text(result)
    value: dict[str, Any] = result.structured_content
    return value


async def test_list_hosts_and_each_hosts_own_answers(fleet_sandbox: Sandbox, tmp_path: Path) -> None:
    async with serve(fleet_sandbox, "legacy", state_dir=str(tmp_path / "state")) as client:
        hosts = structured(await call(client, "list_hosts", format="json"))["hosts"]
        assert {row["name"]: row["state"] for row in hosts} == {
            "local": "reachable",
            "host01": "reachable",
            "host02": "reachable",
            "host03": "reachable",
        }
        hostname = structured(await call(client, "get_property", **HOSTNAME1, host="host02"))
        assert hostname["value"] == "host02"
        files03 = structured(await call(client, "list_unit_files", host="host03", pattern="only-*", format="json"))
        assert [row["unit"] for row in files03["unit_files"]] == ["only-on-host03.service"]
        for other in ("host01", "host02", "local"):
            files = structured(await call(client, "list_unit_files", host=other, pattern="only-*", format="json"))
            assert files["unit_files"] == []
        status = structured(
            await call(client, "unit_status", host="host03", unit="only-on-host03.service", lines=0, format="json")
        )
        assert status["unit"] == "only-on-host03.service"
        running = structured(await call(client, "list_units", host="host03", pattern="dbus*", format="json"))
        assert "dbus.service" in {row["unit"] for row in running["units"]}


async def restart(client: Client, host: str) -> Any:
    return await call(client, "unit_job", **RESTART, host=host)


async def test_an_approval_bound_to_host02_does_not_pass_host03(fleet_sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with serve(fleet_sandbox, "legacy", state_dir=str(state), safety="operator") as client:
        asked = await restart(client, "host02")
        assert asked.is_error
        message = text(asked)
        assert "host02:system" in message
        approval = re.search(r"Approval id (\S+)", message)
        assert approval is not None, message
        approved = fleetbus(fleet_sandbox, state, "approve", approval.group(1))
        assert approved.returncode == 0, approved.stderr
        done = await restart(client, "host02")
        assert not done.is_error, text(done)
        elsewhere = await restart(client, "host03")
        assert elsewhere.is_error
        other = re.search(r"Approval id (\S+)", text(elsewhere))
        assert other is not None, text(elsewhere)
        assert other.group(1) != approval.group(1)
        assert "host03:system" in text(elsewhere)


async def test_a_policy_rule_for_the_fleet_but_host03(fleet_sandbox: Sandbox, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[rule]]\nname = "restart-fleet-but-host03"\nverdict = "allow"\n'
        'reason = "the fleet restarts its units, host03 excepted"\nmember = "RestartUnit"\n'
        'hosts = ["fleet:!host03"]\n'
    )
    async with serve(
        fleet_sandbox, "2026-07-28", state_dir=str(tmp_path / "state"), safety="readonly", policy_file=str(policy)
    ) as client:
        ran = await restart(client, "host01")
        assert not ran.is_error, text(ran)
        refused = await restart(client, "host03")
        assert refused.is_error
        assert "refused by policy rule" in text(refused)


async def test_a_token_for_host01_is_refused_on_host02_without_a_connection(
    fleet_sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    token = mint(fleet_sandbox, state, "host01-only", "read", "--hosts", "host01")
    fleet = fleet_sandbox.fleet
    assert fleet is not None
    sshd_log = fleet.host("host02").paths.root / "sshd.log"
    logins = sshd_log.read_text(errors="replace").count("Accepted publickey")
    with http_server(fleet_sandbox, state) as server:
        async with http_client(server.url, token) as client:
            refused = await client.call_tool("get_property", {**HOSTNAME1, "host": "host02"})
            assert refused.is_error
            assert "may not touch host 'host02'" in text(refused)
            allowed = await client.call_tool("get_property", {**HOSTNAME1, "host": "host01"})
            assert not allowed.is_error, text(allowed)
            assert allowed.structured_content is not None
            assert allowed.structured_content["value"] == "host01"
    assert sshd_log.read_text(errors="replace").count("Accepted publickey") == logins


def test_sandbox_run_hosts_gives_fleetbus_every_host(tmp_path: Path) -> None:
    """`fleetbus sandbox run --hosts 2 -- fleetbus tool list_hosts`: nothing else to set up."""
    done = subprocess.run(
        [sys.executable, "-m", "fleetbus", "sandbox", "run", "--hosts", "2", "--", sys.executable, "-m", "fleetbus",
         "tool", "list_hosts", "format=json"],
        capture_output=True, text=True, timeout=240, check=False, cwd=ROOT,
        env={**server_env_without_sandbox(), "FLEETBUS_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert {row["name"]: row["state"] for row in listed["hosts"]} == {
        "local": "reachable",
        "host01": "reachable",
        "host02": "reachable",
    }


def server_env_without_sandbox() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith(("FLEETBUS_", "DBUS_"))}


async def test_resources_name_their_host(fleet_sandbox: Sandbox, tmp_path: Path) -> None:
    async with serve(fleet_sandbox, "legacy", state_dir=str(tmp_path / "state")) as client:
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        assert "dbus://{bus}@{host}/{service}{+path}" in templates
        read = await client.read_resource("dbus://system@host02/services")
        content = read.contents[0]
        assert hasattr(content, "text")
        services = json.loads(content.text)
        assert "org.freedesktop.hostname1" in {row["name"] for row in services["services"]}
        hostname1 = await client.read_resource(
            "dbus://system@host03/org.freedesktop.hostname1/org/freedesktop/hostname1"
        )
        assert "org.freedesktop.hostname1" in hostname1.contents[0].text  # type: ignore[union-attr]
        with pytest.raises(Exception, match="unknown host 'host09'"):
            await client.read_resource("dbus://system@host09/services")
