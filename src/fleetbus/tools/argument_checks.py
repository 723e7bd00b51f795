"""What JSON Schema cannot say about arguments, checked once for every tool before its schema: numbers are finite
(`"type": "number"` admits NaN and ±infinity), and strings — keys too — hold no NUL and no lone surrogate (neither
can reach an argv, a D-Bus string or the audit log's UTF-8)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from fleetbus.tools.argument_errors import location

_SURROGATE = re.compile("[\ud800-\udfff]")


def _string_problem(text: str) -> str | None:
    # `in` and one regex search run at C speed: a 1 MB string costs about a millisecond.
    if "\x00" in text:
        return f"contains a NUL character (at position {text.index(chr(0))}); no argument may hold one"
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:
        return f"contains a lone surrogate (U+{ord(surrogate.group()):04X} at position {surrogate.start()}), not text"
    return None


def _number_problem(value: float) -> str | None:
    if math.isfinite(value):
        return None
    shown = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return f"must be a finite number, got {shown}"


_Link = tuple[str | int, "_Link"] | None
"""Where a value is, as (its key, its container's link): building a path per value would cost O(depth²)."""


def _path(link: _Link) -> list[str | int]:
    parts: list[str | int] = []
    while link is not None:
        parts.append(link[0])
        link = link[1]
    return parts[::-1]


_SCALARS = (str, int, bool, type(None))
"""Values that hold nothing to check but their text: a float may be NaN, a container holds more values."""


def _flat_and_clean(arguments: Mapping[str, Any]) -> bool:
    """The usual call — names and values that are strings, integers, booleans — with no NUL and no lone surrogate
    anywhere: checked in one search over all of its text (joining strings makes no new code point)."""
    if not all(type(value) in _SCALARS for value in arguments.values()):
        return False
    texts = [key for key in arguments if type(key) is str]
    if len(texts) != len(arguments):
        return False
    texts.extend(value for value in arguments.values() if type(value) is str)
    joined = "".join(texts)
    return "\x00" not in joined and _SURROGATE.search(joined) is None


def argument_problem(arguments: Mapping[str, Any]) -> str | None:
    """A non-finite number or unsafe string in `arguments`, named by where it is, or None.

    Iterative, so nesting as deep as a caller can send costs no recursion."""
    return None if _flat_and_clean(arguments) else walked_problem(arguments)


def walked_problem(arguments: Mapping[str, Any]) -> str | None:
    """`argument_problem` by visiting every value: what the one-search shortcut must agree with."""
    pending: list[tuple[_Link, Any]] = [(None, arguments)]
    while pending:
        link, value = pending.pop()
        problem: str | None = None
        if isinstance(value, float):
            problem = _number_problem(value)
        elif isinstance(value, str):
            problem = _string_problem(value)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                key_problem = _string_problem(key) if isinstance(key, str) else None
                if key_problem is not None:
                    where = f" in {location(_path(link))!r}" if link is not None else ""
                    return f"invalid argument name{where}: it {key_problem}"
                pending.append(((str(key), link), item))
        elif isinstance(value, list | tuple):
            pending.extend(((index, link), item) for index, item in enumerate(value))
        if problem is not None:
            return f"invalid argument {location(_path(link))!r}: {problem}"
    return None
