"""D-Bus signatures as JSON Schema, and JSON values as dbus-fast message bodies and back.

Every conversion is driven by the signature, never by guessing from the value.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

from dbus_fast import Variant

__all__ = [
    "MAX_ARRAY_DEPTH",
    "MAX_CONTAINER_DEPTH",
    "MAX_SIGNATURE_BYTES",
    "MAX_STRUCT_DEPTH",
    "BytesStyle",
    "SignatureError",
    "ValueConversionError",
    "VariantStyle",
    "args_object_schema",
    "args_schema",
    "from_json",
    "from_json_object",
    "object_arg_names",
    "output_schema",
    "split_signature",
    "to_json",
    "type_schema",
    "value_from_json",
    "value_to_json",
    "variant_signature",
]

VariantStyle = Literal["plain", "typed"]
BytesStyle = Literal["auto", "base64"]

MAX_SIGNATURE_BYTES: Final = 255
# The specification's limits; libdbus rejects anything deeper.
MAX_ARRAY_DEPTH: Final = 32
MAX_STRUCT_DEPTH: Final = 32
# dbus-fast refuses signatures with more containers than this on one path, and its unmarshaller
# refuses bodies nested deeper (variants included), so a deeper body would be a message no peer reads.
MAX_CONTAINER_DEPTH: Final = 64

_FD_REFUSAL: Final = "unix file descriptors (h) cannot be passed through fleetbus"
_ARROW: Final = " → "
_CLIP: Final = 40


class SignatureError(ValueError):
    """A D-Bus signature is invalid or uses a type fleetbus does not carry."""


class ValueConversionError(ValueError):
    """A value does not fit its D-Bus type; `where` locates it inside the arguments."""

    def __init__(self, where: str, expected: str, got: str) -> None:
        super().__init__(f"{where}: expected {expected}, got {got}")
        self.where = where
        self.expected = expected
        self.got = got


# --- signatures -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Type:
    """One complete type; dict entries are a "{" type with children (key, value)."""

    code: str
    signature: str
    children: tuple[_Type, ...] = ()


INTEGER_RANGES: Final[dict[str, tuple[int, int]]] = {
    "y": (0, 2**8 - 1),
    "n": (-(2**15), 2**15 - 1),
    "q": (0, 2**16 - 1),
    "i": (-(2**31), 2**31 - 1),
    "u": (0, 2**32 - 1),
    "x": (-(2**63), 2**63 - 1),
    "t": (0, 2**64 - 1),
}
_TYPE_NAMES: Final = {
    "y": "byte",
    "n": "int16",
    "q": "uint16",
    "i": "int32",
    "u": "uint32",
    "x": "int64",
    "t": "uint64",
    "d": "double",
    "b": "boolean",
    "s": "string",
    "o": "object path",
    "g": "signature",
    "h": "unix fd",
    "v": "variant",
}
_BASIC_CODES: Final = frozenset("ybnqiuxtdsogh")
_STRING_KEY_CODES: Final = frozenset("sog")
_LEAVES: Final = {code: _Type(code, code) for code in (*_BASIC_CODES, "v")}


class _SignatureParser:
    """Recursive descent over one signature; recursion is bounded by the nesting limits."""

    def __init__(self, signature: str) -> None:
        self._signature = signature
        self._pos = 0

    def parse(self) -> tuple[_Type, ...]:
        if len(self._signature) > MAX_SIGNATURE_BYTES:
            raise self._error(f"longer than {MAX_SIGNATURE_BYTES} bytes", MAX_SIGNATURE_BYTES)
        types = []
        while self._pos < len(self._signature):
            types.append(self._complete_type(0, 0, 0))
        return tuple(types)

    def _error(self, what: str, pos: int) -> SignatureError:
        return SignatureError(f"invalid D-Bus signature {self._signature!r}: {what} at position {pos}")

    def _peek(self, expected: str) -> str:
        if self._pos >= len(self._signature):
            raise self._error(f"expected {expected}, got the end", self._pos)
        return self._signature[self._pos]

    def _complete_type(self, arrays: int, structs: int, containers: int) -> _Type:
        start = self._pos
        code = self._peek("a complete type")
        if code in _LEAVES:
            self._pos += 1
            return _LEAVES[code]
        if code not in "a(":
            where = "a dict entry outside an array" if code == "{" else f"unknown type code {code!r}"
            raise self._error(where, start)
        if containers >= MAX_CONTAINER_DEPTH:
            raise self._error(f"more than {MAX_CONTAINER_DEPTH} nested containers", start)
        self._pos += 1
        if code == "a":
            return self._array(start, arrays + 1, structs, containers + 1)
        return self._struct(start, arrays, structs + 1, containers + 1)

    def _array(self, start: int, arrays: int, structs: int, containers: int) -> _Type:
        if arrays > MAX_ARRAY_DEPTH:
            raise self._error(f"arrays nested more than {MAX_ARRAY_DEPTH} deep", start)
        if self._peek("the array's element type") == "{":
            child = self._dict_entry(arrays, structs, containers)
        else:
            child = self._complete_type(arrays, structs, containers)
        return _Type("a", self._signature[start : self._pos], (child,))

    def _struct(self, start: int, arrays: int, structs: int, containers: int) -> _Type:
        if structs > MAX_STRUCT_DEPTH:
            raise self._error(f"structs nested more than {MAX_STRUCT_DEPTH} deep", start)
        fields = []
        while self._peek("a struct field or ')'") != ")":
            fields.append(self._complete_type(arrays, structs, containers))
        if not fields:
            raise self._error("an empty struct", start)
        self._pos += 1
        return _Type("(", self._signature[start : self._pos], tuple(fields))

    def _dict_entry(self, arrays: int, structs: int, containers: int) -> _Type:
        start = self._pos
        if containers >= MAX_CONTAINER_DEPTH:
            raise self._error(f"more than {MAX_CONTAINER_DEPTH} nested containers", start)
        self._pos += 1
        key = self._complete_type(arrays, structs, containers + 1)
        if key.code not in _BASIC_CODES:
            raise self._error(f"a dict key of type {key.signature!r} (keys must be basic types)", start + 1)
        value = self._complete_type(arrays, structs, containers + 1)
        if self._peek("'}' closing the dict entry") != "}":
            raise self._error("expected '}' closing the dict entry", self._pos)
        self._pos += 1
        return _Type("{", self._signature[start : self._pos], (key, value))


@lru_cache(maxsize=1024)
def _parse_syntax(signature: str) -> tuple[_Type, ...]:
    """Any signature the D-Bus specification allows, `h` included (it is legal as a `g` value)."""
    return _SignatureParser(signature).parse()


@lru_cache(maxsize=1024)
def _parse(signature: str) -> tuple[_Type, ...]:
    types = _parse_syntax(signature)
    if "h" in signature:
        raise SignatureError(f"{_FD_REFUSAL} (signature {signature!r}, position {signature.index('h')})")
    return types


def _single_type(type_signature: str) -> _Type:
    types = _parse(type_signature)
    if len(types) != 1:
        raise SignatureError(f"expected one complete D-Bus type, got {len(types)} in signature {type_signature!r}")
    return types[0]


def split_signature(signature: str) -> list[str]:
    """The complete types of a signature, e.g. "sa{sv}(ii)" -> ["s", "a{sv}", "(ii)"]."""
    return [t.signature for t in _parse(signature)]


# --- describing values and types for error messages -------------------------------------------


def _clip(text: str) -> str:
    if len(text) <= _CLIP:
        return repr(text)
    return f"{text[:_CLIP]!r}… ({len(text)} characters)"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _describe_int(value: int) -> str:
    # str() of an int with more than 4300 digits raises, and such a value is no use to read anyway.
    if value.bit_length() > 128:
        return f"integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return f"integer {value}"


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _describe(value: Any) -> str:
    """A short, non-recursive account of a JSON value, safe for hostile input."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return _describe_int(value)
    if isinstance(value, float):
        return f"number {_float_text(value)}"
    if isinstance(value, str):
        return f"string {_clip(value)}"
    if isinstance(value, list | tuple):
        return f"array of {_plural(len(value), 'item')}"
    if isinstance(value, Mapping):
        return f"object with {_plural(len(value), 'key')}"
    return f"a Python {type(value).__name__}"


