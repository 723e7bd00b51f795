"""Finding and enabling tools: `find_tools` searches every tool (listed or not) and every D-Bus method the packs
know (or one service's), saying how to reach each; `enable_toolset` lists a toolset's tools for the calling client
(and tells it so through list_changed). Together they keep the default list small without hiding anything."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbus.gateway import Caller
from fleetbus.guard.catalog import Risk
from fleetbus.guard.policy import OperationPattern, Policy
from fleetbus.tools import schema as s
from fleetbus.tools.bus import STANDARD_INTERFACES
from fleetbus.tools.packs import KnownMethod, PackManager
from fleetbus.tools.packs.follow import WALK_DEPTH, WALK_NODES
from fleetbus.tools.registry import TOOL_FINDER, Annotations, Listed, ToolContext, ToolError, ToolRegistry, ToolSpec
from fleetbus.tools.toolsets import ToolsetError, ToolsetSelection

FIND_TOOLS = TOOL_FINDER
ENABLE_TOOLSET = "enable_toolset"
DISCOVERY = frozenset({FIND_TOOLS, ENABLE_TOOLSET})
"""Tools that need the packs' methods (the CLI builds the packs before running one); never a search hit."""
DESCRIPTION_CHARS = 160
READ = Annotations(read_only=True, destructive=False, idempotent=True)


@dataclass(frozen=True)
class Discovery:
    """What the two tools look at: every tool, the policy, each client's toolsets, the packs' methods."""

    registry: ToolRegistry
    policy: Policy
    selection: ToolsetSelection
    packs: PackManager
    listed: Callable[[Caller], list[Listed]]
    """The tools `caller` sees now (policy, toolsets and budget applied)."""


def _words(query: str) -> list[str]:
    return [word for word in query.lower().replace("_", " ").split() if word]


def _matches(words: Sequence[str], *texts: str) -> bool:
    haystack = " ".join(texts).lower().replace("_", " ")
    squeezed = haystack.replace(" ", "")
    return all(word in haystack or word in squeezed for word in words)


def _tool_row(entry: Listed, listed: set[str]) -> dict[str, Any]:
    description = entry.spec.description
    if len(description) > DESCRIPTION_CHARS:
        description = description[: DESCRIPTION_CHARS - 1] + "…"
    return {
        "name": entry.spec.name,
        "toolset": entry.spec.toolset,
        "listed": entry.spec.name in listed,
        "read_only": entry.annotations.read_only,
        "description": description,
    }


def _visible(discovery: Discovery) -> list[Listed]:
    """Every tool the policy would let be seen, whatever the toolsets: what a client could enable."""
    return discovery.registry.listed(discovery.policy)


def _method_tool(method: KnownMethod, listed: dict[str, Listed]) -> str | None:
    """The listed tool that is the way to call `method` — a built-in one that covers it (with its selecting
    arguments) before the method's own pack tool; None: call_method it."""
    key = f"{method.interface}.{method.method.name}"
    for entry in listed.values():
        for covered, arguments in entry.spec.covers:
            if covered == key:
                return " ".join([entry.spec.name, *(f"{k}={v}" for k, v in arguments.items())])
    if method.tool is not None and method.tool in listed:
        return method.tool
    return None


async def _methods(discovery: Discovery, ctx: ToolContext, args: dict[str, Any]) -> list[KnownMethod]:
    known = discovery.packs.known_methods()
    service = args.get("service")
    if not service:
        return known
    bus = str(args.get("bus", "system"))
    own = [m for m in known if m.service == service and m.bus == bus]
    if own:
        return own
    walked = await ctx.gateway.walk(
        service, "/", ctx.caller, bus=bus, max_nodes=WALK_NODES, max_depth=WALK_DEPTH, host=ctx.host
    )
    return [
        KnownMethod(bus, service, info.path, interface.name, method, None)
        for info in walked.objects
        for interface in info.interfaces
        if interface.name not in STANDARD_INTERFACES
        for method in interface.methods
    ]


def _overview(discovery: Discovery, caller: Caller) -> list[dict[str, Any]]:
    """Every toolset: how many tools the policy lets this caller see in it, whether they are listed for it."""
    counts: dict[str, int] = {}
    for entry in _visible(discovery):
        counts[entry.spec.toolset] = counts.get(entry.spec.toolset, 0) + 1
    listed = discovery.selection.of(caller.client).listed
    return [
        {"name": t.name, "tools": counts.get(t.name, 0), "listed": t.name in listed, "description": t.description}
        for t in discovery.selection.catalog
    ]


def _tool_hits(discovery: Discovery, words: list[str], toolset: str | None, listed: set[str]) -> list[dict[str, Any]]:
    """Built-in tools matching `words` (or a toolset's tools), listed ones first, then those whose name or covered
    methods say it (not just their description). Pack tools are found as their methods, unless a toolset is asked
    for."""
    hits = [
        entry
        for entry in _visible(discovery)
        if entry.spec.name not in DISCOVERY
        and (entry.spec.group is None or toolset is not None)
        and (toolset is None or entry.spec.toolset == toolset)
        and _matches(words, entry.spec.name, entry.spec.title, entry.spec.description, *dict(entry.spec.covers))
    ]
    strong = {entry.spec.name for entry in hits if _matches(words, entry.spec.name, *dict(entry.spec.covers))}
    hits.sort(key=lambda e: (e.spec.name not in listed, e.spec.name not in strong, e.spec.name))
    return [_tool_row(entry, listed) for entry in hits]


