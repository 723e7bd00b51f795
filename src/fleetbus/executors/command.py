"""Running one command with a deadline, reading its output line by line up to a cap, and stopping it early
when enough has been read (so `journalctl` never streams a whole journal to find the first N entries)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

STDERR_CAP = 16_384


class CommandError(Exception):
    """The command could not run, failed, or overran its deadline; the message says which and why."""


class CommandFailed(CommandError):
    """The command ran to its end and exited with a non-zero status; callers may know statuses that mean less."""

    def __init__(self, message: str, *, status: int, stderr: str, lines: list[str]) -> None:
        super().__init__(message)
        self.status = status
        self.stderr = stderr
        self.lines = lines


@dataclass(frozen=True)
class CommandOutput:
    lines: list[str]
    complete: bool
    """The command ended by itself; False when it was stopped after `max_lines` or `max_bytes`."""


async def read_lines(
    argv: Sequence[str], *, timeout: float, max_lines: int, max_bytes: int, env: Mapping[str, str] | None = None
) -> CommandOutput:
    """Up to `max_lines` lines (at most `max_bytes` in all) of `argv`'s standard output."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
            limit=max_bytes,
        )
    except OSError as exc:
        raise CommandError(f"cannot run {argv[0]}: {exc}") from exc
    assert process.stdout is not None
    assert process.stderr is not None
    stderr_task = asyncio.create_task(process.stderr.read(STDERR_CAP))
    lines: list[str] = []
    size = 0
    complete = True
    try:
        async with asyncio.timeout(timeout):
            while True:
                if len(lines) >= max_lines:
                    complete = False
                    break
                try:
                    raw = await process.stdout.readline()
                except ValueError:  # one line longer than max_bytes
                    complete = False
                    break
                if not raw:
                    break
                size += len(raw)
                if size > max_bytes:
                    complete = False
                    break
                lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
            if complete:
                await process.wait()
    except TimeoutError:
        raise CommandError(f"{argv[0]} gave no complete answer within {timeout:g} s") from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        stderr = (await stderr_task).decode("utf-8", errors="replace").strip()
    if complete and process.returncode != 0:
        detail = stderr.splitlines()[-1] if stderr else "no message"
        raise CommandFailed(
            f"{argv[0]} failed (exit status {process.returncode}): {detail}",
            status=process.returncode or 0,
            stderr=stderr,
            lines=lines,
        )
    return CommandOutput(lines, complete)
