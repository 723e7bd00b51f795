"""Redaction of audit-record arguments: secrets by the catalog's knowledge, by key name and by value; long values
shortened."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbus.guard import redact as redaction
from fleetbus.guard.redact import audit_arguments, redact, redact_text
from fleetbus.operation import DBUS_CALL, Operation


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


# ---- by knowledge: the catalog's secret-bearing arguments -----------------------------------------------------

SD = "org.freedesktop.systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"


def call(interface: str, member: str, *args: Any, destination: str = SD) -> Operation:
    return Operation(DBUS_CALL, "local", "system", destination, "/", interface, member, "", tuple(args))


def test_an_environment_keeps_its_names_and_loses_its_values() -> None:
    kept = audit_arguments(call(MANAGER, "SetEnvironment", ["DB_PASSWORD=hunter2", "LANG=C.UTF-8"]))
    assert kept == [["DB_PASSWORD=«redacted»", "LANG=«redacted»"]]
    both = audit_arguments(call(MANAGER, "UnsetAndSetEnvironment", ["OLD"], ["NEW_TOKEN=abc"]))
    assert both == [["OLD"], ["NEW_TOKEN=«redacted»"]]


def test_a_transient_unit_s_environment_and_credentials_are_hidden() -> None:
    properties = [
        ["Description", {"signature": "s", "value": "a job"}],
        ["Environment", {"signature": "as", "value": ["MYSQL_ROOT=rootpw", "MODE=fast"]}],
        ["SetCredential", {"signature": "a(say)", "value": [["db", "c2VjcmV0"], ["api", "dG9rZW4="]]}],
        ["ExecStart", {"signature": "a(sasb)", "value": [["/bin/app", ["/bin/app", "--password=hunter2"], False]]}],
    ]
    aux = [["helper.service", [["Environment", {"signature": "as", "value": ["X=1"]}]]]]
    kept = audit_arguments(call(MANAGER, "StartTransientUnit", "job.service", "replace", properties, aux))
    assert kept[0:2] == ["job.service", "replace"]
    assert kept[2][0] == ["Description", {"signature": "s", "value": "a job"}]
    assert kept[2][1][1]["value"] == ["MYSQL_ROOT=«redacted»", "MODE=«redacted»"]
    assert kept[2][2] == ["SetCredential", "«redacted»"]
    assert kept[2][3][1]["value"][0][1] == ["/bin/app", "--password=«redacted»"]  # by value
    assert kept[3] == [["helper.service", [["Environment", {"signature": "as", "value": ["X=«redacted»"]}]]]]


def test_a_network_connection_s_secrets_are_hidden() -> None:
    settings = {
        "connection": {"id": {"signature": "s", "value": "office"}},
        "802-11-wireless-security": {"psk": {"signature": "s", "value": "wifi-secret"}, "key-mgmt": "wpa-psk"},
        "vpn": {"secrets": {"signature": "a{ss}", "value": {"password": "vpn-secret"}}},
        "802-1x": {"pin": {"signature": "s", "value": "1234"}},
    }
    nm = "org.freedesktop.NetworkManager"
    kept = audit_arguments(call(f"{nm}.Settings", "AddConnection", settings, destination=nm))[0]
    assert kept["connection"] == {"id": {"signature": "s", "value": "office"}}
    assert kept["802-11-wireless-security"]["psk"] == "«redacted»"
    assert kept["vpn"]["secrets"] == "«redacted»"
    assert kept["802-1x"]["pin"] == "«redacted»"
    assert "wifi-secret" not in str(kept)


def test_a_call_without_an_interface_hides_what_any_member_of_that_name_would() -> None:
    assert audit_arguments(call("", "SetEnvironment", ["A=secret-value"])) == [["A=«redacted»"]]


# ---- by value ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("DB_PASSWORD=hunter2", "DB_PASSWORD=«redacted»"),
        ("mysql --user=app --password=hunter2 db", "mysql --user=app --password=«redacted» db"),
        ("MYSQL_PWD=x1", "MYSQL_PWD=«redacted»"),
        ("Authorization: Bearer abcdefghijkl123", "Authorization: «redacted» «redacted»"),
        ("https://bob:hunter2@example.com/repo", "https://bob:«redacted»@example.com/repo"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV", "«redacted»"),
        ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "«redacted»"),
        ("web-1.service", "web-1.service"),
        (
            "type='signal',interface='org.freedesktop.Secret.Service'",
            "type='signal',interface='org.freedesktop.Secret.Service'",
        ),
        ("/org/freedesktop/NetworkManager/Settings/12345678", "/org/freedesktop/NetworkManager/Settings/12345678"),
        ("0123456789abcdef0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef0123456789abcdef"),
    ],
)
def test_secrets_recognisable_in_a_string_are_hidden(text: str, kept: str) -> None:
    assert redact_text(text) == kept


def test_a_private_key_is_hidden_whole() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    kept = redact_text(f"here: {key}")
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in kept
    assert kept.startswith("here: -----BEGIN OPENSSH PRIVATE KEY-----«redacted»")


def test_a_named_value_with_a_secret_like_name_is_hidden() -> None:
    assert redact([["ApiToken", {"signature": "s", "value": "abc"}]]) == [["ApiToken", "«redacted»"]]
    # A pair of plain strings is not a (name, value) property: a unit named "keyring.service" keeps its mode.
    assert redact(["keyring.service", "replace"]) == ["keyring.service", "replace"]


PIECES = [*"aZ09_.-/=: \t@", "eyJ", "-----BEGIN ", "PRIVATE KEY-----", "pass", "token", "Bearer ", "://u:", "@h"]


@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_the_cheap_search_never_skips_a_string_a_pattern_would_change(text: str) -> None:
    shown = redact_text(text)
    if shown != redaction.REDACTED:  # the blob rule comes first, on its own terms
        assert shown == redaction.substitute_secrets(text)
