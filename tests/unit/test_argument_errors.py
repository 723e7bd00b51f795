"""Argument errors in words a model can act on, checked against the real tools' schemas (no bus needed to
validate): the unexpected argument and the allowed ones, what a name looks like instead of a regex, the way to
go with a glob, enum choices, bounds, types — and none of the words-only schema keywords go on the wire."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from fleetbus.gateway import Deadlines
from fleetbus.tools import schema, wire
from fleetbus.tools.argument_errors import describe_validation_error
from fleetbus.tools.bus import bus_tools
from fleetbus.tools.journal import journal_tools
from fleetbus.tools.registry import ToolError, ToolRegistry, ToolSpec
from fleetbus.tools.units import unit_read_tools


def specs() -> list[ToolSpec]:
    return [*bus_tools(Deadlines(5, 30, 5)), *unit_read_tools(), *journal_tools()]


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    built = ToolRegistry()
    built.extend(specs())
    return built


def error_of(registry: ToolRegistry, tool: str, **arguments: Any) -> str:
    with pytest.raises(ToolError) as raised:
        registry.validate(tool, arguments)
    return str(raised.value)


def properties_of(registry: ToolRegistry, tool: str) -> list[str]:
    spec = registry.get(tool)
    assert spec is not None
    return list(spec.input_schema["properties"])


def test_an_unexpected_argument_is_named_with_the_nearest_and_the_allowed_ones(registry: ToolRegistry) -> None:
    message = error_of(registry, "list_units", pattren="worker-*")
    assert "'pattren'" in message
    assert "did you mean pattern?" in message
    for allowed in properties_of(registry, "list_units"):
        assert allowed in message


def test_every_unexpected_argument_is_named(registry: ToolRegistry) -> None:
    message = error_of(registry, "unit_status", unit="dbus.service", colour="red", verbose=True)
    assert "'colour'" in message
    assert "verbose" in message


def test_a_glob_where_a_unit_name_goes_points_at_list_units_instead_of_a_regex(registry: ToolRegistry) -> None:
    message = error_of(registry, "unit_status", unit="worker-*")
    assert "list_units pattern='worker-*'" in message
    assert "^[" not in message  # no regex, escaped or not
    assert "a unit name such as nginx.service" in message


def test_a_glob_where_a_service_name_goes_points_at_list_services(registry: ToolRegistry) -> None:
    message = error_of(registry, "list_objects", service="org.freedesktop.*")
    assert "list_services pattern='org.freedesktop.*'" in message
    assert "^(" not in message


def test_a_malformed_name_without_a_glob_says_what_a_name_looks_like(registry: ToolRegistry) -> None:
    message = error_of(registry, "introspect", service="org.freedesktop.hostname1", path="/org/freedesktop/hostname1/")
    assert message.startswith("invalid argument 'path': expected an object path such as /org/freedesktop/hostname1")
    assert "list_objects" not in message  # the glob hint is for globs only


def test_a_pattern_without_words_is_shown_once_and_unescaped() -> None:
    pattern = r"^[a-z\-]{1,8}\.conf$"
    validator = Draft202012Validator({"type": "object", "properties": {"file": {"type": "string", "pattern": pattern}}})
    error = best_match(validator.iter_errors({"file": "A.conf"}))
    assert error is not None
    message = describe_validation_error(error)
    assert pattern in message
    assert pattern.replace("\\", "\\\\") not in message


def test_an_argument_inside_an_array_is_located(registry: ToolRegistry) -> None:
    message = error_of(registry, "query_journal", fields=["_HOSTNAME", "lower"])
    assert message.startswith("invalid argument 'fields[1]': expected a journal field name in capitals")


def test_a_value_no_branch_of_any_of_takes_says_what_the_argument_takes(registry: ToolRegistry) -> None:
    for value in ("yesterday", 5):
        message = error_of(registry, "query_journal", boot=value)
        assert message.startswith("invalid argument 'boot': expected 0 (this boot)")
        assert json.dumps(value) in message


def test_a_choice_not_offered_lists_the_choices_and_the_nearest(registry: ToolRegistry) -> None:
    message = error_of(registry, "list_units", type="servic")
    spec = registry.get("list_units")
    assert spec is not None
    for choice in spec.input_schema["properties"]["type"]["enum"]:
        assert choice in message
    assert "did you mean service?" in message


def test_bounds_and_types_say_the_rule_and_what_came(registry: ToolRegistry) -> None:
    assert error_of(registry, "list_units", limit=5000) == "invalid argument 'limit': must be at most 1000, got 5000"
    assert error_of(registry, "list_units", limit=0) == "invalid argument 'limit': must be at least 1, got 0"
    assert error_of(registry, "query_journal", grep="") == "invalid argument 'grep': must not be empty"
    message = error_of(registry, "list_units", limit="5")
    assert message == "invalid argument 'limit': expected an integer, got a string \"5\""


def test_a_missing_argument_is_named_with_what_it_is(registry: ToolRegistry) -> None:
    spec = registry.get("unit_status")
    assert spec is not None
    described = spec.input_schema["properties"]["unit"]["description"]
    assert error_of(registry, "unit_status") == f"missing argument 'unit': {described}"


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def test_the_words_only_keywords_never_go_on_the_wire() -> None:
    own = {schema.EXPECTED, schema.GLOB_ALTERNATIVE}
    assert own <= wire.DROPPED
    carrying = [spec for spec in specs() if own & set(_keys(spec.input_schema))]
    assert carrying, "no tool schema carries the keywords, so this test would check nothing"
    for spec in carrying:
        definition = wire.definition(spec.name, spec.title, spec.description, dict(spec.input_schema), None, {})
        assert not own & set(_keys(definition)), spec.name
