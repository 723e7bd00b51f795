"""Building a pack's tools: one typed tool per introspected method of the pack's interfaces, plus one tool that
reads the pack's properties; schemas come from the D-Bus signatures, annotations from the catalog.

A pack tool is only a typed front for a method call: it builds the same Operation `call_method` would, so
policy, approvals and the audit log see the resolved D-Bus call, never the tool's name.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbus.config import PackSettings
from fleetbus.dbus import types
from fleetbus.dbus.introspect import Interface, Method, ObjectInfo
from fleetbus.dbus.link import PROPERTIES
from fleetbus.gateway import dbus_call
from fleetbus.guard.catalog import LocalKnowledge, Risk, possible_risks
from fleetbus.guard.policy import OperationPattern
from fleetbus.operation import LOCAL_HOST, Operation
from fleetbus.tools import schema as s
from fleetbus.tools.bus import STANDARD_INTERFACES
from fleetbus.tools.packs.naming import pack_prefix, tool_name
from fleetbus.tools.registry import Annotations, ToolContext, ToolError, ToolSpec

log = logging.getLogger(__name__)

PROPERTIES_RANK = 3
"""The properties tool comes after a pack's first two featured methods: one tool answers every property
question, but `GetUnit` or `Describe` matter more when the budget leaves room for one or two."""
PACK_SKIPS = (*STANDARD_INTERFACES, "org.freedesktop.DBus.ObjectManager")
"""Generic interfaces every service may have; the generic tools cover them better than per-service copies."""
DOC_ANNOTATIONS = ("org.freedesktop.DBus.Description", "org.gtk.GDBus.DocString")


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
    """A method find_tools can point to, listed or not."""

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
    # A unit job is dangerous by what it reaches (a start pulling in poweroff.target, a stop ending a unit with
    # SuccessAction=, an enable of a foreign file): listings and annotations must know it could be.
    return possible_risks(Operation("dbus.call", "local", bus, service, path, interface, member), knowledge)


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
        toolset=pack.name,
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
        if ctx.host != LOCAL_HOST:
            await _check_on_host(ctx, bus, service, path, interface, method)
        operation = dbus_call(
            service, path, interface, method.name, method.in_signature, values, names=keys, bus=bus, host=ctx.host
        )
        reply = await ctx.gateway.call(operation, ctx.caller)
        result = types.to_json(reply.signature, reply.body)
        return dict(zip(out_keys, result, strict=False))

    return handler


async def _check_on_host(ctx: ToolContext, bus: str, service: str, path: str, interface: str, method: Method) -> None:
    """A pack tool is built from local's introspection: on another host, that host's own introspection (cached
    per host) must have the same method with the same arguments, or the call is refused before it is made."""
    info = await ctx.gateway.introspect(service, path, ctx.caller, bus=bus, host=ctx.host)
    found = info.interface(interface)
    there = found.method(method.name) if found is not None else None
    if there is None or there.in_signature != method.in_signature:
        has = f"({there.in_signature})" if there is not None else "no such method"
        raise ToolError(
            f"{ctx.host}: {service} {path} does not offer {interface}.{method.name}({method.in_signature}) as this "
            f"tool was built for (there: {has}); use call_method with host={ctx.host!r} after introspect"
        )


def _properties_tool(
    pack: PackSettings, group: str, name: str, service: str, interfaces: list[tuple[str, Interface]], group_rank: int
) -> ToolSpec:
    paths = dict((i.name, path) for path, i in interfaces)
    names = [i.name for _, i in interfaces]

    async def handler(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        interface = args.get("interface", names[0])
        wanted = args.get("names")
        operation = dbus_call(
            service, paths[interface], PROPERTIES, "GetAll", "s", [interface], bus=pack.bus, host=ctx.host
        )
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
        toolset=pack.name,
        rank=PROPERTIES_RANK,
        group_rank=group_rank,
    )
