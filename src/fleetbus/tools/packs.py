"""Tool packs: the introspected methods of chosen services as individual MCP tools (`systemd1_start_unit`),
kept current as services come and go, within a tool budget; `find_methods` reaches the ones left out.

A pack tool is only a typed front for a method call: it builds the same Operation `call_method` would, so
policy, approvals and the audit log see the resolved D-Bus call, never the tool's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbus.config import PackSettings
from fleetbus.dbus import types
from fleetbus.dbus.errors import BusError
from fleetbus.dbus.introspect import Interface, Method, ObjectInfo
from fleetbus.dbus.link import PROPERTIES
from fleetbus.dbus.signals import ReceivedSignal, Subscription
from fleetbus.gateway import Caller, Gateway, GatewayError, dbus_call
from fleetbus.guard.catalog import LocalKnowledge, Risk, classify
from fleetbus.guard.policy import OperationPattern
from fleetbus.operation import DBUS_WATCH, Operation
from fleetbus.tools import schema as s
from fleetbus.tools.bus import STANDARD_INTERFACES
from fleetbus.tools.registry import Annotations, ToolContext, ToolError, ToolRegistry, ToolSpec

log = logging.getLogger(__name__)

DBUS = "org.freedesktop.DBus"
MAX_TOOL_NAME = 64
WALK_NODES = 64
WALK_DEPTH = 6
PROPERTIES_RANK = 3
"""The properties tool comes after a pack's first two featured methods: one tool answers every property
question, but `GetUnit` or `Describe` matter more when the budget leaves room for one or two."""
PACK_SKIPS = (*STANDARD_INTERFACES, "org.freedesktop.DBus.ObjectManager")
"""Generic interfaces every service may have; the generic tools cover them better than per-service copies."""
DOC_ANNOTATIONS = ("org.freedesktop.DBus.Description", "org.gtk.GDBus.DocString")


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


# ---- names --------------------------------------------------------------------------------------


def snake(name: str) -> str:
    """`GetUnitByPID` → `get_unit_by_pid`, `KExec` → `k_exec`; anything else becomes `_`."""
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", spaced)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_") or "x"


def pack_prefix(pack: PackSettings, service: str) -> str:
    """A fixed-name pack uses its own name; a glob pack adds the service's last element to tell services apart."""
    if not any(c in pack.service for c in "*?["):
        return pack.name
    return f"{pack.name}_{snake(service.rsplit('.', 1)[-1])}"


def tool_name(prefix: str, member: str, taken: set[str], qualifier: str = "") -> str:
    base = "_".join(part for part in (prefix, snake(qualifier) if qualifier else "", snake(member)) if part)
    name = base[:MAX_TOOL_NAME]
    counter = 2
    while name in taken:
        suffix = f"_{counter}"
        name = base[: MAX_TOOL_NAME - len(suffix)] + suffix
        counter += 1
    return name


# ---- schemas ------------------------------------------------------------------------------------


def compact(schema: Any, key: str | None = None) -> Any:
    """Drop what costs tokens and says nothing new: titles equal to their key, and descriptions nested below
    the top-level arguments (the type code in the argument's own description says enough)."""
    if isinstance(schema, dict):
        out = {}
        for name, value in schema.items():
            if name == "title" and value == key:
                continue
            if name == "description" and key is None:
                continue
            if name == "properties" and isinstance(value, dict):
                out[name] = {prop: _argument(sub, prop) for prop, sub in value.items()}
            else:
                out[name] = compact(value)
        return out
    if isinstance(schema, list):
        return [compact(item) for item in schema]
    return schema


def _argument(schema: Any, key: str) -> Any:
    described = compact(schema, key)
    if isinstance(schema, dict) and isinstance(schema.get("description"), str):
        # "D-Bus string (s)" → "s": the signature is the useful part.
        match = re.search(r"\(([^()]*(?:\([^()]*\))?[^()]*)\)$", schema["description"])
        described["description"] = match.group(1) if match else schema["description"]
    return described


