"""The fleet tool layer: a read tool with `hosts=PATTERN` fanned out and answered in groups, and
`rolling_unit_job` — written against narrow interfaces (select hosts, run a tool on a host, unit jobs on a host)
so wiring them to the HostRegistry, the registry and the gateway is a small step."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from fleetbus import output
from fleetbus.guard.approvals import Approval
from fleetbus.guard.fleet_call import PlanClaim, claimed
from fleetbus.operation import Operation
from fleetbus.tools.fanout.batches import BatchError, parse_max_failures, parse_serial, plan_batches
from fleetbus.tools.fanout.engine import DEFAULT_CONCURRENCY, DENIED, ERROR, fan_out
from fleetbus.tools.fanout.grouping import Group, compress_hosts, group_outcomes
from fleetbus.tools.fanout.plan import Plan, PlanLedger
from fleetbus.tools.fanout.progress import ProgressSession, report_to
from fleetbus.tools.fanout.rolling import (
    GateResult,
    GateSpec,
    GateSpecError,
    JobOutcome,
    first_failure,
    no_new_failures,
    parse_gate,
    run_rolling,
    stays_active,
)
from fleetbus.tools.registry import ToolContext, ToolError, ToolSpec

# ---- the interfaces the wiring provides -------------------------------------------------------------------


class HostSelector(Protocol):
    def select(self, pattern: str) -> list[str]:
        """The inventory's hosts matching an Ansible pattern, in inventory order; ValueError with a message
        for a pattern that cannot be read."""
        ...

    def total(self) -> int:
        """How many hosts the inventory has (the blast radius is shown as a share of them)."""
        ...


class ToolFailed(Exception):
    """A tool ran on a host and answered with an error; `kind` says which (`denied`, `error`, …)."""

    def __init__(self, message: str, kind: str = ERROR) -> None:
        super().__init__(message)
        self.kind = kind


class ToolRunner(Protocol):
    async def run_tool_on(self, host: str, tool: str, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        """The tool's structured answer on `host`. Failures are raised — HostError subclasses, GatewayError
        subclasses, ToolFailed — so the engine can say `unreachable` or `denied` rather than only `error`."""
        ...


UnitWatch = AbstractAsyncContextManager[tuple[Mapping[str, Any], AsyncIterator[Mapping[str, Any]]]]


class UnitJobs(Protocol):
    """What a rolling unit job needs from one host; every call goes through the gateway with a deadline."""

    def job_operation(self, host: str, unit: str, action: str) -> Operation:
        """The exact Manager call (`RestartUnit(unit, "replace")` on `host`) the job will make."""
        ...

    async def refusal(self, operation: Operation) -> str | None:
        """Why policy refuses `operation` outright (a protected unit, a denied host), or None."""
        ...

    async def run_job(self, host: str, unit: str, action: str, wait: float) -> Mapping[str, Any]:
        """`unit_job`'s structured answer: `result` (done, failed, …), `state`, `error_lines`."""
        ...

    def watch_unit(self, host: str, unit: str) -> UnitWatch:
        """Subscribe to the unit's PropertiesChanged, then read its properties: yields (properties, changes)."""
        ...

    async def unit_properties(self, host: str, unit: str) -> Mapping[str, Any]: ...

    async def failed_units(self, host: str) -> set[str]: ...

    async def health_problems(self, host: str) -> set[str]:
        """health_check's findings as keys (`failed:x.service`, `stuck:y.service`, `pressure:memory`)."""
        ...

    async def journal_lines(self, host: str, unit: str, count: int) -> list[str]: ...


ApprovePlan = Callable[[Plan, Mapping[str, Any]], Awaitable[Approval | None]]
"""Returns once the plan may run: the approval a person gave (consumed), or None where the policy lets it pass
without one; raises ApprovalRequired (with the plan's blast radius in the request) or ApprovalDenied otherwise.
The operations claimed under a given approval skip their own (policy still decides each)."""


