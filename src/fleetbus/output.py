"""Result shaping shared by every tool: text hygiene for system-supplied strings, JSON rendering, a size budget."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetbus.guard.approvals import Approval

MAX_RESULT_CHARS = 60_000
"""About 15,000 tokens of compact JSON: well under the 25,000-token ceiling clients put on one result."""

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")
# C0/C1 controls except tab and newline, DEL, and the Unicode bidi overrides/isolates/marks that can make
# text read differently from what it is.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: str) -> str:
    """System-supplied text is data: drop escape sequences, control and bidi characters."""
    return _UNSAFE.sub("", _ANSI.sub("", text))


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
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


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


def success(structured: dict[str, Any], *, budget: int = MAX_RESULT_CHARS) -> ToolResult:
    try:
        shaped, notes = fit(clean(structured), budget)
    except OverBudget as exc:
        return error(str(exc))
    if notes:
        shaped = {**shaped, "truncated": notes}
    return ToolResult(shaped, render_json(shaped), notes=notes)


class OverBudget(ValueError):
    pass


def fit(value: dict[str, Any], budget: int) -> tuple[dict[str, Any], list[str]]:
    """Shorten the largest lists until the JSON fits `budget` characters, saying what was cut."""
    notes: list[str] = []
    for _ in range(32):
        size = len(render_json(value))
        if size <= budget:
            return value, notes
        location = _largest_list(value)
        if location is None:
            break
        path, items = location
        if len(items) <= 1:
            break
        keep = max(1, int(len(items) * budget / size * 0.9))
        keep = min(keep, len(items) - 1)
        value = _replace(value, path, items[:keep])
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


def _largest_list(value: Any) -> tuple[list[str], list[Any]] | None:
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


def _replace(value: Any, path: list[str], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        copy = list(value)
        copy[int(head)] = _replace(copy[int(head)], rest, new)
        return copy
    copy_dict = dict(value)
    copy_dict[head] = _replace(copy_dict[head], rest, new)
    return copy_dict
