"""What running one argv on a host means, wherever it runs (this machine or over SSH): the argv accepted and
the result given back. A leaf: executors/ and hosts/ both use it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

READ_CHUNK = 65_536


@dataclass(frozen=True)
class CommandResult:
    exit_status: int | None
    """None when the command did not end by itself: killed by a signal, or stopped after `max_bytes`."""
    stdout: bytes
    stderr: bytes
    truncated: bool = False
    """stdout reached `max_bytes`; the command was stopped there."""
    exit_signal: str | None = None


def check_argv(argv: Sequence[str]) -> None:
    """Refuse anything but a non-empty list of strings without NUL (what an exec can carry)."""
    if isinstance(argv, str | bytes) or not isinstance(argv, Sequence):
        raise TypeError(f"a command is an argv list of strings, not {type(argv).__name__}")
    if not argv:
        raise ValueError("a command needs at least the program to run")
    for word in argv:
        if not isinstance(word, str):
            raise TypeError(f"every argv word must be a string, not {type(word).__name__}: {word!r}")
        if "\0" in word:
            raise ValueError(f"an argv word cannot contain a NUL character: {word!r}")


class ByteStream(Protocol):
    """A child's stdout or stderr: an asyncio StreamReader here, an asyncssh SSHReader on a remote host."""

    async def read(self, n: int = -1) -> bytes: ...


async def read_capped(stream: ByteStream, cap: int) -> tuple[bytes, bool]:
    """What `stream` gives until it ends or `cap` bytes are read, and whether it was cut there."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(READ_CHUNK)
        if not chunk:
            return b"".join(chunks), False
        if size + len(chunk) > cap:
            chunks.append(chunk[: cap - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
