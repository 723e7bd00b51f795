"""Narrowing answers too big to be useful: a JMESPath selection of the parts wanted, and pages of one list (or
map) of an answer within a character budget, continued by a cursor bound to the arguments that made it.

`fit` in fleetbus.output cuts whatever is over the hard ceiling as a last resort; this is the lean default a
tool offers on purpose: the first page within a small budget, saying where it is in the whole and how to go on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbus.output import MAX_RESULT_CHARS, largest_list, render_json, replace_at

DEFAULT_BUDGET = 8_000
"""About 2,000 tokens of compact JSON: enough to see the shape of an answer, cheap enough to ask for more."""
MIN_BUDGET = 1_000
MAX_BUDGET = MAX_RESULT_CHARS
RESERVE = 200
"""Room kept for the page description and the cursor that go with a page."""
SELECT_EXAMPLE = "values[0][*][0], or values[0][?contains([0], 'login1')]"


class NarrowingError(ValueError):
    """A selection or a cursor that cannot be applied; the message names the argument."""


def select(value: Any, expression: str, argument: str = "select") -> Any:
    """`expression` (JMESPath) applied to `value`; NarrowingError when it does not parse or selects nothing."""
    import jmespath  # noqa: PLC0415 -- imported by the first call that selects, not by every server's start
    from jmespath.exceptions import JMESPathError  # noqa: PLC0415

    try:
        compiled = jmespath.compile(expression)
    except JMESPathError as exc:
        raise NarrowingError(
            f"invalid argument {argument!r}: {expression!r} is not a JMESPath expression ({_first_line(exc)}); "
            f"e.g. {SELECT_EXAMPLE}"
        ) from exc
    try:
        selected = compiled.search(value)
    except JMESPathError as exc:
        raise NarrowingError(f"invalid argument {argument!r}: {_first_line(exc)}") from exc
    if selected is None:
        keys = ", ".join(value) if isinstance(value, Mapping) else "none"
        raise NarrowingError(
            f"argument {argument!r}: {expression!r} selects nothing in the answer (its keys: {keys}; structs are "
            f"arrays, so fields go by position), e.g. {SELECT_EXAMPLE}"
        )
    return selected


def _first_line(exc: Exception) -> str:
    """jmespath's messages end with the expression drawn again over two lines; the column says the same."""
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return line.removesuffix(", for expression:").removesuffix(":")


@dataclass(frozen=True)
class Paged:
    value: dict[str, Any]
    page: dict[str, Any] | None = None
    """Where this page is in the whole: which list, its first item, how many are shown, how many there are."""
    resume: dict[str, Any] | None = None
    """The position of the next page (for a cursor); None on the last page."""


def _at(value: Any, path: Sequence[str]) -> Any:
    for key in path:
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return None
    return value


def page(
    value: dict[str, Any], budget: int, resume: Mapping[str, Any] | None = None, path: Sequence[str] | None = None
) -> Paged:
    """`value` within `budget` characters of JSON: the largest list (or the container at `path`: a list or a map)
    cut to the items that fit, from `resume` (a position a previous page returned) on."""
    if resume is not None:
        path, offset = resume.get("path"), resume.get("offset")
        if not isinstance(path, list) or not isinstance(offset, int):
            raise NarrowingError("invalid argument 'cursor': not a cursor this tool returned")
    else:
        offset = 0
        if len(render_json(value)) <= budget:
            return Paged(value)
        if path is None:
            found = largest_list(value)
            if found is None:
                return Paged(value)
            path = found[0]
    container = _at(value, path)
    if not isinstance(container, list | dict) or offset > len(container):
        raise NarrowingError(
            "invalid argument 'cursor': the answer has changed since the cursor was made; leave the cursor out to "
            "start again"
        )
    items = list(container.items())[offset:] if isinstance(container, dict) else container[offset:]
    room = budget - RESERVE - len(render_json(replace_at(value, list(path), type(container)())))
    kept = 0
    for item in items:
        room -= len(render_json(item)) + 1
        if kept and room < 0:
            break
        kept += 1
    shown: Any = dict(items[:kept]) if isinstance(container, dict) else items[:kept]
    total = len(container)
    more = offset + kept < total
    description = {"of": "/".join(path) or "(top)", "first": offset, "count": kept, "total": total}
    return Paged(
        replace_at(value, list(path), shown),
        description,
        {"path": list(path), "offset": offset + kept} if more else None,
    )
