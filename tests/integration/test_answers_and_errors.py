"""Errors a model can act on and answers it can narrow, against the sandbox's real services: unknown names with
the nearest real ones, state filters that refuse misspellings, grep that matches nothing, and call_method /
get_properties answers in pages within a budget, or narrowed by select / names."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import BusType
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface

from fleetbus import narrowing
from fleetbus.output import render_json
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from fleetbus.tools.registry import TOOL_FINDER
from tests.conftest import sandbox_settings
from tests.integration.calls import ok, run

pytestmark = pytest.mark.sandbox

HOSTNAME1 = {
    "service": "org.freedesktop.hostname1",
    "path": "/org/freedesktop/hostname1",
    "interface": "org.freedesktop.hostname1",
}
POLKIT = {
    "service": "org.freedesktop.PolicyKit1",
    "path": "/org/freedesktop/PolicyKit1/Authority",
    "interface": "org.freedesktop.PolicyKit1.Authority",
    "method": "EnumerateActions",
    "args": [""],
}
DBUS_SERVICE = {
    "service": "org.freedesktop.systemd1",
    "path": "/org/freedesktop/systemd1/unit/dbus_2eservice",
    "interface": "org.freedesktop.systemd1.Service",
}


@pytest.fixture
async def admin(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Runtime]:
    built = Runtime.build(sandbox_settings(sandbox, tmp_path / "admin-state", safety="admin"))
    yield built
    built.close()


def suggested(message: str) -> list[str]:
    """The names after "did you mean", as the message lists them."""
    found = re.search(r"did you mean (.+?)\?", message)
    assert found is not None, message
    return re.split(r", | or ", found.group(1))


# ---- unknown tools -------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["readonly", "admin"])
async def test_an_unknown_tool_suggests_the_nearest_tools_the_policy_lists(
    sandbox: Sandbox, tmp_path: Path, preset: str
) -> None:
    runtime = Runtime.build(sandbox_settings(sandbox, tmp_path / "state", safety=preset))
    try:
        await runtime.start(follow=False)  # with the pack tools, as a server has them
        listed = {entry.spec.name for entry in runtime.registry.listed(runtime.policy)}
        result = await run(runtime, "set_propety", value=1)
    finally:
        runtime.close()
    assert result.is_error
    names = suggested(result.text)
    assert set(names) <= listed
    # set_property is what was meant; only a preset that lists it may suggest it.
    assert ("set_property" in names) == ("set_property" in listed)
    assert TOOL_FINDER in result.text
    assert len(result.text) < 300  # was every registered name: 4,794 characters


# ---- unknown names on the bus --------------------------------------------------------------------


async def test_a_misspelt_property_suggests_the_properties_there_are(runtime: Runtime) -> None:
    result = await run(runtime, "get_property", **HOSTNAME1, property="Hostnam")
    assert result.is_error
    assert result.text.startswith("org.freedesktop.hostname1 has no property 'Hostnam' (argument 'property')")
    assert suggested(result.text)[0] == "Hostname"


async def test_a_misspelt_interface_suggests_the_interface_meant_not_its_namespace_neighbours(runtime: Runtime) -> None:
    result = await run(runtime, "get_properties", **{**HOSTNAME1, "interface": "org.freedesktop.hostnam1"})
    assert result.is_error
    assert "has no interface 'org.freedesktop.hostnam1' (argument 'interface')" in result.text
    assert suggested(result.text) == ["org.freedesktop.hostname1"]


async def test_a_misspelt_service_suggests_the_services_there_are(runtime: Runtime) -> None:
    await ok(runtime, "get_property", **HOSTNAME1, property="Hostname")
    for tool, extra in (("list_objects", {}), ("get_property", {"path": "/", "interface": "a.b", "property": "X"})):
        result = await run(runtime, tool, service="org.freedesktop.hostnam1", **extra)
        assert result.is_error, tool
        assert "has no service 'org.freedesktop.hostnam1' (argument 'service')" in result.text
        assert suggested(result.text)[0] == "org.freedesktop.hostname1"


async def test_a_misspelt_signal_is_refused_at_once_with_the_signals_there_are(runtime: Runtime) -> None:
    object_path = {"service": HOSTNAME1["service"], "path": HOSTNAME1["path"]}
    started = time.monotonic()
    result = await run(runtime, "wait_signal", **object_path, member="PropertiesChangd", timeout=5)
    assert result.is_error
    assert time.monotonic() - started < 4  # refused, not waited for
    assert "has no signal 'PropertiesChangd' (argument 'member')" in result.text
    assert suggested(result.text) == ["PropertiesChanged"]
    # The interface the properties belong to emits nothing; the message says which interface does.
    wrong_interface = await run(runtime, "wait_signal", **HOSTNAME1, member="PropertiesChanged", timeout=5)
    assert wrong_interface.is_error
    assert "PropertiesChanged is a signal of org.freedesktop.DBus.Properties" in wrong_interface.text
    manager = await run(
        runtime,
        "wait_signal",
        service="org.freedesktop.systemd1",
        interface="org.freedesktop.systemd1.Manager",
        member="JobRemovd",
        timeout=5,
    )
    assert manager.is_error
    assert suggested(manager.text)[0] == "JobRemoved"


async def test_a_misspelt_unit_suggests_the_units_there_are(runtime: Runtime) -> None:
    result = await run(runtime, "unit_status", unit="dbuss.service")
    assert result.is_error
    assert result.text.startswith("unknown unit 'dbuss.service' (argument 'unit')")
    assert suggested(result.text)[0] == "dbus.service"


async def test_introspect_narrows_to_members_matching_a_glob(runtime: Runtime) -> None:
    result = await ok(
        runtime, "introspect", service="org.freedesktop.systemd1", path="/org/freedesktop/systemd1", member="Get*"
    )
    members = [
        m["name"] for i in result["interfaces"] for kind in ("methods", "properties", "signals") for m in i[kind]
    ]
    assert members
    assert all(name.startswith("Get") for name in members)
    everything = await ok(runtime, "introspect", service="org.freedesktop.systemd1", path="/org/freedesktop/systemd1")
    every_member = [
        m["name"] for i in everything["interfaces"] for kind in ("methods", "properties", "signals") for m in i[kind]
    ]
    assert sorted(members) == sorted(name for name in every_member if name.startswith("Get"))


# ---- state filters -------------------------------------------------------------------------------


async def test_an_unknown_unit_state_is_refused_naming_the_valid_ones(runtime: Runtime) -> None:
    result = await run(runtime, "list_units", state="bogus")
    assert result.is_error  # was an empty list
    assert result.text.startswith("unknown unit state 'bogus' (argument 'state')")
    for state in ("loaded", "active", "failed", "running"):
        assert state in result.text
    misspelt = await run(runtime, "list_units", state="runing")
    assert suggested(misspelt.text)[0] == "running"
    running = await ok(runtime, "list_units", state="running")
    assert running["units"]
    assert all(unit["sub"] == "running" for unit in running["units"])
    # A real state no unit is in is an empty answer, not an error.
    assert (await ok(runtime, "list_units", state="maintenance"))["units"] == []


async def test_an_unknown_unit_file_state_is_refused_naming_the_valid_ones(runtime: Runtime) -> None:
    result = await run(runtime, "list_unit_files", state="enable")
    assert result.is_error
    assert suggested(result.text)[0] == "enabled"
    assert (await ok(runtime, "list_unit_files", state="masked-runtime"))["unit_files"] == []


# ---- the journal ---------------------------------------------------------------------------------


async def test_a_grep_that_matches_nothing_is_an_empty_page(runtime: Runtime, sandbox: Sandbox) -> None:
    token = secrets.token_hex(6)
    unit = f"greeter-{token}.service"
    sandbox.write_unit(unit, f"[Service]\nType=oneshot\nExecStart=/bin/echo hello-{token}\n")
    sandbox.systemd("StartUnit", "ss", unit, "replace")
    for _ in range(100):
        found = await ok(runtime, "query_journal", since="-1h", grep=f"hello-{token}", format="json")
        if found["entries"]:
            break
        await asyncio.sleep(0.05)
    assert [e["message"] for e in found["entries"]] == [f"hello-{token}"]
    for window in ({"since": "-1h"}, {}):
        empty = await ok(runtime, "query_journal", grep=f"nothing-{token}", **window)
        assert (empty["entries"], empty["count"]) == ([], 0)  # was "journalctl failed (exit status 1)"
    continued = await ok(runtime, "query_journal", grep=f"hello-{token}", since="-1h", cursor=found["next_cursor"])
    assert continued["entries"] == []
    broken = await run(runtime, "query_journal", grep="(")
    assert broken.is_error
    assert broken.text.startswith("invalid argument 'grep'")


# ---- narrowing big answers -----------------------------------------------------------------------


def action_ids(rows: list[Any]) -> list[str]:
    return [str(row[0]) for row in rows]


async def test_a_big_reply_comes_in_pages_within_the_budget_that_add_up_to_the_whole(runtime: Runtime) -> None:
    whole = await ok(runtime, "call_method", **POLKIT, max_chars=narrowing.MAX_BUDGET)
    actions = whole["values"][0]
    assert "page" not in whole
    assert len(render_json(whole)) > narrowing.DEFAULT_BUDGET, "too few actions for this test to page"
    first = await ok(runtime, "call_method", **POLKIT)
    assert first["page"]["of"] == "values/0"
    assert first["page"]["total"] == len(actions)
    pages = [first]
    while pages[-1]["next_cursor"]:
        pages.append(await ok(runtime, "call_method", **POLKIT, cursor=pages[-1]["next_cursor"]))
    assert len(pages) > 1
    for page in pages:
        assert len(render_json(page)) <= narrowing.DEFAULT_BUDGET + 300
    seen = [row for page in pages for row in page["values"][0]]
    assert sorted(action_ids(seen)) == sorted(action_ids(actions))
    assert len(set(action_ids(seen))) == len(seen)
    other = await run(runtime, "call_method", **{**POLKIT, "args": ["de"]}, cursor=first["next_cursor"])
    assert other.is_error
    assert other.text.startswith("invalid argument 'cursor'")


async def test_select_narrows_a_reply_to_the_fields_asked_for(runtime: Runtime) -> None:
    whole = await ok(runtime, "call_method", **POLKIT, max_chars=narrowing.MAX_BUDGET)
    ids = await ok(runtime, "call_method", **POLKIT, select="values[0][*][0]", max_chars=narrowing.MAX_BUDGET)
    assert sorted(ids["selected"]) == sorted(action_ids(whole["values"][0]))
    assert "values" not in ids
    login = await ok(
        runtime, "call_method", **POLKIT, select="values[0][?contains([0], 'login1')].{id: [0], description: [1]}"
    )
    expected = sorted((str(row[0]), str(row[1])) for row in whole["values"][0] if "login1" in str(row[0]))
    assert expected
    assert sorted((row["id"], row["description"]) for row in login["selected"]) == expected
    wrong = await run(runtime, "call_method", **POLKIT, select="value[0]")
    assert wrong.is_error
    assert wrong.text.startswith("argument 'select'")


async def test_get_properties_narrows_to_names_and_pages_the_rest(runtime: Runtime) -> None:
    whole = await ok(runtime, "get_properties", **DBUS_SERVICE, max_chars=narrowing.MAX_BUDGET)
    named = await ok(runtime, "get_properties", **DBUS_SERVICE, names=["MainPID", "NRestarts"])
    assert list(named["properties"]) == ["MainPID", "NRestarts"]
    assert named["properties"]["NRestarts"] == whole["properties"]["NRestarts"]
    misspelt = await run(runtime, "get_properties", **DBUS_SERVICE, names=["MainPID", "Restrat"])
    assert misspelt.is_error
    assert "has no property 'Restrat' (argument 'names')" in misspelt.text
    assert "Restart" in suggested(misspelt.text)
    pages = [await ok(runtime, "get_properties", **DBUS_SERVICE, max_chars=narrowing.MIN_BUDGET * 2)]
    while pages[-1]["next_cursor"]:
        pages.append(
            await ok(
                runtime,
                "get_properties",
                **DBUS_SERVICE,
                max_chars=narrowing.MIN_BUDGET * 2,
                cursor=pages[-1]["next_cursor"],
            )
        )
    assert len(pages) > 1
    assert [name for page in pages for name in page["properties"]] == list(whole["properties"])


async def test_list_services_pages_by_budget_without_gaps(sandbox: Sandbox, tmp_path: Path) -> None:
    """More services than one page's budget holds: the cursor continues right after the last row shown."""
    prefix = f"com.example.Many{secrets.token_hex(2)}"
    names = [f"{prefix}.N{index:04d}" for index in range(700)]
    # dbus-daemon lets one connection own at most 512 names.
    owners = [
        await MessageBus(bus_address=sandbox.system_bus_address, bus_type=BusType.SYSTEM).connect() for _ in range(2)
    ]
    # Many reads per page (two per running name): a limiter sized for this test alone.
    runtime = Runtime.build(sandbox_settings(sandbox, tmp_path / "state", read_rate=100_000, read_burst=100_000))
    try:
        for index, name in enumerate(names):
            await owners[index % 2].request_name(name)
        pages = [await ok(runtime, "list_services", pattern=f"{prefix}.*", limit=1000, format="json")]
        while pages[-1]["next_cursor"]:
            pages.append(
                await ok(
                    runtime,
                    "list_services",
                    pattern=f"{prefix}.*",
                    limit=1000,
                    format="json",
                    cursor=pages[-1]["next_cursor"],
                )
            )
    finally:
        runtime.close()
        for owner in owners:
            owner.disconnect()
    assert [row["name"] for page in pages for row in page["services"]] == names
    assert len(pages) > 1, "one page held every name: the budget was not reached, so this tested nothing"


