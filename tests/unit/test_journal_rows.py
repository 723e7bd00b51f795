"""Journal entries as rows: any process that logs chooses its fields, so a row must stay text and stay short."""

from __future__ import annotations

from fleetbus.tools.journal import MAX_MESSAGE_CHARS, MAX_NAME_CHARS, entry_row


def test_a_repeated_identifier_is_text_not_a_list() -> None:
    # journalctl -o json gives a field an entry holds twice as an array of its values.
    row = entry_row({"MESSAGE": ["m1", "m2"], "SYSLOG_IDENTIFIER": ["evil1", "evil2"]}, [])
    assert row["ident"] == "evil1\nevil2"
    assert row["message"] == "m1\nm2"


def test_a_non_utf8_identifier_is_decoded_not_shipped_as_byte_values() -> None:
    # b"bad\xff\x1b[31m": as an array of ints it would carry the escape past every text filter.
    row = entry_row({"MESSAGE": "x", "SYSLOG_IDENTIFIER": [98, 97, 100, 255, 27, 91, 51, 49, 109]}, [])
    assert row["ident"] == "bad\ufffd\x1b[31m"  # a string, so output cleaning removes the escape like any other
    assert entry_row({"MESSAGE": "x", "_COMM": [115, 104]}, [])["ident"] == "sh"


def test_one_huge_entry_cannot_fill_a_page() -> None:
    # A 60 kB SYSLOG_IDENTIFIER made every page from that entry on exceed the result budget: nothing after it
    # could be read at all.
    row = entry_row(
        {"MESSAGE": "M" * 100_000, "SYSLOG_IDENTIFIER": "L" * 60_000, "UNIT": "U" * 60_000, "EXTRA": "E" * 60_000},
        ["EXTRA"],
    )
    assert len(row["ident"]) == MAX_NAME_CHARS + 1
    assert len(row["unit"]) == MAX_NAME_CHARS + 1
    assert len(row["message"]) == MAX_MESSAGE_CHARS + 1
    assert len(row["EXTRA"]) == MAX_MESSAGE_CHARS + 1
    assert len(entry_row({"MESSAGE": ["x" * 10_000] * 1000}, [])["message"]) == MAX_MESSAGE_CHARS + 1


def test_an_ordinary_entry_is_unchanged() -> None:
    row = entry_row(
        {"MESSAGE": "Started x.", "SYSLOG_IDENTIFIER": "systemd", "_SYSTEMD_UNIT": "init.scope", "_PID": "1"}, []
    )
    assert (row["ident"], row["unit"], row["pid"], row["message"]) == ("systemd", "init.scope", 1, "Started x.")
    assert entry_row({"MESSAGE": "x", "_COMM": "sshd"}, [])["ident"] == "sshd"
    assert entry_row({"MESSAGE": "x"}, [])["ident"] is None