def _method_row(method: KnownMethod, listed: dict[str, Listed]) -> dict[str, Any]:
    return {
        "method": f"{method.interface}.{method.method.name}",
        "in": method.method.in_signature,
        "out": method.method.out_signature,
        "args": ", ".join(a.name or f"arg{i}" for i, a in enumerate(method.method.in_args)),
        "tool": _method_tool(method, listed),
        "call": {
            "tool": "call_method",
            "service": method.service,
            "path": method.path,
            "interface": method.interface,
            "method": method.method.name,
            "bus": method.bus,
        },
    }


def find_tools_tool(discovery: Discovery) -> ToolSpec:
    async def find_tools(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        query, toolset, limit = args.get("query"), args.get("toolset"), int(args.get("limit", 20))
        if toolset is not None and discovery.selection.catalog.get(toolset) is None:
            raise ToolError(discovery.selection.catalog.unknown(toolset))
        if query is None and toolset is None and not args.get("service"):
            return {"toolsets": _overview(discovery, ctx.caller), "tools": [], "methods": [], "total": 0}
        listed = {entry.spec.name: entry for entry in discovery.listed(ctx.caller)}
        words = _words(str(query or ""))
        tools = _tool_hits(discovery, words, toolset, set(listed))
        methods = []
        if toolset is None:
            methods = [
                _method_row(method, listed)
                for method in await _methods(discovery, ctx, args)
                if _matches(words, f"{method.interface}.{method.method.name}")
            ]
        result: dict[str, Any] = {
            "tools": tools[:limit],
            "methods": methods[:limit],
            "total": len(tools) + len(methods),
        }
        if any(not row["listed"] for row in result["tools"]):
            result["note"] = (
                f"tools not listed can be called by name, or listed with {ENABLE_TOOLSET} toolset=<their toolset>"
            )
        return result

    return ToolSpec(
        name=FIND_TOOLS,
        title="Find tools and D-Bus methods",
        description="Search every tool (listed or not) and known D-Bus method by words, e.g. 'restart'; each hit "
        "says how to call it. No query: the toolsets. toolset: its tools.",
        input_schema=s.obj(
            {
                "query": {"type": "string", "minLength": 1, "maxLength": 100, "description": "Words to look for."},
                "toolset": {"type": "string", "maxLength": 64, "description": "Only this toolset's tools."},
                "service": s.service("Also search this service's methods (introspected on demand)."),
                "bus": s.bus(),
                "limit": s.integer("Most tools and most methods.", 1, 200, 20),
            }
        ),
        output_schema=s.obj(
            {
                "toolsets": {"type": "array", "items": {"type": "object"}},
                "tools": {"type": "array", "items": {"type": "object"}},
                "methods": {"type": "array", "items": {"type": "object"}},
                "total": {"type": "integer"},
                "note": {"type": "string"},
                "truncated": {"type": "array", "items": {"type": "string"}},
            },
            ["tools", "methods", "total"],
        ),
        annotations=READ,
        handler=find_tools,
        operations=(OperationPattern(risks=frozenset({Risk.READ})),),
    )


def enable_toolset_tool(discovery: Discovery) -> ToolSpec:
    async def enable_toolset(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        name, enabled = str(args["toolset"]), bool(args.get("enabled", True))
        try:
            discovery.selection.set(ctx.caller.client, name, enabled)
        except ToolsetError as exc:
            raise ToolError(str(exc)) from exc
        listed = discovery.listed(ctx.caller)
        mine = [entry.spec.name for entry in listed if entry.spec.toolset == name]
        result: dict[str, Any] = {"toolset": name, "enabled": enabled, "listed": mine, "tools_listed": len(listed)}
        toolset = discovery.selection.catalog.get(name)
        if enabled and toolset is not None and toolset.pack:
            total = sum(1 for entry in _visible(discovery) if entry.spec.toolset == name)
            if total > len(mine):
                result["note"] = (
                    f"{len(mine)} of the pack's {total} tools fit the tool budget; "
                    f"{FIND_TOOLS} toolset={name} shows all, each callable by name"
                )
        return result

    return ToolSpec(
        name=ENABLE_TOOLSET,
        title="Enable a toolset",
        description=f"List a toolset's tools for you from now on (enabled=false: stop); {FIND_TOOLS} with no "
        "query shows the toolsets.",
        input_schema=s.obj(
            {
                "toolset": {"type": "string", "minLength": 1, "maxLength": 64, "description": "e.g. units, host."},
                "enabled": {"type": "boolean", "default": True},
            },
            ["toolset"],
        ),
        output_schema=s.obj(
            {
                "toolset": {"type": "string"},
                "enabled": {"type": "boolean"},
                "listed": {"type": "array", "items": {"type": "string"}},
                "tools_listed": {"type": "integer"},
                "note": {"type": "string"},
                "truncated": {"type": "array", "items": {"type": "string"}},
            },
            ["toolset", "enabled", "listed", "tools_listed"],
        ),
        annotations=READ,
        handler=enable_toolset,
    )
