"""Names a bus call got wrong — a service, object, interface, method, property or signal that is not there — told
with the nearest names that are (fleetbus.suggestions), looked up only once a call has already failed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetbus import well_known
from fleetbus.dbus.errors import BusError, RemoteError
from fleetbus.dbus.introspect import Interface, ObjectInfo
from fleetbus.gateway import GatewayError, dbus_call
from fleetbus.suggestions import nearest, unknown
from fleetbus.tools.registry import ToolContext, ToolError

DBUS = well_known.DBUS
NO_SERVICE = ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner")
NO_OBJECT = well_known.UNKNOWN_OBJECT
NO_MEMBER = (
    "org.freedesktop.DBus.Error.UnknownInterface",
    "org.freedesktop.DBus.Error.UnknownMethod",
    "org.freedesktop.DBus.Error.UnknownProperty",
)
INVALID_ARGS = well_known.INVALID_ARGS
"""GDBus services answer a Get of a property they lack with InvalidArgs ("No such property …")."""


def bus_of(args: Mapping[str, Any]) -> str:
    return str(args.get("bus", "system"))


async def service_names(ctx: ToolContext, bus: str) -> list[str]:
    """Well-known names on the bus, running or activatable; [] when the bus cannot say."""
    names: set[str] = set()
    for member in ("ListNames", "ListActivatableNames"):
        try:
            reply = await ctx.gateway.call(
                dbus_call(DBUS, "/org/freedesktop/DBus", DBUS, member, "", [], bus=bus, host=ctx.host), ctx.caller
            )
        except (BusError, GatewayError):
            continue  # suggestions are a courtesy: without them the error still stands
        names |= {str(name) for name in reply.body[0] if not str(name).startswith(":")}
    return sorted(names)


async def unknown_service(ctx: ToolContext, service: str, bus: str) -> ToolError:
    return ToolError(
        unknown(
            "service",
            service,
            await service_names(ctx, bus),
            owner=f"the {bus} bus",
            argument="service",
            listed=0,
            see="none of that name runs or can be started; list_services shows what there is",
        )
    )


async def _introspect(ctx: ToolContext, service: str, path: str, bus: str) -> ObjectInfo | None:
    try:
        return await ctx.gateway.introspect(service, path, ctx.caller, bus=bus, host=ctx.host)
    except (BusError, GatewayError):
        return None  # what cannot be seen (or may not be) suggests nothing and refuses nothing


async def unknown_object(ctx: ToolContext, service: str, path: str, bus: str) -> ToolError:
    """Suggestions come from the parent object's children: a misspelt last part is the usual mistake."""
    parent = path.rsplit("/", 1)[0] or "/"
    info = await _introspect(ctx, service, parent, bus) if path != "/" else None
    siblings = info.child_paths() if info is not None else []
    see = "list_objects shows its objects"
    return ToolError(unknown("object", path, siblings, owner=service, argument="path", listed=0, see=see))


def unknown_interface(info: ObjectInfo, service: str, name: str) -> ToolError:
    return ToolError(
        unknown(
            "interface", name, [i.name for i in info.interfaces], owner=f"{service} {info.path}", argument="interface"
        )
    )


def require_interface(info: ObjectInfo, service: str, name: str) -> Interface:
    interface = info.interface(name)
    if interface is None:
        raise unknown_interface(info, service, name)
    return interface


def unknown_member(interface: Interface, what: str, name: str, argument: str) -> ToolError:
    """`what`: method, property or signal; the interface's members of that kind are the candidates."""
    members = {
        "method": [m.name for m in interface.methods],
        "property": [p.name for p in interface.properties],
        "signal": [s.name for s in interface.signals],
    }
    others = [kind for kind, names in members.items() if kind != what and name in names]
    see = f"{name} is a {others[0]} of it" if others else "introspect shows them all"
    return ToolError(unknown(what, name, members[what], owner=interface.name, argument=argument, see=see))


async def explain_missing(ctx: ToolContext, args: Mapping[str, Any], exc: RemoteError) -> ToolError | None:
    """The error to show for a call that failed because something it named is not there; None for other errors.

    `args` are the tool's: service, path, interface and (one of) method or property.
    """
    service, path, bus = str(args.get("service", "")), str(args.get("path", "/")), bus_of(args)
    if exc.name in NO_SERVICE and service:
        return await unknown_service(ctx, service, bus)
    if exc.name == NO_OBJECT and service:
        return await unknown_object(ctx, service, path, bus)
    lacks_member = exc.name in NO_MEMBER or (exc.name == INVALID_ARGS and "no such" in exc.text.lower())
    if not lacks_member or not service or "interface" not in args:
        return None
    info = await _introspect(ctx, service, path, bus)
    if info is None:
        return None
    interface = info.interface(str(args["interface"]))
    if interface is None:
        return unknown_interface(info, service, str(args["interface"]))
    if "property" in args and interface.property(str(args["property"])) is None:
        return unknown_member(interface, "property", str(args["property"]), "property")
    if "method" in args and interface.method(str(args["method"])) is None:
        return unknown_member(interface, "method", str(args["method"]), "method")
    return None


async def check_signal(ctx: ToolContext, args: Mapping[str, Any]) -> None:
    """Refuse to wait for a signal that cannot come: a member no matching interface declares.

    An interface's signals are the same on every object that implements it, so with `interface` its definition
    decides (found at `path`, or at the service's conventional path /org/example/Name); without it, the signals
    of the object at `path`. When neither can be seen, nothing is refused.
    """
    member, service, wanted = args.get("member"), args.get("service"), args.get("interface")
    if not member or not service or not (args.get("path") or wanted):
        return
    path = args.get("path") or "/" + str(service).replace(".", "/")
    info = await _introspect(ctx, str(service), str(path), bus_of(args))
    if info is None:
        return
    declared = [(interface.name, signal.name) for interface in info.interfaces for signal in interface.signals]
    if wanted is None:
        if member not in {name for _, name in declared}:
            names = [name for _, name in declared]
            raise ToolError(unknown("signal", str(member), names, owner=f"{service} {info.path}", argument="member"))
        return
    interface = info.interface(str(wanted))
    if interface is None:
        if args.get("path"):
            raise unknown_interface(info, str(service), str(wanted))
        return
    if any(signal.name == member for signal in interface.signals):
        return
    # PropertiesChanged comes from org.freedesktop.DBus.Properties, whatever interface the properties belong to.
    close = set(nearest(str(member), [name for _, name in declared])) | {str(member)}
    elsewhere = [f"{name} is a signal of {owner}" for owner, name in declared if name in close and owner != wanted]
    message = unknown(
        "signal", str(member), [s.name for s in interface.signals], owner=interface.name, argument="member"
    )
    raise ToolError(message + (f"; {'; '.join(elsewhere)}" if elsewhere else ""))
