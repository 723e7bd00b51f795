"""JSON text exactly as the standard library writes it, written by orjson wherever that gives the same bytes:

  canonical   sorted keys, no whitespace, non-ASCII as UTF-8 — `json.dumps(value, sort_keys=True,
              separators=(",", ":"), ensure_ascii=False)`, which audit records are hashed and verified over (and
              operations digested over) since the first record was written;
  compact     the same in the value's own key order, NaN refused (`allow_nan=False`): a tool's answer.

orjson writes those bytes ~8× faster (an audit record: ~2 µs against ~16 µs), and every read writes one —
except for what it writes differently or not at all: a float in exponent form (stdlib `1e-05`, orjson `0.00001`),
NaN and infinities (stdlib `NaN`, orjson `null`), integers beyond 64 bits, keys that are not strings, subclasses
and enums, dataclasses, date-times, UUIDs, orjson fragments (stdlib refuses or converts those its own way). Those
go to the standard library, which decides as it always did: orjson gets only exact dicts, lists and tuples of exact
strings, integers, booleans, None and floats in the range where both print Python's `repr` (0, and 1e-4 ≤ |x| <
1e16), and anything it still refuses falls back. tests/fuzz/test_json_text.py
proves the two give the same bytes for every JSON value hypothesis makes, floats of every magnitude included.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_AS_STDLIB = (
    orjson.OPT_PASSTHROUGH_SUBCLASS  # a str or int subclass: the standard library decides how it prints
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)


def canonical(value: Any) -> bytes:
    """The canonical JSON of `value`. Raises what `json.dumps` raises for what it cannot encode."""
    try:
        if _plain(value):
            return orjson.dumps(value, option=_AS_STDLIB | orjson.OPT_SORT_KEYS)
    except (TypeError, RecursionError):  # orjson.JSONEncodeError is a TypeError; deep nesting, odd values
        pass
    return _CANONICAL(value).encode()


def compact(value: Any) -> str:
    """`value` as compact JSON in its own key order; NaN and infinities refused (ValueError), as `json.dumps`
    refuses them with `allow_nan=False`."""
    try:
        if _plain(value):
            return orjson.dumps(value, option=_AS_STDLIB).decode()
    except (TypeError, RecursionError):
        pass
    return _COMPACT(value)


def _plain(value: Any) -> bool:
    """Only what orjson and the standard library print alike: dicts, lists and tuples of strings, integers,
    booleans, None and floats that `repr` prints without an exponent — by exact type, since orjson writes some
    types natively that `json` prints otherwise or refuses (a float enum, UUID, orjson.Fragment). Runs on every
    record: scalars are looked at in the loop, only containers recurse."""
    kind = type(value)
    if kind is dict:
        items: Any = value.values()
    elif kind is list or kind is tuple:
        items = value
    elif kind is float:
        return _plain_float(value)
    else:
        return kind is str or kind is int or value is None or kind is bool
    for item in items:
        kind = type(item)
        if kind is str or kind is int or item is None or kind is bool:
            continue
        if kind is float:
            if not _plain_float(item):
                return False
        elif not (kind is dict or kind is list or kind is tuple) or not _plain(item):
            return False
    return True


def _plain_float(value: float) -> bool:
    return value == 0.0 or 1e-4 <= abs(value) < 1e16  # NaN compares false: never plain
