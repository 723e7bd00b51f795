"""The operator tools through the registry and gateway, against the sandbox's real service manager, journal
and services: units, jobs, the journal's windows and cursors, host health, and invalid arguments."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fleetbus.gateway import Caller
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.conftest import sandbox_settings
from tests.integration.calls import ok, run

pytestmark = pytest.mark.sandbox

SEQUENCE = 30


@pytest.fixture
async def admin(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Runtime]:
    built = Runtime.build(sandbox_settings(sandbox, tmp_path / "admin-state", safety="admin"))
    yield built
    built.close()


def numbered_unit(sandbox: Sandbox) -> str:
    """A oneshot unit that logs seq-1 … seq-30, a little apart, and has run once when this returns."""
    name = f"counter-{secrets.token_hex(3)}.service"
    script = f"for i in $(seq 1 {SEQUENCE}); do echo seq-$i; sleep 0.005; done"
    sandbox.write_unit(name, f"[Service]\nType=oneshot\nExecStart=/bin/sh -c '{script}'\n")
    sandbox.systemd("StartUnit", "ss", name, "replace")
    return name


async def wait_for_lines(runtime: Runtime, unit: str, count: int) -> list[dict[str, Any]]:
    for _ in range(100):
        result = await ok(runtime, "query_journal", unit=unit, since="-1h", limit=1000, format="json")
        seq = [e for e in result["entries"] if e["message"].startswith("seq-")]
        if len(seq) >= count:
            return seq
        await asyncio.sleep(0.05)
    raise AssertionError(f"{unit} did not log {count} lines")


async def page_through(runtime: Runtime, **arguments: Any) -> tuple[list[str], int]:
    messages: list[str] = []
    pages = 0
    result = await ok(runtime, "query_journal", **arguments)
    while True:
        pages += 1
        messages += [e["message"] for e in result["entries"]]
        if not result["more"]:
            return messages, pages
        result = await ok(runtime, "query_journal", **arguments, cursor=result["next_cursor"])


# ---- the journal ---------------------------------------------------------------------------------


async def test_a_window_with_a_limit_gives_its_first_entries_and_pages_without_gaps(
    runtime: Runtime, sandbox: Sandbox
) -> None:
    unit = numbered_unit(sandbox)
    everything = await wait_for_lines(runtime, unit, SEQUENCE)
    expected = [f"seq-{i}" for i in range(1, SEQUENCE + 1)]
    assert [e["message"] for e in everything] == expected

    first = await ok(runtime, "query_journal", unit=unit, since="-1h", limit=7)
    assert [e["message"] for e in first["entries"]] == expected[:7]  # the first 7, not journalctl -n's last 7
    assert first["more"] is True
    assert first["order"] == "oldest first"

    messages, pages = await page_through(runtime, unit=unit, since="-1h", limit=7)
    assert messages == expected
    assert pages == 5

    # A window that starts and ends inside the sequence.
    since, until = everything[9]["time"], everything[19]["time"]
    inside, _ = await page_through(runtime, unit=unit, since=since, until=until, limit=4)
    assert inside[0] == "seq-10"
    assert inside[-1] == "seq-20"
    assert inside == expected[9:20]

    backwards, _ = await page_through(runtime, unit=unit, since="-1h", limit=8, reverse=True)
    assert backwards == list(reversed(expected))


async def test_without_since_the_newest_come_and_the_cursor_follows_what_is_new(
    runtime: Runtime, sandbox: Sandbox
) -> None:
    unit = numbered_unit(sandbox)
    await wait_for_lines(runtime, unit, SEQUENCE)
    tail = await ok(runtime, "query_journal", unit=unit, limit=5)
    assert [e["message"] for e in tail["entries"]][-5:] == [f"seq-{i}" for i in range(26, 31)]
    assert "earlier" in tail
    nothing_new = await ok(runtime, "query_journal", unit=unit, limit=5, cursor=tail["next_cursor"])
    assert nothing_new["entries"] == []
    assert nothing_new["next_cursor"] == tail["next_cursor"]

    await asyncio.to_thread(sandbox.systemd, "StartUnit", "ss", unit, "replace")
    await wait_for_lines(runtime, unit, 2 * SEQUENCE)
    new, _ = await page_through(runtime, unit=unit, limit=50, cursor=tail["next_cursor"])
    assert [m for m in new if m.startswith("seq-")] == [f"seq-{i}" for i in range(1, SEQUENCE + 1)]


async def test_journal_filters_and_formats(runtime: Runtime, sandbox: Sandbox) -> None:
    unit = numbered_unit(sandbox)
    await wait_for_lines(runtime, unit, SEQUENCE)
    grepped = await ok(runtime, "query_journal", unit=unit, since="-1h", grep="^seq-2[0-9]$", fields=["_HOSTNAME"])
    assert [e["message"] for e in grepped["entries"]] == [f"seq-{i}" for i in range(20, 30)]
    assert {e["_HOSTNAME"] for e in grepped["entries"]} == {sandbox.hostname}
    result = await run(runtime, "query_journal", unit=unit, since="-1h", limit=3)
    assert result.text.startswith("entries[3\t]{time\tunit\tpriority\tident\tpid\tmessage}:")
    as_json = await run(runtime, "query_journal", unit=unit, since="-1h", limit=3, format="json")
    assert as_json.text.startswith('{"entries":[')
    assert as_json.structured["entries"] == result.structured["entries"]
    assert (await ok(runtime, "query_journal", unit=unit, since="-1h", priority="err"))["entries"] == []


# ---- units ---------------------------------------------------------------------------------------


async def test_list_units_pages_with_a_cursor(runtime: Runtime, sandbox: Sandbox) -> None:
    prefix = f"pager-{secrets.token_hex(2)}"
    for index in range(5):
        sandbox.write_unit(f"{prefix}-{index}.service", "[Service]\nExecStart=/bin/sleep infinity\n")
        sandbox.systemd("StartUnit", "ss", f"{prefix}-{index}.service", "replace")
    first = await ok(runtime, "list_units", pattern=f"{prefix}-*", limit=2)
    assert [u["unit"] for u in first["units"]] == [f"{prefix}-0.service", f"{prefix}-1.service"]
    assert (first["total"], first["remaining"]) == (5, 3)
    second = await ok(runtime, "list_units", pattern=f"{prefix}-*", limit=2, cursor=first["next_cursor"])
    third = await ok(runtime, "list_units", pattern=f"{prefix}-*", limit=2, cursor=second["next_cursor"])
    assert [u["unit"] for u in second["units"] + third["units"]] == [f"{prefix}-{i}.service" for i in (2, 3, 4)]
    assert third["next_cursor"] is None
    mixed = await run(runtime, "list_units", pattern="other-*", limit=2, cursor=first["next_cursor"])
    assert mixed.is_error
    assert "other arguments" in mixed.text
    services = await ok(runtime, "list_units", type="socket")
    assert all(u["unit"].endswith(".socket") for u in services["units"])
    files = await ok(runtime, "list_unit_files", pattern=f"{prefix}-*", limit=10)
    assert [f["unit"] for f in files["unit_files"]] == [f"{prefix}-{i}.service" for i in range(5)]


async def test_unit_status_and_dependencies(runtime: Runtime) -> None:
    status = await ok(runtime, "unit_status", unit="dbus")
    assert (status["unit"], status["active"], status["sub"]) == ("dbus.service", "active", "running")
    assert status["main_pid"] > 0
    assert status["fragment"].endswith("dbus.service")
    deps = await ok(runtime, "unit_dependencies", unit="dbus.service")
    assert {"relation": "Requires", "unit": "dbus.socket", "active": "active", "sub": "running"} in deps["dependencies"]
    reverse = await ok(runtime, "unit_dependencies", unit="dbus.socket", direction="required_by")
    assert any(d["unit"] == "dbus.service" for d in reverse["dependencies"])


async def test_restart_waits_for_the_job_and_reports_the_state_after(admin: Runtime, sandbox: Sandbox) -> None:
    unit = f"jobbed-{secrets.token_hex(2)}.service"
    sandbox.write_unit(unit, "[Service]\nExecStart=/bin/sh -c 'echo cannot allocate >&2; exit 2'\n")
    started = await ok(admin, "unit_job", unit=unit, action="start")
    assert (started["result"], started["finished"]) == ("done", True)
    for _ in range(50):
        if (await ok(admin, "unit_status", unit=unit))["active"] == "failed":
            break
        await asyncio.sleep(0.05)
    sandbox.write_unit(unit, "[Service]\nExecStart=/bin/sleep infinity\n")
    restarted = await ok(admin, "unit_job", unit=unit, action="restart")
    assert restarted["result"] == "done"
    assert restarted["state"]["active"] == "active"
    assert restarted["state"]["main_pid"] > 0
    reloaded = await run(admin, "unit_job", unit=unit, action="reload")
    assert reloaded.is_error
    assert "cannot do that" in reloaded.text
    stopped = await ok(admin, "unit_job", unit=unit, action="stop")
    assert (stopped["result"], stopped["state"]["active"]) == ("done", "inactive")
    again = await ok(admin, "unit_job", unit=unit, action="try_restart")  # not running: nothing to restart
    assert again["state"]["active"] == "inactive"
    reset = await ok(admin, "reset_failed_unit", unit=unit)
    assert reset["state"]["active"] == "inactive"


async def test_a_job_that_fails_reports_the_units_last_error_lines(admin: Runtime, sandbox: Sandbox) -> None:
    unit = f"doomed-{secrets.token_hex(2)}.service"
    sandbox.write_unit(unit, "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo disk quota exceeded >&2; exit 1'\n")
    result = await ok(admin, "unit_job", unit=unit, action="start")
    assert result["result"] == "failed"
    assert result["state"]["active"] == "failed"
    assert result["state"]["result"] == "exit-code"
    for _ in range(50):
        if "disk quota exceeded" in (await ok(admin, "unit_status", unit=unit))["lines"]:
            break
        await asyncio.sleep(0.05)
    again = await ok(admin, "unit_job", unit=unit, action="start")
    assert "disk quota exceeded" in again["error_lines"]


async def test_enable_and_disable_change_unit_files(admin: Runtime, sandbox: Sandbox) -> None:
    unit = f"bootable-{secrets.token_hex(2)}.service"
    sandbox.write_unit(unit, "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=default.target\n")
    enabled = await ok(admin, "unit_file", unit=unit, action="enable")
    assert enabled["unit_file"] == "enabled"
    assert enabled["reloaded"] is True
    assert enabled["changes"][0]["type"] == "symlink"
    disabled = await ok(admin, "unit_file", unit=unit, action="disable")
    assert disabled["unit_file"] == "disabled"


async def test_protected_units_are_refused_before_any_job(admin: Runtime) -> None:
    for tool, action in (("unit_job", "stop"), ("unit_job", "restart"), ("unit_file", "disable")):
        result = await run(admin, tool, unit="dbus.service", action=action)
        assert result.is_error, (tool, action)
        assert "refused by policy rule 'protected-units'" in result.text


async def test_an_alias_of_a_protected_unit_is_protected(sandbox: Sandbox, tmp_path: Path) -> None:
    # systemd answers to a unit's aliases (here a symlink in the unit directory, as `Alias=` makes one), so a
    # protected unit must not be reachable by one of its other names.
    real, alias = f"guarded-{secrets.token_hex(2)}.service", f"nickname-{secrets.token_hex(2)}.service"
    (sandbox.paths.unit_dir / alias).symlink_to(sandbox.paths.unit_dir / real)
    sandbox.write_unit(real, "[Service]\nExecStart=/bin/sleep infinity\n")
    sandbox.systemd("StartUnit", "ss", real, "replace")
    settings = sandbox_settings(sandbox, tmp_path / "state", safety="admin", protected_units=[real])
    runtime = Runtime.build(settings)
    try:
        for action in ("stop", "restart"):
            result = await run(runtime, "unit_job", unit=alias, action=action)
            assert result.is_error, action
            assert f"{real} is a protected unit" in result.text, result.text
        explained = await ok(
            runtime,
            "explain",
            service="org.freedesktop.systemd1",
            path="/org/freedesktop/systemd1",
            interface="org.freedesktop.systemd1.Manager",
            method="StopUnit",
            signature="ss",
            args=[alias, "replace"],
        )
        assert (explained["verdict"], explained["protected_units"]) == ("deny", [real])
        # Ordinary units are untouched by the lookup: one still restarts.
        worker = f"plain-{secrets.token_hex(2)}.service"
        sandbox.write_unit(worker, "[Service]\nExecStart=/bin/sleep infinity\n")
        restarted = await ok(runtime, "unit_job", unit=worker, action="restart")
        assert restarted["result"] == "done"
    finally:
        sandbox.systemd("StopUnit", "ss", real, "replace")
        runtime.close()


# ---- host health ---------------------------------------------------------------------------------


async def test_host_tools_answer(runtime: Runtime, sandbox: Sandbox) -> None:
    info = await ok(runtime, "host_info")
    assert info["hostname"] == sandbox.hostname
    assert len(info["machine_id"]) == 32
    assert len(info["boot_id"]) == 32
    assert info["uptime_s"] > 0
    status = await ok(runtime, "system_status")
    assert status["cpus"] >= 1
    assert status["memory"]["total_mb"] > 0
    assert any(d["mount"] == "/" for d in status["disks"])
    if await asyncio.to_thread(Path("/proc/pressure").is_dir):
        assert set(status["pressure"]) == {"cpu", "memory", "io"}
    top = await ok(runtime, "top_processes", sort="memory", limit=3)
    assert len(top["processes"]) == 3
    assert top["processes"][0]["rss_mb"] >= top["processes"][1]["rss_mb"]
    network = await ok(runtime, "network_status")
    assert any(i["name"] == "lo" for i in network["interfaces"])
    clock = await ok(runtime, "time_status")
    assert clock["timezone"]
    sessions = await ok(runtime, "list_sessions")
    assert sessions["total"] == len(sessions["sessions"])


async def test_health_check_reports_a_failed_unit_with_its_lines(runtime: Runtime, sandbox: Sandbox) -> None:
    unit = f"sick-{secrets.token_hex(2)}.service"
    sandbox.write_unit(unit, "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo segfault in worker >&2; exit 9'\n")
    sandbox.systemd("StartUnit", "ss", unit, "replace")
    for _ in range(100):
        report = await ok(runtime, "health_check", limit=50)
        row = next((r for r in report["failed_units"] if r["unit"] == unit), None)
        if row and row["last_lines"]:
            break
        await asyncio.sleep(0.05)
    assert row is not None
    assert report["healthy"] is False
    assert row["result"] == "exit-code"
    assert "segfault in worker" in row["last_lines"]


# ---- invalid arguments ---------------------------------------------------------------------------

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("list_units", {"limit": 0}, "argument 'limit'"),
    ("list_units", {"limit": 1001}, "argument 'limit'"),
    ("list_units", {"limit": "10"}, "argument 'limit'"),
    ("list_units", {"type": "program"}, "argument 'type'"),
    ("list_units", {"cursor": "not-a-cursor"}, "argument 'cursor'"),
    ("list_units", {"manager": "root"}, "argument 'manager'"),
    ("list_units", {"colour": "red"}, "colour"),
    ("unit_status", {}, "missing argument"),
    ("unit_status", {"unit": "no-such-unit.service"}, "unknown unit 'no-such-unit.service'"),
    ("unit_status", {"unit": "bad name"}, "argument 'unit'"),
    ("unit_status", {"unit": 7}, "argument 'unit'"),
    ("unit_status", {"unit": "dbus.service", "lines": 51}, "argument 'lines'"),
    (
        "unit_status",
        {"unit": "dbus.service", "manager": "user"},
        "there is no user service manager (session bus) to ask",
    ),
    ("unit_dependencies", {"unit": "ghost.service"}, "unknown unit 'ghost.service'"),
    ("unit_dependencies", {"unit": "dbus.service", "direction": "sideways"}, "argument 'direction'"),
    ("list_unit_files", {"limit": -1}, "argument 'limit'"),
    ("list_unit_files", {"state": "Enabled!"}, "argument 'state'"),
    ("unit_job", {"unit": "ghost", "action": "start"}, "unknown unit 'ghost.service'"),
    ("unit_job", {"unit": "ghost.service", "action": "stop"}, "unknown unit 'ghost.service'"),
    ("unit_job", {"unit": "ghost.service", "action": "restart", "mode": "isolate"}, "argument 'mode'"),
    ("unit_job", {"unit": "dbus.service", "action": "reload", "wait": 0}, "argument 'wait'"),
    ("unit_job", {"unit": ["dbus.service"], "action": "try_restart"}, "argument 'unit'"),
    ("unit_job", {"unit": "dbus.service", "action": "kill"}, "argument 'action'"),
    ("unit_job", {"unit": "dbus.service"}, "action"),
    ("unit_file", {"unit": "ghost.service", "action": "enable"}, "unknown unit 'ghost.service'"),
    ("unit_file", {"unit": "ghost.service", "action": "disable"}, "unknown unit 'ghost.service'"),
    ("unit_file", {"unit": "dbus.service", "action": "mask"}, "argument 'action'"),
    ("unit_file", {"unit": "dbus.service", "action": "disable", "force": True}, "force applies to action=enable"),
    ("reset_failed_unit", {"unit": "ghost.service"}, "unknown unit 'ghost.service'"),
    ("query_journal", {"since": "soon"}, "invalid argument 'since': 'soon'"),
    ("query_journal", {"until": "15m"}, "invalid argument 'until': '15m' is a duration without a direction"),
    ("query_journal", {"since": "-1h", "until": "-2h"}, "since"),
    ("query_journal", {"limit": 0}, "argument 'limit'"),
    ("query_journal", {"limit": 100000}, "argument 'limit'"),
    ("query_journal", {"priority": "loud"}, "argument 'priority'"),
    ("query_journal", {"boot": 5}, "argument 'boot'"),
    ("query_journal", {"boot": -999}, "argument 'boot'"),
    ("query_journal", {"grep": "("}, "argument 'grep'"),
    ("query_journal", {"fields": ["lower"]}, "argument 'fields"),
    ("query_journal", {"cursor": "eyJrIjoibGlzdF91bml0cyJ9"}, "argument 'cursor'"),
    ("query_journal", {"unit": "ghost-unit-never-was.service"}, "no unit 'ghost-unit-never-was.service'"),
    ("query_journal", {"reverse": "yes"}, "argument 'reverse'"),
    ("host_info", {"verbose": True}, "verbose"),
    ("system_status", {"limit": 0}, "argument 'limit'"),
    ("top_processes", {"sort": "io"}, "argument 'sort'"),
    ("top_processes", {"limit": 101}, "argument 'limit'"),
    ("top_processes", {"sample": 0}, "argument 'sample'"),
    ("network_status", {"limit": 1.5}, "argument 'limit'"),
    ("time_status", {"format": "xml"}, "argument 'format'"),
    ("list_sessions", {"cursor": 5}, "argument 'cursor'"),
    ("list_sessions", {"cursor": "!!"}, "argument 'cursor'"),
    ("health_check", {"lines": 21}, "argument 'lines'"),
]


@pytest.mark.parametrize(
    ("tool", "arguments", "named"), INVALID, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(INVALID)]
)
async def test_invalid_arguments_are_error_results_naming_the_problem(
    runtime: Runtime, tool: str, arguments: dict[str, Any], named: str
) -> None:
    result = await runtime.registry.run(runtime.context(Caller("test")), tool, arguments)
    assert result.is_error, (tool, arguments, result.text)
    assert named in result.text, (tool, arguments, result.text)


async def test_the_generic_tools_take_format_and_list_services_pages(runtime: Runtime) -> None:
    first = await run(runtime, "list_services", pattern="org.freedesktop.*", limit=2)
    assert not first.is_error, first.text
    assert first.text.startswith("bus: system\nservices[2\t]{")  # TOON by default for tables
    cursor = first.structured["next_cursor"]
    second = await ok(runtime, "list_services", pattern="org.freedesktop.*", limit=2, cursor=cursor, format="json")
    names = [s["name"] for s in first.structured["services"] + second["services"]]
    assert names == sorted(names)
    assert len(set(names)) == 4
    as_json = await run(runtime, "list_objects", service="org.freedesktop.systemd1", max_nodes=3, format="json")
    assert as_json.text.startswith('{"service":')
    explained = await run(
        runtime,
        "explain",
        service="org.freedesktop.systemd1",
        path="/org/freedesktop/systemd1",
        interface="org.freedesktop.systemd1.Manager",
        method="GetUnit",
        args=["dbus.service"],
        format="toon",
    )
    assert explained.text.startswith("operation:")
