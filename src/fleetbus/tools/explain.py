"""`explain`: what would happen to a proposed call — its canonical operation, classification, verdict and the
deciding rule, and what polkit would say — without executing it."""

from __future__ import annotations

from typing import Any

from fleetbus import output, well_known
from fleetbus.dbus.errors import BusError
from fleetbus.gateway import dbus_call
from fleetbus.guard.catalog import Risk, protected_hits
from fleetbus.guard.policy import OperationPattern
from fleetbus.tools import schema as s
from fleetbus.tools.bus import method_call_arguments, resolve_call
from fleetbus.tools.registry import Annotations, ToolContext, ToolSpec

POLKIT = well_known.POLKIT
POLKIT_PATH = well_known.POLKIT_PATH
POLKIT_INTERFACE = well_known.POLKIT_AUTHORITY


async def explain(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    operation, _ = await resolve_call(ctx, args)
    assessment = await ctx.gateway.assess(operation, ctx.caller)
    resolved, classification, decision = assessment.operation, assessment.classification, assessment.decision
    result: dict[str, Any] = {
        "operation": {
            "host": resolved.host,
            "bus": resolved.bus,
            "destination": resolved.destination,
            "path": resolved.path,
            "interface": resolved.interface,
            "member": resolved.member,
            "signature": resolved.signature,
            "args": list(resolved.args),
        },
        "digest": resolved.digest(),
        "risk": classification.risk.label,
        "classification": classification.reason,
        "source": classification.source,
        "verdict": decision.verdict.value,
        "rule": decision.rule,
        "reason": decision.reason,
        "protected_units": protected_hits(classification, ctx.gateway.policy.protected_units),
        "polkit": None,
    }
    if classification.polkit_action:
        result["polkit"] = await _polkit(ctx, args, classification.polkit_action)
    return result


async def _polkit(ctx: ToolContext, args: dict[str, Any], action: str) -> dict[str, Any]:
    """CheckAuthorization for fleetbus's own bus connection: what polkit would say if the call were made."""
    bus = str(args.get("bus", "system"))
    try:
        subject = [
            "system-bus-name",
            {"name": {"signature": "s", "value": await ctx.gateway.bus_identity(ctx.host, bus)}},
        ]
        operation = dbus_call(
            POLKIT,
            POLKIT_PATH,
            POLKIT_INTERFACE,
            "CheckAuthorization",
            "(sa{sv})sa{ss}us",
            [subject, action, {}, 0, ""],
            bus=bus,
            host=ctx.host,
        )
        reply = await ctx.gateway.call(operation, ctx.caller)
    except BusError as exc:
        return {"action": action, "error": str(exc)}
    authorized, challenge, details = reply.body[0]
    return {
        "action": action,
        "authorized": bool(authorized),
        "challenge": bool(challenge),
        "details": {str(k): str(v) for k, v in dict(details).items()},
    }


def explain_tools() -> list[ToolSpec]:
    return [
        ToolSpec(
            name="explain",
            title="Explain what policy would do",
            description="What policy would decide for a call (call_method's arguments), and why, without making it: "
            "the operation, its risk, verdict, rule, protected units, polkit's answer.",
            input_schema=s.obj(
                {**method_call_arguments(), "format": output.format_schema("json")},
                ["service", "path", "interface", "method"],
            ),
            output_schema=s.obj(
                {
                    "operation": {"type": "object"},
                    "digest": {
                        "type": "string",
                        "description": "SHA-256 of the canonical operation; approvals bind to it.",
                    },
                    "risk": {"type": "string", "enum": [r.label for r in Risk]},
                    "classification": {"type": "string"},
                    "source": {"type": "string"},
                    "verdict": {"type": "string", "enum": ["allow", "confirm", "deny"]},
                    "rule": {"type": "string"},
                    "reason": {"type": "string"},
                    "protected_units": {"type": "array", "items": {"type": "string"}},
                    "polkit": {"type": ["object", "null"]},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["operation", "digest", "risk", "verdict", "rule", "reason", "protected_units", "polkit"],
            ),
            annotations=Annotations(read_only=True, destructive=False, idempotent=True),
            handler=explain,
            operations=(OperationPattern(risks=frozenset({Risk.READ})),),
        )
    ]
