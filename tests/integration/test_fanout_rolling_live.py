"""Rolling unit jobs and fan-out against the sandbox's real service manager, through the gateway: the health gate
watches real PropertiesChanged signals; a unit that dies after its restart fails the gate with its journal lines;
a dry run changes no unit (InvocationID unchanged); policy refuses a protected unit before anything starts."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fleetbus.gateway import Caller
from fleetbus.operation import LOCAL_HOST
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from fleetbus.tools.fanout.local import ContextRunner, ContextUnitJobs
from fleetbus.tools.fanout.plan import PlanLedger
from fleetbus.tools.fanout.rolling import stays_active
from fleetbus.tools.fanout.tools import fan_out_tool, rolling_unit_job
from fleetbus.tools.registry import ToolContext, ToolError
from tests.conftest import sandbox_settings
from tests.integration.calls import ok

pytestmark = pytest.mark.sandbox

GATE = {"min_healthy_s": 1.0, "healthy_deadline_s": 10}


class LocalOnly:
    """The inventory of a fleet of one: the sandbox's own manager (the hosts wiring brings the others)."""

    def select(self, pattern: str) -> list[str]:
        return [LOCAL_HOST] if pattern in ("all", LOCAL_HOST) else []

    def total(self) -> int:
        return 1


@pytest.fixture
async def admin(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Runtime]:
    built = Runtime.build(sandbox_settings(sandbox, tmp_path / "admin-state", safety="admin"))
    yield built
    built.close()


def contexts(runtime: Runtime) -> ToolContext:
    return runtime.context(Caller("test"))


def start_unit(sandbox: Sandbox, text: str) -> str:
    name = f"fanout-{secrets.token_hex(3)}.service"
    sandbox.write_unit(name, text)
    sandbox.systemd("StartUnit", "ss", name, "replace")
    return name


async def invocation(runtime: Runtime, unit: str) -> str:
    jobs = ContextUnitJobs(lambda host: contexts(runtime))
    return str((await jobs.unit_properties(LOCAL_HOST, unit))["InvocationID"])


async def test_a_healthy_restart_passes_the_gate_on_real_signals(admin: Runtime, sandbox: Sandbox) -> None:
    unit = start_unit(sandbox, "[Service]\nExecStart=/bin/sleep infinity\n")
    before = await invocation(admin, unit)
    jobs = ContextUnitJobs(lambda host: contexts(admin))
    answer = await rolling_unit_job(
        LocalOnly(),
        jobs,
        {"unit": unit, "action": "restart", "hosts": "all", "gate": GATE, "work_order": "WO-1"},
        ledger=PlanLedger(),
    )
    assert answer["counts"] == {"done": 1, "failed": 0, "not touched": 0}, answer
    assert answer["work_order"] == "WO-1"
    assert await invocation(admin, unit) != before  # it really restarted


async def test_a_unit_dying_after_its_restart_fails_the_gate_with_its_lines(admin: Runtime, sandbox: Sandbox) -> None:
    # Active at once (Type=simple: the job is done when the process runs), dead 0.6 s later. It says why first: a
    # line written just before the exit may reach journald after the gate broke (seen under a loaded full run).
    unit = start_unit(sandbox, "[Service]\nExecStart=/bin/sh -c 'echo giving up on port 8080; sleep 0.6; exit 3'\n")
    jobs = ContextUnitJobs(lambda host: contexts(admin))
    answer = await rolling_unit_job(
        LocalOnly(), jobs, {"unit": unit, "action": "restart", "hosts": "all", "gate": GATE}, ledger=PlanLedger()
    )
    (row,) = answer["batches"][0]["results"]
    assert row["status"] == "failed", answer
    assert row["why"].startswith("health gate: ")
    assert "ActiveState=failed" in row["why"] or "ActiveState=deactivating" in row["why"]
    assert answer["stopped_after_batch"] == 1
    assert any("giving up on port 8080" in line for line in row["journal"]), row


async def test_the_watch_sees_a_real_stop(admin: Runtime, sandbox: Sandbox) -> None:
    unit = start_unit(sandbox, "[Service]\nExecStart=/bin/sleep infinity\n")
    jobs = ContextUnitJobs(lambda host: contexts(admin))
    async with jobs.watch_unit(LOCAL_HOST, unit) as (initial, changes):
        assert initial["ActiveState"] == "active"
        sandbox.systemd("StopUnit", "ss", unit, "replace")
        verdict = await stays_active(initial, changes, min_healthy_s=30, healthy_deadline_s=30)
    assert not verdict.ok
    assert verdict.reason.startswith("left the active state after")


async def test_dry_run_changes_no_unit(admin: Runtime, sandbox: Sandbox) -> None:
    unit = start_unit(sandbox, "[Service]\nExecStart=/bin/sleep infinity\n")
    before = await invocation(admin, unit)
    answer = await rolling_unit_job(
        LocalOnly(),
        ContextUnitJobs(lambda host: contexts(admin)),
        {"unit": unit, "action": "restart", "hosts": "all", "dry_run": True},
        ledger=PlanLedger(),
    )
    assert answer["dry_run"] is True
    assert "RestartUnit" in answer["plan"]["operations"][0]
    assert await invocation(admin, unit) == before


async def test_a_protected_unit_is_refused_before_anything_starts(admin: Runtime) -> None:
    with pytest.raises(ToolError, match=r"local: refused by policy rule"):
        await rolling_unit_job(
            LocalOnly(),
            ContextUnitJobs(lambda host: contexts(admin)),
            {"unit": "dbus.service", "action": "restart", "hosts": "all"},
            ledger=PlanLedger(),
        )


async def test_a_read_tool_fans_out_through_its_handler(admin: Runtime, sandbox: Sandbox) -> None:
    unit = start_unit(sandbox, "[Service]\nExecStart=/bin/sleep infinity\n")
    expected = await ok(admin, "unit_status", unit=unit)
    answer = await fan_out_tool(
        LocalOnly(),
        ContextRunner(admin.registry, lambda host: contexts(admin)),
        "unit_status",
        {"unit": unit, "hosts": "all"},
    )
    (group,) = answer["groups"]
    assert group["hosts"] == "local"
    assert group["answer"]["active"] == expected["active"] == "active"
    assert group["answer"]["main_pid"] == expected["main_pid"]  # one host: shown whole
