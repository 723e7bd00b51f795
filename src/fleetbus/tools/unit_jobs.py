"""Changing systemd units: start/stop/restart/reload/try-restart (each waits for its job to end and reports the
state after), enable/disable unit files, reset a failed state. The Manager call is the Operation, so policy
and approvals bind to, say, RestartUnit("worker-3.service", "replace") exactly as for call_method."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fleetbus import output
from fleetbus.dbus.errors import RemoteError
from fleetbus.gateway import dbus_call
from fleetbus.guard.catalog import Risk
from fleetbus.guard.policy import OperationPattern, Verdict
from fleetbus.tools import schema as s
from fleetbus.tools import systemd
from fleetbus.tools.journal import MainProcess, recent_rows
from fleetbus.tools.registry import Annotations, ToolContext, ToolError, ToolSpec
from fleetbus.tools.units import unit_state

CHANGES = frozenset({Risk.ROUTINE, Risk.DANGEROUS, Risk.UNKNOWN})
JOBS = {
    "start_unit": ("StartUnit", "Start a unit", "Start a unit"),
    "stop_unit": ("StopUnit", "Stop a unit", "Stop a unit"),
    "restart_unit": ("RestartUnit", "Restart a unit", "Restart a unit (start it if it is not running)"),
    "reload_unit": ("ReloadUnit", "Reload a unit", "Reload a unit's configuration (the service must support it)"),
    "try_restart_unit": ("TryRestartUnit", "Restart a running unit", "Restart a unit only if it is running"),
}
ERROR_LINES = 10
OUTPUT_GRACE = 1.0
"""Seconds a failure report waits for the failed process's own output to reach the journal."""
JOB_FAILURES = {"failed", "dependency", "timeout", "canceled", "invalid"}


def _pattern(member: str) -> tuple[OperationPattern, ...]:
    return (OperationPattern(destination=systemd.SYSTEMD, interface=systemd.MANAGER, member=member, risks=CHANGES),)


def _remote(exc: RemoteError, unit: str, bus: str) -> ToolError | RemoteError:
    if exc.name in systemd.NO_UNIT:
        return systemd.unknown_unit(unit, bus)
    if exc.name == "org.freedesktop.systemd1.JobTypeNotApplicable":
        return ToolError(f"{unit} cannot do that ({exc.text or exc.name}); e.g. reload needs an ExecReload=")
    if exc.name == "org.freedesktop.systemd1.UnitMasked":
        return ToolError(f"{unit} is masked: {exc.text}")
    return exc


