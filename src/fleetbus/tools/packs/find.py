"""`find_methods`: every D-Bus method the packs know (or one service's), with the tool or call that reaches it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleetbus.guard.catalog import Risk
from fleetbus.guard.policy import OperationPattern
from fleetbus.tools import schema as s
from fleetbus.tools.bus import STANDARD_INTERFACES
from fleetbus.tools.packs.build import KnownMethod
from fleetbus.tools.packs.follow import WALK_DEPTH, WALK_NODES, PackManager
from fleetbus.tools.registry import Annotations, ToolContext, ToolSpec


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
