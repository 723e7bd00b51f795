"""fleetbus.json_text (orjson where it prints what the standard library prints) gives exactly the text of
`json.dumps`: canonical JSON (`sort_keys=True, separators=(",", ":"), ensure_ascii=False`), so audit logs written
before it verify after it and operations keep their digests (approvals bind to them), and a tool's compact answer
(`allow_nan=False`). Every JSON value hypothesis makes — floats of every magnitude, NaN and infinities, integers
beyond 64 bits, any text, keys that are not strings, deep nesting — goes to both; what the standard library refuses
must still be refused."""

from __future__ import annotations

import enum
import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbus import json_text
from fleetbus.guard.audit import records


def stdlib(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def stdlib_compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def outcome(encode: Any, value: Any) -> tuple[str, bytes | str]:
    try:
        return "ok", encode(value)
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        return "refused", type(exc).__name__


scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=1e-6, max_value=1e-3)  # around repr's switch to exponents at 1e-4
    | st.floats(min_value=1e14, max_value=1e18)  # and at 1e16
    | st.text()  # lone surrogates, controls, bidi characters
    | st.text(alphabet=st.characters(max_codepoint=0x7F))
)
keys = st.text() | st.integers() | st.booleans() | st.none() | st.floats()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=800, deadline=None)
@given(values)
def test_the_same_bytes_as_the_standard_library_for_any_json_value(value: Any) -> None:
    assert outcome(json_text.canonical, value) == outcome(stdlib, value)
    assert outcome(json_text.compact, value) == outcome(stdlib_compact, value)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), values, max_size=12))
def test_a_sealed_record_is_the_line_the_standard_library_wrote(fields: dict[str, Any]) -> None:
    """The record as the writer before orjson sealed it: its hash over the content without `hash`, its line the
    canonical JSON with it — which `read.verify` checks every line against."""
    record = {k: v for k, v in fields.items() if k != "hash"}
    try:
        content = stdlib(record)
    except (TypeError, ValueError):
        return  # the writer refuses it too (test above)
    digest, line = records.seal(record)
    assert digest == records.digest_of(content, None)
    assert line == stdlib({**record, "hash": digest})


class Level(enum.IntEnum):
    HIGH = 3


class Colour(enum.StrEnum):
    RED = "red"


class Tiny(float, enum.Enum):
    X = 1e-5


class Missing(float, enum.Enum):
    NAN = math.nan


class Plain(enum.Enum):
    ONE = 1


@dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        {"duration_ms": 1e-05},
        [5e-05, 1e16, -1e22, 1.5e300, 5e-324],
        {"x": math.nan},
        {"x": [math.inf, -math.inf]},
        {"big": 2**64, "small": -(2**63) - 1},
        {1: "int key", "s": 0},
        {None: 1, True: 2, 1.5: 3},
        {"level": Level.HIGH, "colour": Colour.RED},
        {"a": Tiny.X},  # orjson writes a float enum natively: 0.00001 where json writes 1e-05
        [Missing.NAN],  # orjson null, json NaN (and a refusal without allow_nan)
        [[Tiny.X]],
        {"nested": [[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]},
        "\ud800 lone surrogate",
        {"text": "\x00\x1f\x7f\u2028\u202e\ufeff é ✓ 𝄞"},
        (1, "tuple", None),
    ],
)
def test_values_orjson_prints_otherwise_or_not_at_all(value: Any) -> None:
    assert outcome(json_text.canonical, value) == outcome(stdlib, value)
    assert outcome(json_text.compact, value) == outcome(stdlib_compact, value)


@pytest.mark.parametrize(
    "value",
    [
        Point(1),
        datetime(2026, 12, 2, tzinfo=UTC),
        object(),
        Plain.ONE,
        uuid.UUID(int=7),
        orjson.Fragment(b'{"z":1,"a":2}'),
        [orjson.Fragment(b"1")],
    ],
)
def test_what_the_standard_library_refuses_stays_refused(value: Any) -> None:
    """orjson writes dataclasses, date-times, enums, UUIDs and raw fragments on its own; a record holding one was
    refused before and still is."""
    assert outcome(json_text.canonical, {"field": value}) == ("refused", "TypeError")
    assert outcome(json_text.compact, {"field": value}) == ("refused", "TypeError")


def test_deeper_than_orjson_goes_is_the_standard_librarys_to_decide() -> None:
    deep: Any = "leaf"
    for _ in range(300):  # orjson stops at 255 levels
        deep = [deep]
    assert json_text.canonical(deep) == stdlib(deep)
    assert json_text.compact(deep) == stdlib_compact(deep)
