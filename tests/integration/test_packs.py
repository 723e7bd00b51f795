"""Tool packs on the sandbox's real services: tools built from introspection, calls through them, and
find_tools reaching what the budget leaves out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fleetbus.gateway import Caller
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.conftest import sandbox_settings
from tests.integration.calls import run

pytestmark = pytest.mark.sandbox


@pytest.fixture
async def packed(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(sandbox_settings(sandbox, tmp_path_factory.mktemp("state"), safety="admin"))
    await runtime.start(follow=False)
    yield runtime
    await runtime.stop()
    runtime.close()


async def test_builtin_packs_offer_typed_method_tools(packed: Runtime) -> None:
    names = {spec.name for spec in packed.registry if spec.group}
    for expected in (
        "systemd1_get_unit",
        "systemd1_start_unit",
        "systemd1_restart_unit",
        "systemd1_power_off",
        "login1_list_sessions",
        "login1_reboot",
        "hostname1_describe",
        "hostname1_set_hostname",
        "timedate1_list_timezones",
        "systemd1_get_properties",
    ):
        assert expected in names, expected
    result = await run(packed, "systemd1_get_unit", name="dbus.service")
    assert not result.is_error, result.text
    assert result.structured == {"unit": "/org/freedesktop/systemd1/unit/dbus_2eservice"}
    version = await run(packed, "systemd1_get_properties", names=["Version"])
    assert not version.is_error, version.text
    assert str(version.structured["properties"]["Version"]).startswith("252")


async def test_pack_tool_arguments_are_checked_like_any_call(packed: Runtime) -> None:
    result = await run(packed, "systemd1_get_unit", name=3)
    assert result.is_error
    assert "name" in result.text
    result = await run(packed, "systemd1_get_unit")
    assert result.is_error
    assert result.text.startswith("missing argument 'name'")


async def test_pack_tools_pass_the_same_policy_as_call_method(packed: Runtime) -> None:
    result = await run(packed, "systemd1_stop_unit", name="dbus.service", mode="replace")
    assert result.is_error
    assert "refused by policy rule 'protected-units'" in result.text


async def test_find_tools_points_restart_at_the_unit_job_tool_and_the_manager_methods(packed: Runtime) -> None:
    result = await run(packed, "find_tools", query="restart")
    assert not result.is_error, result.text
    assert result.structured["tools"][0]["name"] == "unit_job"
    rows = {row["method"]: row for row in result.structured["methods"]}
    restart = rows["org.freedesktop.systemd1.Manager.RestartUnit"]
    assert (restart["in"], restart["out"], restart["args"]) == ("ss", "o", "name, mode")
    assert restart["tool"] == "unit_job action=restart"
    try_restart = rows["org.freedesktop.systemd1.Manager.TryRestartUnit"]
    assert (try_restart["in"], try_restart["out"], try_restart["tool"]) == ("ss", "o", "unit_job action=try_restart")
    for row in (restart, try_restart):
        assert row["call"]["tool"] == "call_method"
        assert row["call"]["path"] == "/org/freedesktop/systemd1"
    # A method no listed tool covers is reached with call_method.
    reload_or_restart = rows["org.freedesktop.systemd1.Manager.ReloadOrRestartUnit"]
    assert reload_or_restart["tool"] in (None, "systemd1_reload_or_restart_unit")


async def test_find_tools_finds_tools_of_toolsets_not_listed(packed: Runtime) -> None:
    result = await run(packed, "find_tools", query="enable")
    rows = {row["name"]: row for row in result.structured["tools"]}
    assert rows["unit_file"]["listed"] is False
    assert rows["unit_file"]["toolset"] == "units"
    assert "enable_toolset" in result.structured["note"]
    overview = await run(packed, "find_tools")
    toolsets = {row["name"]: row for row in overview.structured["toolsets"]}
    assert toolsets["units"]["listed"] is False
    assert toolsets["core"]["listed"] is True
    assert toolsets["systemd1"]["tools"] > 50
    listing = await run(packed, "find_tools", toolset="host")
    assert {row["name"] for row in listing.structured["tools"]} == {
        "host_info",
        "network_status",
        "time_status",
        "list_sessions",
        "list_hosts",
    }
    unknown = await run(packed, "find_tools", toolset="hots")
    assert unknown.is_error
    assert "unknown toolset 'hots'" in unknown.text


async def test_find_tools_can_search_a_service_outside_the_packs(packed: Runtime, example_service: str) -> None:
    result = await run(packed, "find_tools", query="pair", service=example_service)
    assert not result.is_error, result.text
    (row,) = result.structured["methods"]
    assert (row["method"], row["in"], row["out"], row["tool"]) == ("com.example.Fleet1.AddPair", "(ii)", "(ix)", None)


async def test_a_client_enabling_a_toolset_sees_its_tools_and_no_one_else_does(packed: Runtime) -> None:
    alice, bob = Caller("alice"), Caller("bob")
    before = {entry.spec.name for entry in packed.listed(alice)}
    assert "unit_file" not in before
    # A pack enabled on purpose is offered first, within the budget.
    pack = await packed.registry.run(packed.context(alice), "enable_toolset", {"toolset": "login1"})
    assert not pack.is_error, pack.text
    listed_login1 = pack.structured["listed"]
    assert len(listed_login1) > len([e for e in packed.listed(bob) if e.spec.toolset == "login1"])
    assert "of the pack's" in pack.structured["note"]
    enabled = await packed.registry.run(packed.context(alice), "enable_toolset", {"toolset": "units"})
    assert not enabled.is_error, enabled.text
    assert set(enabled.structured["listed"]) == {
        "list_unit_files",
        "unit_dependencies",
        "unit_file",
        "reset_failed_unit",
        "rolling_unit_job",
    }
    assert {"unit_file", "list_unit_files"} <= {entry.spec.name for entry in packed.listed(alice)}
    assert "unit_file" not in {entry.spec.name for entry in packed.listed(bob)}
    disabled = await packed.registry.run(packed.context(alice), "enable_toolset", {"toolset": "bus", "enabled": False})
    assert "call_method" not in {entry.spec.name for entry in packed.listed(alice)}
    assert disabled.structured["listed"] == []


async def test_the_default_budget_holds_and_leaves_the_rest_callable(
    sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> None:
    runtime = Runtime.build(sandbox_settings(sandbox, tmp_path_factory.mktemp("state")))
    try:
        await runtime.start(follow=False)
        listed = runtime.listed(Caller("stdio"))
        listed_names = {entry.spec.name for entry in listed}
        assert len(listed) <= runtime.budget.max_tools
        groups = {str(entry.spec.group) for entry in listed if entry.spec.group}
        for pack in ("systemd1", "login1", "hostname1"):
            assert any(group.startswith(f"pack:{pack}:") for group in groups), pack
        unlisted = {spec.name for spec in runtime.registry if spec.group} - listed_names
        assert "systemd1_list_units_by_patterns" in unlisted  # the budget cannot hold every systemd1 read
        # Unlisted is not unreachable: find_tools points at call_method for it, and it is callable by name.
        found = await run(runtime, "find_tools", query="ListUnitsBy")
        row = next(r for r in found.structured["methods"] if r["method"].endswith(".ListUnitsByPatterns"))
        assert row["tool"] is None
        assert row["call"]["method"] == "ListUnitsByPatterns"
        called = await run(runtime, "systemd1_list_units_by_patterns", states=["active"], patterns=[])
        assert not called.is_error, called.text
        # A tool in use keeps its place: now it is listed, and a least-used one made room.
        relisted = {entry.spec.name for entry in runtime.listed(Caller("stdio"))}
        assert "systemd1_list_units_by_patterns" in relisted
        assert len(relisted) <= runtime.budget.max_tools
    finally:
        await runtime.stop()
        runtime.close()


async def test_a_pack_of_ones_own_adds_to_the_built_in_ones(
    sandbox: Sandbox, example_service: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = [{"name": "example", "service": "com.example.*"}]
    runtime = Runtime.build(sandbox_settings(sandbox, tmp_path_factory.mktemp("state"), packs=own))
    try:
        await runtime.start(follow=False)
        toolsets = {spec.toolset for spec in runtime.registry if spec.group}
        assert {"example", "systemd1", "login1"} <= toolsets
        found = await run(runtime, "find_tools", query="restart")
        assert "org.freedesktop.systemd1.Manager.RestartUnit" in {row["method"] for row in found.structured["methods"]}
        paired = await run(runtime, "find_tools", query="AddPair")
        assert [row["method"] for row in paired.structured["methods"]] == ["com.example.Fleet1.AddPair"]
    finally:
        await runtime.stop()
        runtime.close()
