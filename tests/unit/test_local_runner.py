"""The local command runner: argv only (no shell ever reads a word), a deadline, a cap on stdout, and the same
answer shape as a remote run — a missing program is exit status 127, as a remote login shell reports it."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from fleetbus.executors.command import NOT_RUNNABLE, CommandTimeout, LocalRunner, failure

RUNNER = LocalRunner()


async def test_words_reach_the_program_as_they_are(tmp_path: Path) -> None:
    never = tmp_path / "never"
    words = [f"$(touch {never})", "a b", "*", ";", "'"]
    result = await RUNNER.run(["printf", "%s\\n", *words], timeout=5, max_bytes=4096)
    assert result.exit_status == 0
    assert result.stdout.decode().splitlines() == words
    assert never.name not in os.listdir(tmp_path)


async def test_a_missing_program_is_status_127_not_an_exception() -> None:
    result = await RUNNER.run(["/nonexistent/fleetbus-prog"], timeout=5, max_bytes=100)
    assert result.exit_status == NOT_RUNNABLE
    assert b"fleetbus-prog" in result.stderr
    assert "exit status 127" in failure(["/nonexistent/fleetbus-prog"], result)


async def test_output_past_the_cap_stops_the_command() -> None:
    started = time.monotonic()
    result = await RUNNER.run(["yes"], timeout=10, max_bytes=10_000)
    assert result.truncated
    assert result.exit_status is None
    assert len(result.stdout) == 10_000
    assert time.monotonic() - started < 5


async def test_the_deadline_stops_a_command_and_leaves_no_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    argv = ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"]
    with pytest.raises(CommandTimeout, match=r"within 0\.5 s"):
        await RUNNER.run(argv, timeout=0.5, max_bytes=100)
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_status_and_stderr_of_a_failing_command() -> None:
    result = await RUNNER.run(["sh", "-c", "echo oops >&2; exit 3"], timeout=5, max_bytes=100)
    assert (result.exit_status, result.stderr) == (3, b"oops\n")
    killed = await RUNNER.run(["sh", "-c", "kill -TERM $$"], timeout=5, max_bytes=100)
    assert (killed.exit_status, killed.exit_signal) == (None, "TERM")


@pytest.mark.parametrize("argv", [[], "ls -l", ["ls", "a\0b"], ["ls", 3]])
async def test_anything_but_an_argv_is_refused(argv: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        await RUNNER.run(argv, timeout=5, max_bytes=100)  # type: ignore[arg-type]
