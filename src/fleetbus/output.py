"""Result shaping shared by every tool: text hygiene for system-supplied strings, one rendering of each result
(TOON for tables, or JSON), opaque cursors for lists, and a size budget.

The output contract: `structuredContent` always carries the JSON; the text content carries exactly one
rendering of the same value — TOON (uniform rows as tab-separated tables) or JSON, as the caller chose with
`format`; every list has a `limit` and an opaque cursor; no result exceeds the budget, and one that had to be
shortened says so in `truncated`.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetbus import json_text

if TYPE_CHECKING:
    from fleetbus.guard.approvals import Approval

MAX_RESULT_CHARS = 60_000
"""About 15,000 tokens of compact JSON: well under the 25,000-token ceiling clients put on one result."""
ROWS_BUDGET = 48_000
"""What the rows of one page may take, leaving room for the rest of the result within MAX_RESULT_CHARS."""

FORMATS = ("toon", "json")
TOON_DELIMITER = "\t"
"""Tabs need no quoting around commas in descriptions and cost fewer tokens than commas (about 4 % on unit
tables under cl100k)."""

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")
_ASCII_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
"""C0 controls except tab and newline, and DEL: all an ASCII string can hide."""
INVISIBLE = (
    # Controls except tab and newline: C0, DEL, C1.
    (0x00, 0x08),
    (0x0B, 0x1F),
    (0x7F, 0x9F),
    # Format characters (Unicode category Cf): soft hyphen, Arabic and Syriac format marks, zero-width space,
    # joiners and marks, bidi embeddings, overrides and isolates, word joiner and invisible operators, BOM,
    # interlinear annotation, and the format controls of later planes.
    (0xAD, 0xAD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),  # with the line and paragraph separators (Zl, Zp)
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE007F),  # tag characters ("ASCII smuggling"), the unassigned ones too
    # Not Cf, but invisible all the same: variation selectors (they can carry bytes no one sees), the
    # combining grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian selectors.
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180D),
    (0x180F, 0x180F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xE0100, 0xE01EF),
)
"""Every character a person cannot see that could still carry instructions. A test checks that it covers every
Cc, Cf, Zl and Zp character of this Python's Unicode tables; written out so importing costs nothing."""
_UNSAFE = re.compile("[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in INVISIBLE) + "]")


def clean_text(text: str) -> str:
    """System-supplied text is data: drop escape sequences, controls, and every invisible formatting character
    (bidi controls, zero-width characters, tag characters, line/paragraph separators, BOM)."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    # Most strings are ASCII, where only controls can hide; the full class costs more to scan.
    return _ASCII_UNSAFE.sub("", text) if text.isascii() else _UNSAFE.sub("", text)


def clean(value: Any) -> Any:
    """`clean_text` over every string (keys too) in a JSON value."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: clean(v) for k, v in value.items()}
    return value


def render_json(value: Any) -> str:
    return json_text.compact(value)


def render_toon(value: Any) -> str:
    import toon_format  # noqa: PLC0415 -- imported by the first table rendered, not by every server's start

    return toon_format.dumps(value, delimiter=TOON_DELIMITER)


def render(value: Any, fmt: str) -> str:
    """The one text rendering of a result."""
    return render_toon(value) if fmt == "toon" else render_json(value)


def format_schema(default: str) -> dict[str, Any]:
    """The `format` argument every tool takes; tools returning tables default to TOON."""
    return {
        "type": "string",
        "enum": list(FORMATS),
        "default": default,
        "description": "Text form: toon (compact tables) or json.",
    }