# ---- settings and declarations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FanOutSettings:
    concurrency: int = DEFAULT_CONCURRENCY
    per_host_deadline: float = 10.0
    overall_deadline: float = 30.0
    max_hosts: int = 10_000
    max_groups: int = 20


VOLATILE_FIELDS: dict[str, tuple[str, ...]] = {
    # fragment: where the unit file lies — a per-host home on simulated hosts; show_varying lists it per host.
    "unit_status": ("since", "active_since", "main_pid", "memory_bytes", "cpu_seconds", "tasks", "lines", "fragment"),
    "list_units": ("next_cursor",),
    "list_unit_files": ("next_cursor",),
    # pressure.*.value: the figure over its threshold (load, memory…) moves from read to read; which figure is
    # over which threshold is compared, so a load reading taken a moment later does not split the answer.
    "health_check": (
        "**.since",
        "**.stuck_s",
        "**.last_restart_ago_s",
        "**.last_lines",
        "load",
        "memory_used_percent",
        "pressure.*.value",
    ),
    "host_info": ("hostname", "static_hostname", "machine_id", "boot_id", "booted", "uptime_s"),
    "query_journal": ("entries.*.time", "entries.*.pid", "entries.*.__*", "window", "next_cursor", "cursor"),
    "time_status": ("time", "rtc_time"),
    "list_sessions": ("**.since", "**.idle_since"),
}
"""Fields that differ on every host (times, PIDs, boot ids, cursors): left out when answers are compared, shown
per host with `show_varying=true`. Everything not named here must be equal for two hosts to share a group."""

FANOUT_ARGUMENTS: dict[str, Any] = {
    "hosts": {
        "type": "string",
        "minLength": 1,
        "maxLength": 1024,
        "description": "Inventory pattern (Ansible syntax): all, fleet, web*, fleet:!db, web[01:10]…",
    },
    "show_varying": {
        "type": "boolean",
        "default": False,
        "description": "Also list, per host, the fields that always differ (times, PIDs) and are not compared.",
    },
    "per_host_timeout": {"type": "number", "minimum": 0.1, "maximum": 120, "description": "Seconds per host."},
    "overall_timeout": {
        "type": "number",
        "minimum": 0.1,
        "maximum": 600,
        "description": "Seconds for the whole fan-out; hosts still running then are reported as timeout.",
    },
    "max_groups": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20},
}


_HOSTS_ROW = {"hosts": {"type": "string"}, "count": {"type": "integer"}}
_MORE = {
    "type": "object",
    "properties": {"groups": {"type": "integer"}, **_HOSTS_ROW},
    "required": ["groups", "hosts", "count"],
}
FANOUT_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tool": {"type": "string"},
        "hosts": {"type": "string"},
        "call_id": {"type": "string", "description": "On every audit record of this fan-out."},
        "total": {"type": "integer"},
        "answered": {"type": "integer"},
        "failed": {"type": "integer"},
        "partial": {"type": "boolean"},
        "elapsed_s": {"type": "number"},
        "groups": {
            "type": "array",
            "items": {"type": "object", "properties": {**_HOSTS_ROW, "answer": {}}, "required": ["hosts", "count"]},
        },
        "failures": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {**_HOSTS_ROW, "kind": {"type": "string"}, "message": {"type": "string"}},
                "required": ["hosts", "count", "kind", "message"],
            },
        },
        "more_groups": _MORE,
        "more_failures": _MORE,
        "ignored_fields": {"type": "array", "items": {"type": "string"}},
        "varying": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"host": {"type": "string"}, "path": {"type": "string"}, "value": {}},
                "required": ["host", "path", "value"],
            },
        },
        "truncated": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["tool", "hosts", "total", "answered", "failed", "partial", "groups", "failures"],
}
"""The answer of any read tool fanned out (the tool's own output schema describes each group's `answer`)."""


