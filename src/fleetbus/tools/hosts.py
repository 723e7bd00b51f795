"""list_hosts: the hosts of the inventory a caller may reach, and whether each is reachable now."""

from __future__ import annotations

from typing import Any

from fleetbus import output
from fleetbus.tools import schema as s
from fleetbus.tools.registry import Annotations, ToolContext, ToolSpec

STATES = [
    "reachable",
    "unknown-hostkey",
    "changed-hostkey",
    "revoked-hostkey",
    "hostkey-refused",
    "unreachable",
    "unknown",
]


async def list_hosts(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    rows = await ctx.gateway.host_states(ctx.caller, args.get("pattern"), probe=bool(args.get("probe", True)))
    return {"hosts": rows, "count": len(rows)}


def host_list_tools() -> list[ToolSpec]:
    return [
        ToolSpec(
            name="list_hosts",
            title="List hosts",
            description="Hosts of the inventory (and local) that every host-bound tool's `host` argument accepts: "
            "address, groups, and whether each is reachable now (reachable, unknown-hostkey with the key's "
            "fingerprint, unreachable with the reason).",
            input_schema=s.obj(
                {
                    "pattern": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 1000,
                        "description": "Ansible host pattern, e.g. web:!web03 (default: all and local).",
                    },
                    "probe": {"type": "boolean", "default": True, "description": "Try to reach each host now."},
                    "format": output.format_schema("toon"),
                }
            ),
            output_schema=s.obj(
                {
                    "hosts": {
                        "type": "array",
                        "items": s.obj(
                            {
                                "name": {"type": "string"},
                                "address": {"type": "string"},
                                "groups": {"type": "string"},
                                "state": {"type": "string", "enum": STATES},
                                "connected": {"type": "boolean"},
                                "reason": {"type": "string"},
                                "fingerprint": {"type": "string"},
                            },
                            ["name", "state", "connected"],
                        ),
                    },
                    "count": {"type": "integer"},
                },
                ["hosts", "count"],
            ),
            annotations=Annotations(read_only=True, destructive=False, idempotent=True, open_world=True),
            handler=list_hosts,
        )
    ]