def _type_label(t: _Type) -> str:
    if t.code in _TYPE_NAMES:
        return f"D-Bus {_TYPE_NAMES[t.code]} ({t.code})"
    if t.code == "(":
        return f"D-Bus struct {t.signature}"
    child = t.children[0]
    if child.code == "y":
        return "D-Bus byte array (ay)"
    return f"D-Bus dict ({t.signature})" if child.code == "{" else f"D-Bus array ({t.signature})"


def _mismatch(where: str, expected: str, value: Any) -> ValueConversionError:
    return ValueConversionError(where, expected, _describe(value))


def _join(where: str, step: str) -> str:
    return f"{where}{_ARROW}{step}"


def _key_label(key: Any) -> str:
    return _clip(key) if isinstance(key, str) else _describe(key)


def _key_step(key: Any) -> str:
    return f"key {_key_label(key)}"


def _argument_where(index: int, name: str | None) -> str:
    return f"argument {index}" if name is None else f"argument {index} ({_clip(name)})"


# --- JSON -> dbus-fast ------------------------------------------------------------------------

_FromJson = Callable[[_Type, Any, str, int], Any]

_OBJECT_PATH_RE: Final = re.compile(r"/|(?:/[A-Za-z0-9_]+)+")
_OBJECT_PATH_PATTERN: Final = "^(/|(/[A-Za-z0-9_]+)+)$"
_BASE64_PATTERN: Final = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_SIGNATURE_CHARS_PATTERN: Final = "^[ybnqiuxtdsoghva(){}]*$"
_SPECIAL_FLOATS: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_DOUBLE_EXPECTED: Final = 'number, or "NaN", "Infinity" or "-Infinity" (double)'
_OBJECT_PATH_EXPECTED: Final = "object path ('/' or '/'-separated elements of [A-Za-z0-9_])"
_INT_KEY_PATTERN: Final = "^-?[0-9]{1,20}$"
_KEY_SPELLINGS: Final = {
    **dict.fromkeys(INTEGER_RANGES, _INT_KEY_PATTERN),
    "b": "^(true|false)$",
    "d": r"^(-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?|NaN|-?Infinity)$",
}
_KEY_SPELLING_RES: Final = {code: re.compile(pattern) for code, pattern in _KEY_SPELLINGS.items()}