def input_schema(method: Method) -> dict[str, Any]:
    schema = types.args_object_schema(method.in_signature, [a.name for a in method.in_args])
    result: dict[str, Any] = compact(schema)
    result.setdefault("properties", {})
    return result


def output_schema(method: Method) -> dict[str, Any]:
    names = types.object_arg_names(method.out_signature, [a.name for a in method.out_args])
    items = types.output_schema(method.out_signature, [a.name for a in method.out_args]).get("prefixItems", [])
    properties = {name: _strip(item) for name, item in zip(names, items, strict=True)}
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": names}
    return schema


def _strip(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip(v) for k, v in schema.items() if k not in ("title", "description")}
    if isinstance(schema, list):
        return [_strip(v) for v in schema]
    return schema


# ---- building a pack's tools ----------------------------------------------------------------------


@dataclass(frozen=True)
class KnownMethod:
    """A method find_methods can point to, listed or not."""

    bus: str
    service: str
    path: str
    interface: str
    method: Method
    tool: str | None


@dataclass
class ServiceTools:
    specs: list[ToolSpec] = field(default_factory=list)
    methods: list[KnownMethod] = field(default_factory=list)


def risks_of(
    bus: str, service: str, path: str, interface: str, member: str, knowledge: Sequence[LocalKnowledge] = ()
) -> frozenset[Risk]:
    """What a call of this member may be classified as, whatever its arguments, given the operator's knowledge."""
    risk = classify(Operation("dbus.call", "local", bus, service, path, interface, member), None, knowledge).risk
    # Starting a unit becomes dangerous for shutdown targets; listing must know it could.
    if member.startswith(("StartUnit", "EnqueueUnitJob")) or member in ("Start", "SetDefaultTarget"):
        return frozenset({risk, Risk.DANGEROUS})
    return frozenset({risk})


def build_tools(
    pack: PackSettings,
    service: str,
    objects: Sequence[ObjectInfo],
    knowledge: Sequence[LocalKnowledge] = (),
    group_rank: int = 0,
) -> ServiceTools:
    """One tool per method of the pack's interfaces (first object offering an interface wins), plus one
    property-reading tool per pack; names are deterministic and unique."""
    group = f"pack:{pack.name}:{service}"
    prefix = pack_prefix(pack, service)
    featured = {member: index for index, member in enumerate(pack.featured)}
    chosen: list[tuple[str, Interface]] = []
    seen: set[str] = set()
    for info in objects:
        for interface in info.interfaces:
            if interface.name in PACK_SKIPS or interface.name in seen:
                continue
            if any(fnmatch.fnmatchcase(interface.name, glob) for glob in pack.interfaces):
                chosen.append((info.path, interface))
                seen.add(interface.name)
    members = [m.name for _, interface in chosen for m in interface.methods]
    result = ServiceTools()
    taken: set[str] = set()
    for path, interface in chosen:
        qualifier = interface.name.rsplit(".", 1)[-1] if len(chosen) > 1 else ""
        for method in interface.methods:
            name = tool_name(prefix, method.name, taken, qualifier if members.count(method.name) > 1 else "")
            taken.add(name)
            try:
                spec = _method_tool(
                    pack, group, name, service, path, interface, method, featured, knowledge, group_rank
                )
            except (types.SignatureError, ValueError) as exc:
                log.info("no tool for %s.%s: %s", interface.name, method.name, exc)  # e.g. unix fds
                result.methods.append(KnownMethod(pack.bus, service, path, interface.name, method, None))
                continue
            result.specs.append(spec)
            result.methods.append(KnownMethod(pack.bus, service, path, interface.name, method, name))
    with_properties = [(path, i) for path, i in chosen if i.properties]
    if with_properties:
        name = tool_name(prefix, "GetProperties", taken)
        result.specs.append(_properties_tool(pack, group, name, service, with_properties, group_rank))
    return result


