"""Toolsets: which tools a client sees — the operator's defaults, what it enabled, packs within the budget — and
the schemes that keep the list lean (merged packs, bounds that inform)."""

from __future__ import annotations

from typing import Any

import pytest

from fleetbus.config import PackSettings, load_settings
from fleetbus.guard.policy import load_policy
from fleetbus.runtime import Runtime
from fleetbus.tools import wire
from fleetbus.tools.packs import BUILTIN_PACKS, merge_packs
from fleetbus.tools.registry import Annotations, ToolBudget, ToolRegistry, ToolSpec
from fleetbus.tools.toolsets import BUILTIN_TOOLSETS, Choice, ToolsetCatalog, ToolsetError, ToolsetSelection


def _spec(name: str, toolset: str, group: str | None = None, rank: int = 0) -> ToolSpec:
    async def handler(*_: object) -> dict[str, object]:
        return {}

    return ToolSpec(
        name,
        name,
        "d",
        {"type": "object", "properties": {}},
        None,
        Annotations(read_only=True, destructive=False, idempotent=True),
        handler,
        toolset=toolset,
        group=group,
        rank=rank,
    )


def test_every_built_in_tool_is_in_exactly_one_toolset(tmp_path: Any) -> None:
    runtime = Runtime.build(load_settings(state_dir=tmp_path, system_bus="unix:path=/nonexistent"))
    try:
        built_in = {spec.name for spec in runtime.registry if spec.group is None}
        named = [tool for toolset in BUILTIN_TOOLSETS for tool in toolset.tools]
        assert sorted(named) == sorted(set(named)), "a tool is in two toolsets"
        assert set(named) == built_in
        assert all(spec.toolset for spec in runtime.registry)
    finally:
        runtime.close()


def test_configured_toolset_names_resolve_and_unknown_ones_are_named() -> None:
    catalog = ToolsetCatalog(BUILTIN_TOOLSETS, ["systemd1", "login1"])
    assert catalog.resolve(["default"]) == {"core", "bus", "systemd1", "login1"}
    assert catalog.resolve(["core", "host"]) == {"core", "host"}
    assert catalog.resolve(["all"]) == {"core", "bus", "units", "host", "guard", "systemd1", "login1"}
    with pytest.raises(ToolsetError, match="unknown toolset 'hots'; toolsets: core, bus, units, host"):
        catalog.resolve(["hots"])
    with pytest.raises(ToolsetError, match="built-in toolset"):
        ToolsetCatalog(BUILTIN_TOOLSETS, ["core"])


def test_a_clients_selection_is_its_own_and_listeners_hear_only_changes() -> None:
    catalog = ToolsetCatalog(BUILTIN_TOOLSETS, ["systemd1"])
    selection = ToolsetSelection(catalog, catalog.resolve(["default"]))
    heard: list[str] = []
    selection.add_listener(lambda: heard.append("changed"))
    assert selection.set("alice", "units", True).listed == {"core", "bus", "systemd1", "units"}
    assert selection.of("bob").listed == {"core", "bus", "systemd1"}
    selection.set("alice", "units", True)  # again: nothing changes, nobody is told
    assert heard == ["changed"]
    assert selection.set("alice", "bus", False).listed == {"core", "systemd1", "units"}
    assert selection.of("alice").asked == ("units",)
    with pytest.raises(ToolsetError, match="unknown toolset 'nope'"):
        selection.set("alice", "nope", True)


def test_the_clients_remembered_are_bounded() -> None:
    catalog = ToolsetCatalog(BUILTIN_TOOLSETS)
    selection = ToolsetSelection(catalog, frozenset({"core"}), max_clients=3)
    for client in range(10):
        selection.set(f"c{client}", "host", True)
    remembered = [c for c in (f"c{i}" for i in range(10)) if "host" in selection.of(c).listed]
    assert remembered == ["c7", "c8", "c9"]


def test_the_listing_shows_the_chosen_toolsets_and_a_packs_asked_for_come_first() -> None:
    registry = ToolRegistry()
    registry.extend([_spec("core_a", "core"), _spec("host_a", "host")])
    registry.replace_group("pack:a", [_spec(f"a_{i}", "a", "pack:a", rank=i) for i in range(5)])
    registry.replace_group("pack:b", [_spec(f"b_{i}", "b", "pack:b", rank=i) for i in range(5)])
    policy = load_policy("readonly")
    budget = ToolBudget(max_tools=5, max_chars=100_000)
    plain = [e.spec.name for e in registry.listed(policy, budget, Choice(frozenset({"core", "a", "b"})))]
    assert plain == ["core_a", "a_0", "b_0", "a_1", "b_1"]
    asked = Choice(frozenset({"core", "host", "a", "b"}), ("b", "host"))
    assert [e.spec.name for e in registry.listed(policy, budget, asked)] == ["core_a", "host_a", "b_0", "b_1", "b_2"]


def test_adding_a_pack_keeps_the_built_in_ones_and_a_namesake_replaces_one() -> None:
    mine = PackSettings(name="inventory", service="com.example.*")
    merged = merge_packs(BUILTIN_PACKS, [mine])
    assert [p.name for p in merged] == ["inventory", *(p.name for p in BUILTIN_PACKS)]
    own_systemd = PackSettings(name="systemd1", service="org.freedesktop.systemd1", featured=["ListUnits"])
    replaced = merge_packs(BUILTIN_PACKS, [own_systemd])
    assert [p for p in replaced if p.name == "systemd1"] == [own_systemd]
    assert len(replaced) == len(BUILTIN_PACKS)
    with pytest.raises(ValueError, match="named more than once: inventory"):
        merge_packs(BUILTIN_PACKS, [mine, mine])


def test_runtime_packs_follow_the_configuration(tmp_path: Any) -> None:
    own = {"name": "inventory", "service": "com.example.*"}
    for builtin, expected in ((True, 1 + len(BUILTIN_PACKS)), (False, 1)):
        settings = load_settings(
            state_dir=tmp_path, system_bus="unix:path=/nonexistent", packs=[own], builtin_packs=builtin
        )
        runtime = Runtime.build(settings)
        try:
            assert len(runtime.packs.packs) == expected
            assert runtime.packs.packs[0].name == "inventory"
        finally:
            runtime.close()


def test_lean_schemas_keep_bounds_that_inform_and_drop_a_machine_types_range() -> None:
    schema = {
        "type": "object",
        "properties": {
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
            "index": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1, "description": "u"},
            "names": {"type": "array", "items": {"type": "string", "maxLength": 9}, "maxItems": 200},
            "wait": {"type": "number", "exclusiveMinimum": 0, "maximum": 120},
        },
    }
    lean = wire.input_schema(schema)["properties"]
    assert lean["limit"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}
    assert lean["index"] == {"type": "integer", "description": "u"}
    assert lean["names"] == {"type": "array", "items": {"type": "string"}, "maxItems": 200}
    assert lean["wait"] == {"type": "number", "exclusiveMinimum": 0, "maximum": 120}
