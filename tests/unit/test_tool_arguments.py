"""`fleetbus tool NAME key=value…`: words become the JSON a tool takes, typed by its input schema."""

from __future__ import annotations

from typing import Any

import pytest

from fleetbus.tool_arguments import ArgumentError, admitted_types, parse, typed_value

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "unit": {"type": "string", "pattern": "^[a-z.-]+$"},
        "lines": {"type": "integer", "minimum": 0, "maximum": 50},
        "sample": {"type": "number", "exclusiveMinimum": 0},
        "reverse": {"type": "boolean"},
        "boot": {"anyOf": [{"type": "integer", "maximum": 0}, {"type": "string", "pattern": "^[0-9a-f]{32}$"}]},
        "note": {"type": ["string", "null"]},
        "args": {"type": "array"},
        "env": {"type": "object"},
        "anything": {},
    },
}


def typed(*words: str) -> dict[str, Any]:
    return parse(words).for_schema(SCHEMA)


def test_integers_numbers_and_booleans_are_read_as_the_schema_says() -> None:
    assert typed("unit=x.service", "lines=2", "sample=0.5", "reverse=true") == {
        "unit": "x.service",
        "lines": 2,
        "sample": 0.5,
        "reverse": True,
    }
    assert typed("sample=2", "reverse=FALSE") == {"sample": 2, "reverse": False}


def test_text_stays_text_where_the_schema_wants_a_string() -> None:
    assert typed("unit=007", "note=true", "anything=12") == {"unit": "007", "note": "true", "anything": "12"}


def test_either_of_two_types_takes_the_reading_the_schema_accepts() -> None:
    assert typed("boot=-1") == {"boot": -1}
    boot_id = "0123456789abcdef0123456789abcdef"
    assert typed(f"boot={boot_id}") == {"boot": boot_id}
    assert typed("note=null") == {"note": "null"}  # a string is a valid reading, and it comes first


def test_a_value_the_schema_refuses_keeps_its_type_so_the_tool_says_why() -> None:
    assert typed("lines=99") == {"lines": 99}  # the tool then answers "99 is greater than the maximum of 50"


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("lines=two", "argument 'lines' takes an integer, not 'two'"),
        ("lines=2.5", "argument 'lines' takes an integer, not '2.5'"),
        ("sample=NaN", "argument 'sample' takes a number, not 'NaN'"),
        ("reverse=yes", "argument 'reverse' takes a boolean, not 'yes'"),
        ("args=a,b", "argument 'args' takes an array: write args:='[…]'"),
        ("env=a=b", "argument 'env' takes an object: write env:='{…}'"),
    ],
)
def test_a_word_that_cannot_be_read_names_the_argument(word: str, message: str) -> None:
    with pytest.raises(ArgumentError) as raised:
        typed(word)
    assert str(raised.value) == message


def test_json_words_and_the_json_option_are_taken_as_they_are() -> None:
    given = parse(['args:=["a", 1]', "lines:=3", "unit=x"], '{"reverse": true, "lines": 1}')
    assert given.for_schema(SCHEMA) == {"args": ["a", 1], "lines": 3, "unit": "x", "reverse": True}


def test_the_last_word_for_a_key_wins_whichever_form_it_has() -> None:
    assert typed("lines:=3", "lines=4") == {"lines": 4}
    assert typed("lines=4", "lines:=5") == {"lines": 5}


def test_unknown_keys_stay_text_for_the_tool_to_refuse_by_name() -> None:
    assert typed("limit=3") == {"limit": "3"}
    assert parse(["lines=2"]).for_schema(None) == {"lines": "2"}


def test_a_word_without_a_value_is_refused() -> None:
    with pytest.raises(ArgumentError, match="'lines' is neither key=value nor key:=json"):
        parse(["lines"])


def test_admitted_types_follow_any_of_and_enums() -> None:
    assert admitted_types(SCHEMA["properties"]["boot"]) == {"integer", "string"}
    assert admitted_types({"enum": [1, "a", True]}) == {"integer", "string", "boolean"}
    assert typed_value("mode", "1", {"enum": [1, 2]}) == 1
