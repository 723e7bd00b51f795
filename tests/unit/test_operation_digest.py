"""An Operation's canonical form (what approvals are bound to and the audit log records as its digest) is the JSON
of all its fields, exactly as dataclasses.asdict gives them — computed without asdict's deep copy."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fleetbus.operation import Operation

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@given(st.text(max_size=12), st.text(max_size=12), st.lists(JSON, max_size=4))
def test_the_canonical_form_is_the_json_of_every_field(destination: str, member: str, args: list[Any]) -> None:
    operation = Operation(
        "dbus.call", "local", destination=destination, member=member, signature="av", args=tuple(args)
    )
    expected = json.dumps(asdict(operation), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert operation.canonical() == expected


SCALAR = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)


@given(st.lists(SCALAR, max_size=3), st.lists(SCALAR, max_size=3))
def test_equal_operations_share_a_digest_only_when_their_json_is_the_same(first: list[Any], second: list[Any]) -> None:
    # Equal operations share one encoding (a read repeats): True == 1 and -0.0 == 0.0 must still digest apart.
    for args in (first, second, first):
        operation = Operation("dbus.call", "local", member="M", signature="av", args=tuple(args))
        expected = json.dumps(asdict(operation), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert operation.canonical() == expected
        assert operation.digest() == hashlib.sha256(expected).hexdigest()


def test_a_boolean_and_an_integer_argument_are_different_operations_to_the_digest() -> None:
    as_bool, as_int = (Operation("dbus.call", "local", member="M", signature="v", args=(value,)) for value in (True, 1))
    assert as_bool == as_int, "Python's equality: the reason the shared encoding is keyed by type too"
    assert as_bool.digest() != as_int.digest()
    assert Operation("dbus.call", "local", member="M", signature="v", args=(1,)).digest() == as_int.digest()
