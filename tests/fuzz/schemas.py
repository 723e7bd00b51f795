"""Hypothesis strategies for the JSON values a JSON Schema describes — the subset fleetbus's tool schemas use (type,
enum, const, pattern, lengths, bounds, items, prefixItems, properties, required, additionalProperties, anyOf,
oneOf, allOf, not, propertyNames). hypothesis-jsonschema 0.23 does not run on this hypothesis (it reaches into a
private `many.more`), so this is our own, small and strict: a keyword it does not know fails the test."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

IGNORED = {
    "description",
    "title",
    "default",
    "examples",
    "x-expected",
    "x-glob-alternative",
    "contentEncoding",
    "contentMediaType",
    "$schema",
    "format",
    "readOnly",
    "writeOnly",
    "deprecated",
}
KNOWN = IGNORED | {
    "type",
    "enum",
    "const",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "properties",
    "required",
    "additionalProperties",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "propertyNames",
    "minProperties",
    "maxProperties",
}
MAX_ITEMS = 4
"""Generated arrays stay short: the hostile values bring the large ones."""

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
any_json = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def from_schema(schema: Any) -> st.SearchStrategy[Any]:
    """Values valid for `schema` (mostly: a pattern together with a length may need the filter to find one)."""
    if schema is True or schema == {}:
        return any_json
    if schema is False:
        return st.nothing()
    assert isinstance(schema, Mapping), schema
    unknown = set(schema) - KNOWN
    assert not unknown, f"the fuzz does not know the schema keywords {sorted(unknown)}"
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(list(schema["enum"]))
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            rest = {k: v for k, v in schema.items() if k != combinator}
            return st.one_of([from_schema({**rest, **branch}) for branch in schema[combinator]])
    if "allOf" in schema:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged.update(part)
        return from_schema(merged)
    kinds = schema.get("type")
    if kinds is None:
        return any_json
    if isinstance(kinds, list):
        return st.one_of([from_schema({**schema, "type": kind}) for kind in kinds])
    return _typed(kinds, schema)


def _typed(kind: str, schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(
            _bound(schema, "minimum", "exclusiveMinimum", 1), _bound(schema, "maximum", "exclusiveMaximum", -1)
        )
    if kind == "number":
        low, high = (
            schema.get("minimum", schema.get("exclusiveMinimum")),
            schema.get("maximum", schema.get("exclusiveMaximum")),
        )
        return st.floats(
            low,
            high,
            allow_nan=False,
            allow_infinity=False,
            exclude_min="exclusiveMinimum" in schema,
            exclude_max="exclusiveMaximum" in schema,
        )
    if kind == "string":
        return _string(schema)
    if kind == "array":
        return _array(schema)
    if kind == "object":
        return _object(schema)
    raise AssertionError(f"unknown JSON type {kind!r}")


def _bound(schema: Mapping[str, Any], inclusive: str, exclusive: str, step: int) -> int | None:
    if inclusive in schema:
        return int(schema[inclusive])
    if exclusive in schema:
        return int(schema[exclusive]) + step
    return None


def _string(schema: Mapping[str, Any]) -> st.SearchStrategy[str]:
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    if "pattern" in schema:
        pattern = re.compile(schema["pattern"])
        found = st.from_regex(pattern, fullmatch=True)
        return found.filter(lambda text: low <= len(text) <= (high if high is not None else len(text)))
    return st.text(min_size=low, max_size=min(int(high), 40) if high is not None else 40)


def _array(schema: Mapping[str, Any]) -> st.SearchStrategy[list[Any]]:
    low = int(schema.get("minItems", 0))
    high = min(int(schema.get("maxItems", MAX_ITEMS)), max(low, MAX_ITEMS))
    prefix = [from_schema(item) for item in schema.get("prefixItems", [])]
    items = schema.get("items", True)
    tail = from_schema(items) if items is not False else st.nothing()
    unique = bool(schema.get("uniqueItems"))
    rest = (
        st.lists(
            tail,
            min_size=max(0, low - len(prefix)),
            max_size=max(0, high - len(prefix)),
            unique_by=(repr if unique else None),
        )
        if items is not False
        else st.just([])
    )
    return st.tuples(*prefix, rest).map(lambda parts: [*parts[:-1], *parts[-1]])


def _object(schema: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    fixed = st.fixed_dictionaries(
        {name: from_schema(sub) for name, sub in properties.items() if name in required},
        optional={name: from_schema(sub) for name, sub in properties.items() if name not in required},
    )
    extra = schema.get("additionalProperties", True)
    if extra is False or not isinstance(extra, Mapping | bool):
        return fixed
    # Names are strings whatever propertyNames leaves out (its "type" is implied).
    names = _string(schema["propertyNames"]) if "propertyNames" in schema else st.text(max_size=12)
    more = st.dictionaries(names.filter(lambda n: n not in properties), from_schema(extra), max_size=3)
    return st.builds(lambda known, others: {**others, **known}, fixed, more)
