"""The local host's runner behaves as a remote host's does: argv only, each word as it is, a cap, a deadline."""

from __future__ import annotations

import time

import pytest

from fleetbus.hosts.errors import RemoteTimeout
from fleetbus.hosts.local_runner import LocalRunner


async def test_words_pass_as_they_are_and_statuses_come_back() -> None:
    runner = LocalRunner()
    words = ["a b", "it's", "$(id)", "`id`", ";", "*", ""]
    echoed = await runner.run(["printf", "%s\\n", *words], timeout=5, max_bytes=4096)
    assert echoed.exit_status == 0
    assert echoed.stdout.decode().split("\n")[:-1] == words
    failing = await runner.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=5, max_bytes=100)
    assert (failing.exit_status, failing.stdout, failing.stderr) == (3, b"out\n", b"err\n")
    for wrong in ("echo hi", b"echo", ["echo", 1], []):
        with pytest.raises((TypeError, ValueError)):
            await runner.run(wrong, timeout=5, max_bytes=100)  # type: ignore[arg-type]


async def test_the_cap_and_the_deadline_stop_the_command() -> None:
    runner = LocalRunner()
    capped = await runner.run(["yes"], timeout=5, max_bytes=10_000)
    assert capped.truncated
    assert capped.exit_status is None
    assert len(capped.stdout) == 10_000
    began = time.monotonic()
    with pytest.raises(RemoteTimeout, match=r"^local: sleep did not finish within 0.5 s"):
        await runner.run(["sleep", "30"], timeout=0.5, max_bytes=100)
    assert time.monotonic() - began < 2.5