def _is_json_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range_text(code: str) -> str:
    low, high = INTEGER_RANGES[code]
    return f"{_TYPE_NAMES[code]} ({low}..{high})"


def _enter(where: str, depth: int) -> int:
    if depth >= MAX_CONTAINER_DEPTH:
        raise ValueConversionError(
            where, f"at most {MAX_CONTAINER_DEPTH} nested containers (the D-Bus limit)", "deeper nesting"
        )
    return depth + 1


def _from_json(t: _Type, value: Any, where: str, depth: int) -> Any:
    return _FROM_JSON[t.code](t, value, where, depth)


def _int_from_json(t: _Type, value: Any, where: str, depth: int) -> int:
    if not _is_json_int(value):
        raise _mismatch(where, f"integer, {_range_text(t.code)}", value)
    low, high = INTEGER_RANGES[t.code]
    if not low <= value <= high:
        raise _mismatch(where, _range_text(t.code), value)
    return int(value)


def _double_from_json(t: _Type, value: Any, where: str, depth: int) -> float:
    if isinstance(value, str) and value in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _mismatch(where, _DOUBLE_EXPECTED, value)
    try:
        return float(value)
    except OverflowError:
        raise _mismatch(where, "number within the range of a double", value) from None


def _boolean_from_json(t: _Type, value: Any, where: str, depth: int) -> bool:
    if not isinstance(value, bool):
        raise _mismatch(where, "boolean (true or false)", value)
    return value


