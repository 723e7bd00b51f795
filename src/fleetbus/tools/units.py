"""Reading systemd units: list_units, unit_status, list_unit_files, unit_dependencies — from the service
manager's D-Bus API (typed values, no `systemctl` text to parse), every list with a limit and a cursor."""

from __future__ import annotations

import asyncio
import fnmatch
from typing import Any

from fleetbus import output
from fleetbus.guard.catalog import Risk
from fleetbus.guard.policy import OperationPattern
from fleetbus.operation import JOURNAL_QUERY
from fleetbus.tools import schema as s
from fleetbus.tools import systemd, unit_states
from fleetbus.tools.journal import MainProcess, recent_lines
from fleetbus.tools.registry import Annotations, ToolContext, ToolError, ToolSpec
from fleetbus.tools.times import from_usec, iso

READ = Annotations(read_only=True, destructive=False, idempotent=True)
READS = frozenset({Risk.READ})
MANAGER_READS = (OperationPattern(destination=systemd.SYSTEMD, risks=READS),)
STATUS_READS = (*MANAGER_READS, OperationPattern(kind=JOURNAL_QUERY, risks=READS))
EXEC_CODES = {1: "exited", 2: "killed", 3: "dumped"}
RELATIONS = {
    "requires": (
        "Requires",
        "Requisite",
        "Wants",
        "BindsTo",
        "PartOf",
        "Upholds",
        "Conflicts",
        "OnFailure",
        "Triggers",
    ),
    "required_by": (
        "RequiredBy",
        "RequisiteOf",
        "WantedBy",
        "BoundBy",
        "ConsistsOf",
        "UpheldBy",
        "ConflictedBy",
        "TriggeredBy",
    ),
    "ordering": ("After", "Before"),
}
GLOB = {"type": "string", "maxLength": 255}
STATE_PATTERN = "^[a-z-]{1,32}$"


def _cursor(args: dict[str, Any], kind: str, selection: dict[str, Any]) -> dict[str, Any] | None:
    if "cursor" not in args:
        return None
    try:
        return output.decode_cursor(args["cursor"], kind, selection)
    except output.CursorError as exc:
        raise ToolError(str(exc)) from exc


def _paged(
    rows: list[dict[str, Any]], key: str, args: dict[str, Any], kind: str, selection: dict[str, Any]
) -> dict[str, Any]:
    """Rows sorted by `key`, continuing after the cursor's key: stable when rows come and go between pages."""
    position = _cursor(args, kind, selection)
    rows = sorted(rows, key=lambda row: str(row[key]))
    if position is not None:
        rows = [row for row in rows if str(row[key]) > str(position.get("after", ""))]
    limit = int(args.get("limit", 100))
    page = output.take(rows[: limit + 1], limit)
    next_cursor = (
        output.encode_cursor(kind, selection, {"after": page.rows[-1][key]}) if page.more and page.rows else None
    )
    return {
        "rows": page.rows,
        "remaining": len(rows) - len(page.rows),
        "next_cursor": next_cursor,
        **({"truncated": [page.note]} if page.note else {}),
    }


def _timestamp(value: Any) -> str | None:
    return iso(from_usec(value)) if isinstance(value, int) and value > 0 else None


# ---- list_units ----------------------------------------------------------------------------------