def _method_tool(
    pack: PackSettings,
    group: str,
    name: str,
    service: str,
    path: str,
    interface: Interface,
    method: Method,
    featured: dict[str, int],
    knowledge: Sequence[LocalKnowledge],
    group_rank: int,
) -> ToolSpec:
    risks = risks_of(pack.bus, service, path, interface.name, method.name, knowledge)
    doc = next((str(method.annotations[k]) for k in DOC_ANNOTATIONS if k in method.annotations), "")
    signature = f"({_pairs(method.in_args)}) → ({_pairs(method.out_args)})"
    # The service and object are the pack's own: the interface and signature are what a model needs.
    description = f"{interface.name}.{method.name}{signature}" + (f": {doc}" if doc else "")
    read = risks == {Risk.READ}
    return ToolSpec(
        name=name,
        title=f"{method.name} ({pack.name})",
        description=description[:400],
        input_schema=input_schema(method),
        output_schema=output_schema(method),
        annotations=Annotations(read_only=read, destructive=not read, idempotent=read),
        handler=_method_handler(pack.bus, service, path, interface.name, method),
        operations=(
            OperationPattern(
                bus=pack.bus, destination=service, path=path, interface=interface.name, member=method.name, risks=risks
            ),
        ),
        group=group,
        # Featured members first, then reads before changes, then the rest by name.
        # Featured members first (in their order), then reads before changes.
        rank=2 * featured.get(method.name, len(featured) + (0 if read else 100)),
        group_rank=group_rank,
    )


def _pairs(args: Iterable[Any]) -> str:
    return ", ".join(f"{a.name or f'arg{i}'} {a.signature}" for i, a in enumerate(args))


