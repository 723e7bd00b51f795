"""Tool packs on the sandbox's real services: tools built from introspection, calls through them, and
find_methods reaching what the budget leaves out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

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


async def test_find_methods_finds_restart_unit_and_try_restart_unit(packed: Runtime) -> None:
    result = await run(packed, "find_methods", query="restart")
    assert not result.is_error, result.text
    rows = {row["method"]: row for row in result.structured["methods"]}
    restart = rows["org.freedesktop.systemd1.Manager.RestartUnit"]
    assert (restart["in"], restart["out"], restart["args"]) == ("ss", "o", "name, mode")
    try_restart = rows["org.freedesktop.systemd1.Manager.TryRestartUnit"]
    assert (try_restart["in"], try_restart["out"]) == ("ss", "o")
    for row in (restart, try_restart):
        assert row["call"]["tool"] == "call_method"
        assert row["call"]["path"] == "/org/freedesktop/systemd1"


async def test_find_methods_can_search_a_service_outside_the_packs(packed: Runtime, example_service: str) -> None:
    result = await run(packed, "find_methods", query="pair", service=example_service)
    assert not result.is_error, result.text
    (row,) = result.structured["methods"]
    assert (row["method"], row["in"], row["out"], row["tool"]) == ("com.example.Fleet1.AddPair", "(ii)", "(ix)", None)


async def test_the_default_budget_holds_and_leaves_the_rest_callable(
    sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> None:
    runtime = Runtime.build(sandbox_settings(sandbox, tmp_path_factory.mktemp("state")))
    try:
        await runtime.start(follow=False)
        listed = runtime.registry.listed(runtime.policy, runtime.budget)
        listed_names = {entry.spec.name for entry in listed}
        assert len(listed) <= runtime.budget.max_tools
        groups = {str(entry.spec.group) for entry in listed if entry.spec.group}
        for pack in ("systemd1", "login1", "hostname1"):
            assert any(group.startswith(f"pack:{pack}:") for group in groups), pack
        unlisted = {spec.name for spec in runtime.registry if spec.group} - listed_names
        assert "systemd1_list_units_by_patterns" in unlisted  # the budget cannot hold every systemd1 read
        # Unlisted is not unreachable: find_methods points at call_method for it, and it is callable by name.
        found = await run(runtime, "find_methods", query="ListUnitsBy")
        row = next(r for r in found.structured["methods"] if r["method"].endswith(".ListUnitsByPatterns"))
        assert row["tool"] is None
        assert row["call"]["method"] == "ListUnitsByPatterns"
        called = await run(runtime, "systemd1_list_units_by_patterns", states=["active"], patterns=[])
        assert not called.is_error, called.text
        # A tool in use keeps its place: now it is listed, and a least-used one made room.
        relisted = {entry.spec.name for entry in runtime.registry.listed(runtime.policy, runtime.budget)}
        assert "systemd1_list_units_by_patterns" in relisted
        assert len(relisted) <= runtime.budget.max_tools
    finally:
        await runtime.stop()
        runtime.close()
