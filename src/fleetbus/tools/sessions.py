"""`list_sessions`: login sessions and the users they belong to, from logind (login1)."""

from __future__ import annotations

from typing import Any

from fleetbus import output, well_known
from fleetbus.dbus import types
from fleetbus.dbus.errors import RemoteError
from fleetbus.dbus.link import PROPERTIES
from fleetbus.gateway import dbus_call
from fleetbus.guard.catalog import Risk
from fleetbus.guard.policy import OperationPattern
from fleetbus.tools import schema as s
from fleetbus.tools.registry import Annotations, ToolContext, ToolError, ToolSpec
from fleetbus.tools.times import from_usec, iso

LOGIN1 = well_known.LOGIN1
LOGIN1_PATH = well_known.LOGIN1_PATH
LOGIN1_MANAGER = well_known.LOGIN1_MANAGER
SESSION = well_known.LOGIN1_SESSION
CURSOR_KIND = "list_sessions"


async def _call(
    ctx: ToolContext, path: str, interface: str, member: str, signature: str = "", values: list[Any] | None = None
) -> Any:
    operation = dbus_call(LOGIN1, path, interface, member, signature, values or [], host=ctx.host)
    try:
        reply = await ctx.gateway.call(operation, ctx.caller)
    except RemoteError as exc:
        if exc.name.endswith(("ServiceUnknown", "NameHasNoOwner")):
            raise ToolError("logind (org.freedesktop.login1) is not on the system bus; no sessions to list") from exc
        raise
    return types.to_json(reply.signature, reply.body, variants="plain")


async def list_sessions(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    (sessions,) = await _call(ctx, LOGIN1_PATH, LOGIN1_MANAGER, "ListSessions")
    (users,) = await _call(ctx, LOGIN1_PATH, LOGIN1_MANAGER, "ListUsers")
    selection: dict[str, Any] = {}
    after = ""
    if "cursor" in args:
        try:
            after = str(output.decode_cursor(args["cursor"], CURSOR_KIND, selection).get("after", ""))
        except output.CursorError as exc:
            raise ToolError(str(exc)) from exc
    ordered = sorted(sessions, key=lambda row: str(row[0]))
    remaining = [row for row in ordered if str(row[0]) > after]
    limit = int(args.get("limit", 50))
    rows = []
    for session_id, uid, user, seat, path in remaining[:limit]:
        props = await _call(ctx, path, PROPERTIES, "GetAll", "s", [SESSION])
        details = props[0] if props and isinstance(props[0], dict) else {}
        since = details.get("Timestamp")
        rows.append(
            {
                "session": str(session_id),
                "user": str(user),
                "uid": int(uid),
                "seat": str(seat) or None,
                "type": details.get("Type"),
                "class": details.get("Class"),
                "state": details.get("State"),
                "remote": bool(details.get("Remote", False)),
                "remote_host": details.get("RemoteHost") or None,
                "service": details.get("Service") or None,
                "tty": details.get("TTY") or None,
                "since": iso(from_usec(since)) if isinstance(since, int) and since > 0 else None,
                "idle": bool(details.get("IdleHint", False)),
            }
        )
    page = output.take(rows, limit)
    next_cursor = (
        output.encode_cursor(CURSOR_KIND, selection, {"after": page.rows[-1]["session"]})
        if page.rows and (page.more or len(remaining) > len(page.rows))
        else None
    )
    return {
        "sessions": page.rows,
        "users": [{"uid": int(u[0]), "user": str(u[1])} for u in sorted(users, key=lambda u: int(u[0]))][:100],
        "total": len(sessions),
        "next_cursor": next_cursor,
        **({"truncated": [page.note]} if page.note else {}),
    }


def session_tools() -> list[ToolSpec]:
    return [
        ToolSpec(
            name="list_sessions",
            title="Login sessions",
            description="Login sessions and users (logind).",
            input_schema=s.obj(
                {
                    "limit": s.integer("Most sessions to list.", 1, 500, 50),
                    "cursor": {"type": "string", "maxLength": 1024, "description": "next_cursor of the previous page."},
                    "format": output.format_schema("toon"),
                }
            ),
            output_schema=s.obj(
                {
                    "sessions": {"type": "array", "items": {"type": "object", "required": ["session", "user", "uid"]}},
                    "users": {"type": "array", "items": {"type": "object"}},
                    "total": {"type": "integer"},
                    "next_cursor": {"type": ["string", "null"]},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["sessions", "users", "total", "next_cursor"],
            ),
            annotations=Annotations(read_only=True, destructive=False, idempotent=True),
            handler=list_sessions,
            operations=(OperationPattern(destination=LOGIN1, risks=frozenset({Risk.READ})),),
        )
    ]
