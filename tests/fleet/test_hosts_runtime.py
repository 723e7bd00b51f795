"""Every tool on any host of the inventory, through the runtime the server uses: the `host` argument, list_hosts,
approvals bound to their host, policy host patterns, token hosts refused before any connection, cursors bound to
their host — on simulated hosts with their own sshd, bus, systemd and hostnamed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from fleetbus.gateway import Caller
from fleetbus.guard.audit import iter_records
from fleetbus.operation import HOST_PROBE
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from fleetbus.sandbox.fleet import Fleet
from fleetbus.server import resources
from fleetbus.tools.registry import ToolContext
from tests.conftest import sandbox_settings
from tests.fleet.conftest import accepted_logins

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-runtime")]

HOSTNAME = {"service": "org.freedesktop.hostname1", "path": "/org/freedesktop/hostname1"}
HOSTNAME_PROPERTY = {**HOSTNAME, "interface": "org.freedesktop.hostname1", "property": "Hostname"}
ONLY_ON_HOST03 = "only-on-host03.service"
EVERYWHERE = "fleet-everywhere.service"


def fleet_settings(sandbox: Sandbox, state: Path, **overrides: Any) -> Any:
    fleet = sandbox.fleet
    assert fleet is not None
    fleet_files = {
        "inventory": fleet.paths.inventory,
        "ssh_config": fleet.paths.ssh_config,
        "known_hosts": fleet.paths.known_hosts,
        "ssh_key": fleet.paths.client_key,
    }
    return sandbox_settings(sandbox, state, **{**fleet_files, **overrides})


async def built(sandbox: Sandbox, state: Path, **overrides: Any) -> Runtime:
    return Runtime.build(fleet_settings(sandbox, state, **overrides))


async def close(runtime: Runtime) -> None:
    await runtime.gateway.hosts.aclose()
    runtime.close()


@pytest.fixture
async def runtime(fleet_sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Runtime]:
    made = await built(fleet_sandbox, tmp_path / "state")
    yield made
    await close(made)


async def call(runtime: Runtime, tool: str, caller: Caller | None = None, /, **arguments: Any) -> Any:
    context = ToolContext(runtime.gateway, caller or Caller("test"))
    return await runtime.registry.run(context, tool, arguments)


async def ok(runtime: Runtime, tool: str, caller: Caller | None = None, /, **arguments: Any) -> dict[str, Any]:
    result = await call(runtime, tool, caller, **arguments)
    assert not result.is_error, result.text
    structured: dict[str, Any] = result.structured
    return structured


async def test_list_hosts_shows_every_host_reachable_with_its_groups(runtime: Runtime, fleet: Fleet) -> None:
    listed = await ok(runtime, "list_hosts", format="json")
    rows = {row["name"]: row for row in listed["hosts"]}
    assert list(rows) == ["local", "host01", "host02", "host03"]
    for host in fleet.hosts:
        assert rows[host.name]["state"] == "reachable", rows[host.name]
        assert rows[host.name]["connected"] is True
        assert rows[host.name]["address"] == host.address
    assert "db" in rows["host03"]["groups"].split(",")
    assert "web" in rows["host01"]["groups"].split(",")
    only_web = await ok(runtime, "list_hosts", pattern="web:!host02", probe=False, format="json")
    assert [row["name"] for row in only_web["hosts"]] == ["host01"]
    # Each probe was a login on its host: audited as an operation there (and none for probe=false).
    probes = [
        record
        for _, _, record in iter_records(runtime.settings.audit_directory)
        if record["operation"].get("kind") == HOST_PROBE and record["event"] == "succeeded"
    ]
    assert sorted(record["host"] for record in probes) == sorted(["local", *(host.name for host in fleet.hosts)])


async def test_get_property_answers_from_the_host_named(runtime: Runtime, fleet: Fleet) -> None:
    for host in fleet.hosts:
        answer = await ok(runtime, "get_property", **HOSTNAME_PROPERTY, host=host.name)
        assert answer["value"] == host.name
    local = await ok(runtime, "get_property", **HOSTNAME_PROPERTY)
    assert local["value"] not in {host.name for host in fleet.hosts}
    # One SSH connection per host, however many calls.
    before = runtime.gateway.hosts.connections_made
    for _ in range(5):
        await ok(runtime, "get_property", **HOSTNAME_PROPERTY, host="host02")
    assert runtime.gateway.hosts.connections_made == before


async def test_an_unknown_host_is_refused_naming_the_closest_ones(runtime: Runtime) -> None:
    result = await call(runtime, "get_property", None, **HOSTNAME_PROPERTY, host="hots02")
    assert result.is_error
    assert "unknown host 'hots02'" in result.text
    assert "host02" in result.text
    assert "list_hosts" in result.text
    assert runtime.gateway.hosts.connections_made == 0


async def test_units_of_host03_are_host03s_own(runtime: Runtime) -> None:
    # Installed, not started: the unit files say what a host has.
    on_host03 = await ok(runtime, "list_unit_files", host="host03", pattern="*.service", format="json")
    on_host01 = await ok(runtime, "list_unit_files", host="host01", pattern="*.service", format="json")
    names03 = {row["unit"] for row in on_host03["unit_files"]}
    names01 = {row["unit"] for row in on_host01["unit_files"]}
    assert ONLY_ON_HOST03 in names03
    assert ONLY_ON_HOST03 not in names01
    assert EVERYWHERE in names03
    assert EVERYWHERE in names01
    running03 = await ok(runtime, "list_units", host="host03", pattern="*.service", format="json")
    assert "dbus.service" in {row["unit"] for row in running03["units"]}
    status = await ok(runtime, "unit_status", host="host03", unit=ONLY_ON_HOST03, lines=0)
    assert status["unit"] == ONLY_ON_HOST03
    assert status["unit_file"] in ("enabled", "disabled", "static", "linked")
    missing = await call(runtime, "unit_status", None, host="host01", unit=ONLY_ON_HOST03, lines=0)
    assert missing.is_error
    assert f"unknown unit '{ONLY_ON_HOST03}'" in missing.text


async def test_a_cursor_from_one_host_is_refused_on_another(runtime: Runtime) -> None:
    first = await ok(runtime, "list_units", host="host02", pattern="*.service", limit=1)
    assert first["next_cursor"]
    same = await ok(runtime, "list_units", host="host02", pattern="*.service", limit=1, cursor=first["next_cursor"])
    assert same["units"] != first["units"]
    other = await call(
        runtime, "list_units", None, host="host03", pattern="*.service", limit=1, cursor=first["next_cursor"]
    )
    assert other.is_error
    assert "host 'host02', not 'host03'" in other.text


async def test_an_approval_for_host02_does_not_pass_the_same_call_on_host03(
    fleet_sandbox: Sandbox, tmp_path: Path
) -> None:
    runtime = await built(fleet_sandbox, tmp_path / "state", safety="operator")
    try:
        restart = {"unit": EVERYWHERE, "action": "restart", "wait": 20}
        asked = await call(runtime, "unit_job", None, **restart, host="host02")
        assert asked.is_error, asked.text
        assert asked.approval is not None, asked.text
        assert asked.approval.host == "host02"
        runtime.gateway.approvals.decide(asked.approval.id, True, by="test")
        done = await call(runtime, "unit_job", None, **restart, host="host02")
        assert not done.is_error, done.text
        elsewhere = await call(runtime, "unit_job", None, **restart, host="host03")
        assert elsewhere.is_error
        assert elsewhere.approval is not None, elsewhere.text
        assert elsewhere.approval.id != asked.approval.id
        assert elsewhere.approval.host == "host03"
        records = (runtime.settings.audit_directory / "audit.log").read_text()
        assert '"host":"host03"' in records.replace(" ", "")
    finally:
        await close(runtime)


async def test_a_policy_rule_for_fleet_but_host03_allows_there_and_not_on_host03(
    fleet_sandbox: Sandbox, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        "[[rule]]\n"
        'name = "restart-fleet-but-host03"\n'
        'verdict = "allow"\n'
        'reason = "the fleet restarts its units, host03 excepted"\n'
        'member = "RestartUnit"\n'
        'hosts = ["fleet:!host03"]\n'
    )
    runtime = await built(fleet_sandbox, tmp_path / "state", safety="readonly", policy_file=policy)
    try:
        restart = {"unit": EVERYWHERE, "action": "restart", "wait": 20}
        allowed = await call(runtime, "unit_job", None, **restart, host="host01")
        assert not allowed.is_error, allowed.text
        refused = await call(runtime, "unit_job", None, **restart, host="host03")
        assert refused.is_error
        assert refused.approval is None
        assert "refused" in refused.text
    finally:
        await close(runtime)


async def test_a_token_for_host01_is_refused_on_host02_before_any_connection(runtime: Runtime, fleet: Fleet) -> None:
    logins = accepted_logins(fleet.host("host02"))
    token = Caller("token:ops", scopes=frozenset({"read"}), hosts=("host01",))
    refused = await call(runtime, "get_property", token, **HOSTNAME_PROPERTY, host="host02")
    assert refused.is_error
    assert "may not touch host 'host02'" in refused.text
    host02 = runtime.gateway.hosts.peek("host02")
    assert host02 is None or host02.connections_made == 0
    assert accepted_logins(fleet.host("host02")) == logins
    allowed = await ok(runtime, "get_property", token, **HOSTNAME_PROPERTY, host="host01")
    assert allowed["value"] == "host01"
    # list_hosts shows such a caller only the hosts it may touch, and tries no other.
    listed = await ok(runtime, "list_hosts", token, format="json")
    assert [row["name"] for row in listed["hosts"]] == ["host01"]
    assert accepted_logins(fleet.host("host02")) == logins


async def test_a_token_limited_to_host01_learns_no_other_host_from_an_unknown_name(runtime: Runtime) -> None:
    token = Caller("token:ops", scopes=frozenset({"read"}), hosts=("host01",))
    for name in ("host99", "hots02", "HOST03"):
        refused = await call(runtime, "get_property", token, **HOSTNAME_PROPERTY, host=name)
        assert refused.is_error
        assert f"unknown host {name!r}" in refused.text
        assert "host01" in refused.text  # the hosts it may touch are suggested
        assert "host02" not in refused.text, refused.text
        assert "host03" not in refused.text, refused.text
        assert "inventory.ini" not in refused.text
    # Without a host list, the inventory's names are the suggestions, as before.
    unlimited = await call(runtime, "get_property", None, **HOSTNAME_PROPERTY, host="hots02")
    assert "did you mean host02" in unlimited.text


async def test_a_token_for_all_but_host03_never_reaches_host03(runtime: Runtime, fleet: Fleet) -> None:
    # `fleetbus token mint --hosts '*,!host03'` stores the list ["*", "!host03"].
    logins = accepted_logins(fleet.host("host03"))
    token = Caller("token:ops", scopes=frozenset({"read"}), hosts=("*", "!host03"))
    refused = await call(runtime, "get_property", token, **HOSTNAME_PROPERTY, host="host03")
    assert refused.is_error
    assert "may not touch host 'host03'" in refused.text
    assert (await ok(runtime, "get_property", token, **HOSTNAME_PROPERTY, host="host02"))["value"] == "host02"
    listed = await ok(runtime, "list_hosts", token, format="json")
    assert [row["name"] for row in listed["hosts"]] == ["local", "host01", "host02"]
    assert accepted_logins(fleet.host("host03")) == logins


async def test_a_token_limited_to_host01_cannot_subscribe_to_another_hosts_resources(runtime: Runtime) -> None:
    token = Caller("token:ops", scopes=frozenset({"read"}), hosts=("host01",))
    resources.check_subscribable(runtime, "dbus://system@host01/services", token)
    answers = []
    for host in ("host02", "host99"):  # a host of the inventory and one that is not: the same answer
        with pytest.raises(MCPError, match="is not a resource this server serves") as refused:
            resources.check_subscribable(runtime, f"dbus://system@{host}/services", token)
        answers.append(str(refused.value).replace(host, "HOST"))
    assert answers[0] == answers[1]
    resources.check_subscribable(runtime, "dbus://system@host02/services", Caller("operator"))


async def test_rate_limits_are_per_client_and_host(fleet_sandbox: Sandbox, tmp_path: Path) -> None:
    runtime = await built(fleet_sandbox, tmp_path / "state", read_rate=0.001, read_burst=2)
    try:
        for _ in range(2):
            await ok(runtime, "get_property", None, **HOSTNAME_PROPERTY, host="host01")
        limited = await call(runtime, "get_property", None, **HOSTNAME_PROPERTY, host="host01")
        assert limited.is_error
        assert "rate limit for reads on host01" in limited.text
        elsewhere = await ok(runtime, "get_property", None, **HOSTNAME_PROPERTY, host="host02")
        assert elsewhere["value"] == "host02"
    finally:
        await close(runtime)


async def test_list_hosts_probes_count_against_the_read_budget_of_each_host(
    fleet_sandbox: Sandbox, tmp_path: Path
) -> None:
    # A probe is an SSH login attempt per host; without a budget, list_hosts in a loop knocked on every host
    # without limit while every other read was limited.
    runtime = await built(fleet_sandbox, tmp_path / "state", read_rate=0.001, read_burst=2)
    try:
        hosts = runtime.gateway.hosts
        spammer = Caller("spammer")
        for _ in range(2):
            listed = await ok(runtime, "list_hosts", spammer, pattern="host02", format="json")
            assert [row["state"] for row in listed["hosts"]] == ["reachable"]
        await hosts.get("host02").close()
        made = hosts.get("host02").connections_made
        for _ in range(5):
            listed = await ok(runtime, "list_hosts", spammer, pattern="host02", format="json")
            assert [row["state"] for row in listed["hosts"]] == ["unknown"]  # last known, not tried
        assert hosts.get("host02").connections_made == made
        # The same budget covers other reads on that host; another client keeps its own.
        limited = await call(runtime, "get_property", spammer, **HOSTNAME_PROPERTY, host="host02")
        assert "rate limit for reads on host02" in limited.text
        other = await ok(runtime, "list_hosts", Caller("other"), pattern="host02", format="json")
        assert [row["state"] for row in other["hosts"]] == ["reachable"]
    finally:
        await close(runtime)


async def test_the_fd_budget_closes_the_least_recently_used_idle_host(fleet_sandbox: Sandbox, tmp_path: Path) -> None:
    runtime = await built(fleet_sandbox, tmp_path / "state", max_connected_hosts=2)
    try:
        hosts = runtime.gateway.hosts
        for name in ("host01", "host02"):
            assert (await ok(runtime, "get_property", None, **HOSTNAME_PROPERTY, host=name))["value"] == name
        await ok(runtime, "get_property", None, **HOSTNAME_PROPERTY, host="host01")  # host02 is now the older one
        assert hosts.connected_count() == 2
        assert (await ok(runtime, "get_property", None, **HOSTNAME_PROPERTY, host="host03"))["value"] == "host03"
        assert hosts.connected_count() == 2
        assert not hosts.get("host02").connected
        assert hosts.get("host01").connected
        # A closed host connects again when asked (closing another to make room).
        assert (await ok(runtime, "get_property", None, **HOSTNAME_PROPERTY, host="host02"))["value"] == "host02"
        assert hosts.connected_count() == 2
    finally:
        await close(runtime)


async def test_a_pack_tool_runs_on_another_host_checked_against_its_own_introspection(runtime: Runtime) -> None:
    await runtime.start(follow=False)
    describe = next(
        spec.name
        for spec in runtime.registry
        if (spec.group or "").startswith("pack:hostname1:") and spec.name.endswith("describe")
    )
    answer = await ok(runtime, describe, None, host="host02")
    assert json.loads(answer["json"])["Hostname"] == "host02"
    assert len(runtime.gateway.hosts.get("host02").cache) > 0  # host02's own introspection was read
    local = await ok(runtime, describe, None)
    assert json.loads(local["json"])["Hostname"] != "host02"
