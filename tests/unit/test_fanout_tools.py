"""The fleet tool layer against its narrow interfaces, implemented here by an in-memory fleet of asyncio hosts
(unit states, property-change streams, jobs): grouped answers with failures by kind, and rolling unit jobs that
stop at the first broken gate, ask once for a plan, and change nothing on a dry run."""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from jsonschema import Draft202012Validator

from fleetbus.gateway import Caller, Gateway
from fleetbus.hosts.errors import HostUnreachable
from fleetbus.operation import DBUS_CALL, Operation
from fleetbus.tools.fanout.plan import Plan, PlanLedger
from fleetbus.tools.fanout.tools import (
    FANOUT_OUTPUT_SCHEMA,
    ROLLING_INPUT_SCHEMA,
    ROLLING_OUTPUT_SCHEMA,
    FanOutSettings,
    fan_out_tool,
    fanout_input_schema,
    rolling_unit_job,
    with_fanout,
)
from fleetbus.tools.registry import Annotations, ToolContext, ToolError, ToolRegistry, ToolSpec

HOSTS = [f"host{n:02d}" for n in range(1, 6)]


class NeedsApproval(Exception):
    pass


class Inventory:
    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts

    def select(self, pattern: str) -> list[str]:
        if pattern == "fleet":
            return list(self.hosts)
        if pattern.count("[") != pattern.count("]"):
            raise ValueError(f"cannot read {pattern!r}")
        return [h for h in self.hosts if fnmatch.fnmatchcase(h, pattern)]

    def total(self) -> int:
        return len(self.hosts)


class Host:
    def __init__(self, name: str) -> None:
        self.name = name
        self.props: dict[str, Any] = {
            "ActiveState": "active",
            "SubState": "running",
            "InvocationID": f"{name}-1",
            "NRestarts": 0,
        }
        self.listeners: list[asyncio.Queue[Mapping[str, Any]]] = []
        self.crash_after_restart = False
        self.crash_and_recover = False
        self.unreachable = False
        self.invocations = 1

    def change(self, **changed: Any) -> None:
        self.props.update(changed)
        for queue in self.listeners:
            queue.put_nowait(dict(changed))


