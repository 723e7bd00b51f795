"""`query_journal`: journal entries by unit, priority, time window, boot and pattern — the first `limit` inside
the window, with a cursor that continues without gaps or repeats, or later fetches only what is new.

Without `since` (and without `reverse`) the answer is the newest `limit` entries, like `journalctl -n`; its
cursor then follows new entries. Times are parsed here (`times`) and passed to journalctl as absolute UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleetbus import output
from fleetbus.dbus.errors import BusError
from fleetbus.gateway import HostCommandFailed
from fleetbus.guard.catalog import Risk
from fleetbus.guard.policy import OperationPattern
from fleetbus.operation import JOURNAL_QUERY
from fleetbus.suggestions import either, nearest
from fleetbus.tools import schema as s
from fleetbus.tools import systemd
from fleetbus.tools.registry import Annotations, ToolContext, ToolError, ToolSpec
from fleetbus.tools.times import TimeExpressionError, from_usec, iso, journal_time, parse_time, to_usec

PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
UNIT_FIELDS = ("_SYSTEMD_UNIT", "UNIT", "USER_UNIT", "_SYSTEMD_USER_UNIT")
"""A unit's own output (_SYSTEMD_UNIT), the manager's messages about it (UNIT), and the same for user managers."""
BASE_FIELDS = ("MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "_COMM", "_PID", *UNIT_FIELDS)
FIELD_PATTERN = r"^[A-Z0-9_]{1,64}$"
CURSOR_PATTERN = re.compile(r"^[a-z]=[0-9a-f]+(;[a-z]=[0-9a-f]+)*$")
BOOT_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_MESSAGE_CHARS = 2000
MAX_NAME_CHARS = 256
"""An identifier or unit name longer than this is cut: one entry must not fill a page's character budget."""
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
CURSOR_KIND = "query_journal"
MAX_PROCESS_LOOKUPS = 8
"""Units of one query whose last main process is looked up (each costs two bus calls)."""


def unit_options(units: list[str]) -> list[str]:
    """Field matches OR'd with `+`: the unit's own lines and the manager's lines about it, system or user."""
    options: list[str] = []
    for unit in units:
        for name in UNIT_FIELDS:
            if options:
                options.append("+")
            options.append(f"{name}={unit}")
    return options


