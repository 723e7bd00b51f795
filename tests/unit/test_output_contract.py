"""The output contract: one rendering per result (TOON or JSON), cursors bound to their query, pages that fit the
budget and say so."""

from __future__ import annotations

import json

import pytest
import toon_format
from hypothesis import given
from hypothesis import strategies as st

from fleetbus import output

ROWS = [
    {"unit": f"worker-{i}.service", "load": "loaded", "active": "active", "sub": "running", "description": "A, b"}
    for i in range(20)
]


def test_toon_renders_uniform_rows_as_one_table_and_round_trips() -> None:
    result = output.success({"units": ROWS, "total": 20, "next_cursor": None}, fmt="toon")
    assert result.text.startswith("units[20\t]{unit\tload\tactive\tsub\tdescription}:")
    assert "worker-3.service\tloaded\tactive\trunning\tA, b" in result.text
    assert toon_format.loads(result.text) == result.structured
    assert "{" not in result.text.splitlines()[1]  # no JSON inside: one rendering, not two


def test_json_is_compact_and_the_same_value() -> None:
    result = output.success({"units": ROWS[:2]}, fmt="json")
    assert json.loads(result.text) == result.structured
    assert result.text == output.render_json(result.structured)


def test_toon_is_smaller_than_json_for_tables() -> None:
    value = {"units": ROWS}
    assert len(output.render_toon(value)) < 0.7 * len(output.render_json(value))


def test_requested_format_falls_back_to_the_tool_default() -> None:
    schema = {"properties": {"format": output.format_schema("toon")}}
    assert output.requested_format(schema, {}) == "toon"
    assert output.requested_format(schema, {"format": "json"}) == "json"
    assert output.requested_format({"properties": {}}, {}) == "json"
    assert output.requested_format({}, {"format": "xml"}) == "json"


def test_system_text_is_cleaned_in_both_renderings() -> None:
    hostile = {"rows": [{"message": "ok\x1b[31mred\u202e"}]}
    for fmt in output.FORMATS:
        result = output.success(hostile, fmt=fmt)
        assert "\x1b" not in result.text
        assert "\u202e" not in result.text
        assert result.structured == {"rows": [{"message": "okred"}]}


def test_take_stops_at_limit_and_reports_more() -> None:
    page = output.take(ROWS[:6], 5)
    assert page.rows == ROWS[:5]
    assert page.more is True
    assert page.note is None
    last = output.take(ROWS[:5], 5)
    assert (last.rows, last.more) == (ROWS[:5], False)


def test_take_stops_at_the_budget_and_says_so() -> None:
    size = len(output.render_json(ROWS[0])) + 1
    page = output.take(ROWS, 20, budget=size * 3 + 2)
    assert page.rows == ROWS[:3]
    assert page.more is True
    assert page.note is not None
    assert "kept 3 rows" in page.note
    # One row always fits, however big: a page never comes back empty while rows remain.
    assert output.take(ROWS, 20, budget=1).rows == ROWS[:1]


def test_a_cursor_round_trips_for_its_own_query_only() -> None:
    query = {"pattern": "worker-*", "state": None}
    token = output.encode_cursor("list_units", query, {"after": "worker-3.service"})
    assert output.decode_cursor(token, "list_units", query) == {"after": "worker-3.service"}
    assert token.isascii()
    assert "worker" not in token  # opaque
    with pytest.raises(output.CursorError, match="other arguments"):
        output.decode_cursor(token, "list_units", {**query, "state": "failed"})
    with pytest.raises(output.CursorError, match="another tool"):
        output.decode_cursor(token, "list_unit_files", query)


@given(st.text(max_size=200))
def test_any_string_is_a_cursor_or_a_cursor_error(token: str) -> None:
    try:
        position = output.decode_cursor(token, "list_units", {})
    except output.CursorError as exc:
        message = str(exc)
        assert message.startswith("invalid argument 'cursor'")
    else:
        assert isinstance(position, dict)


def test_a_huge_result_is_cut_to_the_budget_and_says_so_in_either_format() -> None:
    rows = [{"n": i, "message": "x" * 100} for i in range(2000)]
    for fmt in output.FORMATS:
        result = output.success({"entries": rows}, fmt=fmt)
        assert not result.is_error
        assert len(output.render_json(result.structured)) <= output.MAX_RESULT_CHARS
        assert len(result.text) <= output.MAX_RESULT_CHARS
        assert result.structured["truncated"]
        assert "narrow the request" in result.structured["truncated"][0]
