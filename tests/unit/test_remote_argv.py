"""Remote commands are argvs, quoted for the remote shell so each word arrives as it was given."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbus.hosts.remote_process import REPORT_PID, reporting_pid
from fleetbus.hosts.runner import remote_command

WORDS = st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\0")), min_size=1)


@pytest.mark.parametrize(
    "wrong", ["cat /proc/loadavg", b"cat", ["cat", 1], ["cat", b"x"], ("cat", None), 42, None, {"cat": 1}]
)
def test_anything_but_a_list_of_strings_is_refused(wrong: object) -> None:
    with pytest.raises(TypeError):
        remote_command(wrong)  # type: ignore[arg-type]


def test_an_empty_argv_and_a_nul_are_refused() -> None:
    with pytest.raises(ValueError, match="at least the program"):
        remote_command([])
    with pytest.raises(ValueError, match="NUL"):
        remote_command(["echo", "a\0b"])


@given(WORDS)
def test_the_remote_shell_splits_the_command_back_into_the_same_words(words: list[str]) -> None:
    assert shlex.split(remote_command(words)) == words
    assert shlex.split(reporting_pid(words)) == ["sh", "-c", REPORT_PID, "fleetbus", *words]


def test_a_real_shell_runs_the_words_and_reports_its_pid_first() -> None:
    words = ["printf", "%s\\n", "a b", "$(id)", "it's", "`x`", ";", ""]
    result = subprocess.run(["sh", "-c", reporting_pid(words)], capture_output=True, text=True, check=True)
    pid, *printed = result.stdout.split("\n")
    assert pid.isdigit()
    assert printed[:-1] == words[2:]