async def list_units(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    bus = systemd.bus_of(args)
    unit_type = args.get("type")
    patterns = [args["pattern"]] if "pattern" in args else ([f"*.{unit_type}"] if unit_type else [])
    states = [args["state"]] if "state" in args else []
    (units,) = await systemd.manager_call(ctx, bus, "ListUnitsByPatterns", "asas", [states, patterns])
    if states and not units and unit_states.unknown_unit_state(states[0]):
        # Nothing matched a state fleetbus does not know: a misspelling, unless some unit is in it right now.
        (every,) = await systemd.manager_call(ctx, bus, "ListUnits")
        error = unit_states.unknown_unit_state(states[0], {str(state) for u in every for state in u[2:5]})
        if error:
            raise ToolError(error)
    rows = [
        {"unit": str(u[0]), "load": str(u[2]), "active": str(u[3]), "sub": str(u[4]), "description": str(u[1])}
        for u in units
        if not unit_type or systemd.unit_type(str(u[0])) == unit_type
    ]
    selection = {
        "manager": args.get("manager", "system"),
        "pattern": args.get("pattern"),
        "state": args.get("state"),
        "type": unit_type,
    }
    paged = _paged(rows, "unit", args, "list_units", selection)
    return {"units": paged.pop("rows"), "total": len(rows), **paged}


# ---- unit_status ---------------------------------------------------------------------------------


NOT_LOADED = {
    "load": "not-loaded",
    "active": "inactive",
    "sub": "dead",
    "result": None,
    "main_pid": None,
    "exec_pid": None,
}


async def unit_state(ctx: ToolContext, bus: str, unit: str) -> dict[str, Any]:
    """The few properties that say how a unit is: load, active and sub state, result, main pid, and the pid of
    its last main process (still known after it exited)."""
    path = await systemd.get_unit(ctx, bus, unit)
    if path is None:
        return dict(NOT_LOADED)
    props = await systemd.properties(ctx, bus, path, systemd.UNIT)
    typed = await _typed_properties(ctx, bus, path, unit)
    return {
        "load": props.get("LoadState"),
        "active": props.get("ActiveState"),
        "sub": props.get("SubState"),
        "result": typed.get("Result"),
        "main_pid": typed.get("MainPID") or None,
        "exec_pid": typed.get("ExecMainPID") or None,
    }


async def _typed_properties(ctx: ToolContext, bus: str, path: str, unit: str) -> dict[str, Any]:
    interface = systemd.TYPE_INTERFACES.get(systemd.unit_type(unit))
    if interface is None or systemd.unit_type(unit) in ("target", "device", "automount"):
        return {}
    return await systemd.properties(ctx, bus, path, interface)


async def unit_status(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    bus = systemd.bus_of(args)
    unit = systemd.normalize_unit(args["unit"])

    async def from_the_bus() -> tuple[str | None, dict[str, Any], dict[str, Any]]:
        path = await systemd.require_unit(ctx, bus, unit)
        if path is None:
            return None, {}, {}
        props, typed = await asyncio.gather(
            systemd.properties(ctx, bus, path, systemd.UNIT), _typed_properties(ctx, bus, path, unit)
        )
        return path, props, typed

    path, props, typed = await from_the_bus()
    lines = await recent_lines(ctx, unit, int(args.get("lines", 5)), MainProcess.of(unit, typed))
    if path is None:
        return {
            "unit": unit,
            "description": None,
            "load": "not-loaded",
            "active": "inactive",
            "sub": "dead",
            "unit_file": await systemd.unit_file_state(ctx, bus, unit),
            "lines": lines,
        }
    exec_status = None
    if typed.get("ExecMainExitTimestamp") or typed.get("ExecMainCode"):
        exec_status = {
            "code": EXEC_CODES.get(typed.get("ExecMainCode", 0), str(typed.get("ExecMainCode"))),
            "status": typed.get("ExecMainStatus"),
        }
    cpu = systemd.counter(typed.get("CPUUsageNSec"))
    return {
        "unit": unit,
        "description": props.get("Description"),
        "load": props.get("LoadState"),
        "active": props.get("ActiveState"),
        "sub": props.get("SubState"),
        "result": typed.get("Result"),
        "unit_file": props.get("UnitFileState") or None,
        "since": _timestamp(props.get("StateChangeTimestamp")),
        "active_since": _timestamp(props.get("ActiveEnterTimestamp")),
        "main_pid": typed.get("MainPID") or None,
        "exec_status": exec_status,
        "restarts": typed.get("NRestarts"),
        "memory_bytes": systemd.counter(typed.get("MemoryCurrent")),
        "cpu_seconds": round(cpu / 1e9, 3) if cpu is not None else None,
        "tasks": systemd.counter(typed.get("TasksCurrent")),
        "fragment": props.get("FragmentPath") or None,
        "lines": lines,
    }


# ---- list_unit_files -----------------------------------------------------------------------------


async def list_unit_files(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    bus = systemd.bus_of(args)
    patterns = [args["pattern"]] if "pattern" in args else []
    states = [args["state"]] if "state" in args else []
    (files,) = await systemd.manager_call(ctx, bus, "ListUnitFilesByPatterns", "asas", [states, patterns])
    if states and not files and unit_states.unknown_unit_file_state(states[0]):
        (every,) = await systemd.manager_call(ctx, bus, "ListUnitFiles")
        error = unit_states.unknown_unit_file_state(states[0], {str(state) for _, state in every})
        if error:
            raise ToolError(error)
    rows = [{"unit": str(path).rsplit("/", 1)[-1], "state": str(state)} for path, state in files]
    selection = {"manager": args.get("manager", "system"), "pattern": args.get("pattern"), "state": args.get("state")}
    paged = _paged(rows, "unit", args, "list_unit_files", selection)
    return {"unit_files": paged.pop("rows"), "total": len(rows), **paged}


# ---- unit_dependencies ---------------------------------------------------------------------------


async def unit_dependencies(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    bus = systemd.bus_of(args)
    unit = systemd.normalize_unit(args["unit"])
    direction = str(args.get("direction", "requires"))
    path = await systemd.require_unit(ctx, bus, unit)
    if path is None:
        raise ToolError(f"unit {unit!r} is not loaded, so the manager knows none of its dependencies; start it first")
    props = await systemd.properties(ctx, bus, path, systemd.UNIT)
    rows = [
        {"key": f"{index:02d}:{dep}", "relation": relation, "unit": str(dep)}
        for index, relation in enumerate(RELATIONS[direction])
        for dep in props.get(relation) or []
    ]
    if "pattern" in args:
        rows = [row for row in rows if fnmatch.fnmatchcase(row["unit"], args["pattern"])]
    selection = {
        "manager": args.get("manager", "system"),
        "unit": unit,
        "direction": direction,
        "pattern": args.get("pattern"),
    }
    paged = _paged(rows, "key", args, "unit_dependencies", selection)
    shown = paged.pop("rows")
    states: dict[str, tuple[str, str]] = {}
    if shown:
        (listed,) = await systemd.manager_call(ctx, bus, "ListUnitsByNames", "as", [[row["unit"] for row in shown]])
        states = {str(u[0]): (str(u[3]), str(u[4])) for u in listed}
    for row in shown:
        active, sub = states.get(row["unit"], ("inactive", "dead"))
        row.pop("key")
        row.update(active=active, sub=sub)
    return {"unit": unit, "direction": direction, "dependencies": shown, "total": len(rows), **paged}


# ---- the specs -----------------------------------------------------------------------------------


def _list_output(key: str, row: dict[str, Any]) -> dict[str, Any]:
    return s.obj(
        {
            key: {"type": "array", "items": row},
            "total": {"type": "integer", "description": "Rows matching, on all pages."},
            "remaining": {"type": "integer", "description": "Rows after this page."},
            "next_cursor": {"type": ["string", "null"], "description": "Pass as cursor for the next page."},
            "unit": {"type": "string"},
            "direction": {"type": "string"},
            "truncated": {"type": "array", "items": {"type": "string"}},
        },
        [key, "total", "remaining", "next_cursor"],
    )


def _row(*names: str) -> dict[str, Any]:
    return {"type": "object", "properties": {n: {"type": "string"} for n in names}, "required": list(names)}


def paging(default: int = 100) -> dict[str, Any]:
    return {
        "limit": s.integer("Most rows to return.", 1, 1000, default),
        "cursor": {"type": "string", "maxLength": 1024, "description": "next_cursor of the previous page."},
        "format": output.format_schema("toon"),
    }


NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}


def unit_read_tools() -> list[ToolSpec]:
    manager = systemd.manager_schema()
    return [
        ToolSpec(
            name="list_units",
            title="List units",
            description="Loaded units with load/active/sub state; filter by glob, state (e.g. failed) and type.",
            input_schema=s.obj(
                {
                    "pattern": {**GLOB, "description": "Glob on the unit name, e.g. worker-*.service."},
                    "state": {
                        "type": "string",
                        "pattern": STATE_PATTERN,
                        "description": "Load, active or sub state, e.g. failed.",
                        s.EXPECTED: "a unit state in lower case, such as failed, running or loaded",
                    },
                    "type": {"type": "string", "enum": list(systemd.UNIT_TYPES)},
                    "manager": manager,
                    **paging(),
                }
            ),
            output_schema=_list_output("units", _row("unit", "load", "active", "sub", "description")),
            annotations=READ,
            handler=list_units,
            operations=MANAGER_READS,
        ),
        ToolSpec(
            name="unit_status",
            title="Status of a unit",
            description="One unit: states, result, main pid, exit status, restarts, memory, CPU, tasks, since, unit "
            "file, last log lines.",
            input_schema=s.obj(
                {
                    "unit": systemd.unit_schema(),
                    "lines": s.integer("Last journal lines to include.", 0, 50, 5),
                    "manager": manager,
                    "format": output.format_schema("json"),
                },
                ["unit"],
            ),
            output_schema=s.obj(
                {
                    "unit": {"type": "string"},
                    "description": NULLABLE_STRING,
                    "load": {"type": "string"},
                    "active": {"type": "string"},
                    "sub": {"type": "string"},
                    "result": NULLABLE_STRING,
                    "unit_file": NULLABLE_STRING,
                    "since": NULLABLE_STRING,
                    "active_since": NULLABLE_STRING,
                    "main_pid": NULLABLE_INT,
                    "exec_status": {"type": ["object", "null"]},
                    "restarts": NULLABLE_INT,
                    "memory_bytes": NULLABLE_INT,
                    "cpu_seconds": {"type": ["number", "null"]},
                    "tasks": NULLABLE_INT,
                    "fragment": NULLABLE_STRING,
                    "lines": {"type": "array", "items": {"type": "string"}},
                    "truncated": {"type": "array", "items": {"type": "string"}},
                },
                ["unit", "load", "active", "sub", "lines"],
            ),
            annotations=READ,
            handler=unit_status,
            operations=STATUS_READS,
        ),
        ToolSpec(
            name="list_unit_files",
            title="List unit files",
            description="Installed unit files and their state (enabled, disabled, static, masked…).",
            input_schema=s.obj(
                {
                    "pattern": {**GLOB, "description": "Glob on the unit name."},
                    "state": {
                        "type": "string",
                        "pattern": STATE_PATTERN,
                        "description": "e.g. enabled.",
                        s.EXPECTED: "a unit file state in lower case, such as enabled, disabled or static",
                    },
                    "manager": manager,
                    **paging(),
                }
            ),
            output_schema=_list_output("unit_files", _row("unit", "state")),
            annotations=READ,
            handler=list_unit_files,
            operations=MANAGER_READS,
        ),
        ToolSpec(
            name="unit_dependencies",
            title="Dependencies of a unit",
            description="What a unit requires/wants, what requires it (required_by) or its ordering, with their "
            "states.",
            input_schema=s.obj(
                {
                    "unit": systemd.unit_schema(),
                    "direction": {"type": "string", "enum": list(RELATIONS), "default": "requires"},
                    "pattern": {**GLOB, "description": "Glob on the dependency's name."},
                    "manager": manager,
                    **paging(),
                },
                ["unit"],
            ),
            output_schema=_list_output("dependencies", _row("relation", "unit", "active", "sub")),
            annotations=READ,
            handler=unit_dependencies,
            operations=MANAGER_READS,
        ),
    ]
