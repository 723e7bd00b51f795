"""`audit_query`: the audit log, for admins — who did what, decided by which rule, with what outcome."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fleetbus import output
from fleetbus.guard.catalog import Risk
from fleetbus.guard.policy import OperationPattern
from fleetbus.operation import AUDIT_QUERY
from fleetbus.tools import schema as s
from fleetbus.tools.registry import Annotations, ToolContext, ToolError, ToolSpec

EVENTS = [
    "allowed",
    "approved",
    "denied",
    "awaiting-approval",
    "rejected",
    "rate-limited",
    "succeeded",
    "failed",
    "looked-up",
    "recovered",
    "checkpoint",
]


def _row(record: dict[str, Any]) -> dict[str, Any]:
    operation = record.get("operation") or {}
    target = f"{operation.get('interface', '')}.{operation.get('member', '')}".strip(".") or operation.get("kind")
    decision = record.get("decision") or {}
    return {
        "seq": record.get("seq"),
        "time": record.get("time"),
        "event": record.get("event"),
        "client": record.get("client"),
        "host": record.get("host"),
        "target": target,
        "destination": operation.get("destination"),
        "verdict": decision.get("verdict"),
        "rule": decision.get("rule"),
        "approval": record.get("approval"),
        "duration_ms": record.get("duration_ms"),
        "error": record.get("error"),
        # Repeated refusals are one record per interval: how many calls it stands for (see guard/audit/coalesce).
        "count": record.get("count", 1),
        # One fan-out or rolling job (call_id) and the ticket it was for (work_order), when there were any; a
        # refusal count also lists those of its repeats.
        **{key: record[key] for key in ("call_id", "work_order", "plan", "call_ids", "work_orders") if key in record},
    }


async def audit_query(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    filters: dict[str, Any] = {
        key: args[key] for key in ("client", "event", "target", "call_id", "work_order") if key in args
    }
    if "since" in args:
        try:
            filters["since"] = datetime.fromisoformat(str(args["since"]).replace("Z", "+00:00")).timestamp()
        except ValueError as exc:
            raise ToolError(f"invalid argument 'since': {args['since']!r} is not an ISO 8601 time ({exc})") from exc
    filters["after_seq"] = int(args.get("after_seq", 0))
    limit = int(args.get("limit", 50))
    records = await ctx.gateway.read_audit(ctx.caller, filters, limit)
    # Cut to the budget before naming where to continue, so the next page starts right after the last row shown.
    page = output.take([_row(r) for r in records], limit)
    more = page.more or len(records) == limit
    return {
        "records": page.rows,
        "next_after_seq": page.rows[-1]["seq"] if more and page.rows else None,
        **({"truncated": [page.note]} if page.note else {}),
    }


def audit_tools(directory: Path) -> list[ToolSpec]:
    return [
        ToolSpec(
            name="audit_query",
            title="Query the audit log",
            description=f"Records of fleetbus's tamper-evident audit log ({directory}), oldest first, filtered by "
            "client, event, target (glob on Interface.Member or Member) and time; page with after_seq. Only "
            "listed under the admin preset.",
            input_schema=s.obj(
                {
                    "since": {
                        "type": "string",
                        "maxLength": 64,
                        "description": "ISO 8601 time, e.g. 2026-11-21T17:00Z.",
                    },
                    "client": {"type": "string", "maxLength": 200},
                    "event": {"type": "string", "enum": EVENTS},
                    "target": {"type": "string", "maxLength": 255, "description": "e.g. *.RestartUnit"},
                    "call_id": {"type": "string", "maxLength": 64, "description": "One fan-out or rolling job."},
                    "work_order": {"type": "string", "maxLength": 256},
                    "after_seq": {
                        "type": "integer",
                        "minimum": 0,
                        "default": 0,
                        "description": "Continue after this record (next_after_seq of the previous page).",
                    },
                    "limit": s.integer("Most records to return.", 1, 500, 50),
                    "format": output.format_schema("toon"),
                }
            ),
            output_schema=s.obj(
                {
                    "records": {"type": "array", "items": {"type": "object"}},
                    "next_after_seq": {"type": ["integer", "null"]},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["records", "next_after_seq"],
            ),
            annotations=Annotations(read_only=True, destructive=False, idempotent=True),
            handler=audit_query,
            operations=(OperationPattern(kind=AUDIT_QUERY, risks=frozenset({Risk.READ})),),
            scope="admin",
        )
    ]
