"""Host patterns in Ansible's grammar. Every pattern of tests/inventories/patterns.json was evaluated by Ansible
2.14 itself (make_goldens.py): fleetbus must select the same hosts in the same order and report the same
unmatched terms. Then the documented examples spelled out, what fleetbus adds (`local`, errors, caching),
and the algebra as properties over random inventories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbus.hosts.inventory import LOCAL_HOST, Inventory, InventoryBuilder, Location, load_inventory
from fleetbus.hosts.patterns import (
    MAX_PATTERN_LENGTH,
    PatternError,
    compile_pattern,
    matches,
    select_hosts,
    split_pattern,
)

FIXTURES = Path(__file__).resolve().parents[1] / "inventories"
GOLDEN: dict[str, dict[str, dict[str, Any]]] = json.loads((FIXTURES / "patterns.json").read_text())
CASES = [(fixture, pattern) for fixture, patterns in GOLDEN.items() for pattern in patterns]
_loaded: dict[str, Inventory] = {}


def inventory_of(fixture: str) -> Inventory:
    if fixture not in _loaded:
        _loaded[fixture] = load_inventory(FIXTURES / fixture)
    return _loaded[fixture]


def names(pattern: str | list[str], fixture: str = "patterns.ini") -> list[str]:
    return list(select_hosts(pattern, inventory_of(fixture)).names)


def test_the_goldens_cover_the_grammar() -> None:
    assert len(CASES) >= 150
    assert sum(1 for answers in GOLDEN.values() for answer in answers.values() if "error" in answer) >= 2
    assert sum(1 for answers in GOLDEN.values() for answer in answers.values() if answer.get("unmatched")) >= 8


@pytest.mark.parametrize(("fixture", "pattern"), CASES)
def test_selects_what_ansible_selects(fixture: str, pattern: str) -> None:
    answer = GOLDEN[fixture][pattern]
    selection = select_hosts(pattern, inventory_of(fixture))
    if "error" in answer:
        # Ansible aborts on a subscript past the end; fleetbus reports the term as matching nothing.
        assert "No hosts matched the subscripted pattern" in answer["error"]
        assert selection.hosts == ()
        assert [item.reason.startswith("has a subscript beyond its ") for item in selection.unmatched] == [True]
        return
    if answer["ordered"]:
        assert list(selection.names) == answer["hosts"]
    else:  # Ansible's own order changes with the hash seed here; the hosts do not
        assert sorted(selection.names) == sorted(answer["hosts"])
    assert [item.expression for item in selection.unmatched] == answer["unmatched"]


def test_documented_examples() -> None:
    assert names("all") == names("*")
    assert names("webservers:dbservers") == names("webservers,dbservers")
    assert names("webservers:!atlanta") == ["cobweb", "webbing", "www1.example.com", "www2.example.com"]
    assert names("webservers:&staging") == ["webbing"]
    # Unions, then intersections, then exclusions, in whatever order they are written.
    assert names("!phoenix:&staging:webservers:dbservers") == names("webservers:dbservers:&staging:!phoenix")
    assert names("webservers:dbservers:&staging:!phoenix") == ["webbing"]
    assert names("webservers[0]") == ["cobweb"]
    assert names("webservers[-1]") == ["www2.example.com"]
    assert names("webservers[0:2]") == ["cobweb", "webbing", "weber"]  # inclusive
    assert names("webservers[1:]") == ["webbing", "weber", "www1.example.com", "www2.example.com"]
    assert names("~(web|db).*\\.example\\.com") == ["db1.example.com"]  # matched from the start of the name
    assert names("192.0.*") == ["192.0.2.10", "192.0.3.7"]


def test_ipv6_addresses_need_commas_to_be_combined() -> None:
    assert split_pattern("2001:db8::1") == ["2001:db8::1"]
    assert split_pattern("fe80::*") == ["fe80::*"]
    assert split_pattern("2001:db8::1,!2001:db8::2") == ["2001:db8::1", "!2001:db8::2"]
    assert split_pattern("web[01:03]") == ["web[01:03]"]
    assert split_pattern("web:&db,!x") == ["web:&db", "!x"]  # with a comma, colons no longer split
    assert split_pattern("web  db") == ["web", "db"]
    assert names("v6,!2001:db8::1", "addresses.ini") == ["2001:db8::2"]
    assert names("fe80::*", "addresses.ini") == ["fe80::a", "fe80::b", "fe80::c"]


def test_local_is_selected_only_by_its_name() -> None:
    inventory = inventory_of("patterns.ini")
    assert select_hosts("local", inventory).hosts == (LOCAL_HOST,)
    assert names("local:cobweb") == ["local", "cobweb"]
    assert "local" not in names("all")
    assert "local" not in names("*")
    assert names("loc*") == []  # a glob never reaches it
    assert names("local:!local") == []
    assert matches("local", "local", inventory)
    assert not matches("all", "local", inventory)


def test_unknown_names_are_reported_so_a_caller_can_say_so() -> None:
    selection = select_hosts("webservers:nosuch:!atlnta", inventory_of("patterns.ini"))
    assert selection.names == ("cobweb", "webbing", "weber", "www1.example.com", "www2.example.com")
    assert selection.problems() == [
        "pattern 'webservers:nosuch:!atlnta': 'nosuch' names no host or group",
        "pattern 'webservers:nosuch:!atlnta': '!atlnta' names no host or group",
    ]
    assert select_hosts("nosuch", inventory_of("patterns.ini")).problems() == [
        "pattern 'nosuch': 'nosuch' names no host or group",
        "pattern 'nosuch' matches no host",
    ]
    assert select_hosts("empty", inventory_of("patterns.ini")).problems() == ["pattern 'empty' matches no host"]
    beyond = select_hosts("webservers[7]", inventory_of("patterns.ini"))
    assert beyond.problems() == [
        "pattern 'webservers[7]': 'webservers[7]' has a subscript beyond its 5 hosts",
        "pattern 'webservers[7]' matches no host",
    ]


def test_a_list_is_one_pattern_whose_exclusions_apply_to_all_of_it() -> None:
    assert names(["webservers", "dbservers:!atlanta"]) == names("webservers:dbservers:!atlanta")
    # (webservers ∪ dbservers) ∩ staging — not the comma-joined text, where "webservers:&staging" would be one
    # (unknown) name.
    assert names(["webservers:&staging", "dbservers"]) == ["webbing", "two.example.com"]
    assert names("webservers:&staging,dbservers") == ["one.example.com", "two.example.com", "db1.example.com"]


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("", "an empty host pattern selects nothing; write 'all'"),
        (" , ", "host pattern ' , ' has no term"),
        ("web:!", "has an operator and nothing to apply it to"),
        ("~web(", "is not a valid regular expression"),
        ("web[1-3]", "a subscript is written [start:end]"),
        ("x" * (MAX_PATTERN_LENGTH + 1), "at most 4096 characters"),
    ],
)
def test_invalid_patterns_are_refused(pattern: str, words: str) -> None:
    with pytest.raises(PatternError, match=words.replace("[", r"\[").replace("(", r"\(")):
        compile_pattern(pattern)


def test_regular_expressions_can_be_refused_for_untrusted_callers() -> None:
    with pytest.raises(PatternError, match="regular expressions are not accepted here"):
        compile_pattern("web:~.*", allow_regex=False)
    assert compile_pattern("web*:!web01", allow_regex=False).terms[0].expression == "web*"


def test_matches_remembers_per_inventory_and_never_mixes_inventories() -> None:
    first, second = inventory_of("patterns.ini"), inventory_of("basic.ini")
    pattern = compile_pattern("webservers:!weber")
    assert pattern.matches("cobweb", first)
    assert not pattern.matches("weber", first)
    assert pattern.matches("foo.example.com", second)
    assert not pattern.matches("cobweb", second)
    assert pattern.names(first) is pattern.names(first)
    assert not matches("webservers", "nosuch", first)


# Properties over random inventories ---------------------------------------------------------------------


@st.composite
def inventories(draw: st.DrawFn) -> Inventory:
    hosts = [f"h{index}" for index in range(draw(st.integers(0, 8)))]
    groups = [f"g{index}" for index in range(draw(st.integers(0, 5)))]
    builder = InventoryBuilder()
    here = Location("generated")
    for group in groups:
        builder.add_group(group, here)
        for host in draw(st.lists(st.sampled_from(hosts), unique=True)) if hosts else []:
            builder.add_host(host, here, group=group)
    for host in hosts:
        builder.add_host(host, here)
    for parent_index, parent in enumerate(groups):
        # Children only further down the list: groups never form a cycle.
        for child in (
            draw(st.lists(st.sampled_from(groups[parent_index + 1 :]), unique=True, max_size=2))
            if groups[parent_index + 1 :]
            else []
        ):
            builder.add_child(parent, child, here)
    return builder.build("generated")


def terms(inventory: Inventory) -> st.SearchStrategy[str]:
    named = sorted(set(inventory.hosts) | set(inventory.groups) - {"ungrouped"}) or ["all"]
    base = st.one_of(
        st.sampled_from(named), st.sampled_from(["all", "*", "h*", "g*", "*1", "~h[0-3]", "~g", "nosuch", "h?"])
    )
    subscript = st.sampled_from(["", "", "", "[0]", "[-1]", "[1:2]", "[1:]"])
    return st.builds(lambda term, suffix: term + (suffix if not term.startswith("~") else ""), base, subscript)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_pattern_algebra(data: st.DataObject) -> None:
    inventory = data.draw(inventories())
    a = data.draw(terms(inventory))
    b = data.draw(terms(inventory))

    def chosen(pattern: str) -> list[str]:
        return list(select_hosts(pattern, inventory).names)

    union = chosen(f"{a}:{b}")
    assert union == chosen(a) + [name for name in chosen(b) if name not in chosen(a)]
    assert chosen(f"{a},{b}") == union
    assert chosen(f"{a}:!{a}") == []
    assert chosen(f"{a}:&{a}") == chosen(a)
    assert chosen(f"{a}:&{b}") == [name for name in chosen(a) if name in chosen(b)]
    assert set(chosen(f"{a}:&{b}")) == set(chosen(f"{b}:&{a}"))
    assert set(chosen(f"{a}:!{b}")) | set(chosen(f"{a}:&{b}")) == set(chosen(a))
    assert chosen(f"!{a}") == chosen(f"all:!{a}")
    assert chosen(f"&{a}") == chosen(f"all:&{a}")
    assert chosen(f"!{b}:{a}") == chosen(f"{a}:!{b}")
    assert list(select_hosts([a, f"!{b}"], inventory).names) == chosen(f"{a}:!{b}")
    for host in inventory.hosts:
        assert matches(f"{a}:!{b}", host, inventory) == (host in chosen(f"{a}:!{b}"))
    assert set(chosen("all")) == set(inventory.hosts)
