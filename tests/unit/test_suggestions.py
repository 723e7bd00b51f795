"""The nearest-name helper every "unknown X" message goes through: close spellings, shared words, bounds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetbus.suggestions import MAX_LISTED, MAX_LISTED_CHARS, MAX_SUGGESTIONS, nearest, unknown

METHODS = ["GetUnit", "GetUnitByPID", "LoadUnit", "ListUnits", "StartUnit", "StopUnit", "RestartUnit", "GetJob"]
INTERFACES = [
    "org.freedesktop.DBus.Peer",
    "org.freedesktop.DBus.Introspectable",
    "org.freedesktop.DBus.Properties",
    "org.freedesktop.hostname1",
]


def test_a_misspelling_finds_the_name_it_was_meant_to_be() -> None:
    assert nearest("GetUnitt", METHODS)[0] == "GetUnit"
    assert nearest("getunit", METHODS)[0] == "GetUnit"  # case does not matter
    assert nearest("units.status", ["list_units", "unit_status", "query_journal"])[0] == "unit_status"


def test_a_shared_word_finds_names_spelling_alone_would_miss() -> None:
    tools = ["restart_unit", "try_restart_unit", "query_journal", "host_info", "list_sessions"]
    assert set(nearest("restart_service", tools)) == {"restart_unit", "try_restart_unit"}


def test_a_word_most_names_share_suggests_nothing_by_itself() -> None:
    # Every interface here says "freedesktop": sharing it makes none of them nearer to a misspelt hostname1.
    assert nearest("org.freedesktop.hostnam1", INTERFACES) == ["org.freedesktop.hostname1"]


def test_nothing_close_suggests_nothing() -> None:
    assert nearest("zzz", METHODS) == []


def test_the_message_names_the_owner_the_argument_the_nearest_and_the_rest() -> None:
    message = unknown("method", "GetUnitt", METHODS, owner="org.freedesktop.systemd1.Manager", argument="method")
    assert message.startswith("org.freedesktop.systemd1.Manager has no method 'GetUnitt' (argument 'method')")
    assert "did you mean GetUnit" in message
    assert f"it has {len(METHODS)} methods: {', '.join(METHODS)}" in message


def test_listing_none_keeps_a_large_set_out_of_the_message() -> None:
    names = [f"tool_{index}" for index in range(200)]
    message = unknown("tool", "tool_x", names, listed=0, see="find_tools finds tools")
    assert "tool_199" not in message
    assert message.endswith("(find_tools finds tools)")


@given(st.lists(st.text(alphabet="abcdefghij_.", min_size=1, max_size=40), max_size=300), st.text(max_size=40))
def test_messages_stay_bounded_whatever_the_names(names: list[str], name: str) -> None:
    message = unknown("name", name, names, owner="o")
    budget = len("o has no name  (argument '') ; did you mean ? (it has 300 names: , …)") + len(repr(name))
    longest = max((len(n) for n in names), default=0)
    assert len(message) <= budget + MAX_SUGGESTIONS * (longest + 4) + MAX_LISTED_CHARS + longest + 4
    shown = message.split(": ", 1)[1] if ": " in message else ""
    assert shown.count(", ") <= MAX_LISTED + MAX_SUGGESTIONS
