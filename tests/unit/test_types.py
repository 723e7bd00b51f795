"""The D-Bus type layer: signatures, JSON Schemas and JSON ⇄ dbus-fast conversions, checked without a bus."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from dbus_fast import Message, Variant
from dbus_fast._private.unmarshaller import Unmarshaller
from dbus_fast.errors import InvalidSignatureError
from dbus_fast.signature import SignatureTree, get_signature_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from fleetbus.dbus.types import (
    MAX_CONTAINER_DEPTH,
    SignatureError,
    ValueConversionError,
    args_object_schema,
    args_schema,
    from_json,
    from_json_object,
    object_arg_names,
    output_schema,
    split_signature,
    to_json,
    type_schema,
    value_from_json,
    value_to_json,
)
from tests.unit.strategies import INT_RANGES, complete_types, json_values, mutated, signatures, signatures_with_bodies

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def canonical(value: Any) -> Any:
    """A form that compares exactly: tags types (True is not 1, a tuple is not a list) and makes NaN equal."""
    if isinstance(value, Variant):
        return ("variant", value.signature, canonical(value.value))
    if isinstance(value, bytes | bytearray):
        return ("bytes", bytes(value))
    if isinstance(value, tuple):
        return ("struct", [canonical(item) for item in value])
    if isinstance(value, list):
        return ("array", [canonical(item) for item in value])
    if isinstance(value, dict):
        return ("dict", [(canonical(k), canonical(v)) for k, v in value.items()])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def wire_round_trip(signature: str, body: list[Any]) -> list[Any]:
    message = Message(path="/", member="Call", signature=signature, body=body)
    data = bytes(message._marshall(False))
    unmarshalled = Unmarshaller(stream=io.BufferedRWPair(io.BytesIO(data), io.BytesIO())).unmarshall()
    assert unmarshalled is not None
    return list(unmarshalled.body)


def typed_json(signature: str, body: list[Any]) -> Any:
    """to_json in typed mode, through real JSON text."""
    text = json.dumps(to_json(signature, body, variants="typed", bytes_as="base64"), allow_nan=False)
    return json.loads(text)


def schemas_in(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, Mapping):
        yield dict(schema)
        for value in schema.values():
            yield from schemas_in(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from schemas_in(item)


def conversion_error(signature: str, values: list[Any]) -> ValueConversionError:
    with pytest.raises(ValueConversionError) as caught:
        from_json(signature, values)
    return caught.value


# --- properties over the whole grammar --------------------------------------------------------


@PROPERTY
@given(signatures_with_bodies())
def test_typed_json_reads_back_as_the_same_body(case: tuple[str, list[Any]]) -> None:
    signature, body = case
    assert canonical(from_json(signature, typed_json(signature, body))) == canonical(body)


@PROPERTY
@given(signatures_with_bodies())
def test_plain_json_is_serialisable_and_matches_output_schema(case: tuple[str, list[Any]]) -> None:
    signature, body = case
    plain = json.loads(json.dumps(to_json(signature, body), allow_nan=False))
    Draft202012Validator(output_schema(signature)).validate(plain)
    base64_plain = to_json(signature, body, bytes_as="base64")
    Draft202012Validator(output_schema(signature, bytes_as="base64")).validate(base64_plain)


@PROPERTY
@given(signatures_with_bodies())
def test_bodies_survive_dbus_fast_marshalling(case: tuple[str, list[Any]]) -> None:
    signature, body = case
    assert canonical(wire_round_trip(signature, body)) == canonical(body)
    converted = from_json(signature, typed_json(signature, body))
    assert canonical(wire_round_trip(signature, converted)) == canonical(body)


@PROPERTY
@given(signatures_with_bodies())
def test_typed_json_validates_against_input_and_output_schemas(case: tuple[str, list[Any]]) -> None:
    signature, body = case
    typed = typed_json(signature, body)
    Draft202012Validator(args_schema(signature)).validate(typed)
    Draft202012Validator(output_schema(signature, variants="typed")).validate(typed)
    names = object_arg_names(signature)
    Draft202012Validator(args_object_schema(signature)).validate(dict(zip(names, typed, strict=True)))
    assert canonical(from_json_object(signature, dict(zip(names, typed, strict=True)))) == canonical(body)


@settings(max_examples=40, deadline=None)
@given(signatures())
def test_schemas_are_valid_draft_2020_12_with_items_on_every_array(signature: str) -> None:
    schemas = [
        args_schema(signature),
        args_object_schema(signature),
        output_schema(signature),
        output_schema(signature, variants="typed"),
        *(type_schema(t) for t in split_signature(signature)),
    ]
    for schema in schemas:
        Draft202012Validator.check_schema(schema)
        for sub in schemas_in(schema):
            assert "$schema" not in sub
            if sub.get("type") == "array":
                assert "items" in sub
                assert "prefixItems" not in sub or sub["items"] is False


@PROPERTY
@given(st.lists(complete_types(), max_size=4))
def test_split_signature_gives_back_the_complete_types(types: list[str]) -> None:
    assert split_signature("".join(types)) == types


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ybnqiuxtdsogva(){}z", max_size=12))
def test_every_signature_accepted_is_accepted_by_dbus_fast(text: str) -> None:
    try:
        types = split_signature(text)
    except SignatureError:
        return
    assert [t.signature for t in get_signature_tree(text).types] == types


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_accepted_by_dbus_fast(signature: str, values: Any) -> None:
    """from_json gives a body dbus-fast sends, or one of the two errors it promises; never anything else."""
    try:
        body = from_json(signature, values)
    except (ValueConversionError, SignatureError):
        return
    assert SignatureTree(signature).verify(body)
    wire_round_trip(signature, body)


@FUZZ
@given(st.one_of(signatures(), st.text(alphabet="ybnqiuxtdsogvha(){}z", max_size=8)), st.data())
def test_from_json_on_arbitrary_json_gives_a_body_or_a_conversion_error(signature: str, data: st.DataObject) -> None:
    count = len(get_signature_tree(signature).types) if _dbus_fast_parses(signature) else 1
    values = data.draw(st.one_of(st.lists(json_values(), min_size=count, max_size=count), json_values()))
    assert_accepted_by_dbus_fast(signature, values)


@FUZZ
@given(signatures_with_bodies(), st.data())
def test_from_json_on_almost_right_json_gives_a_body_or_a_conversion_error(
    case: tuple[str, list[Any]], data: st.DataObject
) -> None:
    signature, body = case
    assert_accepted_by_dbus_fast(signature, data.draw(mutated(typed_json(signature, body))))


def _dbus_fast_parses(signature: str) -> bool:
    try:
        get_signature_tree(signature)
    except InvalidSignatureError:
        return False
    return True


# --- signatures -------------------------------------------------------------------------------


def test_split_signature_splits_complete_types() -> None:
    assert split_signature("sa{sv}(ii)") == ["s", "a{sv}", "(ii)"]
    assert split_signature("") == []
    assert split_signature("a{oa{sa{sv}}}ay") == ["a{oa{sa{sv}}}", "ay"]


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ("z", "unknown type code 'z' at position 0"),
        ("a", "expected the array's element type, got the end at position 1"),
        ("(i", "expected a struct field or ')', got the end at position 2"),
        ("()", "an empty struct at position 0"),
        (")", "unknown type code ')' at position 0"),
        ("{sv}", "a dict entry outside an array at position 0"),
        ("a{vs}", "a dict key of type 'v' (keys must be basic types) at position 2"),
        ("a{(i)s}", "a dict key of type '(i)' (keys must be basic types) at position 2"),
        ("a{sss}", "expected '}' closing the dict entry at position 4"),
        ("a" * 33 + "y", "arrays nested more than 32 deep at position 32"),
        ("(" * 33 + "y" + ")" * 33, "structs nested more than 32 deep at position 32"),
        ("s" * 256, "longer than 255 bytes"),
    ],
)
def test_invalid_signatures_say_what_and_where(signature: str, message: str) -> None:
    with pytest.raises(SignatureError, match="invalid D-Bus signature") as caught:
        split_signature(signature)
    assert message in str(caught.value)


def test_nesting_limits_are_the_specifications_and_dbus_fasts() -> None:
    assert split_signature("a" * 32 + "y") == ["a" * 32 + "y"]
    assert split_signature("(" * 32 + "y" + ")" * 32) == ["(" * 32 + "y" + ")" * 32]
    # 22 levels of array, dict entry and struct: each kind within 32, but 66 containers in a row.
    too_many_containers = "a{s(" * 22 + "y" + ")}" * 22
    with pytest.raises(InvalidSignatureError):
        get_signature_tree(too_many_containers)
    with pytest.raises(SignatureError, match="more than 64 nested containers"):
        split_signature(too_many_containers)


@pytest.mark.parametrize(
    "call",
    [
        lambda: split_signature("sh"),
        lambda: type_schema("h"),
        lambda: args_schema("ah"),
        lambda: output_schema("a{hs}"),
        lambda: from_json("h", [3]),
        lambda: to_json("h", [3]),
        lambda: value_to_json("v", Variant("h", 3)),
    ],
)
def test_unix_fds_are_refused_everywhere(call: Any) -> None:
    with pytest.raises(SignatureError, match=r"unix file descriptors \(h\) cannot be passed through fleetbus"):
        call()


def test_unix_fd_variant_is_a_conversion_error_at_its_place() -> None:
    error = conversion_error("v", [{"signature": "h", "value": 3}])
    assert error.where == "argument 0 → variant signature"
    assert "cannot be passed through fleetbus" in error.got


# --- integers, doubles, booleans ---------------------------------------------------------------


@pytest.mark.parametrize("code", list(INT_RANGES))
def test_integer_boundaries(code: str) -> None:
    low, high = INT_RANGES[code]
    assert value_from_json(code, low) == low
    assert value_from_json(code, high) == high
    for outside in (low - 1, high + 1):
        with pytest.raises(ValueConversionError, match=rf"expected \w+ \({low}\.\.{high}\), got integer"):
            value_from_json(code, outside)
    for not_integer in (True, False, 1.0, 0.5, "1", None):
        with pytest.raises(ValueConversionError, match="expected integer"):
            value_from_json(code, not_integer)


def test_integer_error_has_the_fields_the_brief_names() -> None:
    error = conversion_error("su", ["x", -1])
    assert (error.where, error.expected, error.got) == ("argument 1", "uint32 (0..4294967295)", "integer -1")
    assert str(error) == "argument 1: expected uint32 (0..4294967295), got integer -1"


def test_huge_integers_give_the_range_error() -> None:
    with pytest.raises(ValueConversionError, match=r"expected uint64 .* got integer of about 5001 digits"):
        value_from_json("t", 10**5000)
    with pytest.raises(ValueConversionError, match="within the range of a double"):
        value_from_json("d", 10**400)


def test_doubles_accept_numbers_and_the_special_spellings() -> None:
    assert value_from_json("d", 3) == 3.0
    assert isinstance(value_from_json("d", 3), float)
    assert math.isnan(value_from_json("d", "NaN"))
    assert value_from_json("d", "Infinity") == math.inf
    assert value_from_json("d", "-Infinity") == -math.inf
    for wrong in (True, "nan", "1.5", None):
        with pytest.raises(ValueConversionError, match="expected number"):
            value_from_json("d", wrong)


def test_doubles_write_non_finite_values_as_strings() -> None:
    body = [[math.nan, math.inf, -math.inf, 1.5, -0.0]]
    assert json.dumps(to_json("ad", body), allow_nan=False) == '[["NaN", "Infinity", "-Infinity", 1.5, -0.0]]'


def test_booleans_are_true_or_false_only() -> None:
    assert value_from_json("b", True) is True
    for wrong in (1, 0, "true", None):
        with pytest.raises(ValueConversionError, match=r"expected boolean \(true or false\)"):
            value_from_json("b", wrong)


# --- strings, object paths, signatures ---------------------------------------------------------


@pytest.mark.parametrize(("text", "reason"), [("a\x00b", "without NUL"), ("\ud800", "no lone surrogates")])
def test_strings_that_d_bus_cannot_carry_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueConversionError, match=reason):
        value_from_json("s", text)
    with pytest.raises(ValueConversionError, match=reason):
        value_from_json("v", text)


def test_long_values_are_clipped_in_messages() -> None:
    error = conversion_error("o", ["x" * 500])
    assert error.got == "string 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'… (500 characters)"


@pytest.mark.parametrize("path", ["/", "/a", "/org/freedesktop/DBus", "/A_b/9"])
def test_valid_object_paths(path: str) -> None:
    assert value_from_json("o", path) == path
    Draft202012Validator(type_schema("o")).validate(path)


@pytest.mark.parametrize("path", ["", "a", "/a/", "//", "/a//b", "/a-b", "/ä", "/a.b", 5])
def test_invalid_object_paths(path: Any) -> None:
    with pytest.raises(ValueConversionError, match="expected object path"):
        value_from_json("o", path)


@pytest.mark.parametrize("path", ["", "a", "/a/", "//", "/a-b", "/ä"])
def test_object_path_schema_pattern_is_the_d_bus_rule(path: str) -> None:
    assert not Draft202012Validator(type_schema("o")).is_valid(path)


def test_signature_values_are_validated() -> None:
    assert value_from_json("g", "") == ""
    assert value_from_json("g", "a{sv}as") == "a{sv}as"
    # A signature value only names types; carrying "h" as data passes no file descriptor.
    assert value_from_json("g", "ah") == "ah"
    for wrong in ("a{vs}", "a", "z", "y" * 256):
        with pytest.raises(ValueConversionError, match="expected valid D-Bus signature"):
            value_from_json("g", wrong)


# --- byte arrays -------------------------------------------------------------------------------


def test_byte_arrays_from_base64_or_integer_lists() -> None:
    assert value_from_json("ay", "aGk=") == b"hi"
    assert value_from_json("ay", "") == b""
    assert value_from_json("ay", [104, 105, 0, 255]) == b"hi\x00\xff"


@pytest.mark.parametrize("text", ["aGk", "aG k=", "a*k=", "aGk=\n", "aGl=", "aGk==", "é"])
def test_invalid_or_non_canonical_base64_is_refused(text: str) -> None:
    with pytest.raises(ValueConversionError, match="expected canonical base64"):
        value_from_json("ay", text)


def test_out_of_range_byte_names_its_item() -> None:
    with pytest.raises(ValueConversionError) as caught:
        value_from_json("ay", [1, 256], where="argument 0 ('data')")
    assert caught.value.where == "argument 0 ('data') → item 1"
    assert caught.value.expected == "byte (0..255)"


@pytest.mark.parametrize(
    ("data", "auto"),
    [
        (b"hello", "hello"),
        (b"hello\x00", "hello"),
        (b"tab\there\r\n", "tab\there\r\n"),
        (b"", ""),
        (b"a\x00\x00", "YQAA"),
        (b"a\x01", "YQE="),
        (b"\xff", "/w=="),
        ("\u0085".encode(), "woU="),
    ],
)
def test_byte_array_output(data: bytes, auto: str) -> None:
    assert value_to_json("ay", data) == auto
    encoded = value_to_json("ay", data, bytes_as="base64")
    assert value_from_json("ay", encoded) == data
    assert value_to_json("ay", data, variants="typed") == encoded


# --- dicts, structs, arrays --------------------------------------------------------------------


def test_a_sv_from_json_and_back() -> None:
    values = [{"Nice": {"signature": "i", "value": -5}, "Name": "web", "Ratio": 0.5, "On": True}]
    body = from_json("a{sv}", values)
    assert body == [
        {"Nice": Variant("i", -5), "Name": Variant("s", "web"), "Ratio": Variant("d", 0.5), "On": Variant("b", True)}
    ]
    assert to_json("a{sv}", body) == [{"Nice": -5, "Name": "web", "Ratio": 0.5, "On": True}]
    assert to_json("a{sv}", body, variants="typed") == values


def test_array_of_structs_holding_arrays_of_structs() -> None:
    # The shape of systemd's StartTransientUnit properties.
    values = [[["Description", [["Nice", {"signature": "i", "value": 5}]]], ["Slice", []]]]
    body = from_json("a(sa(sv))", values)
    assert body == [[("Description", [("Nice", Variant("i", 5))]), ("Slice", [])]]
    assert to_json("a(sa(sv))", body) == [[["Description", [["Nice", 5]]], ["Slice", []]]]
    assert to_json("a(sa(sv))", body, variants="typed") == values
    assert canonical(wire_round_trip("a(sa(sv))", body)) == canonical(body)
    error = conversion_error("a(sa(sv))", [[["Description", [["Nice", 5]]]]])
    assert error.where == "argument 0 → item 0 → field 1 → item 0 → field 1"


def test_nested_variants() -> None:
    values = [
        {"signature": "v", "value": {"signature": "a{sv}", "value": {"x": "y", "n": {"signature": "t", "value": 7}}}}
    ]
    body = from_json("v", values)
    assert body == [Variant("v", Variant("a{sv}", {"x": Variant("s", "y"), "n": Variant("t", 7)}))]
    assert to_json("v", body) == [{"x": "y", "n": 7}]
    assert to_json("v", body, variants="typed") == values
    assert canonical(wire_round_trip("v", body)) == canonical(body)


def test_integer_keyed_dicts_accept_pairs_and_spelled_keys() -> None:
    inner = {"Nice": {"signature": "i", "value": 1}}
    expected = [{-3: {"Nice": Variant("i", 1)}, 7: {}}]
    assert from_json("a{ia{sv}}", [[[-3, inner], [7, {}]]]) == expected
    assert from_json("a{ia{sv}}", [{"-3": inner, "7": {}}]) == expected
    assert to_json("a{ia{sv}}", expected, variants="typed") == [[[-3, inner], [7, {}]]]
    schema = Draft202012Validator(args_schema("a{ia{sv}}"))
    assert schema.is_valid([[[-3, inner], [7, {}]]])
    assert schema.is_valid([{"-3": inner, "7": {}}])
    assert not schema.is_valid([{"x": inner}])


def test_spelled_keys_for_boolean_and_double_keys() -> None:
    assert value_from_json("a{bs}", {"true": "yes", "false": "no"}) == {True: "yes", False: "no"}
    assert value_from_json("a{ds}", {"1.5": "a", "-Infinity": "b"}) == {1.5: "a", -math.inf: "b"}
    for wrong in ({"yes": "x"}, {"1": "x"}):
        with pytest.raises(ValueConversionError, match=r"expected key spelled for D-Bus boolean"):
            value_from_json("a{bs}", wrong)


@pytest.mark.parametrize(
    ("values", "where"),
    [([[[1, "a"], [1, "b"]]], "argument 0 → pair 1 key"), ([{"5": "a", "05": "b"}], "argument 0 → key '05'")],
)
def test_duplicate_keys_after_conversion_are_refused(values: list[Any], where: str) -> None:
    error = conversion_error("a{ys}", values)
    assert (error.where, error.expected) == (where, "a key not already present (dict keys must be unique)")


def test_bad_pairs_and_keys_name_their_place() -> None:
    assert conversion_error("a{ys}", [[[1, "a"], [2]]]).where == "argument 0 → pair 1"
    assert conversion_error("a{ys}", [[[300, "a"]]]).where == "argument 0 → pair 0 key"
    assert conversion_error("a{ys}", [[[3, 4]]]).where == "argument 0 → pair 0 value"
    assert conversion_error("a{ys}", [{"-1": "a"}]).where == "argument 0 → key '-1'"
    assert conversion_error("a{os}", [{"not a path": "a"}]).where == "argument 0 → key 'not a path'"


def test_structs() -> None:
    assert from_json("(ii)", [[1, 2]]) == [(1, 2)]
    assert to_json("(ii)", [(1, 2)]) == [[1, 2]]
    error = conversion_error("(ii)", [[1, 2, 3]])
    assert (error.expected, error.got) == ("array of exactly 2 items (D-Bus struct (ii))", "array of 3 items")
    assert conversion_error("(ii)", [[1, "2"]]).where == "argument 0 → field 1"
    schema = type_schema("(ii)")
    assert schema["prefixItems"] == [type_schema("i"), type_schema("i")]
    assert (schema["items"], schema["minItems"], schema["maxItems"]) == (False, 2, 2)


def test_get_managed_objects_shape() -> None:
    signature = "a{oa{sa{sv}}}"
    body = [
        {
            "/org/example/unit": {
                "org.example.Unit": {"Id": Variant("s", "a.service"), "Pids": Variant("au", [1, 2])},
                "org.freedesktop.DBus.Properties": {},
            }
        }
    ]
    plain = to_json(signature, body)
    assert plain == [
        {
            "/org/example/unit": {
                "org.example.Unit": {"Id": "a.service", "Pids": [1, 2]},
                "org.freedesktop.DBus.Properties": {},
            }
        }
    ]
    typed = typed_json(signature, body)
    assert typed[0]["/org/example/unit"]["org.example.Unit"]["Pids"] == {"signature": "au", "value": [1, 2]}
    assert from_json(signature, typed) == body
    Draft202012Validator(args_schema(signature)).validate(typed)
    assert Draft202012Validator(output_schema(signature)).is_valid(plain)
    assert not Draft202012Validator(args_schema(signature)).is_valid([{"not/a/path": {}}])


def test_errors_name_the_full_path() -> None:
    values = [{"/org/example/unit": {"org.example.Unit": {"Nice": {"signature": "u", "value": -1}}}}]
    with pytest.raises(ValueConversionError) as caught:
        from_json("a{oa{sa{sv}}}", values, ["objects"])
    error = caught.value
    assert (
        error.where
        == "argument 0 ('objects') → key '/org/example/unit' → key 'org.example.Unit' → key 'Nice' → variant value"
    )
    assert str(error) == f"{error.where}: expected uint32 (0..4294967295), got integer -1"
    assert conversion_error("aas", [[["a"], ["b", 3]]]).where == "argument 0 → item 1 → item 1"


# --- variants ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("text", Variant("s", "text")), (True, Variant("b", True)), (2.5, Variant("d", 2.5))]
)
def test_bare_variants_with_one_meaning(value: Any, expected: Variant) -> None:
    assert value_from_json("v", value) == expected


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (5, 'integer 5 could be y/n/q/i/u/x/t; pass {"signature": "i", "value": 5}'),
        (-(2**40), 'could be y/n/q/i/u/x/t; pass {"signature": "x", "value": -1099511627776}'),
        (5.0, 'number 5.0 could be d or an integer type; pass {"signature": "d", "value": 5.0}'),
        ([1, 2], 'could be any array or struct type (as, ai, av, ay, (si)…); pass {"signature": "av"'),
        ({"a": 1}, 'could be any dict type (a{sv}, a{ss}…); pass {"signature": "a{sv}"'),
        (None, "or a bare string, boolean or non-integral number"),
    ],
)
def test_ambiguous_variants_ask_for_a_signature(value: Any, hint: str) -> None:
    with pytest.raises(ValueConversionError) as caught:
        value_from_json("v", value)
    assert hint in caught.value.expected


@pytest.mark.parametrize("value", [{"signature": "u"}, {"signature": "u", "value": 1, "extra": 2}, {"value": 1}])
def test_typed_variants_need_exactly_signature_and_value(value: dict[str, Any]) -> None:
    with pytest.raises(ValueConversionError, match='exactly the keys "signature" and "value"'):
        value_from_json("v", value)


@pytest.mark.parametrize("signature", ["", "ii", "a", 5, "a{vs}"])
def test_typed_variants_need_one_complete_type(signature: Any) -> None:
    with pytest.raises(ValueConversionError, match="expected a single complete D-Bus type signature") as caught:
        value_from_json("v", {"signature": signature, "value": 1})
    assert caught.value.where == "value → variant signature"


@pytest.mark.parametrize(
    ("variant", "typed"),
    [
        (Variant("s", "x"), "x"),
        (Variant("b", False), False),
        (Variant("d", 1.5), 1.5),
        (Variant("d", 5.0), {"signature": "d", "value": 5.0}),
        (Variant("d", math.nan), {"signature": "d", "value": "NaN"}),
        (Variant("u", 5), {"signature": "u", "value": 5}),
        (Variant("ay", b"hi"), {"signature": "ay", "value": "aGk="}),
    ],
)
def test_typed_output_keeps_signatures_unless_the_bare_value_reads_back(variant: Variant, typed: Any) -> None:
    assert value_to_json("v", variant, variants="typed") == typed
    assert canonical(value_from_json("v", typed)) == canonical(variant)


def test_variant_nesting_stops_at_the_dbus_fast_limit_without_recursion_errors() -> None:
    def nested(depth: int) -> Any:
        value: Any = "x"
        for _ in range(depth - 1):
            value = {"signature": "v", "value": value}
        return value

    deepest = value_from_json("v", nested(MAX_CONTAINER_DEPTH))
    wire_round_trip("v", [deepest])
    with pytest.raises(ValueConversionError, match="at most 64 nested containers"):
        value_from_json("v", nested(MAX_CONTAINER_DEPTH + 1))
    with pytest.raises(ValueConversionError, match="at most 64 nested containers"):
        value_from_json("v", nested(100_000))


def test_deeply_nested_json_is_described_without_recursing() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert conversion_error("s", [deep]).got == "array of 1 item"
    assert "ambiguous" in conversion_error("v", [deep]).expected


# --- argument lists ----------------------------------------------------------------------------


def test_wrong_argument_count() -> None:
    error = conversion_error("su", ["x"])
    assert str(error) == "arguments: expected 2 arguments for signature 'su', got 1 argument"
    assert conversion_error("", [1]).expected == "0 arguments for signature ''"
    with pytest.raises(ValueConversionError, match="got string 'su'"):
        from_json("su", "su")


def test_args_schema_titles_and_descriptions() -> None:
    schema = args_schema("su", ["name", None])
    assert schema["prefixItems"][0]["title"] == "name"
    assert "title" not in schema["prefixItems"][1]
    assert schema["prefixItems"][1]["description"] == "D-Bus uint32 (u)"
    assert (schema["items"], schema["minItems"], schema["maxItems"]) == (False, 2, 2)
    assert args_schema("") == {
        "type": "array",
        "items": False,
        "minItems": 0,
        "maxItems": 0,
        "description": "D-Bus arguments (none)",
    }


def test_schemas_stay_small_for_hostile_signatures() -> None:
    deepest_int_keyed_dicts = "a{i" * 32 + "s" + "}" * 32
    for schema in (args_schema(deepest_int_keyed_dicts), output_schema(deepest_int_keyed_dicts, variants="typed")):
        assert len(json.dumps(schema)) < 50_000


def test_too_many_names_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="3 names given"):
        args_schema("s", ["a", "b", "c"])


def test_object_arg_names_fall_back_and_stay_unique() -> None:
    names = ["unit-name", None, "unit_name", "", "***", "arg1", "mode"]
    assert object_arg_names("sssssss", names) == ["unit_name", "arg1", "arg2", "arg3", "arg4", "arg5", "mode"]
    assert object_arg_names("ss") == ["arg0", "arg1"]
    assert object_arg_names("s", ["x" * 100]) == ["x" * 64]


def test_args_object_schema() -> None:
    schema = args_object_schema("su", ["unit-name", "mode"])
    assert list(schema["properties"]) == ["unit_name", "mode"]
    assert schema["properties"]["unit_name"]["title"] == "unit-name"
    assert schema["required"] == ["unit_name", "mode"]
    assert schema["additionalProperties"] is False
    Draft202012Validator.check_schema(schema)


def test_from_json_object() -> None:
    names = ["unit", "mode"]
    assert from_json_object("ss", {"mode": "replace", "unit": "a.service"}, names) == ["a.service", "replace"]
    with pytest.raises(ValueConversionError, match="got unknown key 'mood'"):
        from_json_object("ss", {"unit": "a", "mood": "b"}, names)
    with pytest.raises(ValueConversionError, match="expected object with the keys 'unit', 'mode', got no key 'mode'"):
        from_json_object("ss", {"unit": "a"}, names)
    error = _object_error("su", {"unit": "a", "mode": -1}, names)
    assert error.where == "argument 1 ('mode')"
    assert from_json_object("", {}) == []


def _object_error(signature: str, values: dict[str, Any], names: list[str]) -> ValueConversionError:
    with pytest.raises(ValueConversionError) as caught:
        from_json_object(signature, values, names)
    return caught.value


def test_output_schema_describes_replies() -> None:
    assert output_schema("ay")["prefixItems"][0]["type"] == "string"
    assert output_schema("v")["prefixItems"][0] == {"description": "D-Bus variant (v), unwrapped to its value"}
    pairs = output_schema("a{ys}")["prefixItems"][0]
    assert pairs["type"] == "array"
    assert pairs["items"]["prefixItems"][0]["maximum"] == 255


def test_style_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="variants must be"):
        to_json("s", ["x"], variants="loose")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bytes_as must be"):
        to_json("s", ["x"], bytes_as="hex")  # type: ignore[arg-type]
    with pytest.raises(ValueConversionError, match="expected 1 value for signature 's', got 2 values"):
        to_json("s", ["x", "y"])


def test_type_schema_needs_one_complete_type() -> None:
    with pytest.raises(SignatureError, match="expected one complete D-Bus type, got 2"):
        type_schema("ss")
