"""`health_check`: what is wrong on the host, in one small answer — failed units, units stuck starting, stopping
or reloading, units systemd keeps restarting, each with its last journal lines; resource pressure over
thresholds; and what the host is for. Its cost is bounded: at most MAX_STATE_CHECKS + MAX_RESTART_CHECKS
property reads, CONCURRENCY at a time, and journal lines only for the units it names (`limit` per list)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbus import output
from fleetbus.dbus import types
from fleetbus.dbus.errors import BusError
from fleetbus.dbus.link import PROPERTIES
from fleetbus.gateway import dbus_call
from fleetbus.guard.catalog import Risk
from fleetbus.guard.policy import OperationPattern
from fleetbus.operation import HOST_METRICS, JOURNAL_QUERY
from fleetbus.tools import schema as s
from fleetbus.tools import systemd
from fleetbus.tools.journal import MainProcess, recent_lines
from fleetbus.tools.registry import Annotations, ToolContext, ToolError, ToolSpec
from fleetbus.tools.roles import fingerprint
from fleetbus.tools.times import from_usec, iso
from fleetbus.tools.unit_trouble import AUTO_RESTART, RECENT_RESTART_S, Restarted, Stuck, may_hang, restarted, stuck

READS = frozenset({Risk.READ})
THRESHOLDS = {
    "load_per_cpu": 2.0,
    "memory_used_percent": 90.0,
    "swap_used_percent": 50.0,
    "disk_used_percent": 90.0,
    "pressure_some_avg10": 20.0,
}
"""Past these a figure is reported as pressure; chosen as where operators usually start to look."""
SERVICE = systemd.TYPE_INTERFACES["service"]
DEFAULT_STUCK_AFTER = 60
"""Seconds in activating/deactivating/reloading before a unit is named as stuck: longer than most services take
to start, shorter than systemd's own 90 s start timeout, which a unit that hangs for minutes has raised."""
CONCURRENCY = 8
MAX_STATE_CHECKS = 100
"""Units in a transition whose timestamps are read; a host rarely has more than a handful."""
MAX_RESTART_CHECKS = 300
"""Running services whose restart counter is read (one small Get each)."""


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


@dataclass(frozen=True)
class Listed:
    """One row of ListUnits: what the manager says about a unit without being asked for its properties."""

    unit: str
    load: str
    active: str
    sub: str
    path: str

    @classmethod
    def of(cls, row: Sequence[Any]) -> Listed:
        return cls(str(row[0]), str(row[2]), str(row[3]), str(row[4]), str(row[6]))

    @property
    def is_service(self) -> bool:
        return self.unit.endswith(".service")


class UnitReader:
    """The property reads and journal lines of one health check, CONCURRENCY at a time."""

    def __init__(self, ctx: ToolContext, bus: str, lines: int) -> None:
        self.ctx = ctx
        self.bus = bus
        self.lines = lines
        self.semaphore = asyncio.Semaphore(CONCURRENCY)

    async def properties(self, path: str, interface: str) -> dict[str, Any]:
        """Every property of one interface; empty when the unit vanished meanwhile."""
        async with self.semaphore:
            try:
                return await systemd.properties(self.ctx, self.bus, path, interface)
            except BusError:
                return {}

    async def restart_count(self, path: str) -> int:
        """NRestarts alone: a fraction of the reply GetAll of a service is, for every running service."""
        operation = dbus_call(
            systemd.SYSTEMD, path, PROPERTIES, "Get", "ss", [SERVICE, "NRestarts"], bus=self.bus, host=self.ctx.host
        )
        async with self.semaphore:
            try:
                reply = await self.ctx.gateway.call(operation, self.ctx.caller)
            except BusError:
                return 0
        (value,) = types.to_json(reply.signature, reply.body, variants="plain")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    async def last_lines(self, unit: str, service: Mapping[str, Any]) -> list[str]:
        async with self.semaphore:
            try:
                return await recent_lines(self.ctx, unit, self.lines, MainProcess.of(unit, service))
            except ToolError:
                return []  # the journal could not be read: the finding stands without its lines


