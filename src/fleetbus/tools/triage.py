"""`health_check`: what is wrong on the host, in one small answer — failed units with their result and last
error lines, units restarting repeatedly, resource pressure over thresholds, and what the host is for."""

from __future__ import annotations

import asyncio
from typing import Any

from fleetbus import output
from fleetbus.dbus.errors import BusError
from fleetbus.guard.catalog import Risk
from fleetbus.guard.policy import OperationPattern
from fleetbus.operation import HOST_METRICS, JOURNAL_QUERY
from fleetbus.tools import schema as s
from fleetbus.tools import systemd
from fleetbus.tools.journal import MainProcess, recent_lines
from fleetbus.tools.registry import Annotations, ToolContext, ToolError, ToolSpec
from fleetbus.tools.roles import fingerprint

READS = frozenset({Risk.READ})
THRESHOLDS = {
    "load_per_cpu": 2.0,
    "memory_used_percent": 90.0,
    "swap_used_percent": 50.0,
    "disk_used_percent": 90.0,
    "pressure_some_avg10": 20.0,
}
"""Past these a figure is reported as pressure; chosen as where operators usually start to look."""
RESTARTS_REPORTED = 3
CONCURRENCY = 8
MAX_RESTART_CHECKS = 300


def pressure_findings(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The resource figures of a system_status snapshot that are over THRESHOLDS."""
    findings: list[dict[str, Any]] = []

    def over(what: str, value: float | None, limit: float) -> None:
        if value is not None and value > limit:
            findings.append({"what": what, "value": value, "threshold": limit})

    over("load per CPU (1 min)", status.get("load_per_cpu"), THRESHOLDS["load_per_cpu"])
    over("memory used %", status.get("memory", {}).get("used_percent"), THRESHOLDS["memory_used_percent"])
    if status.get("swap", {}).get("total_mb"):
        over("swap used %", status["swap"].get("used_percent"), THRESHOLDS["swap_used_percent"])
    for disk in status.get("disks", []):
        over(f"disk used % on {disk['mount']}", disk.get("used_percent"), THRESHOLDS["disk_used_percent"])
    for resource, figures in (status.get("pressure") or {}).items():
        over(f"{resource} pressure (some, avg10 %)", figures.get("some_avg10"), THRESHOLDS["pressure_some_avg10"])
    return findings


async def health_check(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    bus = systemd.bus_of(args)
    limit = int(args.get("limit", 10))
    lines = int(args.get("lines", 3))
    (units,) = await systemd.manager_call(ctx, bus, "ListUnits")
    failed = sorted(str(u[0]) for u in units if str(u[3]) == "failed")
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def describe_failed(unit: str) -> dict[str, Any]:
        async with semaphore:
            row: dict[str, Any] = {"unit": unit, "result": None, "last_lines": []}
            try:
                path = await systemd.get_unit(ctx, bus, unit)
                typed: dict[str, Any] = {}
                if path and systemd.unit_type(unit) in systemd.TYPE_INTERFACES:
                    typed = await systemd.properties(ctx, bus, path, systemd.TYPE_INTERFACES[systemd.unit_type(unit)])
                    row["result"] = typed.get("Result")
                row["last_lines"] = await recent_lines(ctx, unit, lines, MainProcess.of(unit, typed))
            except (BusError, ToolError):
                pass  # a unit that vanished meanwhile still counts as failed when listed
            return row

    async def restarts(unit: str, path: str) -> tuple[str, int]:
        async with semaphore:
            try:
                props = await systemd.properties(ctx, bus, path, systemd.TYPE_INTERFACES["service"])
            except BusError:
                return unit, 0
            return unit, int(props.get("NRestarts") or 0)

    services = [(str(u[0]), str(u[6])) for u in units if str(u[0]).endswith(".service") and str(u[2]) == "loaded"]
    failed_rows, restart_counts = await asyncio.gather(
        asyncio.gather(*(describe_failed(u) for u in failed[:limit])),
        asyncio.gather(*(restarts(u, p) for u, p in services[:MAX_RESTART_CHECKS])),
    )
    restarting = sorted(
        ({"unit": u, "restarts": n} for u, n in restart_counts if n >= RESTARTS_REPORTED), key=lambda r: -r["restarts"]
    )
    status = await ctx.gateway.read_metrics(ctx.caller, "system", {"disk_limit": 50})
    pressure = pressure_findings(status)
    try:
        (files,) = await systemd.manager_call(
            ctx, bus, "ListUnitFilesByPatterns", "asas", [[], ["*.service", "*.socket"]]
        )
        installed = [str(path).rsplit("/", 1)[-1] for path, _ in files]
    except BusError:
        installed = []
    roles = fingerprint([*(str(u[0]) for u in units), *installed])
    problems = len(failed) + len(restarting) + len(pressure)
    return {
        "healthy": problems == 0,
        "summary": _summary(failed, restarting, pressure),
        "failed_units": list(failed_rows),
        "failed_total": len(failed),
        "restarting": restarting[:limit],
        "pressure": pressure,
        "roles": roles,
        "load": status.get("load"),
        "memory_used_percent": status.get("memory", {}).get("used_percent"),
    }


def _summary(failed: list[str], restarting: list[dict[str, Any]], pressure: list[dict[str, Any]]) -> str:
    parts = []
    if failed:
        parts.append(f"{len(failed)} failed unit{'s' if len(failed) != 1 else ''}")
    if restarting:
        parts.append(f"{len(restarting)} unit{'s' if len(restarting) != 1 else ''} restarting repeatedly")
    if pressure:
        parts.append(f"{len(pressure)} resource figure{'s' if len(pressure) != 1 else ''} over threshold")
    return "; ".join(parts) if parts else "no failed units, no restart loops, no resource pressure"


def triage_tools() -> list[ToolSpec]:
    return [
        ToolSpec(
            name="health_check",
            title="What is wrong on this host",
            description="What is wrong, in one small answer: failed and restarting units with their last errors, "
            "resource pressure, the host's roles.",
            input_schema=s.obj(
                {
                    "limit": s.integer("Most failed or restarting units to describe.", 1, 50, 10),
                    "lines": s.integer("Last journal lines per failed unit.", 0, 20, 3),
                    "manager": systemd.manager_schema(),
                    "format": output.format_schema("toon"),
                }
            ),
            output_schema=s.obj(
                {
                    "healthy": {"type": "boolean"},
                    "summary": {"type": "string"},
                    "failed_units": {"type": "array", "items": {"type": "object", "required": ["unit", "result"]}},
                    "failed_total": {"type": "integer"},
                    "restarting": {"type": "array", "items": {"type": "object"}},
                    "pressure": {"type": "array", "items": {"type": "object"}},
                    "roles": {"type": "array", "items": {"type": "object"}},
                    "load": {"type": ["object", "null"]},
                    "memory_used_percent": {"type": ["number", "null"]},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["healthy", "summary", "failed_units", "failed_total", "restarting", "pressure", "roles"],
            ),
            annotations=Annotations(read_only=True, destructive=False, idempotent=True),
            handler=health_check,
            operations=(
                OperationPattern(destination=systemd.SYSTEMD, risks=READS),
                OperationPattern(kind=JOURNAL_QUERY, risks=READS),
                OperationPattern(kind=HOST_METRICS, risks=READS),
            ),
        )
    ]
