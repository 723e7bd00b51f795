"""`--lines=N`, which the journal executor adds so that journalctl stops by itself after the entries asked for,
keeps the start and order of every query shape the tools make: proven against journalctl without it, on the
sandbox's real journald."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from datetime import UTC, datetime

import pytest

from fleetbus.executors import journal
from fleetbus.executors.command import LocalRunner
from fleetbus.sandbox import Sandbox

COUNT = 30


def _send(sandbox: Sandbox, ident: str) -> None:
    path = str(sandbox.paths.run / "systemd" / "journal" / "socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        for i in range(1, COUNT + 1):
            sock.sendto(f"MESSAGE={ident}-{i}\nSYSLOG_IDENTIFIER={ident}\n".encode(), path)


async def _messages(command: list[str]) -> list[str]:
    result = await LocalRunner().run(command, timeout=20, max_bytes=1 << 24)
    assert result.exit_status == 0, result.stderr
    return [json.loads(line)["MESSAGE"] for line in result.stdout.splitlines() if line.strip()]


def _utc(entry_usec: int) -> str:
    return datetime.fromtimestamp(entry_usec / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


@pytest.fixture(scope="module")
async def written(sandbox: Sandbox) -> tuple[str, list[dict[str, str]]]:
    ident = f"facts-{uuid.uuid4().hex[:8]}"
    _send(sandbox, ident)
    command = journal.argv(["--output-fields=MESSAGE", f"SYSLOG_IDENTIFIER={ident}"], sandbox.paths.journal_dir)
    deadline = time.monotonic() + 20
    while True:
        result = await LocalRunner().run(command, timeout=20, max_bytes=1 << 24)
        entries = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        if len(entries) == COUNT or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert len(entries) == COUNT, "journald did not store the test's entries"
    return ident, entries


async def test_lines_keeps_the_start_and_order_of_every_query_shape(
    sandbox: Sandbox, written: tuple[str, list[dict[str, str]]]
) -> None:
    ident, entries = written
    cursor = entries[4]["__CURSOR"]
    since = _utc(int(entries[6]["__REALTIME_TIMESTAMP"]))
    until = _utc(int(entries[19]["__REALTIME_TIMESTAMP"]))
    shapes = [
        [f"--after-cursor={cursor}"],
        [f"--since={since}"],
        [f"--since={since}", f"--until={until}"],
        ["--reverse"],
        ["--reverse", f"--until={until}"],
        ["--reverse", f"--after-cursor={cursor}"],
        [f"--since={since}", "--priority=debug"],
        [f"--since={since}", "--grep=-[0-9]+$"],
        ["--reverse", "--grep=-[0-9]+$"],
    ]
    reader = journal.JournalReader(LocalRunner(), sandbox.paths.journal_dir)
    for shape in shapes:
        options = [*shape, "--output-fields=MESSAGE", f"SYSLOG_IDENTIFIER={ident}"]
        unbounded = await _messages(journal.argv(options, sandbox.paths.journal_dir))
        bounded = journal.argv(options, sandbox.paths.journal_dir, 4)
        assert ("--lines=4" in bounded) == (not any(o.startswith("--grep=") for o in shape))
        read = await reader.read(options, timeout=20, max_entries=4)
        assert [e["MESSAGE"] for e in read.entries] == unbounded[:4], shape
        assert not read.complete


async def test_lines_with_grep_would_count_from_the_other_end(
    sandbox: Sandbox, written: tuple[str, list[dict[str, str]]]
) -> None:
    # Why the executor leaves --lines out of a --grep query: journalctl 252 then gives the newest N, newest first.
    ident, entries = written
    since = _utc(int(entries[6]["__REALTIME_TIMESTAMP"]))
    options = [f"--since={since}", "--grep=-[0-9]+$", "--output-fields=MESSAGE", f"SYSLOG_IDENTIFIER={ident}"]
    unbounded = await _messages(journal.argv(options, sandbox.paths.journal_dir))
    command = journal.argv(options, sandbox.paths.journal_dir)
    command.insert(command.index("--"), "--lines=4")
    with_lines = await _messages(command)
    assert unbounded[:4] == [f"{ident}-{i}" for i in range(7, 11)]
    assert with_lines != unbounded[:4]


async def test_without_a_start_lines_is_left_out(sandbox: Sandbox, written: tuple[str, list[dict[str, str]]]) -> None:
    ident, entries = written
    options = ["--output-fields=MESSAGE", f"SYSLOG_IDENTIFIER={ident}"]
    assert not any(word.startswith("--lines") for word in journal.argv(options, None, 4))
    read = await journal.JournalReader(LocalRunner(), sandbox.paths.journal_dir).read(
        options, timeout=20, max_entries=4
    )
    assert [e["MESSAGE"] for e in read.entries] == [e["MESSAGE"] for e in entries[:4]]