def fanout_input_schema(base: Mapping[str, Any]) -> dict[str, Any]:
    """A read tool's input schema with `hosts` in place of `host` (and the fan-out's own arguments)."""
    schema = copy.deepcopy(dict(base))
    properties = dict(schema.get("properties", {}))
    properties.pop("host", None)
    properties.pop("cursor", None)  # a cursor continues one host's list; it means nothing across hosts
    properties.update(copy.deepcopy(FANOUT_ARGUMENTS))
    schema["properties"] = properties
    schema["required"] = [*(name for name in schema.get("required", []) if name not in ("host", "cursor")), "hosts"]
    return schema


def _select(selector: HostSelector, pattern: Any, limit: int) -> list[str]:
    if not isinstance(pattern, str) or not pattern.strip():
        raise ToolError("invalid argument 'hosts': an inventory pattern such as fleet or web*")
    try:
        hosts = selector.select(pattern)
    except ValueError as exc:
        raise ToolError(f"invalid argument 'hosts': {exc}") from exc
    if not hosts:
        raise ToolError(f"invalid argument 'hosts': {pattern!r} matches no host of the inventory")
    if len(hosts) > limit:
        raise ToolError(f"invalid argument 'hosts': {pattern!r} matches {len(hosts):,} hosts, more than {limit:,}")
    return hosts


# ---- fan-out of a read tool ---------------------------------------------------------------------------------


async def fan_out_tool(
    selector: HostSelector,
    runner: ToolRunner,
    tool: str,
    arguments: Mapping[str, Any],
    *,
    settings: FanOutSettings = FanOutSettings(),
    progress: ProgressSession | None = None,
) -> dict[str, Any]:
    """Run `tool` on every host `arguments["hosts"]` matches and answer in groups (see fleetbus.tools.fanout)."""
    if "cursor" in arguments:
        raise ToolError("invalid argument 'cursor': a cursor continues one host's list; with hosts, narrow instead")
    hosts = _select(selector, arguments.get("hosts"), settings.max_hosts)
    inner = {key: value for key, value in arguments.items() if key not in FANOUT_ARGUMENTS and key != "format"}
    per_host = float(arguments.get("per_host_timeout", settings.per_host_deadline))
    overall = float(arguments.get("overall_timeout", settings.overall_deadline))
    max_groups = int(arguments.get("max_groups", settings.max_groups))

    async def one(host: str) -> Mapping[str, Any]:
        return await runner.run_tool_on(host, tool, inner)

    result = await fan_out(
        hosts,
        one,
        per_host_deadline=per_host,
        overall_deadline=overall,
        concurrency=settings.concurrency,
        on_done=report_to(progress),
    )
    volatile = VOLATILE_FIELDS.get(tool, ())
    grouped = group_outcomes(result.outcomes, volatile=volatile, show_varying=bool(arguments.get("show_varying")))
    answered = sum(1 for outcome in result.outcomes if outcome.ok)
    answer: dict[str, Any] = {
        "tool": tool,
        "hosts": arguments["hosts"],
        "total": len(hosts),
        "answered": answered,
        "failed": len(hosts) - answered,
        "partial": result.partial,
        "elapsed_s": round(result.elapsed, 3),
        "groups": [],
        "failures": [],
        "ignored_fields": list(volatile),
    }
    _fill(answer, "groups", grouped.answers, max_groups, output.ROWS_BUDGET * 2 // 3)
    _fill(answer, "failures", grouped.failures, max_groups, output.ROWS_BUDGET // 4)
    if arguments.get("show_varying"):
        page = output.take(grouped.varying, 1000, budget=output.ROWS_BUDGET // 4)
        answer["varying"] = page.rows
        if page.more:
            answer.setdefault("truncated", []).append(
                f"varying: showed {len(page.rows)} of {len(grouped.varying)} rows; narrow hosts to see the rest"
            )
    return answer


def _fill(answer: dict[str, Any], key: str, groups: Sequence[Group], limit: int, budget: int) -> None:
    """The first groups within `limit` and `budget`; the rest summarised by their hosts, so an outlier cut for
    room is still named (largest first: the cut ones are the smallest groups)."""
    rows = [group.row() for group in groups]
    page = output.take(rows, limit, budget=budget)
    answer[key] = page.rows
    rest = groups[len(page.rows) :]
    if rest:
        answer[f"more_{key}"] = {
            "groups": len(rest),
            "hosts": compress_hosts(host for group in rest for host in group.hosts),
            "count": sum(len(group.hosts) for group in rest),
        }


# ---- rolling unit jobs ---------------------------------------------------------------------------------------

ACTIONS = ("start", "stop", "restart", "reload", "try_restart")
JOURNAL_LINES = 10
DEADLINE_SLACK = 10.0
"""Seconds a host gets beyond its job's wait and its gate's longest time, for the snapshot and the checks."""

ROLLING_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "unit": {"type": "string", "minLength": 1, "maxLength": 256},
        "action": {"type": "string", "enum": list(ACTIONS)},
        "hosts": FANOUT_ARGUMENTS["hosts"],
        "batches": {
            "description": 'Like Ansible serial: a number, a percentage ("20%") or a list ([1, 5, "20%"]; the first '
            "batch a canary, the last item repeating).",
            "anyOf": [
                {"type": "integer", "minimum": 1},
                # Spaces only: `\s` is Unicode whitespace in Python's re but not in ECMA-262 (jsonschema-rs).
                {"type": "string", "pattern": r"^ *[0-9]+ *%? *$"},
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 100,
                    "items": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]},
                },
            ],
            "default": 1,
        },
        "max_failures": {
            "description": 'Failed hosts a batch may have (a count, or "25%" of the batch); more stops the run. '
            "Default 0: stop at the first failure.",
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}],
            "default": 0,
        },
        "gate": {
            "type": "object",
            "description": "Health after each host's job: min_healthy_s (10), healthy_deadline_s (60), "
            'no_new_failures (true), property ({"property": "SubState", "equals": "running"}), health_check (false).',
        },
        "wait": {"type": "number", "minimum": 1, "maximum": 600, "default": 60},
        "dry_run": {"type": "boolean", "default": False, "description": "Return the plan; change nothing."},
        "work_order": {"type": "string", "maxLength": 256, "description": "Recorded on every audit record."},
    },
    "required": ["unit", "action", "hosts"],
    "additionalProperties": False,
}


