"""What JSON Schema lets through — NaN, ±infinity, NULs, lone surrogates — is refused with where it is; and every
default a tool's schema states lies within that schema's own bounds, under the default settings and a small
configured max_call_timeout alike."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from fleetbus.config import load_settings
from fleetbus.runtime import Runtime
from fleetbus.tools.argument_checks import argument_problem, walked_problem


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"sample": math.nan}, "invalid argument 'sample': must be a finite number, got NaN"),
        ({"timeout": math.inf}, "invalid argument 'timeout': must be a finite number, got Infinity"),
        ({"args": [1, {"a": [-math.inf]}]}, "invalid argument 'args[1].a[0]': must be a finite number, got -Infinity"),
        ({"grep": "a\x00b"}, "invalid argument 'grep': contains a NUL character (at position 1)"),
        ({"unit": "x\ud800"}, "invalid argument 'unit': contains a lone surrogate (U+D800 at position 1)"),
        ({"bad\x00name": 1}, "invalid argument name: it contains a NUL character"),
        ({"args": [{"k\udfff": 1}]}, "invalid argument name in 'args[0]': it contains a lone surrogate"),
    ],
)
def test_what_a_schema_cannot_refuse_is_refused_with_its_place(arguments: dict[str, Any], expected: str) -> None:
    problem = argument_problem(arguments)
    assert problem is not None
    assert problem.startswith(expected)


RISKY_TEXT = st.text(alphabet=st.sampled_from(["a", "\x00", "\ud800", "\udfff", "é", "\U0001f600"]), max_size=4)
FLAT_VALUE = RISKY_TEXT | st.integers() | st.booleans() | st.none() | st.floats() | st.lists(RISKY_TEXT, max_size=2)


@given(st.dictionaries(RISKY_TEXT, FLAT_VALUE, max_size=5))
def test_the_one_search_shortcut_agrees_with_visiting_every_value(arguments: dict[str, Any]) -> None:
    # Most calls are flat strings and numbers, checked in one search; the answer must be the full walk's.
    assert argument_problem(arguments) == walked_problem(arguments)


def test_deep_nesting_costs_no_recursion() -> None:
    deep: Any = math.nan
    for _ in range(100_000):
        deep = [deep]
    assert argument_problem({"args": deep}) == (
        f"invalid argument 'args{'[0]' * 100_000}': must be a finite number, got NaN"
    )


text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
finite = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8).filter(lambda k: "\x00" not in k and k.isprintable()), finite))
def test_clean_arguments_pass(arguments: dict[str, Any]) -> None:
    assert argument_problem(arguments) is None


def _defaults(schema: Any, where: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every subschema that states a default, with where it is."""
    if isinstance(schema, Mapping):
        if "default" in schema:
            yield where, schema
        for key, value in schema.items():
            yield from _defaults(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _defaults(value, f"{where}/{index}")


@pytest.mark.parametrize("limits", [{}, {"call_timeout": 1, "max_call_timeout": 2}, {"max_call_timeout": 30}])
def test_every_default_lies_within_its_bounds(tmp_path: Path, limits: dict[str, Any]) -> None:
    settings = load_settings(None, state_dir=tmp_path / "state", safety="admin", **limits)
    runtime = Runtime.build(settings)
    try:
        checked = 0
        for spec in runtime.registry:
            for where, schema in _defaults(spec.input_schema):
                bounds = {key: value for key, value in schema.items() if key != "default"}
                errors = [e.message for e in Draft202012Validator(bounds).iter_errors(schema["default"])]
                assert errors == [], f"{spec.name}{where}: default {schema['default']!r}: {errors}"
                if where.rsplit("/", 1)[-1] in ("timeout", "wait"):  # a deadline the caller chooses
                    assert schema["maximum"] <= settings.max_call_timeout, f"{spec.name}{where}"
                checked += 1
    finally:
        runtime.close()
    assert checked > 50  # every built-in tool's defaults were seen, not none of them
