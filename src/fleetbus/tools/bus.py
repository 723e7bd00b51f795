"""Generic bus tools: services, object trees, introspection, typed method calls, properties, signals."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

from fleetbus import narrowing, output, well_known
from fleetbus.dbus import types
from fleetbus.dbus.errors import BusError, RemoteError
from fleetbus.dbus.introspect import Interface, Method, ObjectInfo
from fleetbus.dbus.link import PROPERTIES
from fleetbus.gateway import Deadlines, GatewayError, dbus_call
from fleetbus.guard.catalog import Risk, unit_name_from_path
from fleetbus.guard.policy import OperationPattern
from fleetbus.operation import DBUS_WATCH, Operation
from fleetbus.tools import schema as s
from fleetbus.tools.bus_names import check_signal, explain_missing, require_interface, unknown_member
from fleetbus.tools.registry import Annotations, ToolContext, ToolError, ToolSpec

DBUS = well_known.DBUS
SYSTEMD = well_known.SYSTEMD
STANDARD_INTERFACES = (
    "org.freedesktop.DBus.Peer",
    "org.freedesktop.DBus.Introspectable",
    "org.freedesktop.DBus.Properties",
)
SIGNATURE_PATTERN = r"^[ybnqiuxtdsogavh(){}]*$"
SIGNATURE_IN_WORDS = "a D-Bus signature such as 's', 'ss' or 'a{sv}' (type codes ybnqiuxtdsogvh, a, () and {})"
READ = Annotations(read_only=True, destructive=False, idempotent=True)
READS = frozenset({Risk.READ})
ONLY_READS = (OperationPattern(risks=READS),)
ANY_CALL = (OperationPattern(),)
PROPERTY_SET = (OperationPattern(interface=PROPERTIES, member="Set", risks=frozenset({Risk.ROUTINE, Risk.DANGEROUS})),)
SIGNALS = (OperationPattern(kind=DBUS_WATCH, risks=READS),)
LOOKUP_CONCURRENCY = 16
T = TypeVar("T")


def _bus(args: dict[str, Any]) -> str:
    return str(args.get("bus", "system"))


async def _call(
    ctx: ToolContext,
    args: dict[str, Any],
    destination: str,
    path: str,
    interface: str,
    member: str,
    signature: str = "",
    values: list[Any] | None = None,
    timeout: float | None = None,
) -> tuple[str, list[Any]]:
    operation = dbus_call(destination, path, interface, member, signature, values or [], bus=_bus(args), host=ctx.host)
    reply = await _checked(ctx, args, ctx.gateway.call(operation, ctx.caller, timeout))
    return reply.signature, reply.body


async def _checked(ctx: ToolContext, args: dict[str, Any], call: Awaitable[T]) -> T:
    """The call's answer; a failure because a name in `args` is not there becomes the nearest names there are."""
    try:
        return await call
    except RemoteError as exc:
        explained = await explain_missing(ctx, args, exc)
        if explained is None:
            raise
        raise explained from exc


# ---- list_services ------------------------------------------------------------------------------


def _position(args: dict[str, Any], kind: str, selection: dict[str, Any]) -> dict[str, Any] | None:
    if "cursor" not in args:
        return None
    try:
        return output.decode_cursor(args["cursor"], kind, selection)
    except output.CursorError as exc:
        raise ToolError(str(exc)) from exc


