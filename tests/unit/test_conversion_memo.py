"""Argument lists converted once (types.canonical_args, types.body_of) give what converting every time gives — for
the types that compare equal across kinds (`True == 1`) too — and lists holding anything else are never kept."""

from __future__ import annotations

from typing import Any

import pytest
from dbus_fast import Variant

from fleetbus.dbus import types
from fleetbus.gateway import dbus_call


def fresh(signature: str, values: list[Any]) -> tuple[Any, ...]:
    body = types.from_json(signature, values)
    return tuple(types.to_json(signature, body, variants="typed", bytes_as="base64"))


@pytest.mark.parametrize(
    ("signature", "values"),
    [("ss", ["org.freedesktop.hostname1", "Hostname"]), ("b", [True]), ("u", [1]), ("i", [1]), ("s", [""])],
)
def test_a_kept_conversion_is_the_conversion(signature: str, values: list[Any]) -> None:
    first = types.canonical_args(signature, values)
    again = types.canonical_args(signature, values)
    assert first == again == fresh(signature, values)
    assert types.body_of(signature, first) == types.body_of(signature, first) == types.from_json(signature, values)


def test_true_and_one_are_kept_apart() -> None:
    """`(True,) == (1,)` in Python: the key holds the types, so a boolean list never answers for an integer one."""
    assert types.canonical_args("b", [True]) == (True,)
    with pytest.raises(types.ValueConversionError, match="got integer 1"):
        types.canonical_args("b", [1])
    assert types.canonical_args("u", [1]) == (1,)
    with pytest.raises(types.ValueConversionError, match="got boolean true"):
        types.canonical_args("u", [True])


def test_a_refused_list_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(types.ValueConversionError):
            types.canonical_args("u", [-1])


def test_lists_holding_more_than_scalars_are_never_kept() -> None:
    types._canonical_args.clear()
    types._bodies.clear()
    types.canonical_args("v", [{"signature": "s", "value": "x"}])
    types.canonical_args("as", [["a", "b"]])
    types.canonical_args("d", [1.5])
    body = types.body_of("v", types.canonical_args("v", [{"signature": "s", "value": "x"}]))
    assert isinstance(body[0], Variant)
    assert not types._canonical_args
    assert not types._bodies


def test_a_kept_body_is_a_new_list_each_time() -> None:
    first = types.body_of("ss", ("a", "b"))
    first.append("changed by a caller")
    assert types.body_of("ss", ("a", "b")) == ["a", "b"]


def test_the_memory_is_bounded() -> None:
    for n in range(types.CONVERTED * 2 + 5):
        types.canonical_args("s", [f"name-{n}"])
    assert len(types._canonical_args) <= types.CONVERTED


def test_operations_from_kept_conversions_equal_fresh_ones() -> None:
    operation = dbus_call("org.example", "/", "org.example.I", "M", "sub", ["x", 7, False], host="local")
    assert operation.args == fresh("sub", ["x", 7, False])
    assert operation == dbus_call("org.example", "/", "org.example.I", "M", "sub", ["x", 7, False], host="local")


def test_long_arguments_are_converted_every_time_not_kept() -> None:
    """A memo keyed on a few long strings would keep up to 1,024 of them alive (16 MiB messages)."""
    types._canonical_args.clear()
    types._bodies.clear()
    long = "x" * (types.MEMO_TEXT + 1)
    assert types.canonical_args("s", [long]) == (long,)
    assert types.body_of("s", (long,)) == [long]
    assert not types._canonical_args
    assert not types._bodies
    assert types.canonical_args("ss", ["y" * (types.MEMO_TEXT // 2), "z"]) is types.canonical_args(
        "ss", ["y" * (types.MEMO_TEXT // 2), "z"]
    )


def test_a_kept_conversion_keeps_the_names_it_was_made_with() -> None:
    with pytest.raises(types.ValueConversionError, match="'count'"):
        types.canonical_args("u", [-1], ["count"])
    assert types.canonical_args("u", [3], ["count"]) == types.canonical_args("u", [3], ["other"]) == (3,)
