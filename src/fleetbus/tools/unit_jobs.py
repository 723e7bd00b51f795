"""Changing systemd units: `unit_job` starts, stops, restarts, reloads or try-restarts a unit (it waits for the job
to end and reports the state after), `unit_file` enables or disables unit files, `reset_failed_unit` clears a
failed state. The Manager call is the Operation, so policy and approvals bind to, say,
RestartUnit("worker-3.service", "replace") exactly as for call_method — whichever tool asked for it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fleetbus import output
from fleetbus.dbus.errors import RemoteError
from fleetbus.gateway import dbus_call
from fleetbus.guard.catalog import possible_risks
from fleetbus.guard.policy import OperationPattern, Verdict
from fleetbus.operation import DBUS_CALL, LOCAL_HOST, Operation
from fleetbus.tools import schema as s
from fleetbus.tools import systemd
from fleetbus.tools.journal import MainProcess, recent_rows
from fleetbus.tools.registry import Annotations, ToolContext, ToolError, ToolSpec
from fleetbus.tools.units import unit_state

JOB_ACTIONS = {
    "start": "StartUnit",
    "stop": "StopUnit",
    "restart": "RestartUnit",
    "reload": "ReloadUnit",
    "try_restart": "TryRestartUnit",
}
"""unit_job's actions and the Manager method each one is (systemctl's verbs)."""
FILE_ACTIONS = {"enable": "EnableUnitFiles", "disable": "DisableUnitFiles"}
ERROR_LINES = 10
OUTPUT_GRACE = 1.0
"""Seconds a failure report waits for the failed process's own output to reach the journal."""
JOB_FAILURES = {"failed", "dependency", "timeout", "canceled", "invalid"}


JOB_WAIT = 60.0
"""How long unit_job waits for a job by default (the configured max_call_timeout when that is less)."""


def _patterns(*members: str) -> tuple[OperationPattern, ...]:
    # The risks are the catalog's: a start or restart may be dangerous by what it reaches, a reset never is.
    return tuple(
        OperationPattern(
            destination=systemd.SYSTEMD,
            interface=systemd.MANAGER,
            member=member,
            risks=possible_risks(
                Operation(DBUS_CALL, LOCAL_HOST, destination=systemd.SYSTEMD, interface=systemd.MANAGER, member=member)
            ),
        )
        for member in members
    )


def _covers(actions: dict[str, str]) -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple((f"{systemd.MANAGER}.{member}", {"action": action}) for action, member in actions.items())


def _remote(exc: RemoteError, unit: str, bus: str) -> ToolError | RemoteError:
    if exc.name in systemd.NO_UNIT:
        return systemd.unknown_unit(unit, bus)
    if exc.name == "org.freedesktop.systemd1.JobTypeNotApplicable":
        return ToolError(f"{unit} cannot do that ({exc.text or exc.name}); e.g. reload needs an ExecReload=")
    if exc.name == "org.freedesktop.systemd1.UnitMasked":
        return ToolError(f"{unit} is masked: {exc.text}")
    return exc


