"""Redaction of audit-record arguments: secrets by key name, long values shortened."""

from __future__ import annotations

from fleetbus.guard import redact as redaction
from fleetbus.guard.redact import redact


def test_redact_hides_secret_looking_keys() -> None:
    arguments = [
        "web-1.service",
        {
            "Password": {"signature": "s", "value": "hunter2"},
            "api_token": "abc",
            "PrivateKey": [1, 2, 3],
            "Description": {"signature": "s", "value": "a web server"},
            "nested": {"client_secret": "xyz", "user": "bob"},
        },
    ]
    assert redact(arguments) == [
        "web-1.service",
        {
            "Password": "«redacted»",
            "api_token": "«redacted»",
            "PrivateKey": "«redacted»",
            "Description": {"signature": "s", "value": "a web server"},
            "nested": {"client_secret": "«redacted»", "user": "bob"},
        },
    ]


def test_redact_shortens_long_strings_and_lists() -> None:
    long = "x" * 1000
    assert redact(long) == "x" * redaction.MAX_ARG_CHARS + "…(1000 chars)"
    assert redact("y" * redaction.MAX_ARG_CHARS) == "y" * redaction.MAX_ARG_CHARS
    shortened = redact(list(range(200)))
    assert shortened == [*range(redaction.MAX_ARG_ITEMS), "…(200 items)"]
    assert redact([long])[0].endswith("…(1000 chars)")
    assert redact([1, 2.5, True, None]) == [1, 2.5, True, None]
