"""Asking a systemd service manager through the gateway: unit names as systemctl mangles them, Manager calls,
unit properties, and errors in words that name the argument. Used by the unit, journal and triage tools."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fleetbus.dbus import types
from fleetbus.dbus.errors import BusError, BusUnavailable, RemoteError

# Re-exported: the tools say systemd.MANAGER, systemd.UNIT…; the names themselves belong to the D-Bus layer.
from fleetbus.dbus.jobs import MANAGER as MANAGER  # noqa: PLC0414
from fleetbus.dbus.jobs import MANAGER_PATH as MANAGER_PATH  # noqa: PLC0414
from fleetbus.dbus.jobs import SYSTEMD as SYSTEMD  # noqa: PLC0414
from fleetbus.dbus.jobs import UNIT as UNIT  # noqa: PLC0414
from fleetbus.dbus.link import PROPERTIES
from fleetbus.gateway import GatewayError, dbus_call
from fleetbus.suggestions import unknown
from fleetbus.tools import schema as s
from fleetbus.tools.registry import ToolContext, ToolError

UNIT_TYPES = ("service", "socket", "target", "device", "mount", "automount", "swap", "timer", "path", "slice", "scope")
UNIT_NAME_PATTERN = r"^[A-Za-z0-9:_.@\\-]{1,255}$"
_UNIT_NAME = re.compile(UNIT_NAME_PATTERN)
NO_UNIT = ("org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.systemd1.LoadFailed")
NO_MANAGER = (
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    # A session bus may list systemd1 as activatable although no user manager can start there.
    "org.freedesktop.DBus.Error.Spawn.ChildExited",
    "org.freedesktop.DBus.Error.Spawn.ExecFailed",
)
TYPE_INTERFACES = {t: f"org.freedesktop.systemd1.{t.capitalize()}" for t in UNIT_TYPES}
UNSET = 2**64 - 1
"""systemd's "not available" for counters such as MemoryCurrent."""


def unit_schema(description: str = "e.g. nginx.service (no suffix: .service)") -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": UNIT_NAME_PATTERN,
        "maxLength": 255,
        "description": description,
        s.EXPECTED: "a unit name such as nginx.service or getty@tty1.service (letters, digits and :_.@-\\ only)",
        s.GLOB_ALTERNATIVE: "use list_units pattern={value!r} to list the units it matches",
    }


def manager_schema() -> dict[str, Any]:
    return {
        "type": "string",
        "enum": ["system", "user"],
        "default": "system",
        "description": "system manager, or user manager (session bus).",
    }


def bus_of(args: dict[str, Any]) -> str:
    return "session" if args.get("manager") == "user" else "system"


def normalize_unit(name: str, argument: str = "unit") -> str:
    """systemctl's rule: a name without a known type suffix is a service."""
    if not _UNIT_NAME.match(name) or (name.startswith("-") and name not in ("-.slice", "-.mount")):
        raise ToolError(f"invalid argument {argument!r}: {name!r} is not a unit name")
    if name.rsplit(".", 1)[-1] in UNIT_TYPES and "." in name:
        return name
    return f"{name}.service"


def unit_type(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def manager_label(bus: str) -> str:
    return "user service manager (session bus)" if bus == "session" else "system service manager"


async def manager_call(
    ctx: ToolContext, bus: str, member: str, signature: str = "", values: list[Any] | None = None
) -> list[Any]:
    """A Manager method call through the gateway; its reply body (D-Bus values)."""
    operation = dbus_call(SYSTEMD, MANAGER_PATH, MANAGER, member, signature, values or [], bus=bus, host=ctx.host)
    try:
        reply = await ctx.gateway.call(operation, ctx.caller)
    except RemoteError as exc:
        if exc.name in NO_MANAGER:
            raise ToolError(
                f"there is no {manager_label(bus)} to ask: {SYSTEMD} does not answer on the {bus} bus ({exc.name})"
            ) from exc
        raise
    except BusUnavailable as exc:
        raise ToolError(f"the {manager_label(bus)} is unreachable: {exc}") from exc
    return reply.body


async def get_unit(ctx: ToolContext, bus: str, unit: str) -> str | None:
    """The object path of a loaded unit, or None when the manager has not loaded it."""
    try:
        (path,) = await manager_call(ctx, bus, "GetUnit", "s", [unit])
    except RemoteError as exc:
        if exc.name in NO_UNIT:
            return None
        raise
    return str(path)


async def unit_file_state(ctx: ToolContext, bus: str, unit: str) -> str | None:
    """enabled, disabled, static…; None when there is no unit file of that name."""
    try:
        (state,) = await manager_call(ctx, bus, "GetUnitFileState", "s", [unit])
    except RemoteError as exc:
        if exc.name in (*NO_UNIT, "org.freedesktop.DBus.Error.FileNotFound") or "not found" in exc.text.lower():
            return None
        raise
    return str(state)


def unknown_unit(unit: str, bus: str, argument: str = "unit", known: Iterable[str] = ()) -> ToolError:
    """`known`: the unit names there are (see `known_units`), for the nearest ones to be suggested."""
    return ToolError(
        unknown(
            "unit",
            unit,
            known,
            argument=argument,
            listed=0,
            see=f"the {manager_label(bus)} has not loaded it and has no unit file of that name; list_units and "
            "list_unit_files show the units there are",
        )
    )


async def known_units(ctx: ToolContext, bus: str) -> list[str]:
    """Every unit name the manager knows, loaded or installed: what a misspelt name is compared with."""
    try:
        (loaded,) = await manager_call(ctx, bus, "ListUnits")
        (files,) = await manager_call(ctx, bus, "ListUnitFiles")
    except (BusError, GatewayError, ToolError):
        return []  # suggestions are a courtesy; the error stands without them
    return sorted({str(u[0]) for u in loaded} | {str(path).rsplit("/", 1)[-1] for path, _ in files})


async def require_unit(ctx: ToolContext, bus: str, unit: str, argument: str = "unit") -> str | None:
    """The unit's object path (None when it exists only as a unit file); ToolError when it does not exist."""
    path = await get_unit(ctx, bus, unit)
    if path is not None:
        return path
    if await unit_file_state(ctx, bus, unit) is None:
        raise unknown_unit(unit, bus, argument, await known_units(ctx, bus))
    return None


async def properties(ctx: ToolContext, bus: str, path: str, interface: str) -> dict[str, Any]:
    """Every property of one interface of a unit object, as plain JSON values."""
    operation = dbus_call(SYSTEMD, path, PROPERTIES, "GetAll", "s", [interface], bus=bus, host=ctx.host)
    reply = await ctx.gateway.call(operation, ctx.caller)
    values = types.to_json(reply.signature, reply.body, variants="plain")
    found = values[0] if values else {}
    return found if isinstance(found, dict) else {}


def counter(value: Any) -> int | None:
    """A systemd counter, None where it says "not available"."""
    if isinstance(value, int) and not isinstance(value, bool) and value != UNSET:
        return value
    return None
