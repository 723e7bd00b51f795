"""Tool packs: the introspected methods of chosen services as individual MCP tools (`systemd1_start_unit`),
kept current as services come and go, within a tool budget; `find_tools` (fleetbus.tools.discovery) reaches
the ones left out.

naming (tool names) → build (schemas and specs from introspection) → follow (keeping them current).
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetbus.config import PackSettings
from fleetbus.tools.packs.build import KnownMethod, ServiceTools, build_tools, risks_of
from fleetbus.tools.packs.follow import PackManager
from fleetbus.tools.packs.naming import pack_prefix, snake, tool_name

__all__ = [
    "BUILTIN_PACKS",
    "KnownMethod",
    "PackManager",
    "ServiceTools",
    "build_tools",
    "merge_packs",
    "pack_prefix",
    "risks_of",
    "snake",
    "tool_name",
]


def _service_pack(name: str, service: str, interface: str, featured: list[str]) -> PackSettings:
    """A built-in pack: one interface of a systemd service's main object (/org/freedesktop/<name>)."""
    return PackSettings(
        name=name,
        service=service,
        paths=[f"/org/freedesktop/{service.rsplit('.', 1)[-1]}"],
        interfaces=[interface],
        featured=featured,
    )


BUILTIN_PACKS: tuple[PackSettings, ...] = (
    _service_pack(
        "systemd1",
        "org.freedesktop.systemd1",
        "org.freedesktop.systemd1.Manager",
        [
            "GetUnit",
            "GetUnitByPID",
            "ListUnitsByPatterns",
            "GetUnitFileState",
            "ListJobs",
            "StartUnit",
            "RestartUnit",
            "StopUnit",
            "ReloadUnit",
            "TryRestartUnit",
            "ResetFailedUnit",
            "Reload",
        ],
    ),
    _service_pack(
        "login1",
        "org.freedesktop.login1",
        "org.freedesktop.login1.Manager",
        ["ListSessions", "ListUsers", "GetSession", "GetUser", "ListSeats", "CanReboot", "CanPowerOff"],
    ),
    _service_pack(
        "hostname1",
        "org.freedesktop.hostname1",
        "org.freedesktop.hostname1",
        ["Describe", "SetHostname", "SetStaticHostname"],
    ),
    _service_pack(
        "timedate1",
        "org.freedesktop.timedate1",
        "org.freedesktop.timedate1",
        ["ListTimezones", "SetTimezone", "SetNTP"],
    ),
    _service_pack(
        "packagekit",
        "org.freedesktop.PackageKit",
        "org.freedesktop.PackageKit",
        ["GetDaemonState", "CreateTransaction"],
    ),
)


def merge_packs(builtin: Sequence[PackSettings], configured: Sequence[PackSettings]) -> list[PackSettings]:
    """The packs to build: the operator's own first, then the built-in ones they did not replace by name — so
    adding a pack adds it, and a pack named like a built-in one (say `systemd1`) replaces that one."""
    names = [pack.name for pack in configured]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"tool packs named more than once: {', '.join(twice)}")
    return [*configured, *(pack for pack in builtin if pack.name not in names)]