async def list_services(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    bus = _bus(args)
    _, (running_names,) = await _call(ctx, args, DBUS, "/org/freedesktop/DBus", DBUS, "ListNames")
    activatable_names: list[str] = []
    if args.get("include_activatable", True):
        _, (activatable_names,) = await _call(ctx, args, DBUS, "/org/freedesktop/DBus", DBUS, "ListActivatableNames")
    running = {n for n in running_names if not n.startswith(":")}
    activatable = {n for n in activatable_names if not n.startswith(":")}
    names = sorted(running | activatable)
    if pattern := args.get("pattern"):
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    total = len(names)
    selection = {"bus": bus, "pattern": pattern, "include_activatable": args.get("include_activatable", True)}
    position = _position(args, "list_services", selection)
    if position is not None:
        names = [n for n in names if n > str(position.get("after", ""))]
    limit = int(args.get("limit", 200))
    has_manager = bus == "system" and SYSTEMD in running
    semaphore = asyncio.Semaphore(LOOKUP_CONCURRENCY)

    async def describe(name: str) -> dict[str, Any]:
        row: dict[str, Any] = {
            "name": name,
            "activatable": name in activatable,
            "running": name in running,
            "pid": None,
            "uid": None,
            "process": None,
            "unit": None,
        }
        if name not in running:
            return row
        async with semaphore:
            row.update(await _owner_details(ctx, args, name, has_manager))
        return row

    rows = await asyncio.gather(*(describe(n) for n in names[:limit]))
    await _name_processes(ctx, rows)
    # The page is cut to the budget before the cursor is made, so the next page starts right after its last row.
    page = output.take(rows, limit)
    more = page.more or len(names) > limit
    next_cursor = (
        output.encode_cursor("list_services", selection, {"after": page.rows[-1]["name"]})
        if more and page.rows
        else None
    )
    return {
        "bus": bus,
        "services": page.rows,
        "total": total,
        "shown": len(page.rows),
        "next_cursor": next_cursor,
        **({"truncated": [page.note]} if page.note else {}),
    }


async def _owner_details(ctx: ToolContext, args: dict[str, Any], name: str, has_manager: bool) -> dict[str, Any]:
    details: dict[str, Any] = {}
    try:
        _, (credentials,) = await _call(
            ctx, args, DBUS, "/org/freedesktop/DBus", DBUS, "GetConnectionCredentials", "s", [name]
        )
    except BusError:
        return details  # the name went away between listing and asking
    pid = _variant_int(credentials.get("ProcessID"))
    details["pid"] = pid
    details["uid"] = _variant_int(credentials.get("UnixUserID"))
    if pid is None:
        return details
    if has_manager:
        try:
            _, (unit_path,) = await _call(
                ctx, args, SYSTEMD, "/org/freedesktop/systemd1", f"{SYSTEMD}.Manager", "GetUnitByPID", "u", [pid]
            )
            details["unit"] = unit_name_from_path(str(unit_path))
        except BusError:
            pass
    return details


async def _name_processes(ctx: ToolContext, rows: list[dict[str, Any]]) -> None:
    """Every owner's process name, from one host.metrics read through the gateway; a label, so a refusal or a
    failure leaves the names out rather than the listing."""
    pids = [row["pid"] for row in rows if isinstance(row.get("pid"), int)]
    if not pids:
        return
    try:
        names = await ctx.gateway.process_names(ctx.caller, pids, host=ctx.host)
    except GatewayError:
        return
    for row in rows:
        row["process"] = names.get(row["pid"]) if isinstance(row.get("pid"), int) else None


def _variant_int(value: Any) -> int | None:
    inner = types.value_to_json("v", value) if value is not None else None
    return inner if isinstance(inner, int) and not isinstance(inner, bool) else None


# ---- list_objects / introspect ------------------------------------------------------------------


async def list_objects(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    root = args.get("path", "/")
    with contextlib.suppress(RemoteError):  # other failures are the walk's to record, object by object
        await introspected(ctx, {**args, "path": root})  # a missing service or root: the nearest names there are
    result = await ctx.gateway.walk(
        args["service"],
        root,
        ctx.caller,
        bus=_bus(args),
        max_nodes=int(args.get("max_nodes", 200)),
        max_depth=int(args.get("max_depth", 8)),
        host=ctx.host,
    )
    if not result.objects and result.errors:
        path, error = result.errors[0]
        raise ToolError(f"no object of {args['service']} could be introspected: {path}: {error}")
    selection = {
        "service": args["service"],
        "path": root,
        "bus": _bus(args),
        "max_nodes": args.get("max_nodes", 200),
        "max_depth": args.get("max_depth", 8),
    }
    position = _position(args, "list_objects", selection)
    rows = sorted(
        (
            {"path": o.path, "interfaces": [i.name for i in o.interfaces if i.name not in STANDARD_INTERFACES]}
            for o in result.objects
        ),
        key=lambda row: str(row["path"]),
    )
    if position is not None:
        rows = [row for row in rows if str(row["path"]) > str(position.get("after", ""))]
    page = output.take(rows, len(rows))
    next_cursor = (
        output.encode_cursor("list_objects", selection, {"after": page.rows[-1]["path"]})
        if page.more and page.rows
        else None
    )
    return {
        "service": args["service"],
        "objects": page.rows,
        "errors": [{"path": p, "error": e} for p, e in result.errors],
        "stopped_early": result.truncated,
        "next_cursor": next_cursor,
        **({"truncated": [page.note]} if page.note else {}),
    }


def _flags(annotations: Any) -> str:
    known = {
        "org.freedesktop.DBus.Deprecated": "deprecated",
        "org.freedesktop.DBus.Method.NoReply": "no-reply",
        "org.freedesktop.systemd1.Privileged": "privileged",
    }
    return ",".join(flag for key, flag in known.items() if str(annotations.get(key, "")).lower() == "true")


def _names(args: Any) -> str:
    return ", ".join(a.name or f"arg{i}" for i, a in enumerate(args))


def describe_interface(interface: Interface, member: str | None = None) -> dict[str, Any]:
    """An interface's methods, properties and signals; with `member`, only those whose name matches that glob."""

    def wanted(name: str) -> bool:
        return member is None or fnmatch.fnmatchcase(name, member)

    return {
        "name": interface.name,
        "methods": [
            {
                "name": m.name,
                "in": m.in_signature,
                "out": m.out_signature,
                "args": _names(m.in_args),
                "returns": _names(m.out_args),
                "flags": _flags(m.annotations),
            }
            for m in interface.methods
            if wanted(m.name)
        ],
        "properties": [
            {"name": p.name, "type": p.signature, "access": p.access, "flags": _flags(p.annotations)}
            for p in interface.properties
            if wanted(p.name)
        ],
        "signals": [
            {"name": sig.name, "signature": sig.signature, "args": _names(sig.args)}
            for sig in interface.signals
            if wanted(sig.name)
        ],
    }


async def introspect(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    info = await introspected(ctx, args)
    wanted = args.get("interface")
    if wanted:
        interfaces = [require_interface(info, args["service"], wanted)]
    else:
        interfaces = [i for i in info.interfaces if i.name not in STANDARD_INTERFACES]
    described = [describe_interface(i, args.get("member")) for i in interfaces]
    if "member" in args:
        described = [d for d in described if d["methods"] or d["properties"] or d["signals"]]
    result: dict[str, Any] = {
        "service": args["service"],
        "path": info.path,
        "interfaces": described,
        "standard_interfaces": [i.name for i in info.interfaces if i.name in STANDARD_INTERFACES and not wanted],
        "children": list(info.children),
    }
    if args.get("xml"):
        result["xml"] = info.xml
    return result


def _require_method(interface: Interface, name: str) -> Method:
    method = interface.method(name)
    if method is None:
        raise unknown_member(interface, "method", name, "method")
    return method


# ---- call_method --------------------------------------------------------------------------------


async def resolve_call(ctx: ToolContext, args: dict[str, Any]) -> tuple[Operation, Method | None]:
    """The Operation a call_method request stands for, with the method's introspection when there is one."""
    signature: str | None = args.get("signature")
    method: Method | None
    if signature is None:
        method = await _find_method(ctx, args)
        signature = method.in_signature
    else:
        # An explicit signature reaches services that do not introspect; names only improve messages.
        try:
            method = await _find_method(ctx, args)
        except ToolError:
            method = None
        if method is not None and method.in_signature != signature:
            raise ToolError(_signature_mismatch(args, signature, method))
    in_names = [a.name for a in method.in_args] if method else None
    operation = dbus_call(
        args["service"],
        args["path"],
        args["interface"],
        args["method"],
        signature,
        args.get("args", []),
        names=in_names,
        bus=_bus(args),
        host=ctx.host,
    )
    return operation, method


def _signature_mismatch(args: dict[str, Any], signature: str, method: Method) -> str:
    """A signature the introspection contradicts would be refused by the service, or worse, misread by it."""
    names = ", ".join(f"{a.name or '?'} {a.signature}" for a in method.in_args) or "no arguments"
    return (
        f"invalid argument 'signature': {signature!r} does not match {args['interface']}.{args['method']}, "
        f"which takes {method.in_signature!r} ({names}) by its introspection; leave 'signature' out to use it"
    )


CALL_SELECTION = ("service", "path", "interface", "method", "args", "signature", "select", "bus", "variants")
"""The arguments that make a call_method answer: a cursor continues only the answer they made."""


async def call_method(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    # The introspection that forms the call is recorded with it: inside its (coalesced) record if it is refused.
    with ctx.gateway.forming_call():
        operation, method = await resolve_call(ctx, args)
        selection = {key: args.get(key) for key in CALL_SELECTION}
        resume = _position(args, "call_method", selection)
        if resume is not None and not await _is_read(ctx, operation):
            raise ToolError(
                f"invalid argument 'cursor': the next page would call {args['interface']}.{args['method']} again, "
                "and it is not a read; narrow the answer with select instead"
            )
        reply = await _checked(ctx, args, ctx.gateway.call(operation, ctx.caller, args.get("timeout")))
    values = types.to_json(reply.signature, reply.body, variants=args.get("variants", "plain"))
    result: dict[str, Any] = {"signature": reply.signature, "values": values}
    out_names = [a.name for a in method.out_args] if method else []
    if len(out_names) == len(values) and all(out_names):
        result["names"] = out_names
    if "select" in args:
        result = {"signature": reply.signature, "selected": _select(result, args["select"])}
    paged = _page(result, args, resume)
    if paged.resume is not None and resume is None and not await _is_read(ctx, operation):
        return {**paged.value, "page": paged.page, "next_cursor": None, "truncated": [NOT_REPEATABLE]}
    return _with_page(paged, "call_method", selection)


NOT_REPEATABLE = "the rest is not shown: this method is not a read, so no cursor repeats it; narrow with select"


async def _is_read(ctx: ToolContext, operation: Operation) -> bool:
    """Whether the policy's classification calls this operation a read: only a read may be repeated for a page."""
    return (await ctx.gateway.assess(operation)).classification.is_read


def _select(value: dict[str, Any], expression: str) -> Any:
    try:
        return narrowing.select(value, expression)
    except narrowing.NarrowingError as exc:
        raise ToolError(str(exc)) from exc


def _page(
    value: dict[str, Any], args: dict[str, Any], resume: dict[str, Any] | None, path: list[str] | None = None
) -> narrowing.Paged:
    try:
        return narrowing.page(value, int(args.get("max_chars", narrowing.DEFAULT_BUDGET)), resume, path)
    except narrowing.NarrowingError as exc:
        raise ToolError(str(exc)) from exc


def _with_page(paged: narrowing.Paged, kind: str, selection: dict[str, Any]) -> dict[str, Any]:
    if paged.page is None:
        return paged.value
    next_cursor = output.encode_cursor(kind, selection, paged.resume) if paged.resume is not None else None
    return {**paged.value, "page": paged.page, "next_cursor": next_cursor}


async def introspected(ctx: ToolContext, args: dict[str, Any]) -> ObjectInfo:
    """The object named by args (service, path, bus); a missing service or object is said with the nearest names."""
    return await _checked(
        ctx, args, ctx.gateway.introspect(args["service"], args["path"], ctx.caller, bus=_bus(args), host=ctx.host)
    )


async def _find_method(ctx: ToolContext, args: dict[str, Any]) -> Method:
    try:
        info = await introspected(ctx, args)
    except RemoteError as exc:
        raise ToolError(
            f"cannot introspect {args['service']} {args['path']} to find the signature of "
            f"{args['method']}: {exc}; pass 'signature' to call it anyway"
        ) from exc
    interface = require_interface(info, args["service"], args["interface"])
    return _require_method(interface, args["method"])


# ---- properties ---------------------------------------------------------------------------------


async def get_property(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    _, (value,) = await _call(
        ctx, args, args["service"], args["path"], PROPERTIES, "Get", "ss", [args["interface"], args["property"]]
    )
    signature = types.variant_signature(value)
    return {
        "property": args["property"],
        "signature": signature,
        "value": types.value_to_json("v", value, variants=args.get("variants", "plain")),
    }


PROPERTIES_SELECTION = ("service", "path", "interface", "names", "bus", "variants")


async def get_properties(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    selection = {key: args.get(key) for key in PROPERTIES_SELECTION}
    resume = _position(args, "get_properties", selection)
    reply_signature, (values,) = await _call(
        ctx, args, args["service"], args["path"], PROPERTIES, "GetAll", "s", [args["interface"]]
    )
    properties = types.value_to_json(reply_signature, values, variants=args.get("variants", "plain"))
    if args.get("names"):
        properties = await _named(ctx, args, properties, args["names"])
    paged = _page({"interface": args["interface"], "properties": properties}, args, resume, ["properties"])
    return _with_page(paged, "get_properties", selection)


async def _named(
    ctx: ToolContext, args: dict[str, Any], properties: dict[str, Any], names: list[str]
) -> dict[str, Any]:
    missing = [name for name in names if name not in properties]
    if missing:
        info = await introspected(ctx, args)
        interface = info.interface(args["interface"])
        if interface is not None:
            raise unknown_member(interface, "property", missing[0], "names")
        raise ToolError(f"{args['interface']} has no property {missing[0]!r} (argument 'names')")
    return {name: properties[name] for name in dict.fromkeys(names)}


async def set_property(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    signature = args.get("signature")
    if signature is None:
        info = await introspected(ctx, args)
        interface = require_interface(info, args["service"], args["interface"])
        prop = interface.property(args["property"])
        if prop is None:
            raise unknown_member(interface, "property", args["property"], "property")
        if prop.access == "read":
            raise ToolError(f"{interface.name}.{prop.name} is read-only")
        signature = prop.signature
    variant = {"signature": signature, "value": args["value"]}
    operation = dbus_call(
        args["service"],
        args["path"],
        PROPERTIES,
        "Set",
        "ssv",
        [args["interface"], args["property"], variant],
        names=["interface", "property", "value"],
        bus=_bus(args),
        host=ctx.host,
    )
    await _checked(ctx, args, ctx.gateway.call(operation, ctx.caller, args.get("timeout")))
    return {"property": args["property"], "signature": signature, "set": True}


# ---- wait_signal --------------------------------------------------------------------------------

SIGNAL_WAIT = 10.0


def signal_wait(maximum: float) -> float:
    """wait_signal's default timeout: 10 s, or the configured max_call_timeout when that is less."""
    return min(SIGNAL_WAIT, maximum)


async def wait_signal(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    await check_signal(ctx, args)
    if args.get("service") == SYSTEMD or str(args.get("interface", "")).startswith(SYSTEMD):
        await _subscribe_to_systemd(ctx, args)
    operation = Operation(
        DBUS_WATCH,
        ctx.host,
        bus=_bus(args),
        destination=args.get("service", ""),
        path=args.get("path", ""),
        interface=args.get("interface", ""),
        member=args.get("member", ""),
    )
    max_count = int(args.get("max_count", 10))
    timeout = float(args.get("timeout", signal_wait(ctx.gateway.deadlines.maximum)))
    collected = await ctx.gateway.watch(operation, ctx.caller, timeout=timeout, max_count=max_count)
    return {
        "signals": [
            {
                "time": datetime.fromtimestamp(sig.received, UTC).isoformat(timespec="milliseconds"),
                "sender": sig.sender,
                "path": sig.path,
                "interface": sig.interface,
                "member": sig.member,
                "signature": sig.signature,
                "args": types.to_json(sig.signature, sig.body, variants=args.get("variants", "plain")),
            }
            for sig in collected.signals
        ],
        "count": len(collected.signals),
        "dropped": collected.dropped,
        "timed_out": len(collected.signals) < max_count,
        "waited": round(collected.waited, 3),
    }


async def _subscribe_to_systemd(ctx: ToolContext, args: dict[str, Any]) -> None:
    """systemd emits job and unit signals only while some client is subscribed; be that client."""
    try:
        await _call(ctx, args, SYSTEMD, "/org/freedesktop/systemd1", f"{SYSTEMD}.Manager", "Subscribe")
    except RemoteError as exc:
        if "already subscribed" not in exc.text.lower():
            raise


# ---- the specs -------------------------------------------------------------------------------

GLOB = {"type": "string", "minLength": 1, "maxLength": 255}
CURSOR = {"type": "string", "maxLength": 2048, "description": "next_cursor of the previous page."}
MAX_CHARS = s.integer(
    "Most characters of answer; the rest comes in pages.",
    narrowing.MIN_BUDGET,
    narrowing.MAX_BUDGET,
    narrowing.DEFAULT_BUDGET,
)
PAGE_OUTPUT: dict[str, Any] = {
    "page": {
        "type": "object",
        "description": "When the answer came in pages: which list (of), its first item, count shown, total.",
    },
    "next_cursor": {"type": ["string", "null"]},
    "truncated": {"type": "array", "items": {"type": "string"}},
}


def method_call_arguments() -> dict[str, Any]:
    """The input-schema properties naming one method call, shared by call_method and explain."""
    return {
        "service": s.service(),
        "path": s.object_path(),
        "interface": s.interface(),
        "method": s.member(),
        "args": {"type": "array", "default": [], "maxItems": 64},
        "signature": {
            "type": "string",
            "pattern": SIGNATURE_PATTERN,
            "maxLength": 255,
            "description": "e.g. 'ss'; default: from introspection.",
            s.EXPECTED: SIGNATURE_IN_WORDS,
        },
        "bus": s.bus(),
    }


def bus_tools(deadlines: Deadlines) -> list[ToolSpec]:
    timeout = s.seconds(f"Seconds (default {deadlines.default:g}).", deadlines.maximum)
    target = {"service": s.service(), "path": s.object_path(), "interface": s.interface(), "bus": s.bus()}
    return [
        ToolSpec(
            name="list_services",
            title="List D-Bus services",
            description="Services (well-known names) on a bus, running or activatable, with pid, uid, process, unit.",
            input_schema=s.obj(
                {
                    "bus": s.bus(),
                    "pattern": {
                        "type": "string",
                        "maxLength": 255,
                        "description": "Glob on the name, e.g. org.freedesktop.*",
                    },
                    "include_activatable": {
                        "type": "boolean",
                        "default": True,
                        "description": "Include names that start on first use.",
                    },
                    "limit": s.integer("Most services to describe.", 1, 1000, 200),
                    "cursor": {"type": "string", "maxLength": 1024, "description": "next_cursor of the previous page."},
                    "format": output.format_schema("toon"),
                }
            ),
            output_schema=s.obj(
                {
                    "bus": {"type": "string"},
                    "services": {"type": "array", "items": {"type": "object"}},
                    "total": {"type": "integer"},
                    "shown": {"type": "integer"},
                    "next_cursor": {"type": ["string", "null"]},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["bus", "services", "total", "shown"],
            ),
            annotations=READ,
            handler=list_services,
            operations=ONLY_READS,
        ),
        ToolSpec(
            name="list_objects",
            title="List a service's objects",
            description="A service's object tree, breadth-first from path, with each object's interfaces.",
            input_schema=s.obj(
                {
                    "service": s.service(),
                    "path": {**s.object_path(), "default": "/"},
                    "max_nodes": s.integer("Most objects to visit.", 1, 2000, 200),
                    "max_depth": s.integer("Deepest level below path to visit.", 0, 64, 8),
                    "cursor": CURSOR,
                    "bus": s.bus(),
                    "format": output.format_schema("toon"),
                },
                ["service"],
            ),
            output_schema=s.obj(
                {
                    "service": {"type": "string"},
                    "objects": {"type": "array", "items": {"type": "object"}},
                    "errors": {"type": "array", "items": {"type": "object"}},
                    "stopped_early": {
                        "type": "boolean",
                        "description": "max_nodes or max_depth ended the walk before the tree did.",
                    },
                    "next_cursor": {"type": ["string", "null"]},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["service", "objects", "errors", "stopped_early", "next_cursor"],
            ),
            annotations=READ,
            handler=list_objects,
            operations=ONLY_READS,
        ),
        ToolSpec(
            name="introspect",
            title="Introspect an object",
            description="An object's methods (signatures, argument names), properties and signals.",
            input_schema=s.obj(
                {
                    "service": s.service(),
                    "path": s.object_path(),
                    "interface": s.interface("Only this interface."),
                    "member": {**GLOB, "description": "Glob on member names, e.g. Get*."},
                    "xml": {"type": "boolean", "default": False, "description": "Include the raw introspection XML."},
                    "bus": s.bus(),
                    "format": output.format_schema("toon"),
                },
                ["service", "path"],
            ),
            output_schema=s.obj(
                {
                    "service": {"type": "string"},
                    "path": {"type": "string"},
                    "interfaces": {"type": "array", "items": {"type": "object"}},
                    "standard_interfaces": {"type": "array", "items": {"type": "string"}},
                    "children": {"type": "array", "items": {"type": "string"}},
                    "xml": {"type": "string"},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["service", "path", "interfaces", "children"],
            ),
            annotations=READ,
            handler=introspect,
            operations=ONLY_READS,
        ),
        ToolSpec(
            name="call_method",
            title="Call a D-Bus method",
            description="Call any D-Bus method; args is a JSON array in signature order (from introspection "
            'unless given): dicts as objects, structs as arrays, variants as {"signature":"u","value":5}, '
            "ay as base64.",
            input_schema=s.obj(
                {
                    **method_call_arguments(),
                    "select": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 1024,
                        "description": "JMESPath over the answer, e.g. values[0][*][0].",
                    },
                    "max_chars": MAX_CHARS,
                    "cursor": CURSOR,
                    "timeout": timeout,
                    "variants": s.variants(),
                },
                ["service", "path", "interface", "method"],
            ),
            output_schema=s.obj(
                {
                    "signature": {"type": "string", "description": "Signature of the reply."},
                    "values": {"type": "array", "description": "The reply's values, in order."},
                    "names": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Names of the reply's values, from introspection.",
                    },
                    "selected": {"description": "What select chose from the answer."},
                    **PAGE_OUTPUT,
                },
                ["signature"],
            ),
            annotations=Annotations(read_only=False, destructive=True, idempotent=False),
            handler=call_method,
            operations=ANY_CALL,
            scope="admin",
        ),
        ToolSpec(
            name="get_property",
            title="Read a property",
            description="Read one property, with its D-Bus type.",
            input_schema=s.obj(
                {**target, "property": s.member("Property name, e.g. Hostname."), "variants": s.variants()},
                ["service", "path", "interface", "property"],
            ),
            output_schema=s.obj(
                {
                    "property": {"type": "string"},
                    "signature": {"type": "string"},
                    "value": {},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["property", "signature", "value"],
            ),
            annotations=READ,
            handler=get_property,
            operations=ONLY_READS,
        ),
        ToolSpec(
            name="get_properties",
            title="Read all properties of an interface",
            description="Read the properties of one interface: all, or those named.",
            input_schema=s.obj(
                {
                    **target,
                    "names": {
                        "type": "array",
                        "items": s.member(),
                        "maxItems": 200,
                        "description": "Property names; omit for all.",
                    },
                    "max_chars": MAX_CHARS,
                    "cursor": CURSOR,
                    "variants": s.variants(),
                },
                ["service", "path", "interface"],
            ),
            output_schema=s.obj(
                {"interface": {"type": "string"}, "properties": {"type": "object"}, **PAGE_OUTPUT},
                ["interface", "properties"],
            ),
            annotations=READ,
            handler=get_properties,
            operations=ONLY_READS,
        ),
        ToolSpec(
            name="set_property",
            title="Write a property",
            description="Write one property; the type comes from "
            "introspection unless signature is given. Changes pass policy.",
            input_schema=s.obj(
                {
                    **target,
                    "property": s.member("Property name."),
                    "value": {"description": "The new value, as JSON for the property's type."},
                    "signature": {
                        "type": "string",
                        "pattern": SIGNATURE_PATTERN,
                        "maxLength": 255,
                        "description": "The property's D-Bus type; omit to use introspection.",
                        s.EXPECTED: SIGNATURE_IN_WORDS,
                    },
                    "timeout": timeout,
                },
                ["service", "path", "interface", "property", "value"],
            ),
            output_schema=s.obj(
                {"property": {"type": "string"}, "signature": {"type": "string"}, "set": {"type": "boolean"}},
                ["property", "signature", "set"],
            ),
            annotations=Annotations(read_only=False, destructive=True, idempotent=True),
            handler=set_property,
            operations=PROPERTY_SET,
            scope="admin",
        ),
        ToolSpec(
            name="wait_signal",
            title="Wait for signals",
            description="Signals matching the filters, until max_count arrive or timeout passes (subscribes to "
            "systemd for its signals).",
            input_schema=s.obj(
                {
                    "service": s.service("Sender."),
                    "path": s.object_path("Sending object."),
                    "interface": s.interface("Signal interface."),
                    "member": s.member("Signal name, e.g. JobRemoved."),
                    "timeout": s.seconds("Seconds to wait.", deadlines.maximum, signal_wait(deadlines.maximum)),
                    "max_count": s.integer("Stop after this many.", 1, 1000, 10),
                    "variants": s.variants(),
                    "bus": s.bus(),
                    "format": output.format_schema("json"),
                }
            ),
            output_schema=s.obj(
                {
                    "signals": {"type": "array", "items": {"type": "object"}},
                    "count": {"type": "integer"},
                    "dropped": {"type": "integer"},
                    "timed_out": {"type": "boolean"},
                    "waited": {"type": "number"},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["signals", "count", "dropped", "timed_out", "waited"],
            ),
            annotations=READ,
            handler=wait_signal,
            operations=SIGNALS,
        ),
    ]