class Leaf(ServiceInterface):
    """An object with nothing to call: what a big object tree is made of."""

    def __init__(self) -> None:
        super().__init__("com.example.AnObjectTreeLeafWithALongInterfaceName1")


async def test_list_objects_pages_a_big_tree_without_gaps(sandbox: Sandbox, tmp_path: Path) -> None:
    name = f"com.example.Tree{secrets.token_hex(2)}"
    paths = [f"/com/example/Tree/leaf{index:04d}" for index in range(800)]
    owner = await MessageBus(bus_address=sandbox.system_bus_address, bus_type=BusType.SYSTEM).connect()
    # One introspection per object, all through the rate limiter: sized for this test alone.
    runtime = Runtime.build(sandbox_settings(sandbox, tmp_path / "state", read_rate=100_000, read_burst=100_000))
    try:
        for path in paths:
            owner.export(path, Leaf())
        await owner.request_name(name)
        arguments: dict[str, Any] = {"service": name, "max_nodes": 2000, "format": "json"}
        pages = [await ok(runtime, "list_objects", **arguments)]
        while pages[-1]["next_cursor"]:
            pages.append(await ok(runtime, "list_objects", **arguments, cursor=pages[-1]["next_cursor"]))
    finally:
        runtime.close()
        owner.disconnect()
    seen = [row["path"] for page in pages for row in page["objects"]]
    assert [path for path in seen if path.startswith("/com/example/Tree/")] == paths
    assert len(seen) == len(set(seen))
    assert len(pages) > 1, "one page held the whole tree: the budget was not reached, so this tested nothing"