def _message(value: Any, limit: int = MAX_MESSAGE_CHARS) -> str:
    """A journal field as text of at most `limit` characters. journalctl gives a non-UTF-8 value as an array of
    byte values and a field an entry holds more than once as an array of its values; any process that logs can
    make either, for any field (SYSLOG_IDENTIFIER, UNIT…), and make it as long as journald takes."""
    if isinstance(value, list):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            value = bytes(v for v in value if 0 <= v < 256).decode("utf-8", errors="replace")
        else:  # a repeated field: each of its values, one per line
            value = "\n".join(_message(v, limit) for v in value[:16])
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _name(value: Any) -> str | None:
    """A short field (an identifier, a unit name) as text, or None when the entry has none."""
    text = _message(value, MAX_NAME_CHARS) if value is not None else ""
    return text or None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def entry_row(entry: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """One journal entry as a table row: the same keys for every entry, so rows render as one TOON table."""
    usec = _int(entry.get("__REALTIME_TIMESTAMP"))
    unit = next((_name(entry[f]) for f in UNIT_FIELDS if isinstance(entry.get(f), str)), None)
    row: dict[str, Any] = {
        # To the microsecond, so a time copied from a row into since/until includes that very entry.
        "time": iso(from_usec(usec), digits=6) if usec is not None else None,
        "unit": unit,
        "priority": _int(entry.get("PRIORITY")),
        "ident": _name(entry.get("SYSLOG_IDENTIFIER")) or _name(entry.get("_COMM")),
        "pid": _int(entry.get("_PID")),
        "message": _message(entry.get("MESSAGE")),
    }
    for name in fields:
        value = entry.get(name)
        row[name] = _message(value) if value is not None else None
    return row


@dataclass(frozen=True)
class MainProcess:
    """A unit's last main process. journald learns a line's unit from the sending process's cgroup, and a process
    that exits at once (a failing start) may be gone before journald reads its last lines: those then carry no
    unit at all, only _PID. They are matched by that PID, from the moment the process started, and only while
    they name no unit."""

    unit: str
    pid: int
    started_usec: int

    @classmethod
    def of(cls, unit: str, typed: Mapping[str, Any]) -> MainProcess | None:
        """From a service's properties (ExecMainPID, ExecMainStartTimestamp); None when it never ran."""
        pid, started = typed.get("ExecMainPID"), typed.get("ExecMainStartTimestamp")
        if isinstance(pid, int) and isinstance(started, int) and pid > 0 and started > 0:
            return cls(unit, pid, started)
        return None

    def wrote(self, entry: Mapping[str, Any]) -> bool:
        usec = _int(entry.get("__REALTIME_TIMESTAMP"))
        return (
            entry.get("_PID") == str(self.pid)
            and not any(entry.get(field) for field in UNIT_FIELDS)
            and usec is not None
            and usec >= self.started_usec
        )


def _units(args: dict[str, Any]) -> list[str]:
    names = [*([args["unit"]] if "unit" in args else []), *args.get("units", [])]
    return list(dict.fromkeys(systemd.normalize_unit(n, "unit" if "unit" in args else "units") for n in names))


def _boot(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and BOOT_ID.match(value):
        return value
    raise ToolError(f"invalid argument 'boot': {value!r} is neither an offset (0, -1…) nor a 32-digit boot id")


class JournalQuery:
    """One call's query: what selects entries (the cursor's fingerprint) and the window, resolved once."""

    def __init__(self, args: dict[str, Any], now: datetime, processes: Sequence[MainProcess] = ()) -> None:
        self.units = _units(args)
        # Not part of the selection: which process last ran a unit is looked up afresh for every call.
        self.processes = [p for p in processes if p.unit in self.units]
        self.priority: str | None = args.get("priority")
        self.grep: str | None = args.get("grep")
        self.boot = _boot(args.get("boot"))
        self.reverse = bool(args.get("reverse", False))
        self.fields: list[str] = list(dict.fromkeys(args.get("fields", [])))
        self.limit = int(args.get("limit", DEFAULT_LIMIT))
        self.selection = {
            "units": self.units,
            "priority": self.priority,
            "grep": self.grep,
            "boot": self.boot,
            "since": args.get("since"),
            "until": args.get("until"),
            "reverse": self.reverse,
        }
        try:
            self.since = parse_time(args["since"], now, argument="since") if "since" in args else None
            self.until = parse_time(args["until"], now, argument="until") if "until" in args else None
        except TimeExpressionError as exc:
            raise ToolError(str(exc)) from exc
        if self.since and self.until and self.since > self.until:
            raise ToolError(
                f"invalid arguments 'since'/'until': since ({iso(self.since)}) is after until ({iso(self.until)})"
            )
        self.position: dict[str, Any] | None = None
        if "cursor" in args:
            try:
                self.position = output.decode_cursor(args["cursor"], CURSOR_KIND, self.selection)
            except output.CursorError as exc:
                raise ToolError(str(exc)) from exc
            if not isinstance(self.position.get("c"), str) or not CURSOR_PATTERN.match(self.position["c"]):
                raise ToolError("invalid argument 'cursor': not a cursor this tool returned")

    @property
    def mode(self) -> str:
        """forward (from since or a cursor), reverse (newest first), or tail (the newest, in time order)."""
        if self.reverse:
            return "reverse"
        if self.since is not None or self.position is not None:
            return "forward"
        return "tail"

    def options(self) -> list[str]:
        options: list[str] = []
        window = self._stored_window()
        if self.position is not None:
            options.append(f"--after-cursor={self.position['c']}")
        elif self.since is not None:
            options.append(f"--since={journal_time(self.since)}")
        # journalctl refuses --since beside a cursor; a reverse page stops at `since` in `inside` instead, and
        # going backwards from a cursor needs no --until.
        if window["until"] is not None and not (self.mode == "reverse" and self.position is not None):
            options.append(f"--until={journal_time(from_usec(window['until']))}")
        if self.mode in ("reverse", "tail"):
            options.append("--reverse")
        if self.priority:
            options.append(f"--priority={self.priority}")
        if self.boot is not None:
            options.append(f"--boot={self.boot}")
        if self.grep:
            options.append(f"--grep={self.grep}")
        options.append(f"--output-fields={','.join(dict.fromkeys((*BASE_FIELDS, *self.fields)))}")
        matches = unit_options(self.units)
        for process in self.processes:
            matches += ["+", f"_PID={process.pid}"]
        return options + matches

    def belongs(self, entry: Mapping[str, Any]) -> bool:
        """Entries matched by a process's PID are kept only when that process wrote them (see MainProcess)."""
        if not self.processes or not self.units:
            return True
        if any(entry.get(field) in self.units for field in UNIT_FIELDS):
            return True
        return any(process.wrote(entry) for process in self.processes)

    def _stored_window(self) -> dict[str, Any]:
        """The window in absolute microseconds: from the cursor when continuing (so "1 hour ago" does not move
        between pages), else from the arguments."""
        if self.position is not None:
            return {"since": self.position.get("s"), "until": self.position.get("u")}
        return {
            "since": to_usec(self.since) if self.since else None,
            "until": to_usec(self.until) if self.until else None,
        }

    def inside(self, entry: dict[str, Any]) -> bool:
        window = self._stored_window()
        usec = _int(entry.get("__REALTIME_TIMESTAMP"))
        if usec is None:
            return True
        since, until = window.get("since"), window.get("until")
        return not (since is not None and usec < since) and not (until is not None and usec > until)

    def cursor_after(self, entry: dict[str, Any]) -> str | None:
        journal_cursor = entry.get("__CURSOR")
        if not isinstance(journal_cursor, str):
            return None
        window = self._stored_window()
        return output.encode_cursor(
            CURSOR_KIND, self.selection, {"c": journal_cursor, "s": window["since"], "u": window["until"]}
        )


async def read_entries(ctx: ToolContext, query: JournalQuery) -> tuple[list[dict[str, Any]], bool]:
    """Up to limit+1 entries inside the window, in the order the mode reads them; and whether the read ended
    because journalctl had no more (rather than at the limit or the window's edge)."""
    try:
        read = await ctx.gateway.read_journal(ctx.caller, query.options(), max_entries=query.limit + 1, host=ctx.host)
    except HostCommandFailed as exc:
        raise ToolError(_explain_failure(str(exc), query)) from exc
    entries: list[dict[str, Any]] = []
    for entry in read.entries:
        if not query.inside(entry):
            return entries, True  # a reverse page crossed `since`: nothing further back belongs to the window
        if query.belongs(entry):
            entries.append(entry)
    return entries, read.complete


def _explain_failure(message: str, query: JournalQuery) -> str:
    lowered = message.lower()
    if query.boot is not None and "boot" in lowered:
        return f"invalid argument 'boot': {message}"
    if query.grep and ("pattern" in lowered or "grep" in lowered or "pcre" in lowered):
        return f"invalid argument 'grep': {message}"
    if query.position is not None and "cursor" in lowered:
        return f"invalid argument 'cursor': {message}"
    return message


async def main_processes(ctx: ToolContext, units: Sequence[str]) -> list[MainProcess]:
    """The last main process of each of `units` that is a service the system manager knows (at most a few)."""
    found = []
    for unit in list(units)[:MAX_PROCESS_LOOKUPS]:
        if systemd.unit_type(unit) != "service":
            continue
        try:
            path = await systemd.get_unit(ctx, "system", unit)
            typed = await systemd.properties(ctx, "system", path, systemd.TYPE_INTERFACES["service"]) if path else {}
        except (BusError, ToolError):
            continue  # no manager to ask: the unit's attributed lines still answer
        process = MainProcess.of(unit, typed)
        if process is not None:
            found.append(process)
    return found


async def query_journal(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    query = JournalQuery(args, datetime.now(UTC), await main_processes(ctx, _units(args)))
    entries, exhausted = await read_entries(ctx, query)
    page = output.take([entry_row(e, query.fields) for e in entries], query.limit)
    shown = entries[: len(page.rows)]
    rows = page.rows
    result: dict[str, Any] = {}
    if query.mode == "tail":
        rows = list(reversed(rows))
        # The cursor follows what comes next: entries newer than the newest shown.
        newest = shown[0] if shown else None
        result["next_cursor"] = query.cursor_after(newest) if newest else None
        result["more"] = False
        if page.more or not exhausted:
            result["earlier"] = "older entries exist: pass since (or reverse=true) to page through them"
    else:
        last = shown[-1] if shown else None
        result["next_cursor"] = query.cursor_after(last) if last else args.get("cursor")
        result["more"] = page.more or not exhausted
    if query.units and not rows and "cursor" not in args:
        await _check_units_exist(ctx, query.units)
    window = query._stored_window()
    return {
        "entries": rows,
        "count": len(rows),
        "window": {
            "since": iso(from_usec(window["since"])) if window["since"] is not None else None,
            "until": iso(from_usec(window["until"])) if window["until"] is not None else None,
        },
        "order": "newest first" if query.mode == "reverse" else "oldest first",
        **result,
        **({"truncated": [page.note]} if page.note else {}),
    }


async def _check_units_exist(ctx: ToolContext, units: list[str]) -> None:
    """No entries at all for units the manager has never heard of is most likely a misspelt name: say so."""
    for unit in units:
        try:
            if await systemd.get_unit(ctx, "system", unit) or await systemd.unit_file_state(ctx, "system", unit):
                return
        except (ToolError, BusError):
            return  # no manager to ask: an empty answer stands
    known = await systemd.known_units(ctx, "system")
    close = [name for unit in units for name in nearest(unit, known, 2)]
    hint = f"; did you mean {either(list(dict.fromkeys(close)))}?" if close else ""
    raise ToolError(
        f"no journal entries, and no unit {', '.join(repr(u) for u in units)} is loaded or installed "
        f"(argument 'unit'){hint} (list_units and list_unit_files show the units there are)"
    )


async def recent_rows(
    ctx: ToolContext, unit: str, count: int, process: MainProcess | None = None
) -> list[dict[str, Any]]:
    """The unit's last `count` journal entries as rows (oldest first), with its last main process's lines."""
    if count <= 0:
        return []
    # A few more than asked: lines of an older process that had the same PID are read, then dropped.
    query = JournalQuery({"unit": unit, "limit": count + 10}, datetime.now(UTC), [process] if process else [])
    entries, _ = await read_entries(ctx, query)
    return [{**entry_row(e, []), "unit": unit} for e in reversed(entries[:count])]


async def recent_lines(ctx: ToolContext, unit: str, count: int, process: MainProcess | None = None) -> list[str]:
    """The unit's last `count` journal lines (oldest first), for status and failure reports."""
    return [row["message"] for row in await recent_rows(ctx, unit, count, process)]


ROW = {
    "type": "object",
    "properties": {
        "time": {"type": ["string", "null"]},
        "unit": {"type": ["string", "null"]},
        "priority": {"type": ["integer", "null"]},
        "ident": {"type": ["string", "null"]},
        "pid": {"type": ["integer", "null"]},
        "message": {"type": "string"},
    },
    "required": ["time", "unit", "priority", "ident", "pid", "message"],
}


def journal_tools() -> list[ToolSpec]:
    return [
        ToolSpec(
            name="query_journal",
            title="Query the journal",
            description="Journal entries by unit, priority, time window, boot, pattern. With since: the first limit "
            "entries of the window (reverse: newest first); else the newest. Times: ISO, -15m, 1 hour ago, "
            "yesterday. next_cursor continues, or later fetches only new entries.",
            input_schema=s.obj(
                {
                    "unit": systemd.unit_schema("Only this unit's entries (its output and the manager's about it)."),
                    "units": {"type": "array", "items": systemd.unit_schema("A unit."), "maxItems": 16},
                    "priority": {
                        "type": "string",
                        "enum": list(PRIORITIES),
                        "description": "This priority and more severe, e.g. err.",
                    },
                    "since": {"type": "string", "maxLength": 64, "description": "Start of the window."},
                    "until": {"type": "string", "maxLength": 64, "description": "End of the window."},
                    "boot": {
                        "anyOf": [
                            {"type": "integer", "minimum": -1000, "maximum": 0},
                            {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                        ],
                        "description": "0 = this boot, -1 the one before, or a boot id.",
                        s.EXPECTED: "0 (this boot), -1 (the one before) down to -1000, or a 32-hex-digit boot id",
                    },
                    "grep": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 256,
                        "description": "PCRE pattern on the message (case-insensitive when all lowercase).",
                    },
                    "fields": {
                        "type": "array",
                        "items": {
                            "type": "string",
                            "pattern": FIELD_PATTERN,
                            s.EXPECTED: "a journal field name in capitals, such as _HOSTNAME or CODE_FILE",
                        },
                        "maxItems": 16,
                        "description": "Extra journal fields as columns, e.g. _HOSTNAME, CODE_FILE.",
                    },
                    "limit": s.integer("Most entries to return.", 1, MAX_LIMIT, DEFAULT_LIMIT),
                    "cursor": {"type": "string", "maxLength": 2048, "description": "next_cursor of a previous call."},
                    "reverse": {"type": "boolean", "default": False, "description": "Newest first."},
                    "format": output.format_schema("toon"),
                }
            ),
            output_schema=s.obj(
                {
                    "entries": {"type": "array", "items": ROW},
                    "count": {"type": "integer"},
                    "window": {"type": "object"},
                    "order": {"type": "string"},
                    "next_cursor": {"type": ["string", "null"]},
                    "more": {"type": "boolean", "description": "More entries follow now; continue with next_cursor."},
                    "earlier": {"type": "string"},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["entries", "count", "window", "order", "next_cursor", "more"],
            ),
            annotations=Annotations(read_only=True, destructive=False, idempotent=True),
            handler=query_journal,
            operations=(OperationPattern(kind=JOURNAL_QUERY, risks=frozenset({Risk.READ})),),
        )
    ]