def requested_format(input_schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> str:
    """The format a call asked for, else the tool's default (JSON for tools that take no `format`)."""
    chosen = arguments.get("format")
    if chosen in FORMATS:
        return str(chosen)
    declared = input_schema.get("properties", {}).get("format", {})
    default = declared.get("default") if isinstance(declared, Mapping) else None
    return str(default) if default in FORMATS else "json"


@dataclass
class ToolResult:
    structured: dict[str, Any]
    text: str
    is_error: bool = False
    notes: list[str] = field(default_factory=list)
    approval: Approval | None = None
    """Set when the call waits for a person's approval, so the server can ask through elicitation."""


def error(message: str) -> ToolResult:
    message = clean_text(message)
    return ToolResult({"error": message}, message, is_error=True)


def success(structured: dict[str, Any], *, fmt: str = "json", budget: int = MAX_RESULT_CHARS) -> ToolResult:
    cleaned = clean(structured)
    rendered = render_json(cleaned)
    if len(rendered) <= budget:
        # Most results fit as they are: their JSON, rendered once to measure it, is the text too.
        return ToolResult(cleaned, rendered if fmt == "json" else render_toon(cleaned))
    try:
        shaped, notes = fit(cleaned, budget)
    except OverBudget as exc:
        return error(str(exc))
    if notes:
        shaped = {**shaped, "truncated": [*shaped.get("truncated", []), *notes]}
    return ToolResult(shaped, render(shaped, fmt), notes=notes)


class OverBudget(ValueError):
    pass


def fit(value: dict[str, Any], budget: int) -> tuple[dict[str, Any], list[str]]:
    """Shorten the largest lists until the JSON fits `budget` characters, saying what was cut.

    A last resort: list tools fit their pages first (`take`) so their cursor continues right after the last
    row shown; this catches everything else.
    """
    notes: list[str] = []
    for _ in range(32):
        size = len(render_json(value))
        if size <= budget:
            return value, notes
        location = largest_list(value)
        if location is None:
            break
        path, items = location
        if len(items) <= 1:
            break
        keep = max(1, int(len(items) * budget / size * 0.9))
        keep = min(keep, len(items) - 1)
        value = replace_at(value, path, items[:keep])
        notes.append(
            f"{'/'.join(path) or '(top)'}: kept {keep} of {len(items)} items to stay under "
            f"{budget} characters; narrow the request to see the rest"
        )
    size = len(render_json(value))
    if size > budget:
        raise OverBudget(
            f"the result is {size} characters even after shortening its lists, over the budget of "
            f"{budget}; narrow the request"
        )
    return value, notes


def largest_list(value: Any) -> tuple[list[str], list[Any]] | None:
    """The path to the list with the longest JSON among those of more than one item, and the list itself."""
    best: tuple[int, list[str], list[Any]] | None = None

    def visit(node: Any, path: list[str]) -> None:
        nonlocal best
        if isinstance(node, list):
            size = len(render_json(node))
            if len(node) > 1 and (best is None or size > best[0]):
                best = (size, path, node)
            for index, item in enumerate(node):
                visit(item, [*path, str(index)])
        elif isinstance(node, dict):
            for key, item in node.items():
                visit(item, [*path, str(key)])

    visit(value, [])
    return None if best is None else (best[1], best[2])


def replace_at(value: Any, path: list[str], new: Any) -> Any:
    """A copy of `value` with `new` at `path` (keys, and list indexes as digits); `value` itself is unchanged."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        copy = list(value)
        copy[int(head)] = replace_at(copy[int(head)], rest, new)
        return copy
    copy_dict = dict(value)
    copy_dict[head] = replace_at(copy_dict[head], rest, new)
    return copy_dict


# ---- pages ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """The rows one call returns out of those it looked at."""

    rows: list[dict[str, Any]]
    more: bool
    """Rows beyond these exist (the caller continues with the cursor)."""
    note: str | None = None
    """Set when the budget, not `limit`, ended the page."""


def take(rows: Sequence[dict[str, Any]], limit: int, budget: int = ROWS_BUDGET) -> Page:
    """The first rows, at most `limit` and at most `budget` characters of JSON, so that a cursor taken from
    the last row shown continues without a gap. `rows` may hold one row more than `limit`, to tell `more`."""
    kept: list[dict[str, Any]] = []
    size = 2
    for row in rows[:limit]:
        row_size = len(render_json(row)) + 1
        if kept and size + row_size > budget:
            return Page(
                kept, True, f"kept {len(kept)} rows to stay under {budget} characters; continue with the cursor"
            )
        kept.append(row)
        size += row_size
    return Page(kept, len(rows) > len(kept))


# ---- cursors -------------------------------------------------------------------------------------


class CursorError(ValueError):
    """A cursor that is malformed, or belongs to another tool or another query."""


def fingerprint(query: Mapping[str, Any]) -> str:
    """Identifies the result set a cursor walks: the arguments that select rows (not limit or format)."""
    canonical = json.dumps(query, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


CURSOR_HOST: contextvars.ContextVar[str] = contextvars.ContextVar("cursor_host", default="local")
"""The host of the tool call being run (the tool registry sets it): every cursor is bound to its host, so one
made on host02 is refused on host03 without each tool passing the host down to its paging helpers."""


def encode_cursor(kind: str, query: Mapping[str, Any], position: Mapping[str, Any], *, host: str | None = None) -> str:
    """An opaque token: where to continue (`position`) in the result set of `kind` selected by `query` on `host`
    (by default the host of the tool call being run)."""
    made_on = host if host is not None else CURSOR_HOST.get()
    payload = render_json({"k": kind, "h": made_on, "q": fingerprint(query), "p": dict(position)})
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(token: str, kind: str, query: Mapping[str, Any], *, host: str | None = None) -> dict[str, Any]:
    """The position a cursor holds; CursorError when it is not one of ours, or was made for other arguments."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise CursorError(
            "invalid argument 'cursor': not a cursor this tool returned; pass next_cursor from a previous result"
        ) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("p"), dict):
        raise CursorError("invalid argument 'cursor': not a cursor this tool returned")
    if payload.get("k") != kind:
        raise CursorError(f"invalid argument 'cursor': it continues another tool's results, not {kind}'s")
    made_on = payload.get("h", "local")
    host = host if host is not None else CURSOR_HOST.get()
    if made_on != host:
        raise CursorError(
            f"invalid argument 'cursor': it continues results of host {made_on!r}, not {host!r}; leave the cursor out "
            "to start over on this host"
        )
    if payload.get("q") != fingerprint(query):
        raise CursorError(
            "invalid argument 'cursor': it continues a query with other arguments; repeat the original arguments "
            "with the cursor, or leave the cursor out to start over"
        )
    position: dict[str, Any] = payload["p"]
    return position