class Fleet:
    """UnitJobs and ToolRunner over in-memory hosts."""

    def __init__(self) -> None:
        self.hosts = {name: Host(name) for name in HOSTS}
        self.jobs: list[str] = []

    # ToolRunner
    async def run_tool_on(self, host: str, tool: str, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        h = self.hosts[host]
        if h.unreachable:
            raise HostUnreachable(host, "connection refused")
        await asyncio.sleep(0.001)
        state = h.props["ActiveState"]
        answer: dict[str, Any] = {"unit": arguments["unit"], "active": state, "main_pid": 100 + int(host[-2:])}
        answer["lines"] = ["worker: cannot bind :8080"] if state == "failed" else ["Started worker."]
        return answer

    # UnitJobs
    def job_operation(self, host: str, unit: str, action: str) -> Operation:
        member = {"restart": "RestartUnit", "start": "StartUnit", "stop": "StopUnit"}[action]
        return Operation(
            DBUS_CALL,
            host=host,
            destination="org.freedesktop.systemd1",
            path="/org/freedesktop/systemd1",
            interface="org.freedesktop.systemd1.Manager",
            member=member,
            signature="ss",
            args=(unit, "replace"),
        )

    async def refusal(self, operation: Operation) -> str | None:
        if operation.args[0] == "dbus.service":
            return "refused by policy rule 'protected-units': dbus.service is protected"
        return None

    async def run_job(self, host: str, unit: str, action: str, wait: float) -> Mapping[str, Any]:
        h = self.hosts[host]
        self.jobs.append(host)
        h.invocations += 1
        if action == "stop":
            h.change(ActiveState="inactive", SubState="dead")
        else:
            h.change(ActiveState="active", SubState="running", InvocationID=f"{host}-{h.invocations}")
            if h.crash_and_recover:  # crashed and restarted by systemd before anyone watched: active again
                h.props["NRestarts"] += 1
            if h.crash_after_restart:
                asyncio.get_running_loop().call_later(0.05, lambda: h.change(ActiveState="failed", SubState="failed"))
        return {"unit": unit, "action": action, "result": "done", "state": {"active": h.props["ActiveState"]}}

    def watch_unit(self, host: str, unit: str) -> Any:
        h = self.hosts[host]

        @asynccontextmanager
        async def watch() -> AsyncIterator[tuple[Mapping[str, Any], AsyncIterator[Mapping[str, Any]]]]:
            queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue()
            h.listeners.append(queue)  # subscribe first, then read: no change falls between

            async def changes() -> AsyncIterator[Mapping[str, Any]]:
                while True:
                    yield await queue.get()

            try:
                yield dict(h.props), changes()
            finally:
                h.listeners.remove(queue)

        return watch()

    async def unit_properties(self, host: str, unit: str) -> Mapping[str, Any]:
        return dict(self.hosts[host].props)

    async def failed_units(self, host: str) -> set[str]:
        return {"worker.service"} if self.hosts[host].props["ActiveState"] == "failed" else set()

    async def health_problems(self, host: str) -> set[str]:
        return {f"failed:{u}" for u in await self.failed_units(host)}

    async def journal_lines(self, host: str, unit: str, count: int) -> list[str]:
        return ["worker: cannot bind :8080", "worker.service: Failed with result 'exit-code'."]


# ---- fan-out -------------------------------------------------------------------------------------------------


async def test_two_groups_in_one_answer_and_failures_by_kind() -> None:
    fleet = Fleet()
    fleet.hosts["host04"].props.update(ActiveState="failed", SubState="failed")
    fleet.hosts["host02"].unreachable = True
    answer = await fan_out_tool(Inventory(HOSTS), fleet, "unit_status", {"unit": "worker.service", "hosts": "fleet"})
    assert answer["total"] == 5
    assert answer["answered"] == 4
    assert answer["groups"] == [
        {"hosts": "host[01,03,05]", "count": 3, "answer": {"unit": "worker.service", "active": "active"}},
        {
            "hosts": "host04",
            "count": 1,
            "answer": {
                "unit": "worker.service",
                "active": "failed",
                "main_pid": 104,
                "lines": ["worker: cannot bind :8080"],
            },
        },
    ]
    assert answer["failures"] == [
        {"hosts": "host02", "count": 1, "kind": "unreachable", "message": "connection refused"}
    ]
    assert "main_pid" in answer["ignored_fields"]
    Draft202012Validator(FANOUT_OUTPUT_SCHEMA).validate(answer)


async def test_varying_fields_on_request_and_groups_beyond_the_limit_still_named() -> None:
    fleet = Fleet()
    for n, name in enumerate(HOSTS):
        fleet.hosts[name].props["ActiveState"] = f"state{n % 3}"
    answer = await fan_out_tool(
        Inventory(HOSTS),
        fleet,
        "unit_status",
        {"unit": "worker.service", "hosts": "fleet", "show_varying": True, "max_groups": 1},
    )
    assert len(answer["groups"]) == 1
    assert answer["more_groups"] == {"groups": 2, "hosts": "host[02-03,05]", "count": 3}
    assert {"host": "host01", "path": "main_pid", "value": 101} in answer["varying"]
    Draft202012Validator(FANOUT_OUTPUT_SCHEMA).validate(answer)


async def test_the_overall_deadline_gives_a_partial_answer() -> None:
    class Stuck(Fleet):
        async def run_tool_on(self, host: str, tool: str, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
            if host == "host03":
                await asyncio.sleep(30)
            return await super().run_tool_on(host, tool, arguments)

    answer = await fan_out_tool(
        Inventory(HOSTS), Stuck(), "unit_status", {"unit": "w", "hosts": "fleet", "overall_timeout": 0.3}
    )
    assert answer["partial"] is True
    assert answer["failures"][0]["hosts"] == "host03"
    assert answer["failures"][0]["kind"] == "timeout"
    assert answer["groups"][0]["count"] == 4


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"hosts": "nothing*"}, "matches no host"),
        ({"hosts": "web[1"}, "cannot read"),
        ({"hosts": ""}, "'hosts'"),
        ({"hosts": "fleet", "cursor": "abc"}, "'cursor'"),
    ],
)
async def test_bad_host_arguments_name_the_argument(arguments: dict[str, Any], named: str) -> None:
    with pytest.raises(ToolError, match=named):
        await fan_out_tool(Inventory(HOSTS), Fleet(), "unit_status", {"unit": "w", **arguments})


async def test_too_many_hosts_are_refused() -> None:
    with pytest.raises(ToolError, match="more than 3"):
        await fan_out_tool(Inventory(HOSTS), Fleet(), "x", {"hosts": "fleet"}, settings=FanOutSettings(max_hosts=3))


def test_the_fanout_schema_takes_hosts_instead_of_host() -> None:
    base = {
        "type": "object",
        "properties": {"host": {"type": "string"}, "unit": {"type": "string"}, "cursor": {"type": "string"}},
        "required": ["host", "unit"],
    }
    schema = fanout_input_schema(base)
    assert "host" not in schema["properties"]
    assert "cursor" not in schema["properties"]
    assert schema["required"] == ["unit", "hosts"]
    assert base["required"] == ["host", "unit"]  # the tool's own schema is untouched


