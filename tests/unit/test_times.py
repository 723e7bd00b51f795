"""Time expressions: ISO, relative ('-15m', '1 hour ago'), named days and epochs become absolute UTC times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbus.tools.times import TimeExpressionError, from_usec, iso, journal_time, parse_time, to_usec

NOW = datetime(2026, 11, 21, 18, 30, 15, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("-15m", NOW - timedelta(minutes=15)),
        ("- 15 min", NOW - timedelta(minutes=15)),
        ("+2h", NOW + timedelta(hours=2)),
        ("1 hour ago", NOW - timedelta(hours=1)),
        ("1h30m ago", NOW - timedelta(hours=1, minutes=30)),
        ("2 days 3 hours ago", NOW - timedelta(days=2, hours=3)),
        ("90s ago", NOW - timedelta(seconds=90)),
        ("1.5h ago", NOW - timedelta(minutes=90)),
        ("-1w", NOW - timedelta(weeks=1)),
        ("today", datetime(2026, 11, 21, tzinfo=UTC)),
        ("yesterday", datetime(2026, 11, 20, tzinfo=UTC)),
        ("tomorrow", datetime(2026, 11, 22, tzinfo=UTC)),
        ("2026-11-21T17:00:00Z", datetime(2026, 11, 21, 17, tzinfo=UTC)),
        ("2026-11-21T19:00:00+02:00", datetime(2026, 11, 21, 17, tzinfo=UTC)),
        ("2026-11-21 17:00", datetime(2026, 11, 21, 17, tzinfo=UTC)),
        ("2026-11-21", datetime(2026, 11, 21, tzinfo=UTC)),
        ("2026-11-21T17:00:00.123456", datetime(2026, 11, 21, 17, 0, 0, 123456, tzinfo=UTC)),
        ("17:05", datetime(2026, 11, 21, 17, 5, tzinfo=UTC)),
        ("17:05:30", datetime(2026, 11, 21, 17, 5, 30, tzinfo=UTC)),
        ("@1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("@1700000000.5", datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)),
    ],
)
def test_expressions_become_absolute_utc_times(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


def test_now_in_another_zone_is_the_same_instant() -> None:
    elsewhere = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert parse_time("-1h", elsewhere) == NOW - timedelta(hours=1)
    assert parse_time("today", elsewhere) == datetime(2026, 11, 21, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("15m", "without a direction"),
        ("-15x", "unknown unit 'x'"),
        ("-1 ago", "unknown unit 'ago'"),
        ("-15m ago", "both a sign and 'ago'"),
        ("soon", "not a time"),
        ("2026-13-01", "not a time"),
        ("25:00", "not a time of day"),
        ("@abc", "not a number"),
        ("@-5", "out of range"),
        ("99999999999999999999999d ago", "more than a century"),
        ("0001-01-01", "out of range"),
        ("last tuesday", "not a time"),
    ],
)
def test_bad_expressions_name_the_argument_and_the_problem(text: str, problem: str) -> None:
    with pytest.raises(TimeExpressionError) as raised:
        parse_time(text, NOW, argument="since")
    assert str(raised.value).startswith(f"invalid argument 'since': {text!r}")
    assert problem in str(raised.value)


def test_renderings() -> None:
    moment = datetime(2026, 11, 21, 17, 0, 5, 123456, tzinfo=UTC)
    assert journal_time(moment) == "2026-11-21 17:00:05.123456 UTC"
    assert iso(moment) == "2026-11-21T17:00:05.123Z"
    assert iso(moment, digits=6) == "2026-11-21T17:00:05.123456Z"


@given(st.integers(min_value=0, max_value=253_402_300_799_999_999))
def test_microseconds_round_trip(usec: int) -> None:
    assert to_usec(from_usec(usec)) == usec


@given(st.text(max_size=40))
def test_any_text_parses_or_fails_with_a_time_expression_error(text: str) -> None:
    try:
        moment = parse_time(text, NOW)
    except TimeExpressionError as exc:
        message = str(exc)
        assert "invalid argument 'time'" in message
    else:
        assert moment.tzinfo is not None
        journal_time(moment)
