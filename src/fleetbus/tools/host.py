"""Host health: host_info (hostname1, systemd and the kernel), system_status (load, CPU, memory, swap, disks,
pressure stall information), top_processes, network_status and time_status (timedate1)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fleetbus import output
from fleetbus.dbus import types
from fleetbus.dbus.errors import BusError, RemoteError
from fleetbus.dbus.link import PROPERTIES
from fleetbus.gateway import dbus_call
from fleetbus.guard.catalog import Risk
from fleetbus.guard.policy import OperationPattern
from fleetbus.operation import HOST_METRICS
from fleetbus.tools import schema as s
from fleetbus.tools import systemd
from fleetbus.tools.registry import Annotations, ToolContext, ToolError, ToolSpec
from fleetbus.tools.times import from_usec, iso

READ = Annotations(read_only=True, destructive=False, idempotent=True)
READS = frozenset({Risk.READ})
METRICS = (OperationPattern(kind=HOST_METRICS, risks=READS),)
BUS_READS = (OperationPattern(risks=READS),)
HOSTNAME1 = ("org.freedesktop.hostname1", "/org/freedesktop/hostname1", "org.freedesktop.hostname1")
TIMEDATE1 = ("org.freedesktop.timedate1", "/org/freedesktop/timedate1", "org.freedesktop.timedate1")


async def _get_all(ctx: ToolContext, service: str, path: str, interface: str) -> dict[str, Any] | BusError:
    """All properties of an interface, or why there are none (the service is not there, or did not answer)."""
    operation = dbus_call(service, path, PROPERTIES, "GetAll", "s", [interface], host=ctx.host)
    try:
        reply = await ctx.gateway.call(operation, ctx.caller)
    except BusError as exc:
        return exc
    values = types.to_json(reply.signature, reply.body, variants="plain")
    found = values[0] if values else {}
    return found if isinstance(found, dict) else {}


async def _machine_id(ctx: ToolContext) -> str | BusError:
    operation = dbus_call(
        HOSTNAME1[0], HOSTNAME1[1], "org.freedesktop.DBus.Peer", "GetMachineId", "", [], host=ctx.host
    )
    try:
        reply = await ctx.gateway.call(operation, ctx.caller)
    except BusError as exc:
        return exc
    return str(reply.body[0])


async def host_info(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    # At once, not one after another: a stalled bus then costs one deadline, not one per read.
    host_read, manager_read, identity, machine_read = await asyncio.gather(
        _get_all(ctx, *HOSTNAME1),
        _get_all(ctx, systemd.SYSTEMD, systemd.MANAGER_PATH, systemd.MANAGER),
        ctx.gateway.read_metrics(ctx.caller, "identity", host=ctx.host),
        _machine_id(ctx),
        return_exceptions=True,  # every read ends before the answer (or the error) goes out
    )
    for read in (host_read, manager_read, machine_read):
        if isinstance(read, BaseException) and not isinstance(read, BusError):
            raise read  # a refusal, a rate limit: the gateway's word, as from any other tool
    if isinstance(identity, BaseException):
        raise identity
    if isinstance(host_read, BusError) and isinstance(manager_read, BusError):
        # Both services absent (the bus answered "no such name"): a host without hostname1 and systemd is still
        # described from its own /proc and os-release. A bus that did not answer is an error, never nulls.
        absent = all(isinstance(e, RemoteError) for e in (host_read, manager_read))
        if not absent:
            raise ToolError(f"the system bus did not answer: hostname1: {host_read}; systemd: {manager_read}")
        if not identity.get("hostname"):
            raise ToolError(
                f"neither hostname1 nor systemd answer on the system bus; is this a systemd host? ({host_read})"
            )
    host = host_read if isinstance(host_read, dict) else {}
    manager = manager_read if isinstance(manager_read, dict) else {}
    machine_id = machine_read if isinstance(machine_read, str) else None
    # hostname1 first (it is what the host's own tools say); the host's /proc and os-release where it is missing.
    release = host.get("KernelRelease") or identity.get("kernel_release")
    return {
        "hostname": host.get("Hostname") or identity.get("hostname"),
        "static_hostname": host.get("StaticHostname") or None,
        "os": host.get("OperatingSystemPrettyName") or identity.get("os") or None,
        "kernel": f"{host.get('KernelName') or 'Linux'} {release}" if release else None,
        "kernel_version": host.get("KernelVersion") or None,
        "architecture": manager.get("Architecture") or None,
        "virtualization": manager.get("Virtualization") or "none",
        "chassis": host.get("Chassis") or None,
        "systemd_version": manager.get("Version") or None,
        "machine_id": machine_id or identity.get("machine_id") or None,
        "boot_id": identity.get("boot_id") or None,
        "booted": iso(datetime.fromtimestamp(float(identity["boot_time"]), UTC)) if identity.get("boot_time") else None,
        "uptime_s": identity.get("uptime_s"),
    }


async def system_status(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    return await ctx.gateway.read_metrics(
        ctx.caller, "system", {"disk_limit": int(args.get("limit", 20))}, host=ctx.host
    )


async def top_processes(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    params = {
        "sort": args.get("sort", "cpu"),
        "limit": int(args.get("limit", 10)),
        "sample": float(args.get("sample", 0.5)),
    }
    # The read sleeps for its sample: its deadline is the usual one plus the sample, within the configured maximum.
    deadlines = ctx.gateway.deadlines
    if params["sample"] >= deadlines.maximum:
        raise ToolError(
            f"invalid argument 'sample': must be less than the configured max_call_timeout ({deadlines.maximum:g} s)"
        )
    timeout = min(deadlines.default + params["sample"], deadlines.maximum)
    return await ctx.gateway.read_metrics(ctx.caller, "processes", params, host=ctx.host, timeout=timeout)


async def network_status(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    return await ctx.gateway.read_metrics(ctx.caller, "network", {"limit": int(args.get("limit", 50))}, host=ctx.host)


async def time_status(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    props = await _get_all(ctx, *TIMEDATE1)
    if isinstance(props, BusError):
        raise ToolError(f"timedate1 does not answer on the system bus: {props}")
    now = props.get("TimeUSec")
    rtc = props.get("RTCTimeUSec")
    return {
        "time": iso(from_usec(now)) if isinstance(now, int) and now > 0 else None,
        "rtc_time": iso(from_usec(rtc)) if isinstance(rtc, int) and rtc > 0 else None,
        "timezone": props.get("Timezone") or None,
        "local_rtc": props.get("LocalRTC"),
        "ntp_available": props.get("CanNTP"),
        "ntp_enabled": props.get("NTP"),
        "ntp_synchronized": props.get("NTPSynchronized"),
    }


def _table(*columns: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "object", "required": list(columns)}}


TRUNCATED = {"type": "array", "items": {"type": "string"}}
OBJECT = {"type": ["object", "null"]}


def host_tools() -> list[ToolSpec]:
    fmt_json = {"format": output.format_schema("json")}
    fmt_toon = {"format": output.format_schema("toon")}
    return [
        ToolSpec(
            name="host_info",
            title="Host identity",
            description="Hostname, OS, kernel, virtualization, uptime, machine and boot id.",
            input_schema=s.obj(fmt_json),
            output_schema=s.obj(
                {
                    key: {"type": ["string", "integer", "null"]}
                    for key in (
                        "hostname",
                        "static_hostname",
                        "os",
                        "kernel",
                        "kernel_version",
                        "architecture",
                        "virtualization",
                        "chassis",
                        "systemd_version",
                        "machine_id",
                        "boot_id",
                        "booted",
                        "uptime_s",
                    )
                }
                | {"truncated": TRUNCATED},
                ["hostname"],
            ),
            annotations=READ,
            handler=host_info,
            operations=(*BUS_READS, *METRICS),
        ),
        ToolSpec(
            name="system_status",
            title="System load and resources",
            description="Load, CPU, memory, swap, disks and pressure stall info. cpu_percent: of all CPUs "
            "(100 = all busy), over cpu_window_s.",
            input_schema=s.obj({"limit": s.integer("Most disks to list.", 1, 200, 20), **fmt_toon}),
            output_schema=s.obj(
                {
                    "load": {"type": "object"},
                    "cpus": {"type": "integer"},
                    "load_per_cpu": {"type": "number"},
                    "cpu_percent": {"type": "number"},
                    "cpu_window_s": {"type": "number"},
                    "memory": {"type": "object"},
                    "swap": {"type": "object"},
                    "disks": _table("mount", "fs", "size_gb", "used_percent"),
                    "pressure": OBJECT,
                    "uptime_s": {"type": "integer"},
                    "truncated": TRUNCATED,
                },
                ["load", "cpus", "memory", "swap", "disks", "pressure"],
            ),
            annotations=READ,
            handler=system_status,
            operations=METRICS,
        ),
        ToolSpec(
            name="top_processes",
            title="Top processes",
            description="Top processes by CPU (over sample s, % of one CPU as in top) or by resident memory "
            "(no kernel threads, no CPU figure).",
            input_schema=s.obj(
                {
                    "sort": {"type": "string", "enum": ["cpu", "memory"], "default": "cpu"},
                    "limit": s.integer("Most processes to list.", 1, 100, 10),
                    "sample": s.seconds("CPU measuring window, seconds.", 5, 0.5),
                    **fmt_toon,
                }
            ),
            output_schema=s.obj(
                {
                    "processes": _table("pid", "name", "rss_mb"),
                    "total": {"type": "integer"},
                    "sort": {"type": "string"},
                    "cpu_window_s": {"type": "number"},
                    "cpu_scale": {"type": "string"},
                    "left_out": {"type": "integer"},
                    "truncated": TRUNCATED,
                },
                ["processes", "total", "sort"],
            ),
            annotations=READ,
            handler=top_processes,
            operations=METRICS,
        ),
        ToolSpec(
            name="network_status",
            title="Network interfaces and sockets",
            description="Interfaces and addresses, listening sockets, connection counts.",
            input_schema=s.obj({"limit": s.integer("Most interfaces and listeners to list.", 1, 500, 50), **fmt_toon}),
            output_schema=s.obj(
                {
                    "interfaces": _table("name", "up", "addresses"),
                    "listening": _table("proto", "address", "port"),
                    "listening_total": {"type": "integer"},
                    "connections": {"type": "object"},
                    "truncated": TRUNCATED,
                },
                ["interfaces", "listening", "listening_total", "connections"],
            ),
            annotations=READ,
            handler=network_status,
            operations=METRICS,
        ),
        ToolSpec(
            name="time_status",
            title="Clock and time sync",
            description="Time, time zone, RTC and NTP state.",
            input_schema=s.obj(fmt_json),
            output_schema=s.obj(
                {
                    "time": {"type": ["string", "null"]},
                    "rtc_time": {"type": ["string", "null"]},
                    "timezone": {"type": ["string", "null"]},
                    "local_rtc": {"type": ["boolean", "null"]},
                    "ntp_available": {"type": ["boolean", "null"]},
                    "ntp_enabled": {"type": ["boolean", "null"]},
                    "ntp_synchronized": {"type": ["boolean", "null"]},
                    "truncated": TRUNCATED,
                },
                ["time", "timezone"],
            ),
            annotations=READ,
            handler=time_status,
            operations=BUS_READS,
        ),
    ]
