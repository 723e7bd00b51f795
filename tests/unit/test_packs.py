"""Tool packs as pure logic: names, schemas, the tools built from introspection, and the listing budget."""

from __future__ import annotations

import re
from pathlib import Path

from fleetbus.config import PackSettings
from fleetbus.dbus.introspect import parse
from fleetbus.guard.policy import load_policy
from fleetbus.tools.packs import BUILTIN_PACKS, build_tools, snake, tool_name
from fleetbus.tools.registry import Annotations, ToolBudget, ToolRegistry, ToolSpec

EXAMPLE_XML = """<node>
 <interface name="com.example.Fleet1">
  <method name="Echo"><arg name="text" type="s" direction="in"/><arg type="s" direction="out"/></method>
  <method name="Describe"><arg name="options" type="a{sv}" direction="in"/>
   <arg name="summary" type="(sa{sv})" direction="out"/></method>
  <method name="AddPair"><arg name="pair" type="(ii)" direction="in"/><arg type="(ix)" direction="out"/></method>
  <method name="Checksum"><arg name="data" type="ay" direction="in"/><arg type="(uay)" direction="out"/></method>
  <method name="TakeFd"><arg name="fd" type="h" direction="in"/></method>
  <property name="Version" type="s" access="read"/>
 </interface>
 <interface name="com.example.Other1"><method name="Echo"/></interface>
 <interface name="org.freedesktop.DBus.Peer"><method name="Ping"/></interface>
</node>"""
NAME = re.compile(r"^[a-z0-9_]{1,64}$")


def test_snake_case_names() -> None:
    assert snake("StartUnit") == "start_unit"
    assert snake("GetUnitByPID") == "get_unit_by_pid"
    assert snake("KExec") == "k_exec"
    assert snake("ListUnitsByPatterns") == "list_units_by_patterns"
    assert snake("Ping") == "ping"


def test_tool_names_are_short_unique_and_portable() -> None:
    taken: set[str] = set()
    long_member = "A" + "VeryLongMemberName" * 6
    first = tool_name("systemd1", long_member, taken)
    taken.add(first)
    second = tool_name("systemd1", long_member, taken)
    assert first != second
    assert NAME.match(first)
    assert NAME.match(second)


def test_tools_are_built_from_introspection() -> None:
    pack = PackSettings(name="example", service="com.example.*")
    built = build_tools(pack, "com.example.Fleet", [parse(EXAMPLE_XML, "/com/example/Fleet1")])
    names = {spec.name for spec in built.specs}
    # Echo exists in two interfaces: both are qualified; the standard Peer interface is skipped; a method
    # taking a unix fd cannot be offered but stays findable.
    assert names == {
        "example_fleet_fleet1_echo",
        "example_fleet_other1_echo",
        "example_fleet_describe",
        "example_fleet_add_pair",
        "example_fleet_checksum",
        "example_fleet_get_properties",
    }
    assert all(NAME.match(name) for name in names)
    assert [m.method.name for m in built.methods if m.tool is None] == ["TakeFd"]
    add_pair = next(spec for spec in built.specs if spec.name == "example_fleet_add_pair")
    assert add_pair.input_schema["required"] == ["pair"]
    assert add_pair.input_schema["properties"]["pair"]["prefixItems"][0]["type"] == "integer"
    assert add_pair.output_schema is not None
    assert add_pair.output_schema["required"] == ["arg0"]
    assert add_pair.group == "pack:example:com.example.Fleet"
    assert add_pair.operations[0].member == "AddPair"


def test_dangerous_pack_members_are_hidden_under_readonly_and_destructive_under_admin(tmp_path: Path) -> None:
    xml = """<node><interface name="org.freedesktop.login1.Manager">
      <method name="ListSessions"><arg name="sessions" type="a(susso)" direction="out"/></method>
      <method name="PowerOff"><arg name="interactive" type="b" direction="in"/></method>
      <method name="LockSessions"/></interface></node>"""
    login1 = next(p for p in BUILTIN_PACKS if p.name == "login1")
    built = build_tools(login1, "org.freedesktop.login1", [parse(xml, "/org/freedesktop/login1")])
    registry = ToolRegistry()
    registry.replace_group("pack:login1:org.freedesktop.login1", built.specs)
    seen = {}
    for preset in ("readonly", "operator", "admin"):
        seen[preset] = {entry.spec.name: entry for entry in registry.listed(load_policy(preset))}
    assert set(seen["readonly"]) == {"login1_list_sessions"}
    assert "login1_power_off" not in seen["operator"]
    assert seen["operator"]["login1_lock_sessions"].annotations.destructive is True
    assert seen["admin"]["login1_power_off"].annotations.destructive is True
    assert seen["admin"]["login1_list_sessions"].annotations.read_only is True


def _spec(name: str, group: str | None, rank: int = 0) -> ToolSpec:
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
        group=group,
        rank=rank,
    )


def test_the_budget_lists_built_ins_then_packs_in_turn_and_used_tools_first() -> None:
    registry = ToolRegistry()
    registry.extend([_spec(f"builtin_{i}", None) for i in range(3)])
    registry.replace_group("pack:a", [_spec(f"a_{i}", "pack:a", rank=i) for i in range(10)])
    registry.replace_group("pack:b", [_spec(f"b_{i}", "pack:b", rank=i) for i in range(10)])
    policy = load_policy("readonly")
    listed = [e.spec.name for e in registry.listed(policy, ToolBudget(max_tools=7, max_chars=100_000))]
    assert listed == ["builtin_0", "builtin_1", "builtin_2", "a_0", "b_0", "a_1", "b_1"]
    registry.usage["b_9"] += 5
    listed = [e.spec.name for e in registry.listed(policy, ToolBudget(max_tools=5, max_chars=100_000))]
    assert listed == ["builtin_0", "builtin_1", "builtin_2", "a_0", "b_9"]


def test_replacing_a_group_tells_listeners_only_when_something_changed() -> None:
    registry = ToolRegistry()
    heard: list[str] = []
    registry.add_listener(lambda: heard.append("changed"))
    assert registry.replace_group("pack:a", [_spec("a_0", "pack:a")]) is True
    assert registry.replace_group("pack:a", [_spec("a_0", "pack:a")]) is False
    assert registry.replace_group("pack:a", []) is True
    assert heard == ["changed", "changed"]
    assert registry.get("a_0") is None
