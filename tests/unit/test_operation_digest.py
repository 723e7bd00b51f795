"""An Operation's canonical form (what approvals are bound to and the audit log records as its digest) is the JSON
of all its fields, exactly as dataclasses.asdict gives them — computed without asdict's deep copy."""

from __future__ import annotations

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
