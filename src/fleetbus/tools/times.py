"""The times a person writes — ISO 8601, "1 hour ago", "-15m", "yesterday", "@1700000000" — as absolute UTC
times, parsed here (not by journalctl) so that every host is asked about the same instant."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
MAX_SPAN = timedelta(days=366 * 100)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_RELATIVE = re.compile(r"^(?P<sign>[+-])?\s*(?P<body>(?:\d+(?:\.\d+)?\s*[a-z]+\s*)+?)\s*(?P<ago>ago)?$")
_CLOCK = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")
HELP = "use an ISO 8601 time (2026-11-21T17:00Z), 'now', 'today', 'yesterday', '-15m', '1 hour ago' or '@EPOCH'"


class TimeExpressionError(ValueError):
    pass


def parse_time(text: str, now: datetime, *, argument: str = "time") -> datetime:
    """`text` as an aware UTC datetime; naive ISO times are UTC. Raises TimeExpressionError naming `argument`."""
    expression = " ".join(text.strip().lower().split())

    def bad(reason: str) -> TimeExpressionError:
        return TimeExpressionError(f"invalid argument {argument!r}: {text!r} {reason}; {HELP}")

    if not expression:
        raise bad("is empty")
    now = now.astimezone(UTC)
    midnight = datetime.combine(now.date(), time(), UTC)
    named = {
        "now": now,
        "today": midnight,
        "yesterday": midnight - timedelta(days=1),
        "tomorrow": midnight + timedelta(days=1),
    }
    if expression in named:
        return named[expression]
    if expression.startswith("@"):
        try:
            seconds = float(expression[1:])
        except ValueError:
            raise bad("is not a number of seconds after '@'") from None
        if not 0 <= seconds < LATEST.timestamp():
            raise bad("is out of range")
        return datetime.fromtimestamp(seconds, UTC)
    relative = _RELATIVE.match(expression)
    if relative and (relative["sign"] or relative["ago"]):
        if relative["sign"] and relative["ago"]:
            raise bad("has both a sign and 'ago'")
        seconds = 0.0
        for amount, unit in _PART.findall(relative["body"]):
            if unit not in UNITS:
                raise bad(f"has an unknown unit {unit!r} (use s, m, h, d or w)")
            seconds += float(amount) * UNITS[unit]
        if seconds > MAX_SPAN.total_seconds():
            raise bad("reaches more than a century away")
        span = timedelta(seconds=seconds)
        moment = now + span if relative["sign"] == "+" else now - span
        return _in_range(moment, bad)
    if relative:
        raise bad("is a duration without a direction (write '-15m' or '15m ago')")
    if _CLOCK.match(expression):
        try:
            clock = time.fromisoformat(expression if expression.count(":") == 2 else expression + ":00")
        except ValueError:
            raise bad("is not a time of day") from None
        return datetime.combine(now.date(), clock, UTC)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise bad("is not a time fleetbus understands") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _in_range(parsed.astimezone(UTC), bad)


def _in_range(moment: datetime, bad: Callable[[str], TimeExpressionError]) -> datetime:
    if not EARLIEST <= moment < LATEST:
        raise bad("is out of range (1970–9999)")
    return moment


def journal_time(moment: datetime) -> str:
    """The absolute form journalctl 252 accepts (it does not take the ISO 'T'/'Z' form)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def iso(moment: datetime, *, digits: int = 3) -> str:
    """ISO 8601 in UTC with a 'Z', to the millisecond by default."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds" if digits == 3 else "microseconds")
    return text.replace("+00:00", "Z")


def from_usec(usec: int) -> datetime:
    return EARLIEST + timedelta(microseconds=usec)


def to_usec(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - EARLIEST
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
