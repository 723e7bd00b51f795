"""Narrowing big answers: pages of the largest list (or a named map) within a budget that, followed by their
positions, give back the whole answer exactly once; and JMESPath selections with errors that name `select`."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbus import narrowing
from fleetbus.output import render_json

ROW = st.tuples(
    st.text(max_size=60),
    st.text(max_size=200),
    st.integers(),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)


def walk(value: dict[str, Any], budget: int, path: list[str] | None = None) -> list[narrowing.Paged]:
    pages = [narrowing.page(value, budget, None, path)]
    while pages[-1].resume is not None:
        pages.append(narrowing.page(value, budget, pages[-1].resume, path))
        assert len(pages) < 10_000
    return pages


@settings(max_examples=60, deadline=None)
@given(st.lists(ROW, min_size=0, max_size=150), st.integers(narrowing.MIN_BUDGET, 6_000))
def test_pages_of_a_reply_give_back_every_item_once_each_within_the_budget(rows: list[Any], budget: int) -> None:
    answer = {"signature": "a(ssia{ss})", "values": [[list(row) for row in rows]]}
    pages = walk(answer, budget)
    if len(render_json(answer)) <= budget:
        assert [p.value for p in pages] == [answer]
        return
    seen = [item for p in pages for item in p.value["values"][0]]
    assert seen == answer["values"][0]
    for p in pages:
        assert p.page is not None
        assert p.page["of"] == "values/0"
        assert p.page["total"] == len(rows)
        shown = p.value["values"][0]
        # A page holds at least one item, and more only while they fit.
        assert len(shown) == p.page["count"] >= 1
        assert len(shown) == 1 or len(render_json(p.value)) <= budget


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=30), st.text(max_size=300), min_size=1, max_size=120))
def test_a_map_pages_by_its_entries_in_order(properties: dict[str, str]) -> None:
    answer = {"interface": "org.example.X", "properties": properties}
    pages = walk(answer, narrowing.MIN_BUDGET, ["properties"])
    merged: dict[str, str] = {}
    for p in pages:
        assert not set(p.value["properties"]) & set(merged)
        merged.update(p.value["properties"])
    assert list(merged.items()) == list(properties.items())


def test_a_position_beyond_the_answer_says_it_changed() -> None:
    answer = {"values": [[1, 2, 3]]}
    with pytest.raises(narrowing.NarrowingError, match="has changed"):
        narrowing.page(answer, narrowing.MIN_BUDGET, {"path": ["values", "0"], "offset": 7})
    with pytest.raises(narrowing.NarrowingError, match="has changed"):
        narrowing.page(answer, narrowing.MIN_BUDGET, {"path": ["elsewhere"], "offset": 0})


def test_select_picks_fields_by_position_and_filters() -> None:
    answer = {"values": [[["a.one", "First", 1], ["b.two", "Second", 2], ["a.three", "Third", 3]]]}
    assert narrowing.select(answer, "values[0][*][0]") == ["a.one", "b.two", "a.three"]
    assert narrowing.select(answer, "values[0][?starts_with([0], 'a.')].{id: [0], n: [2]}") == [
        {"id": "a.one", "n": 1},
        {"id": "a.three", "n": 3},
    ]


@pytest.mark.parametrize("expression", ["values[0][*].[0", "values[", "nosuchfunction(values)"])
def test_an_expression_that_does_not_parse_names_select(expression: str) -> None:
    with pytest.raises(narrowing.NarrowingError) as raised:
        narrowing.select({"values": [[1]]}, expression)
    assert str(raised.value).startswith("invalid argument 'select'")
    assert "\n" not in str(raised.value)


def test_a_selection_of_nothing_is_an_error_naming_the_keys() -> None:
    with pytest.raises(narrowing.NarrowingError) as raised:
        narrowing.select({"signature": "as", "values": [["x"]]}, "value[0]")
    assert "selects nothing" in str(raised.value)
    assert "signature, values" in str(raised.value)
