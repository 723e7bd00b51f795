"""Hypothesis strategies for D-Bus signatures, the dbus-fast values that match them, and arbitrary JSON."""

from __future__ import annotations

from typing import Any

from dbus_fast import Variant
from dbus_fast.signature import SignatureType, get_signature_tree
from hypothesis import strategies as st

# Every basic type fleetbus carries; "h" (unix fd) is refused, so it only appears when asked for.
BASIC_CODES = "ybnqiuxtdsog"
INT_RANGES: dict[str, tuple[int, int]] = {
    "y": (0, 2**8 - 1),
    "n": (-(2**15), 2**15 - 1),
    "q": (0, 2**16 - 1),
    "i": (-(2**31), 2**31 - 1),
    "u": (0, 2**32 - 1),
    "x": (-(2**63), 2**63 - 1),
    "t": (0, 2**64 - 1),
}
# Deeper variant chains are covered by explicit tests; here they would only slow generation down.
_MAX_VARIANT_NESTING = 3


def complete_types(max_leaves: int = 6, *, with_variants: bool = True, with_fd: bool = False) -> st.SearchStrategy[str]:
    """One complete type over the whole grammar: basics, arrays, dicts with every key type, structs."""
    basics = BASIC_CODES + ("h" if with_fd else "")
    leaves = st.sampled_from(list(basics + ("v" if with_variants else "")))
    keys = st.sampled_from(list(basics))

    def containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            children.map(lambda child: "a" + child),
            st.tuples(keys, children).map(lambda entry: "a{" + entry[0] + entry[1] + "}"),
            st.lists(children, min_size=1, max_size=4).map(lambda fields: "(" + "".join(fields) + ")"),
        )

    return st.recursive(leaves, containers, max_leaves=max_leaves)


def signatures(max_types: int = 4, max_leaves: int = 6, *, with_fd: bool = False) -> st.SearchStrategy[str]:
    """Zero or more complete types, as a method's argument or reply signature."""
    types = complete_types(max_leaves, with_fd=with_fd)
    return st.lists(types, max_size=max_types).map("".join)


def object_paths() -> st.SearchStrategy[str]:
    element = st.from_regex(r"[A-Za-z0-9_]{1,8}", fullmatch=True)
    return st.one_of(st.just("/"), st.lists(element, min_size=1, max_size=4).map(lambda xs: "/" + "/".join(xs)))


def dbus_strings() -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)


def byte_arrays() -> st.SearchStrategy[bytes]:
    # Text-like bytes as well, so the "auto" output path sees both of its outcomes.
    return st.one_of(st.binary(max_size=12), dbus_strings().map(str.encode), st.just(b"C string\x00"))


def _basic_values(token: str, *, as_key: bool) -> st.SearchStrategy[Any]:
    if token in INT_RANGES:
        low, high = INT_RANGES[token]
        return st.integers(low, high)
    strategies: dict[str, st.SearchStrategy[Any]] = {
        # NaN keys never compare equal, so a dict could not be compared after a round trip.
        "d": st.floats(allow_nan=not as_key),
        "b": st.booleans(),
        "s": dbus_strings(),
        "o": object_paths(),
        "g": signatures(max_types=3, max_leaves=4, with_fd=True),
    }
    return strategies[token]


def values_of(type_: SignatureType, variant_nesting: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped as dbus-fast unmarshals them: tuples for structs, bytes for ay, Variant for v."""
    token = type_.token
    if token == "a":
        return _array_values(type_.children[0], variant_nesting)
    if token == "(":
        return st.tuples(*(values_of(field, variant_nesting) for field in type_.children))
    if token == "v":
        return variants(variant_nesting + 1)
    return _basic_values(token, as_key=False)


def _array_values(child: SignatureType, variant_nesting: int) -> st.SearchStrategy[Any]:
    if child.token == "y":
        return byte_arrays()
    if child.token == "{":
        key, value = child.children
        return st.dictionaries(_basic_values(key.token, as_key=True), values_of(value, variant_nesting), max_size=3)
    return st.lists(values_of(child, variant_nesting), max_size=3)


def variants(nesting: int = 1) -> st.SearchStrategy[Variant]:
    inner = complete_types(4, with_variants=nesting < _MAX_VARIANT_NESTING)
    return inner.flatmap(
        lambda signature: values_of(get_signature_tree(signature).types[0], nesting).map(
            lambda value: Variant(signature, value)
        )
    )


def bodies(signature: str) -> st.SearchStrategy[list[Any]]:
    types = get_signature_tree(signature).types
    return st.tuples(*(values_of(t) for t in types)).map(list)


def signatures_with_bodies() -> st.SearchStrategy[tuple[str, list[Any]]]:
    return signatures().flatmap(lambda signature: bodies(signature).map(lambda body: (signature, body)))


def json_values() -> st.SearchStrategy[Any]:
    """Arbitrary JSON-ish input, hostile corners included: huge ints, NaN, NUL, lone surrogates."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.just(10**400),
        st.floats(),
        st.text(max_size=6),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "/", "/a/b", "aGk=", "a{sv}", "h", "5", "true"]),
    )

    def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        typed_variant = st.fixed_dictionaries(
            {"signature": st.one_of(complete_types(3, with_fd=True), st.text(max_size=4)), "value": children}
        )
        return st.one_of(
            st.lists(children, max_size=4), st.dictionaries(st.text(max_size=4), children, max_size=4), typed_variant
        )

    return st.recursive(scalars, containers, max_leaves=12)


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """The JSON value with one node replaced by arbitrary JSON, or one object key renamed."""
    action = draw(st.sampled_from(["replace", "descend", "rename"]))
    if action != "replace" and isinstance(value, list) and value:
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], draw(mutated(value[index])), *value[index + 1 :]]
    if action != "replace" and isinstance(value, dict) and value:
        key = draw(st.sampled_from(sorted(value)))
        changed = dict(value)
        if action == "rename":
            changed[draw(st.text(max_size=4))] = changed.pop(key)
        else:
            changed[key] = draw(mutated(value[key]))
        return changed
    return draw(json_values())
