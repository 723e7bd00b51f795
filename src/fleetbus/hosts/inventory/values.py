"""What an inventory variable may hold: JSON values (text, numbers, booleans, null, lists, mappings), so that
every host's variables can be shown or serialized — and checked for size before anyone tries."""

from __future__ import annotations

import ast
import math
import re
import warnings

from fleetbus.hosts.inventory.errors import InventoryError, InventoryLimitError, Location

_SCALARS = (str, int, float, bool, type(None))
# Values that cannot be Python literals, recognized without asking the parser (whose failures are costly, and
# most INI values are such text): text starting with a letter, without quotes, brackets, a comment, a comma
# (`None,1` is a tuple) or a space (`"True "` is True); a path; a dotted quad. Each would make literal_eval
# fail, so each stays text anyway.
_PLAIN_TEXT = re.compile(r"(?:[^\W\d][^'\"()\[\]{}#\\,\s]*|[/~].*|[0-9]+(?:\.[0-9]+){2,})")
_LITERAL_NAMES = {"True": True, "False": False, "None": None}
_PLAIN_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")


def check_document(document: object, *, limit: int, where: Location) -> None:
    """Refuses a parsed YAML or JSON document holding anything but JSON values, a value that contains itself,
    or more than `limit` values once every alias is written out (a "billion laughs" is a few hundred bytes)."""
    sizes: dict[int, int] = {}  # id → expanded size, so shared (aliased) values are measured once
    on_path: set[int] = set()
    # An explicit stack: the documents come from files, and deep nesting must not exhaust Python's stack.
    stack: list[tuple[object, bool]] = [(document, False)]
    while stack:
        value, children_done = stack.pop()
        if isinstance(value, _SCALARS):
            continue
        identity = id(value)
        if children_done:
            on_path.discard(identity)
            children = _children(value)
            size = 1 + sum(1 if isinstance(child, _SCALARS) else sizes[id(child)] for child in children)
            if size > limit:
                raise InventoryLimitError(
                    f"the document holds more than {limit:,} values once its aliases are expanded", where
                )
            sizes[identity] = size
            continue
        if identity in sizes:
            continue
        if identity in on_path:
            raise InventoryError("a value contains itself (a recursive YAML alias)", where)
        if not isinstance(value, list | dict):
            raise InventoryError(
                "variables hold JSON values (text, numbers, booleans, null, lists, mappings), "
                f"not {type(value).__name__}",
                where,
            )
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, _SCALARS):
                    raise InventoryError(f"a mapping key must be text or a number, not {type(key).__name__}", where)
        on_path.add(identity)
        stack.append((value, True))
        stack.extend((child, False) for child in _children(value))


def _children(value: object) -> list[object]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return list(value)
    return []


class _NotJson:
    """Marks a Python literal that JSON cannot hold."""


_NOT_JSON = _NotJson()


def _jsonable(value: object) -> object:
    """`value` as JSON (tuples become lists), or _NOT_JSON (sets, bytes, complex numbers, infinities)."""
    if isinstance(value, float) and not math.isfinite(value):
        return _NOT_JSON
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list | tuple):
        items = [_jsonable(item) for item in value]
        return _NOT_JSON if any(item is _NOT_JSON for item in items) else items
    if isinstance(value, dict):
        converted = {key: _jsonable(item) for key, item in value.items()}
        if any(not isinstance(key, _SCALARS) for key in converted) or any(
            item is _NOT_JSON for item in converted.values()
        ):
            return _NOT_JSON
        return converted
    return _NOT_JSON


def ini_value(text: str, where: Location) -> object:
    """An INI value as Ansible reads it: a Python literal where it is one (`80`, `True`, `[1, 2]`, `'quoted'`),
    else the text as written. A literal JSON cannot hold (a set, bytes, infinity) stays text."""
    shortcut = _shortcut(text)
    return literal_value(text, where) if shortcut is _NOT_JSON else shortcut


def _shortcut(text: str) -> object:
    """What literal_value would answer, for the common values recognizable at a glance; else _NOT_JSON."""
    if text in _LITERAL_NAMES:
        return _LITERAL_NAMES[text]
    if _PLAIN_INT.fullmatch(text):
        return int(text)
    if _PLAIN_TEXT.fullmatch(text):
        return text
    return _NOT_JSON


def literal_value(text: str, where: Location) -> object:
    """Ansible's reading of an INI value, through the Python parser."""
    try:
        with warnings.catch_warnings():
            # `"\d"` and the like are text to an inventory, not something to warn a person about.
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    except (TypeError, RecursionError, MemoryError):
        raise InventoryError(f"cannot read the value {text[:60]!r}", where) from None
    converted = _jsonable(value)
    return text if converted is _NOT_JSON else converted