ROLLING_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "unit": {"type": "string"},
        "action": {"type": "string"},
        "hosts": {"type": "string"},
        "work_order": {"type": "string"},
        "call_id": {"type": "string"},
        "plan": {
            "type": "object",
            "properties": {
                "hosts": {"type": "string"},
                "host_count": {"type": "integer"},
                "out_of": {"type": "integer"},
                "share_percent": {"type": "number"},
                "batches": {"type": "array", "items": {"type": "object"}},
                "operations": {"type": "array", "items": {"type": "string"}},
                "terms": {"type": "object"},
                "digest": {"type": "string"},
            },
            "required": ["hosts", "host_count", "batches", "operations", "digest"],
        },
        "dry_run": {"type": "boolean"},
        "counts": {
            "type": "object",
            "properties": {key: {"type": "integer"} for key in ("done", "failed", "not touched")},
            "required": ["done", "failed", "not touched"],
        },
        "batches": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "batch": {"type": "integer"},
                    "hosts": {"type": "string"},
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "host": {"type": "string"},
                                "status": {"type": "string", "enum": ["done", "failed", "not touched"]},
                                "why": {"type": "string"},
                                "journal": {"type": "array", "items": {"type": "string"}},
                            },
                            "required": ["host", "status"],
                        },
                    },
                },
                "required": ["batch", "hosts", "results"],
            },
        },
        "stopped_after_batch": {"type": "integer"},
        "reason": {"type": "string"},
    },
    "required": ["unit", "action", "hosts", "plan", "dry_run", "counts", "batches"],
}


@dataclass(frozen=True)
class _Before:
    failed: set[str]
    problems: set[str]
    restarts: int | None
    """The unit's NRestarts (restarts systemd made on its own, never our job's): a crash and automatic restart
    before the watch began would otherwise look like a unit that stayed active."""