# ---- rolling -------------------------------------------------------------------------------------------------

GATE = {"min_healthy_s": 0.2, "healthy_deadline_s": 2}


def restart(**more: Any) -> dict[str, Any]:
    return {"unit": "worker.service", "action": "restart", "hosts": "fleet", "gate": GATE, **more}


async def test_a_broken_gate_on_host03_stops_after_its_batch() -> None:
    fleet = Fleet()
    fleet.hosts["host03"].crash_after_restart = True
    answer = await rolling_unit_job(Inventory(HOSTS), fleet, restart(batches=[1, 2, "100%"]), ledger=PlanLedger())
    assert fleet.jobs[0] == "host01"
    assert sorted(fleet.jobs) == ["host01", "host02", "host03"]
    assert answer["stopped_after_batch"] == 2
    rows = {r["host"]: r for b in answer["batches"] for r in b["results"]}
    assert rows["host03"]["status"] == "failed"
    assert rows["host03"]["why"].startswith("health gate: left the active state after")
    assert rows["host03"]["journal"][0] == "worker: cannot bind :8080"
    assert rows["host04"]["status"] == "not touched"
    assert rows["host05"]["status"] == "not touched"
    assert fleet.hosts["host05"].props["InvocationID"] == "host05-1"  # nothing restarted there
    Draft202012Validator(ROLLING_OUTPUT_SCHEMA).validate(answer)


async def test_a_crash_systemd_recovered_from_before_the_watch_still_fails_the_gate() -> None:
    fleet = Fleet()
    fleet.hosts["host01"].crash_and_recover = True
    answer = await rolling_unit_job(Inventory(HOSTS), fleet, restart(batches=[1, "100%"]), ledger=PlanLedger())
    (row,) = answer["batches"][0]["results"]
    assert row["why"] == "health gate: systemd restarted the unit on its own once"
    assert answer["counts"]["not touched"] == 4


async def test_all_healthy_runs_every_batch() -> None:
    fleet = Fleet()
    answer = await rolling_unit_job(
        Inventory(HOSTS),
        fleet,
        restart(batches=[1, 2, "100%"], gate={**GATE, "property": {"property": "SubState", "equals": "running"}}),
        ledger=PlanLedger(),
    )
    assert answer["counts"] == {"done": 5, "failed": 0, "not touched": 0}
    assert [b["hosts"] for b in answer["batches"]] == ["host01", "host[02-03]", "host[04-05]"]


async def test_dry_run_changes_nothing_and_shows_the_plan() -> None:
    fleet = Fleet()
    answer = await rolling_unit_job(
        Inventory(HOSTS), fleet, restart(batches=[1, 2, "100%"], dry_run=True), ledger=PlanLedger()
    )
    assert fleet.jobs == []
    assert all(h.props["InvocationID"] == f"{h.name}-1" for h in fleet.hosts.values())
    assert answer["dry_run"] is True
    assert answer["plan"]["host_count"] == 5
    assert [b["hosts"] for b in answer["plan"]["batches"]] == ["host01", "host[02-03]", "host[04-05]"]
    assert "RestartUnit" in answer["plan"]["operations"][0]
    Draft202012Validator(ROLLING_OUTPUT_SCHEMA).validate(answer)


def test_the_schemas_are_valid_and_the_input_schema_takes_the_documented_examples() -> None:
    for schema in (FANOUT_OUTPUT_SCHEMA, ROLLING_INPUT_SCHEMA, ROLLING_OUTPUT_SCHEMA):
        Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(ROLLING_INPUT_SCHEMA)
    for batches in (1, "20%", [1, 5, "20%"], [1, 2, "50%", "100%"]):
        validator.validate({"unit": "worker.service", "action": "restart", "hosts": "fleet", "batches": batches})
    assert not validator.is_valid({"unit": "w", "action": "restart", "hosts": "fleet", "batches": []})
    assert not validator.is_valid({"unit": "w", "action": "explode", "hosts": "fleet"})


