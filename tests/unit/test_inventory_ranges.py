"""Host ranges (`web[01:20]`, `db-[a:f]`, `[1:20:2]`): the documented forms, and properties over all of them —
the count is known before expansion, numbers follow Python's range, several ranges multiply."""

from __future__ import annotations

import string
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fleetbus.hosts.ranges import HostRangeError, count_hosts, expand_hosts, has_range

LIMIT = 100_000


def test_documented_forms() -> None:
    assert expand_hosts("www[01:03].example.com", limit=LIMIT) == [
        "www01.example.com",
        "www02.example.com",
        "www03.example.com",
    ]
    assert expand_hosts("www[01:10:4]", limit=LIMIT) == ["www01", "www05", "www09"]
    assert expand_hosts("db-[a:f].example.com", limit=LIMIT) == [f"db-{c}.example.com" for c in "abcdef"]
    assert expand_hosts("db-[99:101]-node", limit=LIMIT) == ["db-99-node", "db-100-node", "db-101-node"]
    assert expand_hosts("plain", limit=LIMIT) == ["plain"]


def test_ansible_quirks_kept() -> None:
    assert expand_hosts("h[:2]", limit=LIMIT) == ["h0", "h1", "h2"]  # a missing begin is 0
    assert expand_hosts("h[y:B]", limit=LIMIT) == ["hy", "hz", "hA", "hB"]  # letters run on into capitals
    assert expand_hosts("h[9:1]", limit=LIMIT) == []  # a backwards number range is empty
    assert expand_hosts("h[1:010]", limit=LIMIT)[-1] == "h10"  # only a padded begin asks for padding


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("h[1:2", "unbalanced"),
        ("h]1:2[", "unbalanced"),
        ("h[1:2]]", "unbalanced"),
        ("h[1]", "must be [begin:end]"),
        ("h[1:2:3:4]", "must be [begin:end]"),
        ("h[1:]", "has no end"),
        ("h[01:100]", "same width"),
        ("h[1:9:0]", "positive whole number"),
        ("h[1:9:-1]", "positive whole number"),
        ("h[ab:cd]", "two numbers or two single letters"),
        ("h[1:1000000000000000]", "more than 12 digits"),
    ],
)
def test_malformed_ranges_are_refused(name: str, words: str) -> None:
    with pytest.raises(HostRangeError, match=words.replace("[", r"\[")):
        expand_hosts(name, limit=LIMIT)


def test_a_hostile_range_is_refused_without_being_expanded() -> None:
    started = time.perf_counter()
    with pytest.raises(HostRangeError, match="expands to 100,000,000 names, more than the limit of 100,000"):
        expand_hosts("web[0:99999999]", limit=LIMIT)
    with pytest.raises(HostRangeError, match="expands to 1,000,000,000,000 names"):
        expand_hosts("a[1:10000]b[1:10000]c[1:10000]", limit=LIMIT)
    assert time.perf_counter() - started < 0.1


@settings(max_examples=200, deadline=None)
@given(
    begin=st.integers(0, 500),
    span=st.integers(-3, 300),
    step=st.integers(1, 40),
    padded=st.booleans(),
    head=st.sampled_from(["web", "db-", ""]),
    tail=st.sampled_from(["", ".example.com", "-node"]),
)
def test_numbers_follow_python_range(begin: int, span: int, step: int, padded: bool, head: str, tail: str) -> None:
    end = begin + span
    assume(end >= 0)
    width = len(str(max(begin, end))) + 1 if padded else 0
    low, high = str(begin).zfill(width), str(end).zfill(width)
    name = f"{head}[{low}:{high}:{step}]{tail}"
    expected = [f"{head}{str(number).zfill(width)}{tail}" for number in range(begin, end + 1, step)]
    assert expand_hosts(name, limit=LIMIT) == expected
    assert count_hosts(name) == len(expected)


@settings(max_examples=100, deadline=None)
@given(first=st.sampled_from(string.ascii_letters), last=st.sampled_from(string.ascii_letters), step=st.integers(1, 5))
def test_letters_follow_ascii_letters(first: str, last: str, step: int) -> None:
    i, j = string.ascii_letters.index(first), string.ascii_letters.index(last)
    if i > j:
        with pytest.raises(HostRangeError, match="runs backwards"):
            expand_hosts(f"h[{first}:{last}:{step}]", limit=LIMIT)
        return
    assert expand_hosts(f"h[{first}:{last}:{step}]", limit=LIMIT) == [
        "h" + c for c in string.ascii_letters[i : j + 1 : step]
    ]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=3))
def test_several_ranges_multiply_with_the_first_varying_slowest(bounds: list[tuple[int, int]]) -> None:
    name = "-".join(f"r[{low}:{low + extra}]" for low, extra in bounds)
    names = expand_hosts(name, limit=LIMIT)
    total = 1
    for _, extra in bounds:
        total *= extra + 1
    assert len(names) == total == count_hosts(name)
    assert len(set(names)) == total
    assert names == sorted(names, key=lambda text: [int(part[1:]) for part in text.split("-")])
    assert all(not has_range(generated) for generated in names)


@settings(max_examples=100, deadline=None)
@given(count=st.integers(1, 4000), limit=st.integers(1, 2000))
def test_the_limit_is_exact(count: int, limit: int) -> None:
    name = f"h[1:{count}]"
    if count > limit:
        with pytest.raises(HostRangeError, match="more than the limit"):
            expand_hosts(name, limit=limit)
    else:
        assert len(expand_hosts(name, limit=limit)) == count