async def rolling_unit_job(
    selector: HostSelector,
    jobs: UnitJobs,
    arguments: Mapping[str, Any],
    *,
    ledger: PlanLedger,
    approve: ApprovePlan | None = None,
    settings: FanOutSettings = FanOutSettings(),
    progress: ProgressSession | None = None,
) -> dict[str, Any]:
    """Start/stop/restart/reload/try-restart a unit across hosts in batches, each host behind a health gate; stop
    at the first batch whose failures exceed `max_failures`. One approval covers the plan; `dry_run` returns it."""
    unit, action = arguments.get("unit"), arguments.get("action")
    if not isinstance(unit, str) or not unit:
        raise ToolError("invalid argument 'unit': a unit name such as worker.service")
    if action not in ACTIONS:
        raise ToolError(f"invalid argument 'action': one of {', '.join(ACTIONS)}")
    hosts = _select(selector, arguments.get("hosts"), settings.max_hosts)
    try:
        serial = parse_serial(arguments.get("batches", 1))
        limit = parse_max_failures(arguments.get("max_failures", 0))
        spec = parse_gate(arguments.get("gate"))
    except (BatchError, GateSpecError) as exc:
        raise ToolError(str(exc)) from exc
    wait = float(arguments.get("wait", 60))
    batches = plan_batches(hosts, serial)
    operations = {host: jobs.job_operation(host, unit, action) for host in hosts}

    # Policy per host before anything starts: one refused host refuses the plan, naming every refused host.
    refusals = await fan_out(hosts, lambda h: jobs.refusal(operations[h]), per_host_deadline=10)
    refused: dict[str, list[str]] = {}
    for outcome in refusals.outcomes:
        reason = outcome.value if outcome.ok else f"{outcome.kind}: {outcome.message}"
        if reason:
            refused.setdefault(str(reason), []).append(outcome.host)
    if refused:
        detail = "; ".join(f"{compress_hosts(h)}: {reason}" for reason, h in refused.items())
        raise ToolError(f"refused before anything started — {detail}")

    terms = {
        "unit": unit,
        "action": action,
        "max_failures": dataclasses.asdict(limit),
        "gate": dataclasses.asdict(spec),
        "wait": wait,
    }
    plan = Plan.of(operations.values(), batches, terms, units=(unit,))
    radius = plan.blast_radius(out_of=selector.total())
    answer: dict[str, Any] = {"unit": unit, "action": action, "hosts": arguments["hosts"], "plan": radius}
    if "work_order" in arguments:
        answer["work_order"] = arguments["work_order"]
    if arguments.get("dry_run"):
        report = await run_rolling(batches, _never_act, _never_gate, per_host_deadline=1, dry_run=True)
        return {**answer, **report.as_dict()}
    granted: Approval | None = None
    if approve is not None:
        granted = await approve(plan, radius)
        ledger.approve(plan)

    async def act(host: str) -> JobOutcome:
        operation = operations[host]
        if approve is not None and not ledger.claim(plan, operation):
            raise ToolFailed("not part of the approved plan, or already run under it", DENIED)
        if granted is None:
            detail = await jobs.run_job(host, unit, action, wait)
        else:
            claim = PlanClaim(plan.digest, operation.digest(), granted.id, granted.decided_by)
            with claimed(claim):  # the gateway takes the plan's approval for this one call
                detail = await jobs.run_job(host, unit, action, wait)
        return JobOutcome(str(detail.get("result")), detail)

    async def snapshot(host: str) -> _Before:
        failed = await jobs.failed_units(host) if spec.no_new_failures else set()
        problems = await jobs.health_problems(host) if spec.health_check else set()
        restarts = (await jobs.unit_properties(host, unit)).get("NRestarts")
        return _Before(failed, problems, restarts if isinstance(restarts, int) else None)

    async def gate(host: str, before: _Before) -> GateResult:
        return await _gate(jobs, spec, host, unit, action, before)

    async def journal(host: str) -> list[str]:
        return await jobs.journal_lines(host, unit, JOURNAL_LINES)

    report = await run_rolling(
        batches,
        act,
        gate,
        snapshot=snapshot,
        journal=journal,
        max_failures=limit,
        per_host_deadline=wait + spec.longest_s + DEADLINE_SLACK,
        concurrency=settings.concurrency,
        on_done=report_to(progress),
    )
    return {**answer, **report.as_dict()}


