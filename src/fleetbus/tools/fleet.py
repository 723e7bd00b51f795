"""The fleet tools wired into the server: every read tool takes `hosts=PATTERN` (fanned out over the gateway's
HostRegistry, each host's call the tool's own handler with that host's context) and `rolling_unit_job` runs unit
jobs through the gateway in batches, one approval for its plan; every record of one such call shares a call id."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fleetbus import output
from fleetbus.guard import fleet_call
from fleetbus.guard.approvals import Approval
from fleetbus.hosts.patterns import PatternError
from fleetbus.operation import LOCAL_HOST
from fleetbus.tools.fanout.local import ContextRunner, ContextUnitJobs
from fleetbus.tools.fanout.plan import Plan, PlanLedger
from fleetbus.tools.fanout.progress import ProgressSession
from fleetbus.tools.fanout.tools import (
    ROLLING_INPUT_SCHEMA,
    ROLLING_OUTPUT_SCHEMA,
    FanOutSettings,
    rolling_unit_job,
    with_fanout,
)
from fleetbus.tools.registry import Annotations, ToolContext, ToolRegistry, ToolSpec, host_bound, with_host_argument
from fleetbus.tools.unit_jobs import JOB_ACTIONS, JOB_WAIT
from fleetbus.tools.unit_jobs import _patterns as job_patterns

ROLLING_UNIT_JOB = "rolling_unit_job"


class CallerHosts:
    """The HostSelector of one call: the inventory's hosts a pattern selects, among those the caller's token
    may touch (the others are left out and never connected to, as a single call to them is refused)."""

    def __init__(self, ctx: ToolContext) -> None:
        self.hosts = ctx.gateway.hosts
        self.allowed = ctx.caller.hosts

    def select(self, pattern: str) -> list[str]:
        try:
            names = self.hosts.select(pattern)
        except PatternError as exc:
            raise ValueError(str(exc)) from exc
        return self._mine(names)

    def total(self) -> int:
        """The hosts a plan's share is of: the inventory's that this caller may touch, without `local` (which no
        pattern but its own name selects)."""
        return len(self._mine([name for name in self.hosts.names() if name != LOCAL_HOST]))

    def _mine(self, names: list[str]) -> list[str]:
        """Those of `names` the caller's token may touch."""
        if self.allowed is None:
            return names
        return [name for name in names if self.hosts.matches(self.allowed, name)]


NOT_FANNED = frozenset({"find_tools", "explain"})
"""Read tools about fleetbus itself (its tools, its policy): the same on every host."""


def fans_out(spec: ToolSpec) -> bool:
    """A read tool that reaches hosts: the ones `hosts=PATTERN` means something for."""
    if spec.name in NOT_FANNED or spec.input_schema.get("type") != "object":
        return False
    return spec.annotations.read_only and host_bound(spec)


def progress_of(ctx: ToolContext) -> ProgressSession | None:
    return ctx.progress


def runner_for(registry: ToolRegistry) -> Any:
    def runner(ctx: ToolContext) -> ContextRunner:
        # Each host's call reports no progress of its own: the fan-out reports hosts done.
        return ContextRunner(registry, lambda host: dataclasses.replace(ctx, host=host, progress=None))

    return runner


def with_fleet(spec: ToolSpec, registry: ToolRegistry, settings: FanOutSettings) -> ToolSpec:
    """`spec` taking `hosts` as well as `host` when it is a read tool, else `spec` unchanged. Every record a
    fan-out causes carries one call id."""
    if not fans_out(spec):
        return spec
    spec = with_host_argument(spec)  # `host` first, so the registry leaves the fanned-out schema as it is
    fanned = with_fanout(spec, CallerHosts, runner_for(registry), settings=settings, progress_of=progress_of)
    inner = fanned.handler

    async def handler(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        if "hosts" not in args:
            return await inner(ctx, args)
        with fleet_call.fleet_call() as call:
            return {**await inner(ctx, args), "call_id": call.call_id}

    return dataclasses.replace(fanned, handler=handler)


def approver(ctx: ToolContext, pattern: str) -> Any:
    """The plan's one approval, asked through the gateway like any call (policy, audit, elicitation): the
    approval a person gave, or None where the policy lets the plan run without one (admin)."""

    async def approve(plan: Plan, radius: Mapping[str, Any]) -> Approval | None:
        summary = (
            f"{radius['host_count']} of {radius['out_of']} hosts ({radius['hosts']}) in "
            f"{len(radius['batches'])} batches: {'; '.join(radius['operations'])}"
        )
        return await ctx.gateway.decide_plan(plan.as_operation(pattern), ctx.caller, summary)

    return approve


def rolling_tool(settings: FanOutSettings, ledger: PlanLedger, max_wait: float) -> ToolSpec:
    input_schema: dict[str, Any] = {**ROLLING_INPUT_SCHEMA, "properties": dict(ROLLING_INPUT_SCHEMA["properties"])}
    # Like unit_job's: the default wait lies within the configured max_call_timeout.
    default_wait = min(JOB_WAIT, max_wait)
    input_schema["properties"]["wait"] = {
        **input_schema["properties"]["wait"],
        "maximum": max_wait,
        "default": default_wait,
    }
    input_schema["properties"]["format"] = output.format_schema("json")

    async def handler(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        args.setdefault("wait", default_wait)
        work_order = args.get("work_order")
        with fleet_call.fleet_call(work_order=work_order if isinstance(work_order, str) else None) as call:
            answer = await rolling_unit_job(
                CallerHosts(ctx),
                ContextUnitJobs(lambda host: dataclasses.replace(ctx, host=host, progress=None)),
                args,
                ledger=ledger,
                approve=approver(ctx, str(args.get("hosts"))),
                settings=settings,
                progress=ctx.progress,
            )
            return {**answer, "call_id": call.call_id}

    return ToolSpec(
        name=ROLLING_UNIT_JOB,
        title="Start, stop or restart a unit across hosts in batches",
        description='unit_job on every host hosts=PATTERN selects, in batches (batches=[1, 5, "20%"]: a canary, '
        "then more), each host behind a health gate (gate.min_healthy_s…); stops after the first batch with more "
        "than max_failures failed hosts, naming why, later hosts untouched. One approval covers the plan (its "
        "hosts, batches and terms); dry_run=true returns the plan. A change: policy decides on every host.",
        input_schema=input_schema,
        output_schema=ROLLING_OUTPUT_SCHEMA,
        annotations=Annotations(read_only=False, destructive=True, idempotent=False),
        handler=handler,
        operations=job_patterns(*JOB_ACTIONS.values()),
        scope="units:write",
    )