def job_tool(member: str) -> Callable[[ToolContext, dict[str, Any]], Awaitable[dict[str, Any]]]:
    async def handler(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        bus = systemd.bus_of(args)
        unit = systemd.normalize_unit(args["unit"])
        # Asking first means an unknown unit is an error before anyone is asked to approve anything.
        await systemd.require_unit(ctx, bus, unit)
        operation = dbus_call(
            systemd.SYSTEMD,
            systemd.MANAGER_PATH,
            systemd.MANAGER,
            member,
            "ss",
            [unit, args.get("mode", "replace")],
            names=["name", "mode"],
            bus=bus,
        )
        submitted = time.time()
        try:
            outcome = await ctx.gateway.run_job(operation, ctx.caller, wait=float(args.get("wait", 60)))
        except RemoteError as exc:
            raise _remote(exc, unit, bus) from exc
        state = await unit_state(ctx, bus, unit)
        result: dict[str, Any] = {
            "unit": unit,
            "job": outcome.job,
            "result": outcome.result,
            "finished": outcome.finished,
            "waited": round(outcome.waited, 3),
            "state": state,
        }
        if not outcome.finished:
            result["note"] = (
                f"stopped waiting after {outcome.waited:.0f} s; the job may still run (unit_status shows how it ends)"
            )
        if outcome.result in JOB_FAILURES or state.get("active") == "failed":
            result["error_lines"] = await _error_lines(ctx, unit, state.get("exec_pid"), submitted)
        return result

    return handler


async def _error_lines(ctx: ToolContext, unit: str, pid: int | None, submitted: float) -> list[str]:
    """The unit's last lines once its own output is in: a job is reported failed the moment the process exits,
    and journald may not yet have read the process's last words from its stream — the ones that say why (and,
    the process being gone, journald may not know their unit: they are found by PID, see MainProcess)."""
    deadline = time.monotonic() + OUTPUT_GRACE
    process = MainProcess(unit, pid, int(submitted * 1_000_000)) if pid else None
    while True:
        rows = await recent_rows(ctx, unit, ERROR_LINES, process)
        if pid is None or any(row["pid"] == pid for row in rows) or time.monotonic() >= deadline:
            return [row["message"] for row in rows]
        await asyncio.sleep(0.05)


async def _reload_if_allowed(ctx: ToolContext, bus: str) -> dict[str, Any]:
    """daemon-reload after a unit-file change, as systemctl does — when the policy lets it run without a second
    approval (or a person can be asked inline); otherwise say what is pending rather than fail the change."""
    operation = dbus_call(systemd.SYSTEMD, systemd.MANAGER_PATH, systemd.MANAGER, "Reload", "", [], bus=bus)
    assessment = await ctx.gateway.assess(operation)
    decision = assessment.decision
    if decision.verdict is Verdict.ALLOW or (decision.verdict is Verdict.CONFIRM and ctx.caller.ask is not None):
        await ctx.gateway.call(operation, ctx.caller)
        return {"reloaded": True}
    return {
        "reloaded": False,
        "reload_note": f"daemon-reload not run: rule {decision.rule!r} says {decision.verdict.value} "
        f"({decision.reason}); the unit files are changed, and the manager sees it at its next reload",
    }


async def _unit_file_change(ctx: ToolContext, args: dict[str, Any], enable: bool) -> dict[str, Any]:
    bus = systemd.bus_of(args)
    unit = systemd.normalize_unit(args["unit"])
    if await systemd.unit_file_state(ctx, bus, unit) is None:
        raise systemd.unknown_unit(unit, bus)
    runtime = bool(args.get("runtime", False))
    if enable:
        member, signature, values = "EnableUnitFiles", "asbb", [[unit], runtime, bool(args.get("force", False))]
    else:
        member, signature, values = "DisableUnitFiles", "asb", [[unit], runtime]
    operation = dbus_call(systemd.SYSTEMD, systemd.MANAGER_PATH, systemd.MANAGER, member, signature, values, bus=bus)
    try:
        reply = await ctx.gateway.call(operation, ctx.caller)
    except RemoteError as exc:
        raise _remote(exc, unit, bus) from exc
    changes = reply.body[-1]
    result: dict[str, Any] = {
        "unit": unit,
        "changes": [{"type": str(c[0]), "path": str(c[1]), "source": str(c[2])} for c in changes],
    }
    if enable and not reply.body[0]:
        result["note"] = f"{unit} has no [Install] section: enabling it changes nothing"
    if args.get("reload", True):
        result.update(await _reload_if_allowed(ctx, bus))
    result["unit_file"] = await systemd.unit_file_state(ctx, bus, unit)
    return result


async def enable_unit(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    return await _unit_file_change(ctx, args, enable=True)


async def disable_unit(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    return await _unit_file_change(ctx, args, enable=False)


async def reset_failed_unit(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    bus = systemd.bus_of(args)
    unit = systemd.normalize_unit(args["unit"])
    if await systemd.require_unit(ctx, bus, unit) is None:
        # systemd forgets a unit that is stopped and not failed: there is no failed state to reset.
        return {"unit": unit, "state": await unit_state(ctx, bus, unit), "note": "not loaded: nothing to reset"}
    operation = dbus_call(
        systemd.SYSTEMD, systemd.MANAGER_PATH, systemd.MANAGER, "ResetFailedUnit", "s", [unit], bus=bus
    )
    try:
        await ctx.gateway.call(operation, ctx.caller)
    except RemoteError as exc:
        raise _remote(exc, unit, bus) from exc
    return {"unit": unit, "state": await unit_state(ctx, bus, unit)}


STATE = {"type": "object", "description": "load, active, sub, result, main_pid after the change."}
CHANGE = Annotations(read_only=False, destructive=True, idempotent=False)


def unit_change_tools(max_wait: float) -> list[ToolSpec]:
    common = {
        "unit": systemd.unit_schema(),
        "manager": systemd.manager_schema(),
        "format": output.format_schema("json"),
    }
    specs = [
        ToolSpec(
            name=name,
            title=title,
            description=f"{description}; waits for the job and returns its result (done, failed, timeout, "
            "dependency, canceled, skipped), the state after, and error lines on failure. A change: policy decides.",
            input_schema=s.obj(
                {
                    **common,
                    "mode": {
                        "type": "string",
                        "enum": ["replace", "fail"],
                        "default": "replace",
                        "description": "Job mode.",
                    },
                    "wait": s.seconds("Seconds to wait for the job.", max_wait, min(60.0, max_wait)),
                },
                ["unit"],
            ),
            output_schema=s.obj(
                {
                    "unit": {"type": "string"},
                    "job": {"type": "string"},
                    "result": {"type": "string"},
                    "finished": {"type": "boolean"},
                    "waited": {"type": "number"},
                    "state": STATE,
                    "note": {"type": "string"},
                    "error_lines": {"type": "array", "items": {"type": "string"}},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["unit", "job", "result", "finished", "waited", "state"],
            ),
            annotations=Annotations(
                read_only=False, destructive=member != "StartUnit", idempotent=member != "RestartUnit"
            ),
            handler=job_tool(member),
            operations=_pattern(member),
            scope="units:write",
        )
        for name, (member, title, description) in JOBS.items()
    ]
    file_output = s.obj(
        {
            "unit": {"type": "string"},
            "changes": {"type": "array", "items": {"type": "object"}},
            "reloaded": {"type": "boolean"},
            "reload_note": {"type": "string"},
            "note": {"type": "string"},
            "unit_file": {"type": ["string", "null"]},
            "truncated": {"type": "array", "items": {"type": "string"}},
        },
        ["unit", "changes", "unit_file"],
    )
    reload = {"type": "boolean", "default": True, "description": "daemon-reload afterwards, as systemctl does."}
    runtime = {"type": "boolean", "default": False, "description": "Only until the next boot (/run)."}
    specs += [
        ToolSpec(
            name="enable_unit",
            title="Enable a unit",
            description="Enable a unit file (its [Install] links), then reload the manager. A change: needs approval.",
            input_schema=s.obj(
                {**common, "runtime": runtime, "force": {"type": "boolean", "default": False}, "reload": reload},
                ["unit"],
            ),
            output_schema=file_output,
            annotations=Annotations(read_only=False, destructive=False, idempotent=True),
            handler=enable_unit,
            operations=_pattern("EnableUnitFiles"),
            scope="units:write",
        ),
        ToolSpec(
            name="disable_unit",
            title="Disable a unit",
            description="Disable a unit file (remove its [Install] links), then reload the manager. A change: needs "
            "approval; protected units are refused.",
            input_schema=s.obj({**common, "runtime": runtime, "reload": reload}, ["unit"]),
            output_schema=file_output,
            annotations=Annotations(read_only=False, destructive=True, idempotent=True),
            handler=disable_unit,
            operations=_pattern("DisableUnitFiles"),
            scope="units:write",
        ),
        ToolSpec(
            name="reset_failed_unit",
            title="Reset a failed unit",
            description="Clear a unit's failed state (and restart counter). A change: needs approval.",
            input_schema=s.obj(common, ["unit"]),
            output_schema=s.obj(
                {
                    "unit": {"type": "string"},
                    "state": STATE,
                    "note": {"type": "string"},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["unit", "state"],
            ),
            annotations=Annotations(read_only=False, destructive=False, idempotent=True),
            handler=reset_failed_unit,
            operations=_pattern("ResetFailedUnit"),
            scope="units:write",
        ),
    ]
    return specs