def _string_from_json(t: _Type, value: Any, where: str, depth: int) -> str:
    if not isinstance(value, str):
        raise _mismatch(where, "string", value)
    if "\x00" in value:
        raise _mismatch(where, "string without NUL characters (D-Bus strings cannot hold them)", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _mismatch(where, "string of valid Unicode (no lone surrogates)", value) from None
    return value


def _object_path_from_json(t: _Type, value: Any, where: str, depth: int) -> str:
    if not isinstance(value, str) or _OBJECT_PATH_RE.fullmatch(value) is None:
        raise _mismatch(where, _OBJECT_PATH_EXPECTED, value)
    return value


def _signature_from_json(t: _Type, value: Any, where: str, depth: int) -> str:
    if not isinstance(value, str):
        raise _mismatch(where, "D-Bus signature string", value)
    try:
        _parse_syntax(value)
    except SignatureError as error:
        raise ValueConversionError(where, "valid D-Bus signature", f"{_describe(value)} ({error})") from None
    return value


def _array_from_json(t: _Type, value: Any, where: str, depth: int) -> Any:
    depth = _enter(where, depth)
    child = t.children[0]
    if child.code == "y":
        return _bytes_from_json(value, where)
    if child.code == "{":
        return _dict_from_json(t, value, where, depth)
    if not isinstance(value, list | tuple):
        raise _mismatch(where, f"array ({_type_label(t)})", value)
    return [_from_json(child, item, _join(where, f"item {i}"), depth) for i, item in enumerate(value)]


def _bytes_from_json(value: Any, where: str) -> bytes:
    if isinstance(value, str):
        return _base64_from_json(value, where)
    if not isinstance(value, list | tuple):
        raise _mismatch(where, "base64 string or array of integers 0..255 (D-Bus byte array ay)", value)
    byte = _LEAVES["y"]
    return bytes(_int_from_json(byte, item, _join(where, f"item {i}"), 0) for i, item in enumerate(value))


def _base64_from_json(value: str, where: str) -> bytes:
    expected = "canonical base64 (standard alphabet, with padding) or array of integers 0..255"
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _mismatch(where, expected, value) from None
    # b64decode ignores non-zero bits left over in the last character; re-encoding catches them.
    if base64.b64encode(data).decode("ascii") != value:
        raise _mismatch(where, expected, value)
    return data


def _dict_from_json(t: _Type, value: Any, where: str, depth: int) -> dict[Any, Any]:
    key_type, value_type = t.children[0].children
    if key_type.code in _STRING_KEY_CODES:
        if not isinstance(value, Mapping):
            raise _mismatch(where, f"object ({_type_label(t)})", value)
        items = [_keyed_item(key, item, where) for key, item in value.items()]
    elif isinstance(value, Mapping):
        items = [_spelled_item(key_type, key, item, where) for key, item in value.items()]
    elif isinstance(value, list | tuple):
        items = [_pair_item(pair, where, i) for i, pair in enumerate(value)]
    else:
        raise _mismatch(where, f"array of [key, value] pairs, or object with {_key_words(key_type)}", value)
    result: dict[Any, Any] = {}
    for key_where, value_where, raw_key, raw_value in items:
        key = _from_json(key_type, raw_key, key_where, depth)
        if key in result:
            raise _mismatch(key_where, "a key not already present (dict keys must be unique)", raw_key)
        result[key] = _from_json(value_type, raw_value, value_where, depth)
    return result


def _key_words(key_type: _Type) -> str:
    if key_type.code == "b":
        return 'keys "true"/"false"'
    return "keys spelled as numbers" if key_type.code == "d" else "keys spelled as decimal integers"


def _keyed_item(key: Any, value: Any, where: str) -> tuple[str, str, Any, Any]:
    step = _join(where, _key_step(key))
    return step, step, key, value


def _pair_item(pair: Any, where: str, index: int) -> tuple[str, str, Any, Any]:
    step = _join(where, f"pair {index}")
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        raise _mismatch(step, "[key, value] pair", pair)
    return f"{step} key", f"{step} value", pair[0], pair[1]


def _spelled_item(key_type: _Type, key: Any, value: Any, where: str) -> tuple[str, str, Any, Any]:
    step = _join(where, _key_step(key))
    if not isinstance(key, str) or _KEY_SPELLING_RES[key_type.code].fullmatch(key) is None:
        raise _mismatch(step, f"key spelled for {_type_label(key_type)} ({_key_words(key_type)})", key)
    return step, step, _unspell_key(key_type.code, key), value


def _unspell_key(code: str, key: str) -> Any:
    if code == "b":
        return key == "true"
    if code == "d":
        return _SPECIAL_FLOATS[key] if key in _SPECIAL_FLOATS else float(key)
    return int(key)


def _struct_from_json(t: _Type, value: Any, where: str, depth: int) -> tuple[Any, ...]:
    depth = _enter(where, depth)
    if not isinstance(value, list | tuple) or len(value) != len(t.children):
        raise _mismatch(where, f"array of exactly {_plural(len(t.children), 'item')} ({_type_label(t)})", value)
    return tuple(
        _from_json(field, item, _join(where, f"field {i}"), depth)
        for i, (field, item) in enumerate(zip(t.children, value, strict=True))
    )


def _variant_from_json(t: _Type, value: Any, where: str, depth: int) -> Variant:
    depth = _enter(where, depth)
    if isinstance(value, Mapping):
        return _typed_variant_from_json(value, where, depth)
    bare = _bare_variant_type(value)
    if bare is None:
        raise _ambiguous_variant(value, where)
    return Variant(bare, _from_json(_LEAVES[bare], value, where, depth))


def _bare_variant_type(value: Any) -> str | None:
    """The one type a bare JSON value can mean; None when several could."""
    if isinstance(value, str):
        return "s"
    if isinstance(value, bool):
        return "b"
    if isinstance(value, float) and not value.is_integer():
        return "d"
    return None


def _typed_variant_from_json(value: Mapping[Any, Any], where: str, depth: int) -> Variant:
    if set(value) != {"signature", "value"}:
        if "signature" in value or "value" in value:
            raise _mismatch(where, 'variant object with exactly the keys "signature" and "value"', value)
        raise _ambiguous_variant(value, where)
    signature = value["signature"]
    inner = _variant_signature(signature, _join(where, "variant signature"))
    return Variant(inner.signature, _from_json(inner, value["value"], _join(where, "variant value"), depth))


def _variant_signature(signature: Any, where: str) -> _Type:
    expected = "a single complete D-Bus type signature"
    if not isinstance(signature, str):
        raise _mismatch(where, expected, signature)
    try:
        return _single_type(signature)
    except SignatureError as error:
        raise ValueConversionError(where, expected, f"{_describe(signature)} ({error})") from None


# What a bare value could mean, and a typed form to suggest instead: (could be, signature, value).
def _variant_hint(value: Any) -> tuple[str, str, str]:
    if _is_json_int(value):
        low, high = INTEGER_RANGES["i"]
        suggested = "i" if low <= value <= high else ("x" if value < 0 else "t")
        shown = str(value) if value.bit_length() <= 64 else "…"
        return "y/n/q/i/u/x/t", suggested, shown
    if isinstance(value, float):
        return "d or an integer type", "d", _float_text(value)
    if isinstance(value, list | tuple):
        return "any array or struct type (as, ai, av, ay, (si)…)", "av", "[…]"
    return "any dict type (a{sv}, a{ss}…)", "a{sv}", "{…}"


def _ambiguous_variant(value: Any, where: str) -> ValueConversionError:
    typed_form = '{"signature": S, "value": V}'
    if value is None or not isinstance(value, int | float | list | tuple | Mapping):
        return _mismatch(where, f"a variant {typed_form}, or a bare string, boolean or non-integral number", value)
    could_be, signature, shown = _variant_hint(value)
    return _mismatch(
        where,
        f"a variant {typed_form} (ambiguous variant: {_describe(value)} could be {could_be}; "
        f'pass {{"signature": "{signature}", "value": {shown}}})',
        value,
    )


_FROM_JSON: Final[dict[str, _FromJson]] = {
    **dict.fromkeys(INTEGER_RANGES, _int_from_json),
    "d": _double_from_json,
    "b": _boolean_from_json,
    "s": _string_from_json,
    "o": _object_path_from_json,
    "g": _signature_from_json,
    "a": _array_from_json,
    "(": _struct_from_json,
    "v": _variant_from_json,
}


def _padded_names(count: int, names: Sequence[str | None] | None, signature: str) -> list[str | None]:
    if names is None:
        return [None] * count
    if len(names) > count:
        raise ValueError(
            f"{_plural(len(names), 'name')} given for signature {signature!r}, which has {_plural(count, 'argument')}"
        )
    return [*names, *[None] * (count - len(names))]


def value_from_json(type_signature: str, value: Any, where: str = "value") -> Any:
    """One JSON value as the dbus-fast value for one complete type."""
    return _from_json(_single_type(type_signature), value, where, 0)


def from_json(signature: str, values: Sequence[Any], names: Sequence[str | None] | None = None) -> list[Any]:
    """JSON arguments, in order, as a dbus-fast body for `Message(signature=..., body=...)`."""
    types = _parse(signature)
    labels = _padded_names(len(types), names, signature)
    if not isinstance(values, list | tuple) or len(values) != len(types):
        got = f"{_plural(len(values), 'argument')}" if isinstance(values, list | tuple) else _describe(values)
        raise ValueConversionError("arguments", f"{_plural(len(types), 'argument')} for signature {signature!r}", got)
    return [
        _from_json(t, value, _argument_where(i, name), 0)
        for i, (t, value, name) in enumerate(zip(types, values, labels, strict=True))
    ]


def from_json_object(signature: str, values: Mapping[str, Any], names: Sequence[str | None] | None = None) -> list[Any]:
    """JSON arguments by name (the names `object_arg_names` gives) as a dbus-fast body."""
    types = _parse(signature)
    keys = object_arg_names(signature, names)
    expected = f"object with the keys {_key_list(keys)}" if keys else "empty object (no arguments)"
    if not isinstance(values, Mapping):
        raise _mismatch("arguments", expected, values)
    unknown = [key for key in values if key not in keys]
    if unknown:
        raise ValueConversionError("arguments", expected, f"unknown key {_key_label(unknown[0])}")
    missing = [key for key in keys if key not in values]
    if missing:
        raise ValueConversionError("arguments", expected, f"no key {missing[0]!r}")
    return [
        _from_json(t, values[key], _argument_where(i, key), 0)
        for i, (t, key) in enumerate(zip(types, keys, strict=True))
    ]


def _key_list(keys: Sequence[str]) -> str:
    return ", ".join(repr(key) for key in keys)


# --- dbus-fast -> JSON ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _OutputStyle:
    typed_variants: bool
    base64_bytes: bool


def _output_style(variants: str, bytes_as: str) -> _OutputStyle:
    if variants not in ("plain", "typed"):
        raise ValueError(f"variants must be 'plain' or 'typed', not {variants!r}")
    if bytes_as not in ("auto", "base64"):
        raise ValueError(f"bytes_as must be 'auto' or 'base64', not {bytes_as!r}")
    typed = variants == "typed"
    # Typed output must read back exactly through from_json, and "auto" text cannot be told from base64.
    return _OutputStyle(typed_variants=typed, base64_bytes=typed or bytes_as == "base64")


_ToJson = Callable[[_Type, Any, _OutputStyle], Any]
# C0 and C1 control characters and DEL, except tab, newline and carriage return.
_CONTROL_RE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _to_json(t: _Type, value: Any, style: _OutputStyle) -> Any:
    return _TO_JSON[t.code](t, value, style)


def _same_to_json(t: _Type, value: Any, style: _OutputStyle) -> Any:
    return value


def _double_to_json(t: _Type, value: Any, style: _OutputStyle) -> float | str:
    number = float(value)
    return number if math.isfinite(number) else _float_text(number)


def _array_to_json(t: _Type, value: Any, style: _OutputStyle) -> Any:
    child = t.children[0]
    if child.code == "y":
        return _bytes_to_json(bytes(value), style)
    if child.code == "{":
        return _dict_to_json(child, value, style)
    return [_to_json(child, item, style) for item in value]


def _bytes_to_json(data: bytes, style: _OutputStyle) -> str:
    text = None if style.base64_bytes else _bytes_as_text(data)
    return base64.b64encode(data).decode("ascii") if text is None else text


def _bytes_as_text(data: bytes) -> str | None:
    # Byte arrays are often C strings: one trailing NUL is part of the encoding, not the text.
    if data.endswith(b"\x00"):
        data = data[:-1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if _CONTROL_RE.search(text) else text


def _dict_to_json(entry: _Type, value: Mapping[Any, Any], style: _OutputStyle) -> Any:
    key_type, value_type = entry.children
    if key_type.code in _STRING_KEY_CODES:
        return {key: _to_json(value_type, item, style) for key, item in value.items()}
    return [[_to_json(key_type, key, style), _to_json(value_type, item, style)] for key, item in value.items()]


def _struct_to_json(t: _Type, value: Sequence[Any], style: _OutputStyle) -> list[Any]:
    return [_to_json(field, item, style) for field, item in zip(t.children, value, strict=True)]


def _variant_to_json(t: _Type, value: Variant, style: _OutputStyle) -> Any:
    inner_type = _single_type(value.signature)
    inner = _to_json(inner_type, value.value, style)
    if not style.typed_variants or _reads_back_bare(inner_type.code, value.value):
        return inner
    return {"signature": inner_type.signature, "value": inner}


def _reads_back_bare(code: str, value: Any) -> bool:
    """Whether from_json would give this variant back from its bare value (see _bare_variant_type)."""
    if code == "d":
        number = float(value)
        return math.isfinite(number) and not number.is_integer()
    return code in ("s", "b")


_TO_JSON: Final[dict[str, _ToJson]] = {
    **dict.fromkeys("ybnqiuxtsog", _same_to_json),
    "d": _double_to_json,
    "a": _array_to_json,
    "(": _struct_to_json,
    "v": _variant_to_json,
}


def value_to_json(
    type_signature: str, value: Any, *, variants: VariantStyle = "plain", bytes_as: BytesStyle = "auto"
) -> Any:
    """One dbus-fast value of one complete type as JSON."""
    return _to_json(_single_type(type_signature), value, _output_style(variants, bytes_as))


def to_json(
    signature: str, body: Sequence[Any], *, variants: VariantStyle = "plain", bytes_as: BytesStyle = "auto"
) -> list[Any]:
    """A dbus-fast body as JSON values, serialisable with `json.dumps(..., allow_nan=False)`.

    variants="plain" unwraps every variant; "typed" keeps {"signature", "value"} wherever the bare
    value would not read back as the same type, and always writes byte arrays as base64.
    """
    types = _parse(signature)
    style = _output_style(variants, bytes_as)
    if len(body) != len(types):
        raise ValueConversionError(
            "body", f"{_plural(len(types), 'value')} for signature {signature!r}", _plural(len(body), "value")
        )
    return [_to_json(t, value, style) for t, value in zip(types, body, strict=True)]


# --- JSON Schema ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SchemaStyle:
    """Which side a schema describes: what from_json accepts, or what to_json emits."""

    input: bool
    typed_variants: bool
    base64_bytes: bool


_INPUT: Final = _SchemaStyle(input=True, typed_variants=True, base64_bytes=True)
_SchemaBuilder = Callable[[_Type, _SchemaStyle], dict[str, Any]]


def _schema(t: _Type, style: _SchemaStyle) -> dict[str, Any]:
    return {**_SCHEMAS[t.code](t, style), "description": _schema_description(t, style)}


def _schema_description(t: _Type, style: _SchemaStyle) -> str:
    label = _type_label(t)
    if t.code == "d":
        return f'{label}; NaN and infinities as the strings "NaN", "Infinity", "-Infinity"'
    if t.code == "v":
        if style.typed_variants:
            return f'{label}: {{"signature": S, "value": V}}, or a bare string, boolean or non-integral number'
        return f"{label}, unwrapped to its value"
    if t.signature == "ay":
        if style.input:
            return f"{label}: base64 string or array of integers 0..255"
        return f"{label} as base64" if style.base64_bytes else f"{label}: text when printable UTF-8, else base64"
    if t.code == "a" and t.children[0].code == "{" and t.children[0].children[0].code not in _STRING_KEY_CODES:
        return f"{label}: [key, value] pairs" + ("" if not style.input else ", or an object with spelled keys")
    return label


def _integer_schema(t: _Type, style: _SchemaStyle) -> dict[str, Any]:
    low, high = INTEGER_RANGES[t.code]
    return {"type": "integer", "minimum": low, "maximum": high}


def _double_schema(t: _Type, style: _SchemaStyle) -> dict[str, Any]:
    return {"anyOf": [{"type": "number"}, {"enum": list(_SPECIAL_FLOATS)}]}


def _constant_schema(schema: dict[str, Any]) -> _SchemaBuilder:
    return lambda t, style: dict(schema)


def _array_schema(t: _Type, style: _SchemaStyle) -> dict[str, Any]:
    child = t.children[0]
    if child.code == "y":
        return _bytes_schema(style)
    if child.code == "{":
        return _dict_schema(child, style)
    return {"type": "array", "items": _schema(child, style)}


def _bytes_schema(style: _SchemaStyle) -> dict[str, Any]:
    base64_string = {"type": "string", "contentEncoding": "base64", "pattern": _BASE64_PATTERN}
    if style.input:
        byte_list = {"type": "array", "items": _integer_schema(_LEAVES["y"], style)}
        return {"anyOf": [base64_string, byte_list]}
    return base64_string if style.base64_bytes else {"type": "string"}


def _dict_schema(entry: _Type, style: _SchemaStyle) -> dict[str, Any]:
    key_type, value_type = entry.children
    value_schema = _schema(value_type, style)
    if key_type.code in _STRING_KEY_CODES:
        schema: dict[str, Any] = {"type": "object", "additionalProperties": value_schema}
        if key_type.code != "s":
            schema["propertyNames"] = _SCHEMAS[key_type.code](key_type, style)
        return schema
    pairs = {"type": "array", "items": _tuple_schema([_schema(key_type, style), value_schema])}
    if not style.input:
        return pairs
    # Repeating value_schema here would double the schema at every nested level (2**32 for a hostile
    # signature); the pairs form describes the values and from_json checks them in both forms.
    spelled = {
        "type": "object",
        "propertyNames": {"pattern": _KEY_SPELLINGS[key_type.code]},
        "description": "keys spelled as text, values as in the pairs form",
    }
    return {"anyOf": [pairs, spelled]}


def _tuple_schema(items: list[dict[str, Any]]) -> dict[str, Any]:
    # prefixItems must not be empty, so an empty argument list is described by maxItems alone.
    schema: dict[str, Any] = {"type": "array"}
    if items:
        schema["prefixItems"] = items
    return {**schema, "items": False, "minItems": len(items), "maxItems": len(items)}


def _struct_schema(t: _Type, style: _SchemaStyle) -> dict[str, Any]:
    return _tuple_schema([_schema(field, style) for field in t.children])


def _variant_schema(t: _Type, style: _SchemaStyle) -> dict[str, Any]:
    if not style.typed_variants:
        return {}
    typed = {
        "type": "object",
        "properties": {"signature": {"type": "string", "maxLength": MAX_SIGNATURE_BYTES}, "value": {}},
        "required": ["signature", "value"],
        "additionalProperties": False,
    }
    # JSON Schema counts 5.0 as an integer too, which matches from_json calling it ambiguous.
    non_integral = {"type": "number", "not": {"type": "integer"}}
    return {"anyOf": [typed, {"type": "string"}, {"type": "boolean"}, non_integral]}


_SCHEMAS: Final[dict[str, _SchemaBuilder]] = {
    **dict.fromkeys(INTEGER_RANGES, _integer_schema),
    "d": _double_schema,
    "b": _constant_schema({"type": "boolean"}),
    "s": _constant_schema({"type": "string"}),
    "o": _constant_schema({"type": "string", "pattern": _OBJECT_PATH_PATTERN}),
    "g": _constant_schema({"type": "string", "maxLength": MAX_SIGNATURE_BYTES, "pattern": _SIGNATURE_CHARS_PATTERN}),
    "a": _array_schema,
    "(": _struct_schema,
    "v": _variant_schema,
}


def _titled(schema: dict[str, Any], name: str | None) -> dict[str, Any]:
    return schema if name is None else {"title": name, **schema}


def type_schema(type_signature: str) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the JSON that `value_from_json` accepts for one complete type."""
    return _schema(_single_type(type_signature), _INPUT)


def args_schema(signature: str, names: Sequence[str | None] | None = None) -> dict[str, Any]:
    """JSON Schema of the positional argument list that `from_json` accepts."""
    types = _parse(signature)
    labels = _padded_names(len(types), names, signature)
    items = [_titled(_schema(t, _INPUT), name) for t, name in zip(types, labels, strict=True)]
    return {**_tuple_schema(items), "description": f"D-Bus arguments ({signature or 'none'})"}


def object_arg_names(signature: str, names: Sequence[str | None] | None = None) -> list[str]:
    """Unique property names for the arguments: the sanitised names, else arg0, arg1…"""
    types = _parse(signature)
    chosen: list[str] = []
    for i, raw in enumerate(_padded_names(len(types), names, signature)):
        name = _sanitised_name(raw)
        if name is None or name in chosen:
            name = f"arg{i}"
        while name in chosen:
            name += "_"
        chosen.append(name)
    return chosen


_NAME_UNSAFE_RE: Final = re.compile("[^A-Za-z0-9_]")
_MAX_NAME: Final = 64


def _sanitised_name(raw: str | None) -> str | None:
    if not raw:
        return None
    name = _NAME_UNSAFE_RE.sub("_", raw)[:_MAX_NAME]
    return name if name.strip("_") else None


def args_object_schema(signature: str, names: Sequence[str | None] | None = None) -> dict[str, Any]:
    """JSON Schema of the arguments as one object, keyed by `object_arg_names`; all required."""
    types = _parse(signature)
    labels = _padded_names(len(types), names, signature)
    keys = object_arg_names(signature, names)
    return {
        "type": "object",
        "properties": {
            key: _titled(_schema(t, _INPUT), name) for key, t, name in zip(keys, types, labels, strict=True)
        },
        "required": keys,
        "additionalProperties": False,
        "description": f"D-Bus arguments ({signature or 'none'})",
    }


def output_schema(
    signature: str,
    names: Sequence[str | None] | None = None,
    *,
    variants: VariantStyle = "plain",
    bytes_as: BytesStyle = "auto",
) -> dict[str, Any]:
    """JSON Schema of what `to_json` returns for a reply with this signature."""
    types = _parse(signature)
    labels = _padded_names(len(types), names, signature)
    output = _output_style(variants, bytes_as)
    style = _SchemaStyle(input=False, typed_variants=output.typed_variants, base64_bytes=output.base64_bytes)
    items = [_titled(_schema(t, style), name) for t, name in zip(types, labels, strict=True)]
    return {**_tuple_schema(items), "description": f"D-Bus reply values ({signature or 'none'})"}


def variant_signature(value: Any) -> str:
    """The D-Bus type a variant from a reply holds (e.g. "s" for a Properties.Get of a string property)."""
    if not isinstance(value, Variant):
        raise TypeError(f"expected a variant, got {type(value).__name__}")
    return str(value.signature)


# ---- the same few calls, converted once -------------------------------------------------------------------------

CONVERTED = 1024
"""Argument lists (of strings, integers and booleans) whose conversions are kept; the lot is forgotten when full."""
MEMO_TEXT = 4096
"""Characters of strings an argument list kept in a memo may hold: a few long arguments must not keep 1,024
messages of up to 16 MiB alive."""
_canonical_args: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_bodies: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def memoisable(values: Sequence[Any]) -> bool:
    """Arguments a memo may key on: strings, integers and booleans by exact type (floats never: `-0.0 == 0.0`;
    the types go in the key: `True == 1`), short enough to keep."""
    text = 0
    for value in values:
        kind = type(value)
        if kind is str:
            text += len(value)
        elif kind is not int and kind is not bool:
            return False
    return text <= MEMO_TEXT


def canonical_args(signature: str, values: Sequence[Any], names: Sequence[str | None] | None = None) -> tuple[Any, ...]:
    """JSON arguments checked against `signature` and put in canonical form (`to_json(from_json(...))` with typed
    variants and base64 bytes), the form an Operation holds. A client's reads repeat the same few argument lists:
    lists of scalars, whose conversion is a pure function of the signature and the values with their types (the
    key holds the types: `True == 1`), are converted once. Lists holding anything else are converted every time."""
    key = _scalar_key(signature, values, names)
    known = _canonical_args.get(key) if key is not None else None
    if known is not None:
        return known
    canonical = tuple(to_json(signature, from_json(signature, values, names), variants="typed", bytes_as="base64"))
    if key is not None and memoisable(canonical):
        _remember(_canonical_args, key, canonical)
    return canonical


def body_of(signature: str, canonical: Sequence[Any]) -> list[Any]:
    """An Operation's canonical arguments as the dbus-fast body again (`from_json`), converted once for lists of
    scalars as `canonical_args` is."""
    key = _scalar_key(signature, canonical)
    known = _bodies.get(key) if key is not None else None
    if known is not None:
        return list(known)
    body = from_json(signature, canonical)
    if key is not None and memoisable(body):
        _remember(_bodies, key, tuple(body))
    return body


def _scalar_key(signature: str, values: Any, names: Sequence[str | None] | None = None) -> tuple[Any, ...] | None:
    if not isinstance(values, list | tuple) or not memoisable(values):
        return None
    return signature, tuple(values), tuple(type(value) for value in values), None if names is None else tuple(names)


def _remember(memo: dict[tuple[Any, ...], tuple[Any, ...]], key: tuple[Any, ...], value: tuple[Any, ...]) -> None:
    # Cleared rather than trimmed: a clear is one step, safe while another thread converts (approvals do).
    if len(memo) >= CONVERTED:
        memo.clear()
    memo[key] = value
