"""journalctl's exit status 1 means "no match" only for --grep with nothing on stderr: told apart from failures."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fleetbus.executors import journal
from fleetbus.executors.command import LocalRunner

GREP = ["--grep=nothing-like-this", "--output-fields=MESSAGE"]


def test_no_match_is_exit_1_with_no_output_and_no_message() -> None:
    assert journal.matched_nothing(GREP, 1, "", [])
    assert journal.matched_nothing(GREP, 1, "Journal file /var/log/journal/x.journal is truncated, ignoring file.", [])


@pytest.mark.parametrize(
    ("options", "status", "stderr", "lines"),
    [
        (GREP, 1, 'Bad pattern "(": missing closing parenthesis', []),
        (GREP, 1, "Failed to open journal directory /nowhere: No such file or directory", []),
        (["--since=2026-01-01 00:00:00"], 1, "", []),  # without --grep, exit 1 is always a failure
        (GREP, 2, "", []),
        (GREP, 1, "", ['{"MESSAGE":"x"}']),
    ],
)
def test_anything_else_stays_a_failure(options: list[str], status: int, stderr: str, lines: list[str]) -> None:
    assert not journal.matched_nothing(options, status, stderr, lines)


def _fake_journalctl(directory: Path, stderr: str) -> None:
    script = directory / "journalctl"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{stderr}' >&2\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(("stderr", "empty"), [("", True), ("Bad pattern", False)])
async def test_read_gives_an_empty_page_for_no_match_and_raises_for_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stderr: str, empty: bool
) -> None:
    # A stand-in journalctl on PATH behaving as the real one does for each case (the sandbox tests use the real one).
    _fake_journalctl(tmp_path, stderr)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    reader = journal.JournalReader(LocalRunner())
    if empty:
        read = await reader.read(GREP, timeout=5, max_entries=10, max_bytes=1 << 20)
        assert (read.entries, read.complete) == ([], True)
    else:
        with pytest.raises(journal.JournalFailed, match="Bad pattern"):
            await reader.read(GREP, timeout=5, max_entries=10, max_bytes=1 << 20)


def test_a_nul_in_an_option_is_refused_before_any_argv_is_made() -> None:
    with pytest.raises(journal.JournalQueryError, match="NUL"):
        journal.argv(["--grep=a\0b"], None)
    with pytest.raises(journal.JournalQueryError, match="NUL"):
        journal.argv(["_SYSTEMD_UNIT=a\0.service"], None)


def test_only_query_options_reach_the_argv_and_matches_follow_the_separator() -> None:
    with pytest.raises(journal.JournalQueryError, match="--rotate"):
        journal.argv(["--rotate"], None)
    command = journal.argv(["--reverse", "_PID=1", "+", "UNIT=x.service"], None, 5)
    assert command[-4:] == ["--", "_PID=1", "+", "UNIT=x.service"]
    assert "--lines=5" in command
    with pytest.raises(journal.JournalQueryError, match="max_entries"):
        journal.argv(["--reverse"], None, 0)


def test_a_cut_output_drops_its_incomplete_last_line() -> None:
    stdout = b'{"MESSAGE":"a"}\n{"MESSAGE":"b"}\n{"MESS'
    read = journal.parse(stdout, 10, truncated=True)
    assert [e["MESSAGE"] for e in read.entries] == ["a", "b"]
    assert not read.complete
    whole = journal.parse(b'{"MESSAGE":"a"}\n{"MESSAGE":"b"}\n', 2, truncated=False)
    assert len(whole.entries) == 2
    assert not whole.complete  # as many as asked for: there may be more
    assert journal.parse(b'{"MESSAGE":"a"}\n', 2, truncated=False).complete


def test_a_line_nested_past_the_parsers_stack_is_skipped_like_any_line_that_is_not_json() -> None:
    # A remote host's journalctl is the host's: a compromised one can print anything within the output cap.
    stdout = b"[" * 200_000 + b'\n{"MESSAGE":"after"}\n'
    read = journal.parse(stdout, 10, truncated=False)
    assert [e["MESSAGE"] for e in read.entries] == ["after"]