async def test_audit_query_pages_by_budget_without_gaps(sandbox: Sandbox, tmp_path: Path) -> None:
    runtime = Runtime.build(
        sandbox_settings(sandbox, tmp_path / "state", safety="admin", read_rate=100_000, read_burst=100_000)
    )
    try:
        for _ in range(600):  # each read leaves its record: more than one page's budget of them
            await ok(runtime, "get_property", **HOSTNAME1, property="HostnameSource")
        pages = [await ok(runtime, "audit_query", limit=500, format="json")]
        while pages[-1]["next_after_seq"] is not None:
            pages.append(
                await ok(runtime, "audit_query", limit=500, format="json", after_seq=pages[-1]["next_after_seq"])
            )
    finally:
        runtime.close()
    seqs = [row["seq"] for page in pages for row in page["records"]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # every record once, none skipped
    assert len(seqs) >= 600
    assert any(page.get("truncated") for page in pages), "no page reached the budget, so this tested nothing"


COLLECTING_POLICY = """
[[classify]]
interface = "com.example.Fleet1"
member = "Collect"
risk = "routine"
reason = "stands for a method that changes something: its answer must not be fetched twice"
"""


async def test_a_big_answer_of_a_method_that_is_not_a_read_gets_no_cursor(
    sandbox: Sandbox, tmp_path: Path, example_service: str
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(COLLECTING_POLICY)
    runtime = Runtime.build(sandbox_settings(sandbox, tmp_path / "state", safety="admin", policy_file=policy))
    call = {"service": example_service, "path": "/com/example/Fleet1", "interface": "com.example.Fleet1"}
    try:
        big = await ok(runtime, "call_method", **call, method="Collect", args=[2000])
        small = await ok(runtime, "call_method", **call, method="Collect", args=[3])
        selected = await ok(runtime, "call_method", **call, method="Collect", args=[2000], select="values[0][-1]")
    finally:
        runtime.close()
    assert big["page"]["total"] == 2000
    assert big["page"]["count"] < 2000
    assert big["next_cursor"] is None  # a cursor would run the call a second time
    assert "narrow with select" in big["truncated"][0]
    assert small == {"signature": "as", "values": [["item-00000", "item-00001", "item-00002"]]}
    assert selected["selected"] == "item-01999"
