"""Running fixed read-only commands on a host: one runner protocol for this machine and for remote hosts, argv
only (never a shell), every run with a deadline and a cap on what is read back."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from typing import Protocol

from fleetbus.argv import CommandResult, check_argv, read_capped

STDERR_CAP = 16_384
NOT_RUNNABLE = 127
"""The status a shell gives a command it cannot find or execute; this runner gives it too, so that a missing
program reads the same on this machine as on a remote host (whose login shell runs the argv)."""


class CommandError(Exception):
    """The command did not give an answer: it overran its deadline, or the way to the host failed."""


class CommandTimeout(CommandError):
    """The command did not finish within its deadline; it was stopped."""


class CommandOutcome(Protocol):
    """What a run gives back. `fleetbus.hosts.runner.CommandResult` (a remote run) has this shape too."""

    @property
    def exit_status(self) -> int | None: ...

    @property
    def stdout(self) -> bytes: ...

    @property
    def stderr(self) -> bytes: ...

    @property
    def truncated(self) -> bool: ...


class CommandRunner(Protocol):
    """Runs an argv on one host. Implementations: `LocalRunner` here, `fleetbus.hosts.runner.RemoteRunner` over a
    host's SSH connection (which raises `fleetbus.hosts.errors.HostError`s where this one raises CommandError)."""

    async def run(self, argv: Sequence[str], *, timeout: float, max_bytes: int) -> CommandOutcome: ...


class LocalRunner:
    """Runs argvs on this machine as asyncio subprocesses: no shell, stdin from /dev/null, a deadline for the
    whole run, stdout read up to `max_bytes` (then the command is killed), stderr kept to its first STDERR_CAP."""

    host = "local"

    async def run(self, argv: Sequence[str], *, timeout: float, max_bytes: int) -> CommandResult:
        check_argv(argv)
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be at least 0, not {max_bytes}")
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            return CommandResult(NOT_RUNNABLE, b"", f"{argv[0]}: {exc.strerror or exc}".encode())
        assert process.stdout is not None
        assert process.stderr is not None
        stderr_task = asyncio.create_task(read_capped(process.stderr, STDERR_CAP))
        try:
            async with asyncio.timeout(timeout):
                stdout, truncated = await read_capped(process.stdout, max_bytes)
                if truncated:
                    return CommandResult(None, stdout, b"", truncated=True)
                status = await process.wait()
                stderr, _ = await stderr_task
        except TimeoutError:
            raise CommandTimeout(f"{argv[0]} did not finish within {timeout:g} s; it was stopped") from None
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            stderr_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stderr_task
        if status < 0:
            return CommandResult(None, stdout, stderr, exit_signal=_signal_name(-status))
        return CommandResult(status, stdout, stderr)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)


def failure(argv: Sequence[str], result: CommandOutcome) -> str:
    """Why a run that gave no usable answer failed, in one line: its status or signal and its last stderr line."""
    text = result.stderr.decode("utf-8", errors="replace").strip()
    detail = text.splitlines()[-1] if text else "no message"
    if result.exit_status is None:
        how = "was stopped" if result.truncated else "ended by a signal"
        return f"{argv[0]} {how}: {detail}"
    return f"{argv[0]} failed (exit status {result.exit_status}): {detail}"