async def _gate(jobs: UnitJobs, spec: GateSpec, host: str, unit: str, action: str, before: _Before) -> GateResult:
    checks: list[GateResult] = []
    if action == "stop":
        state = (await jobs.unit_properties(host, unit)).get("ActiveState")
        checks.append(GateResult.passed() if state == "inactive" else GateResult.failed(f"the unit is {state}"))
    else:
        async with jobs.watch_unit(host, unit) as (initial, changes):
            checks.append(
                await stays_active(
                    initial, changes, min_healthy_s=spec.min_healthy_s, healthy_deadline_s=spec.healthy_deadline_s
                )
            )
    properties = await jobs.unit_properties(host, unit)
    restarts = properties.get("NRestarts")
    if isinstance(restarts, int) and before.restarts is not None and restarts > before.restarts:
        times = restarts - before.restarts
        checks.append(
            GateResult.failed(f"systemd restarted the unit on its own {'once' if times == 1 else f'{times} times'}")
        )
    if spec.no_new_failures:
        checks.append(no_new_failures(before.failed, await jobs.failed_units(host)))
    if spec.condition is not None:
        checks.append(spec.condition.check(properties))
    if spec.health_check:
        new = sorted(await jobs.health_problems(host) - before.problems)
        checks.append(GateResult.failed(f"health_check: new {', '.join(new)}") if new else GateResult.passed())
    return first_failure(*checks)


async def _never_act(host: str) -> JobOutcome:
    raise AssertionError("a dry run acts on no host")


async def _never_gate(host: str, before: Any) -> GateResult:
    raise AssertionError("a dry run judges no host")


# ---- wrapping a registered tool -------------------------------------------------------------------------------


def _no_progress(ctx: ToolContext) -> ProgressSession | None:
    return None


def with_fanout(
    spec: ToolSpec,
    selector: HostSelector | Callable[[ToolContext], HostSelector],
    runner_for: Callable[[ToolContext], ToolRunner],
    *,
    settings: FanOutSettings = FanOutSettings(),
    progress_of: Callable[[ToolContext], ProgressSession | None] = _no_progress,
) -> ToolSpec:
    """`spec` taking `hosts` too: without it the tool is what it was (one host, `host`), with it the call is fanned
    out and answered in groups. The output schema admits both answers. `progress_of` finds the request's session
    in a context (the server puts it there), so hosts done are reported as they finish. `selector` may be made per
    call from the context (the caller's token narrows which hosts a pattern selects)."""
    schema = copy.deepcopy(dict(spec.input_schema))
    properties = dict(schema.get("properties", {}))
    properties.update(copy.deepcopy(FANOUT_ARGUMENTS))
    schema["properties"] = properties
    output_schema = spec.output_schema
    if output_schema is not None:
        output_schema = {"type": "object", "anyOf": [dict(output_schema), FANOUT_OUTPUT_SCHEMA]}
    fanout_only = sorted(set(FANOUT_ARGUMENTS) - {"hosts"})

    async def handler(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        if "hosts" not in args:
            extra = [name for name in fanout_only if name in args]
            if extra:
                raise ToolError(f"invalid argument {extra[0]!r}: it applies with hosts=PATTERN only")
            return await spec.handler(ctx, args)
        # `host` with `hosts` was refused by the registry, before it took `host` into the context.
        hosts = selector(ctx) if callable(selector) else selector
        return await fan_out_tool(hosts, runner_for(ctx), spec.name, args, settings=settings, progress=progress_of(ctx))

    return dataclasses.replace(spec, input_schema=schema, output_schema=output_schema, handler=handler)