async def health_check(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    bus = systemd.bus_of(args)
    limit = int(args.get("limit", 10))
    stuck_after = float(args.get("stuck_after", DEFAULT_STUCK_AFTER))
    reader = UnitReader(ctx, bus, int(args.get("lines", 3)))
    (rows,) = await systemd.manager_call(ctx, bus, "ListUnits")
    units = [Listed.of(row) for row in rows]
    clock = await ctx.gateway.read_metrics(ctx.caller, "identity", host=ctx.host)
    now = int(clock["monotonic_usec"])
    failed = sorted((u for u in units if u.active == "failed"), key=lambda u: u.unit)
    transitional = [u for u in units if may_hang(u.unit, u.active, u.sub)]
    running = [u for u in units if u.is_service and u.load == "loaded" and u.active not in ("inactive", "failed")]

    async def describe_failed(unit: Listed) -> dict[str, Any]:
        interface = systemd.TYPE_INTERFACES.get(systemd.unit_type(unit.unit))
        typed = await reader.properties(unit.path, interface) if interface else {}
        return {
            "unit": unit.unit,
            "result": typed.get("Result"),
            "last_lines": await reader.last_lines(unit.unit, typed),
        }

    async def check_stuck(unit: Listed) -> tuple[Stuck, Listed] | None:
        props = await reader.properties(unit.path, systemd.UNIT)
        found = stuck(unit.unit, unit.active, unit.sub, props, now, stuck_after)
        return (found, unit) if found else None

    async def check_restarted(unit: Listed) -> tuple[Restarted, Listed, dict[str, Any]] | None:
        if unit.sub != AUTO_RESTART and await reader.restart_count(unit.path) == 0:
            return None
        service = await reader.properties(unit.path, SERVICE)
        found = restarted(unit.unit, unit.sub, service, now)
        return (found, unit, service) if found else None

    failed_rows, stuck_found, restart_found = await asyncio.gather(
        asyncio.gather(*(describe_failed(u) for u in failed[:limit])),
        asyncio.gather(*(check_stuck(u) for u in transitional[:MAX_STATE_CHECKS])),
        asyncio.gather(*(check_restarted(u) for u in running[:MAX_RESTART_CHECKS])),
    )
    hanging = sorted((found for found in stuck_found if found), key=lambda f: (-f[0].seconds, f[0].unit))
    hanging_units = {found.unit for found, _ in hanging}
    # A unit stuck in its start is named once, as stuck, even when that start was an automatic restart.
    restarting = sorted(
        (found for found in restart_found if found and found[0].unit not in hanging_units),
        key=lambda f: (-f[0].restarts, f[0].unit),
    )
    hanging_rows, restarting_rows = await asyncio.gather(
        asyncio.gather(*(_describe_stuck(reader, found, unit) for found, unit in hanging[:limit])),
        asyncio.gather(*(_describe_restarted(reader, *found) for found in restarting[:limit])),
    )
    status = await ctx.gateway.read_metrics(ctx.caller, "system", {"disk_limit": 50}, host=ctx.host)
    pressure = pressure_findings(status)
    try:
        (files,) = await systemd.manager_call(
            ctx, bus, "ListUnitFilesByPatterns", "asas", [[], ["*.service", "*.socket"]]
        )
        installed = [str(path).rsplit("/", 1)[-1] for path, _ in files]
    except BusError:
        installed = []
    roles = fingerprint([*(u.unit for u in units), *installed])
    unchecked = max(0, len(running) - MAX_RESTART_CHECKS) + max(0, len(transitional) - MAX_STATE_CHECKS)
    problems = len(failed) + len(hanging) + len(restarting) + len(pressure)
    return {
        "healthy": problems == 0,
        "summary": _summary(len(failed), [found for found, _ in hanging], len(restarting), len(pressure), unchecked),
        "failed_units": list(failed_rows),
        "failed_total": len(failed),
        "hanging": list(hanging_rows),
        "restarting": list(restarting_rows),
        "pressure": pressure,
        "roles": roles,
        "load": status.get("load"),
        "memory_used_percent": status.get("memory", {}).get("used_percent"),
    }


async def _describe_stuck(reader: UnitReader, found: Stuck, unit: Listed) -> dict[str, Any]:
    service = await reader.properties(unit.path, SERVICE) if unit.is_service else {}
    return {
        "unit": found.unit,
        "state": found.state,
        "sub": found.sub,
        "stuck_s": int(found.seconds),
        "since": iso(from_usec(found.since.realtime_usec)) if found.since.realtime_usec else None,
        "last_lines": await reader.last_lines(found.unit, service),
    }


async def _describe_restarted(
    reader: UnitReader, found: Restarted, unit: Listed, service: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "unit": found.unit,
        "restarts": found.restarts,
        "last_restart_ago_s": int(found.last_restart_s) if found.last_restart_s is not None else None,
        "state": unit.active,
        "sub": unit.sub,
        "last_lines": await reader.last_lines(found.unit, service),
    }


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _summary(failed: int, hanging: list[Stuck], restarting: int, pressure: int, unchecked: int) -> str:
    parts = []
    if failed:
        parts.append(f"{_plural(failed, 'failed unit')}")
    if hanging:
        longest = hanging[0]
        parts.append(
            f"{_plural(len(hanging), 'unit')} stuck (longest: {longest.unit} {longest.state} for "
            f"{_duration(longest.seconds)})"
        )
    if restarting:
        parts.append(f"{_plural(restarting, 'unit')} restarted by systemd in the last {RECENT_RESTART_S // 60} min")
    if pressure:
        parts.append(f"{_plural(pressure, 'resource figure')} over threshold")
    summary = "; ".join(parts) if parts else "no failed, stuck or restarting units, no resource pressure"
    if unchecked:
        summary += f" ({_plural(unchecked, 'unit')} not checked: over the per-call limit)"
    return summary


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    return f"{seconds / 3600:.1f} h"


def triage_tools() -> list[ToolSpec]:
    return [
        ToolSpec(
            name="health_check",
            title="What is wrong on this host",
            description="What is wrong, in one small answer: failed units, units stuck starting/stopping, units "
            f"systemd restarted in {RECENT_RESTART_S // 60} min, with last lines; resource pressure; the host's roles.",
            input_schema=s.obj(
                {
                    "limit": s.integer("Most units to describe per list.", 1, 50, 10),
                    "lines": s.integer("Last journal lines per unit.", 0, 20, 3),
                    "stuck_after": s.integer("Seconds until stuck.", 1, 86400, DEFAULT_STUCK_AFTER),
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
                    "hanging": {
                        "type": "array",
                        "items": {"type": "object", "required": ["unit", "state", "sub", "stuck_s", "since"]},
                    },
                    "restarting": {
                        "type": "array",
                        "items": {"type": "object", "required": ["unit", "restarts", "last_restart_ago_s", "state"]},
                    },
                    "pressure": {"type": "array", "items": {"type": "object"}},
                    "roles": {"type": "array", "items": {"type": "object"}},
                    "load": {"type": ["object", "null"]},
                    "memory_used_percent": {"type": ["number", "null"]},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["healthy", "summary", "failed_units", "failed_total", "hanging", "restarting", "pressure", "roles"],
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