async def unit_job(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    action = args["action"]
    bus = systemd.bus_of(args)
    unit = systemd.normalize_unit(args["unit"])
    # Asking first means an unknown unit is an error before anyone is asked to approve anything.
    await systemd.require_unit(ctx, bus, unit)
    operation = dbus_call(
        systemd.SYSTEMD,
        systemd.MANAGER_PATH,
        systemd.MANAGER,
        JOB_ACTIONS[action],
        "ss",
        [unit, args.get("mode", "replace")],
        names=["name", "mode"],
        bus=bus,
        host=ctx.host,
    )
    submitted = time.time()
    wait = float(args.get("wait", min(JOB_WAIT, ctx.gateway.deadlines.maximum)))  # as its schema's default says
    try:
        outcome = await ctx.gateway.run_job(operation, ctx.caller, wait=wait)
    except RemoteError as exc:
        raise _remote(exc, unit, bus) from exc
    state = await unit_state(ctx, bus, unit)
    result: dict[str, Any] = {
        "unit": unit,
        "action": action,
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
    operation = dbus_call(
        systemd.SYSTEMD, systemd.MANAGER_PATH, systemd.MANAGER, "Reload", "", [], bus=bus, host=ctx.host
    )
    assessment = await ctx.gateway.assess(operation, ctx.caller)
    decision = assessment.decision
    if decision.verdict is Verdict.ALLOW or (decision.verdict is Verdict.CONFIRM and ctx.caller.ask is not None):
        await ctx.gateway.call(operation, ctx.caller)
        return {"reloaded": True}
    return {
        "reloaded": False,
        "reload_note": f"daemon-reload not run: rule {decision.rule!r} says {decision.verdict.value} "
        f"({decision.reason}); the unit files are changed, and the manager sees it at its next reload",
    }


async def unit_file(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    action = args["action"]
    bus = systemd.bus_of(args)
    unit = systemd.normalize_unit(args["unit"])
    if await systemd.unit_file_state(ctx, bus, unit) is None:
        raise systemd.unknown_unit(unit, bus, known=await systemd.known_units(ctx, bus))
    runtime = bool(args.get("runtime", False))
    if action == "enable":
        signature, values = "asbb", [[unit], runtime, bool(args.get("force", False))]
    else:
        if "force" in args:
            raise ToolError("force applies to action=enable only")
        signature, values = "asb", [[unit], runtime]
    operation = dbus_call(
        systemd.SYSTEMD,
        systemd.MANAGER_PATH,
        systemd.MANAGER,
        FILE_ACTIONS[action],
        signature,
        values,
        bus=bus,
        host=ctx.host,
    )
    try:
        reply = await ctx.gateway.call(operation, ctx.caller)
    except RemoteError as exc:
        raise _remote(exc, unit, bus) from exc
    changes = reply.body[-1]
    result: dict[str, Any] = {
        "unit": unit,
        "action": action,
        "changes": [{"type": str(c[0]), "path": str(c[1]), "source": str(c[2])} for c in changes],
    }
    if action == "enable" and not reply.body[0]:
        result["note"] = f"{unit} has no [Install] section: enabling it changes nothing"
    if args.get("reload", True):
        result.update(await _reload_if_allowed(ctx, bus))
    result["unit_file"] = await systemd.unit_file_state(ctx, bus, unit)
    return result


async def reset_failed_unit(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    bus = systemd.bus_of(args)
    unit = systemd.normalize_unit(args["unit"])
    if await systemd.require_unit(ctx, bus, unit) is None:
        # systemd forgets a unit that is stopped and not failed: there is no failed state to reset.
        return {"unit": unit, "state": await unit_state(ctx, bus, unit), "note": "not loaded: nothing to reset"}
    operation = dbus_call(
        systemd.SYSTEMD, systemd.MANAGER_PATH, systemd.MANAGER, "ResetFailedUnit", "s", [unit], bus=bus, host=ctx.host
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
    job_output = s.obj(
        {
            "unit": {"type": "string"},
            "action": {"type": "string"},
            "job": {"type": "string"},
            "result": {"type": "string"},
            "finished": {"type": "boolean"},
            "waited": {"type": "number"},
            "state": STATE,
            "note": {"type": "string"},
            "error_lines": {"type": "array", "items": {"type": "string"}},
            "truncated": {"type": "array", "items": {"type": "string"}},
        },
        ["unit", "action", "job", "result", "finished", "waited", "state"],
    )
    file_output = s.obj(
        {
            "unit": {"type": "string"},
            "action": {"type": "string"},
            "changes": {"type": "array", "items": {"type": "object"}},
            "reloaded": {"type": "boolean"},
            "reload_note": {"type": "string"},
            "note": {"type": "string"},
            "unit_file": {"type": ["string", "null"]},
            "truncated": {"type": "array", "items": {"type": "string"}},
        },
        ["unit", "action", "changes", "unit_file"],
    )
    return [
        ToolSpec(
            name="unit_job",
            title="Start, stop, restart or reload a unit",
            description="Queue a unit job (try_restart: only if running), wait for it, and return its result "
            "(done, failed, timeout, dependency, canceled, skipped), the state after, and error lines on failure. "
            "A change: policy decides.",
            input_schema=s.obj(
                {
                    "unit": common["unit"],
                    "action": {"type": "string", "enum": list(JOB_ACTIONS)},
                    "mode": {
                        "type": "string",
                        "enum": ["replace", "fail"],
                        "default": "replace",
                        "description": "Job mode.",
                    },
                    "wait": s.seconds("Seconds to wait for the job.", max_wait, min(JOB_WAIT, max_wait)),
                    "manager": common["manager"],
                    "format": common["format"],
                },
                ["unit", "action"],
            ),
            output_schema=job_output,
            # Stopping and restarting are destructive, a restart is not idempotent, and a start can reach a
            # shutdown target: the hints are those of the strongest action.
            annotations=CHANGE,
            handler=unit_job,
            operations=_patterns(*JOB_ACTIONS.values()),
            scope="units:write",
            covers=_covers(JOB_ACTIONS),
        ),
        ToolSpec(
            name="unit_file",
            title="Enable or disable a unit",
            description="Enable a unit file (its [Install] links) or disable it (remove them), then reload the "
            "manager. A change: policy decides; protected units are refused.",
            input_schema=s.obj(
                {
                    "unit": common["unit"],
                    "action": {"type": "string", "enum": list(FILE_ACTIONS)},
                    "runtime": {"type": "boolean", "default": False, "description": "Only until the next boot (/run)."},
                    "force": {"type": "boolean", "default": False, "description": "enable: replace existing links."},
                    "reload": {"type": "boolean", "default": True, "description": "daemon-reload afterwards."},
                    "manager": common["manager"],
                    "format": common["format"],
                },
                ["unit", "action"],
            ),
            output_schema=file_output,
            annotations=Annotations(read_only=False, destructive=True, idempotent=True),
            handler=unit_file,
            operations=_patterns(*FILE_ACTIONS.values()),
            scope="units:write",
            covers=_covers(FILE_ACTIONS),
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
            operations=_patterns("ResetFailedUnit"),
            scope="units:write",
            covers=((f"{systemd.MANAGER}.ResetFailedUnit", {}),),
        ),
    ]
