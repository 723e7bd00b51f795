"""jsonschema-rs (the fast yes of argument validation) never accepts what jsonschema refuses: the same documents —
valid, hostile and arbitrary, from every built-in tool's schema and from D-Bus argument schemas — go to both."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, seed, settings
from jsonschema import Draft202012Validator

from fleetbus.config import load_settings
from fleetbus.dbus.types import args_object_schema
from fleetbus.runtime import Runtime
from fleetbus.tools.argument_checks import argument_problem
from tests.fuzz.hostile import Raw
from tests.fuzz.test_stdio_fuzz import arguments

SIGNATURES = ["s", "ss", "u", "i", "t", "x", "d", "b", "o", "g", "ay", "as", "a{sv}", "a{is}", "(sa(iv))", "v", "aav"]


def _schemas(tmp: Path) -> dict[str, Mapping[str, Any]]:
    runtime = Runtime.build(load_settings(None, state_dir=tmp, safety="admin", call_timeout=1, max_call_timeout=2))
    try:
        found: dict[str, Mapping[str, Any]] = {spec.name: spec.input_schema for spec in runtime.registry}
    finally:
        runtime.close()
    for signature in SIGNATURES:
        found[f"args {signature}"] = {"type": "object", "properties": {"args": args_object_schema(signature)}}
    return found


SCHEMAS = _schemas(Path("/nonexistent-state-never-written"))


def _has_raw(value: Any) -> bool:
    if isinstance(value, Raw):
        return True
    if isinstance(value, dict):
        return any(_has_raw(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_raw(item) for item in value)
    return False


seen: Counter[str] = Counter()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_fast_validator_accepts_only_what_jsonschema_accepts(name: str) -> None:
    schema = dict(SCHEMAS[name])
    slow, fast = Draft202012Validator(schema), jsonschema_rs.Draft202012Validator(schema)

    @seed(20261202)
    @settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(arguments(schema).filter(lambda doc: not _has_raw(doc)))
    def agree(document: dict[str, Any]) -> None:
        if argument_problem(document) is not None:
            return  # refused before either validator sees it (NaN, NULs, lone surrogates)
        try:
            quick = fast.is_valid(document)
        except (ValueError, OverflowError, TypeError):
            quick = False  # the registry then asks jsonschema
        thorough = not any(True for _ in slow.iter_errors(document))
        seen[f"{quick}/{thorough}"] += 1
        assert not (quick and not thorough), (
            f"jsonschema-rs accepts what jsonschema refuses: {json.dumps(document)[:500]}"
        )
        if thorough and not quick:
            # The only difference found: `$` in Python's re also matches before a trailing newline.
            assert "\n" in json.dumps(document, ensure_ascii=False).replace("\\n", "\n"), document

    agree()