def _method_handler(bus: str, service: str, path: str, interface: str, method: Method) -> Any:
    in_names = [a.name for a in method.in_args]
    keys = types.object_arg_names(method.in_signature, in_names)
    out_keys = types.object_arg_names(method.out_signature, [a.name for a in method.out_args])

    async def handler(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        values = [args[key] for key in keys]
        operation = dbus_call(service, path, interface, method.name, method.in_signature, values, names=keys, bus=bus)
        reply = await ctx.gateway.call(operation, ctx.caller)
        result = types.to_json(reply.signature, reply.body)
        return dict(zip(out_keys, result, strict=False))

    return handler


def _properties_tool(
    pack: PackSettings, group: str, name: str, service: str, interfaces: list[tuple[str, Interface]], group_rank: int
) -> ToolSpec:
    paths = dict((i.name, path) for path, i in interfaces)
    names = [i.name for _, i in interfaces]

    async def handler(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        interface = args.get("interface", names[0])
        wanted = args.get("names")
        operation = dbus_call(service, paths[interface], PROPERTIES, "GetAll", "s", [interface], bus=pack.bus)
        reply = await ctx.gateway.call(operation, ctx.caller)
        properties = types.value_to_json(reply.signature, reply.body[0])
        if wanted:
            missing = [n for n in wanted if n not in properties]
            if missing:
                raise ToolError(f"{interface} has no properties {missing}; it has: {', '.join(sorted(properties))}")
            properties = {n: properties[n] for n in wanted}
        return {"interface": interface, "properties": properties}

    return ToolSpec(
        name=name,
        title=f"Properties ({pack.name})",
        description=f"Read properties of {', '.join(names)} on {service}: all, or those named.",
        input_schema=s.obj(
            {
                "interface": {"type": "string", "enum": names, "default": names[0]},
                "names": {
                    "type": "array",
                    "items": {"type": "string", "maxLength": 255},
                    "maxItems": 200,
                    "description": "Property names; omit for all.",
                },
            }
        ),
        output_schema=s.obj(
            {"interface": {"type": "string"}, "properties": {"type": "object"}}, ["interface", "properties"]
        ),
        annotations=Annotations(read_only=True, destructive=False, idempotent=True),
        handler=handler,
        operations=(
            OperationPattern(
                bus=pack.bus, destination=service, interface=PROPERTIES, member="GetAll", risks=frozenset({Risk.READ})
            ),
        ),
        group=group,
        rank=PROPERTIES_RANK,
        group_rank=group_rank,
    )


# ---- following services --------------------------------------------------------------------------


class PackManager:
    """Keeps the registry's pack tools in step with the bus: a service appearing gets tools within the debounce
    delay; one disappearing (and not activatable) loses them. All bus access goes through the gateway."""

    def __init__(
        self,
        gateway: Gateway,
        registry: ToolRegistry,
        packs: Sequence[PackSettings],
        *,
        debounce: float = 0.15,
        on_services_changed: Callable[[], None] | None = None,
    ) -> None:
        self.gateway = gateway
        self.registry = registry
        self.packs = list(packs)
        self.debounce = debounce
        self.caller = Caller("fleetbus:packs")
        self.methods: dict[str, list[KnownMethod]] = {}
        self.on_services_changed = on_services_changed
        """Called on every name change on a followed bus (the server turns it into resource notifications)."""
        self._subscriptions: list[Subscription] = []
        self._pending: set[tuple[str, str]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._activatable: dict[str, set[str]] = {}

    def _buses(self) -> list[str]:
        configured = self.gateway.links.addresses
        return sorted({pack.bus for pack in self.packs if pack.bus in configured})

    async def start(self) -> None:
        for bus in self._buses():
            watch = Operation(DBUS_WATCH, bus=bus, destination=DBUS, interface=DBUS, member="NameOwnerChanged")
            try:
                self._subscriptions.append(await self.gateway.subscribe(watch, self.caller, self._on_owner_changed))
            except (BusError, GatewayError) as exc:
                log.warning("tool packs cannot follow the %s bus: %s", bus, exc)
        await self.scan()

    async def scan(self) -> None:
        """Find every service a pack covers (running or activatable) and build its tools."""
        for bus in self._buses():
            try:
                running = await self._names(bus, "ListNames")
                self._activatable[bus] = set(await self._names(bus, "ListActivatableNames"))
            except (BusError, GatewayError) as exc:
                log.warning("tool packs cannot list services on the %s bus: %s", bus, exc)
                continue
            names = set(running) | self._activatable[bus]
            await asyncio.gather(
                *(
                    self.refresh(pack, name)
                    for pack in self.packs
                    if pack.bus == bus
                    for name in sorted(names)
                    if not name.startswith(":") and fnmatch.fnmatchcase(name, pack.service)
                )
            )

    async def _names(self, bus: str, member: str) -> list[str]:
        operation = dbus_call(DBUS, "/org/freedesktop/DBus", DBUS, member, "", [], bus=bus)
        reply = await self.gateway.call(operation, self.caller)
        return [str(n) for n in reply.body[0]]

    def _on_owner_changed(self, signal: ReceivedSignal) -> None:
        if signal.signature != "sss":
            return
        name, _old, new = (str(v) for v in signal.body)
        if name.startswith(":"):
            return
        bus = next((pack.bus for pack in self.packs if fnmatch.fnmatchcase(name, pack.service)), None)
        if self.on_services_changed is not None:
            self.on_services_changed()
        if bus is None:
            return
        # An activatable service exiting when idle keeps its tools: the next call starts it again.
        if not new and name in self._activatable.get(bus, set()):
            return
        for pack in self.packs:
            if fnmatch.fnmatchcase(name, pack.service):
                self._pending.add((pack.name, name))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.debounce, self._flush)

    def _flush(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, set()
        by_name = {pack.name: pack for pack in self.packs}
        for pack_name, service in sorted(pending):
            task = asyncio.get_running_loop().create_task(self.refresh(by_name[pack_name], service))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def refresh(self, pack: PackSettings, service: str) -> None:
        group = f"pack:{pack.name}:{service}"
        try:
            objects = await self._objects(pack, service)
        except (BusError, GatewayError) as exc:
            log.info("pack %s: %s is not reachable (%s); its tools are withdrawn", pack.name, service, exc)
            objects = []
        tools = build_tools(pack, service, objects, self.gateway.policy.knowledge, self.packs.index(pack))
        self.methods[group] = tools.methods
        try:
            self.registry.replace_group(group, tools.specs)
        except ValueError as exc:
            log.warning("pack %s: %s", pack.name, exc)

    async def _objects(self, pack: PackSettings, service: str) -> list[ObjectInfo]:
        owner = await self._owner(pack.bus, service)
        if owner is None and service not in self._activatable.get(pack.bus, set()):
            return []
        if pack.paths:
            return [await self.gateway.introspect(service, path, self.caller, bus=pack.bus) for path in pack.paths]
        walked = await self.gateway.walk(
            service, "/", self.caller, bus=pack.bus, max_nodes=WALK_NODES, max_depth=WALK_DEPTH
        )
        return list(walked.objects)

    async def _owner(self, bus: str, service: str) -> str | None:
        operation = dbus_call(DBUS, "/org/freedesktop/DBus", DBUS, "NameHasOwner", "s", [service], bus=bus)
        reply = await self.gateway.call(operation, self.caller)
        return service if reply.body[0] else None

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for subscription in self._subscriptions:
            with contextlib.suppress(BusError):
                await subscription.close()
        self._subscriptions.clear()

    def known_methods(self) -> list[KnownMethod]:
        return [method for methods in self.methods.values() for method in methods]


# ---- find_methods --------------------------------------------------------------------------------


def find_methods_tool(packs: PackManager, listed: Callable[[], set[str]]) -> ToolSpec:
    async def find_methods(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        query = str(args["query"]).lower()
        known = packs.known_methods()
        service = args.get("service")
        if service:
            known = [m for m in known if m.service == service] or await _introspected(ctx, service, args)
        visible = listed()
        rows = []
        for entry in known:
            haystack = f"{entry.interface}.{entry.method.name}".lower()
            if query not in haystack:
                continue
            row: dict[str, Any] = {
                "method": f"{entry.interface}.{entry.method.name}",
                "in": entry.method.in_signature,
                "out": entry.method.out_signature,
                "args": ", ".join(a.name or f"arg{i}" for i, a in enumerate(entry.method.in_args)),
                "tool": entry.tool if entry.tool in visible else None,
                "call": {
                    "tool": "call_method",
                    "service": entry.service,
                    "path": entry.path,
                    "interface": entry.interface,
                    "method": entry.method.name,
                    "bus": entry.bus,
                },
            }
            rows.append(row)
        limit = int(args.get("limit", 20))
        return {"query": args["query"], "methods": rows[:limit], "total": len(rows)}

    return ToolSpec(
        name="find_methods",
        title="Find D-Bus methods",
        description="Search known D-Bus methods (or one service's) by name; each hit says how to call it.",
        input_schema=s.obj(
            {
                "query": {"type": "string", "minLength": 1, "maxLength": 100, "description": "Part of the name."},
                "service": s.service("Search this service (introspected on demand) instead of the packs."),
                "bus": s.bus(),
                "limit": s.integer("Most hits.", 1, 200, 20),
            },
            ["query"],
        ),
        output_schema=s.obj(
            {
                "query": {"type": "string"},
                "methods": {"type": "array", "items": {"type": "object"}},
                "total": {"type": "integer"},
                "truncated": {"type": "array", "items": {"type": "string"}},
            },
            ["query", "methods", "total"],
        ),
        annotations=Annotations(read_only=True, destructive=False, idempotent=True),
        handler=find_methods,
        operations=(OperationPattern(risks=frozenset({Risk.READ})),),
    )


async def _introspected(ctx: ToolContext, service: str, args: dict[str, Any]) -> list[KnownMethod]:
    bus = str(args.get("bus", "system"))
    walked = await ctx.gateway.walk(service, "/", ctx.caller, bus=bus, max_nodes=WALK_NODES, max_depth=WALK_DEPTH)
    return [
        KnownMethod(bus, service, info.path, interface.name, method, None)
        for info in walked.objects
        for interface in info.interfaces
        if interface.name not in STANDARD_INTERFACES
        for method in interface.methods
    ]
