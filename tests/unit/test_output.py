"""Result shaping: system text is cleaned of control, ANSI and bidi characters; results stay within budget."""

from __future__ import annotations

import json

from fleetbus import output


def test_escape_sequences_control_and_bidi_characters_are_removed() -> None:
    hostile = "ok\x1b[31mRED\x1b[0m \x1b]0;title\x07done\x00\x07 \u202eevil\u202c \u2066x\u2069\ttab\nline\u200f"
    assert output.clean_text(hostile) == "okRED done evil x\ttab\nline"


def test_clean_reaches_keys_and_nested_values() -> None:
    assert output.clean({"a\x1b[1m": ["b\x08", {"c": "\u202ed"}], "n": 5}) == {"a": ["b", {"c": "d"}], "n": 5}


def test_results_over_budget_shorten_their_largest_list_and_say_so() -> None:
    rows = [{"unit": f"unit-{i}.service", "state": "active"} for i in range(2000)]
    result = output.success({"units": rows, "host": "h"}, budget=5000)
    assert not result.is_error
    assert len(result.text) <= 5000 + 200
    kept = result.structured["units"]
    assert 0 < len(kept) < 2000
    assert kept == rows[: len(kept)]
    assert result.structured["truncated"] == [
        f"units: kept {len(kept)} of 2000 items to stay under 5000 characters; narrow the request to see the rest"
    ]
    assert json.loads(result.text) == result.structured


def test_a_result_that_cannot_be_shortened_enough_is_an_error() -> None:
    result = output.success({"blob": "x" * 10_000}, budget=1000)
    assert result.is_error
    assert "over the budget of 1000" in result.text