async def test_one_approval_for_the_plan_and_a_changed_plan_asks_again() -> None:
    fleet = Fleet()
    ledger = PlanLedger()
    asked: list[Plan] = []
    approved: set[str] = set()

    async def approve(plan: Plan, radius: Mapping[str, Any]) -> None:
        asked.append(plan)
        if plan.digest not in approved:
            raise NeedsApproval(plan.digest)  # the wiring raises the gateway's NeedsApproval here

    with pytest.raises(NeedsApproval):
        await rolling_unit_job(Inventory(HOSTS), fleet, restart(batches=[1, 2, "100%"]), ledger=ledger, approve=approve)
    assert fleet.jobs == []
    approved.add(asked[0].digest)  # a person approves the plan once
    answer = await rolling_unit_job(
        Inventory(HOSTS), fleet, restart(batches=[1, 2, "100%"]), ledger=ledger, approve=approve
    )
    assert answer["counts"]["done"] == 5
    assert len(asked) == 2
    assert asked[1].digest == asked[0].digest
    # The same plan again: its operations ran already, so nothing runs a second time on that approval.
    again = await rolling_unit_job(
        Inventory(HOSTS), fleet, restart(batches=[1, 2, "100%"]), ledger=ledger, approve=approve
    )
    assert again["counts"]["failed"] == 1  # the canary is refused, and that stops the run
    assert "already run" in again["batches"][0]["results"][0]["why"]
    assert len(fleet.jobs) == 5
    # Other batches: another plan, another question.
    with pytest.raises(NeedsApproval):
        await rolling_unit_job(Inventory(HOSTS), fleet, restart(batches=[2, "100%"]), ledger=ledger, approve=approve)
    assert asked[-1].digest != asked[0].digest


async def test_policy_applies_per_host_before_anything_starts() -> None:
    fleet = Fleet()
    with pytest.raises(ToolError, match=r"host\[01-05\]: refused by policy rule 'protected-units'"):
        await rolling_unit_job(
            Inventory(HOSTS),
            fleet,
            {"unit": "dbus.service", "action": "restart", "hosts": "fleet"},
            ledger=PlanLedger(),
        )
    assert fleet.jobs == []


async def test_stop_is_judged_by_the_unit_being_inactive() -> None:
    fleet = Fleet()
    answer = await rolling_unit_job(
        Inventory(HOSTS),
        fleet,
        {"unit": "worker.service", "action": "stop", "hosts": "host0[12]", "batches": 1},
        ledger=PlanLedger(),
    )
    assert answer["counts"] == {"done": 2, "failed": 0, "not touched": 0}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"action": "explode"}, "'action'"),
        ({"unit": ""}, "'unit'"),
        ({"batches": 0}, "'batches'"),
        ({"max_failures": "lots"}, "'max_failures'"),
        ({"gate": {"min_healthy_s": -1}}, "'gate.min_healthy_s'"),
    ],
)
async def test_bad_rolling_arguments_name_the_argument(change: dict[str, Any], named: str) -> None:
    with pytest.raises(ToolError, match=named):
        await rolling_unit_job(Inventory(HOSTS), Fleet(), restart(**change), ledger=PlanLedger())


# ---- a registered tool that takes hosts ------------------------------------------------------------------------


async def test_a_wrapped_tool_answers_one_host_as_before_and_a_pattern_in_groups() -> None:
    async def echo(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        # The registry takes `host` into the context (every host-bound tool); the runner below passes it along.
        return {"state": "failed" if args.get("host", ctx.host) == "host04" else "active"}

    output_schema = {"type": "object", "properties": {"state": {"type": "string"}}, "required": ["state"]}
    spec = ToolSpec(
        name="unit_state",
        title="t",
        description="d",
        input_schema={"type": "object", "properties": {"host": {"type": "string"}}, "additionalProperties": False},
        output_schema=output_schema,
        annotations=Annotations(read_only=True, destructive=False, idempotent=True),
        handler=echo,
    )

    class Runner:
        async def run_tool_on(self, host: str, tool: str, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
            return await echo(dataclasses.replace(ctx, host=host), dict(arguments))

    registry = ToolRegistry()
    registry.add(with_fanout(spec, Inventory(HOSTS), lambda ctx: Runner()))
    ctx = ToolContext(cast(Gateway, None), Caller("test"))
    single = await registry.run(ctx, "unit_state", {"host": "host04"})
    assert single.structured == {"state": "failed"}
    fanned = await registry.run(ctx, "unit_state", {"hosts": "fleet"})
    assert not fanned.is_error, fanned.text
    assert fanned.structured["groups"] == [
        {"hosts": "host[01-03,05]", "count": 4, "answer": {"state": "active"}},
        {"hosts": "host04", "count": 1, "answer": {"state": "failed"}},
    ]
    Draft202012Validator(registry.get("unit_state").output_schema or {}).validate(fanned.structured)  # type: ignore[union-attr]
    both = await registry.run(ctx, "unit_state", {"hosts": "fleet", "host": "host01"})
    assert both.is_error
    assert "not both" in both.text
    stray = await registry.run(ctx, "unit_state", {"max_groups": 3})
    assert stray.is_error
    assert "'max_groups'" in stray.text
