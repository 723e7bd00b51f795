"""Commands on a host over its SSH connection: argv only, a deadline, and a cap on what is read back.

The remote side runs commands through the login shell (that is what SSH `exec` means), so the argv is quoted
with `shlex.join` here, and nothing else is accepted: a shell string built from arguments could be anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from collections.abc import Sequence

import asyncssh

from fleetbus.argv import CommandResult, check_argv, read_capped
from fleetbus.hosts.channels import ChannelSlots
from fleetbus.hosts.errors import RemoteCommandError, RemoteTimeout
from fleetbus.hosts.remote_process import RemoteKiller, read_pid, reporting_pid

STDERR_CAP = 16_384


def remote_command(argv: Sequence[str]) -> str:
    """The remote shell's command line for `argv`, refusing anything but a non-empty list of strings."""
    check_argv(argv)
    return shlex.join(argv)


class RemoteRunner:
    """Runs argvs on one host over one SSH connection, each in a channel of its own."""

    def __init__(
        self, host: str, connection: asyncssh.SSHClientConnection, slots: ChannelSlots, killer: RemoteKiller
    ) -> None:
        self.host = host
        self._connection = connection
        self._slots = slots
        self._killer = killer

    async def run(self, argv: Sequence[str], *, timeout: float, max_bytes: int) -> CommandResult:
        """Run `argv` to its end (or for `timeout` seconds, waiting for a channel included), reading at most
        `max_bytes` of stdout; stderr is kept to its first STDERR_CAP bytes."""
        remote_command(argv)  # refuses what is not an argv before anything reaches the host
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be at least 0, not {max_bytes}")
        process: asyncssh.SSHClientProcess[bytes] | None = None
        pid: int | None = None
        deadline = asyncio.get_running_loop().time() + timeout
        # The wait for a channel counts against the same deadline, and says so when it is what took too long.
        async with self._slots.slot(timeout):
            try:
                async with asyncio.timeout_at(deadline):
                    try:
                        process = await self._connection.create_process(
                            reporting_pid(argv), encoding=None, stdin=asyncssh.DEVNULL
                        )
                        pid = await read_pid(process)
                    except (asyncssh.Error, OSError) as exc:
                        raise RemoteCommandError(self.host, f"cannot start {argv[0]}: {_reason(exc)}") from exc
                    return await _collect(process, max_bytes)
            except TimeoutError:
                raise RemoteTimeout(
                    self.host, f"{argv[0]} did not finish within {timeout:g} s; it was stopped"
                ) from None
            finally:
                if process is not None:
                    if pid is not None and process.exit_status is None and process.exit_signal is None:
                        self._killer.kill(pid)
                    process.close()


async def _collect(process: asyncssh.SSHClientProcess[bytes], max_bytes: int) -> CommandResult:
    stderr_task = asyncio.create_task(read_capped(process.stderr, STDERR_CAP))
    try:
        stdout, truncated = await read_capped(process.stdout, max_bytes)
        if truncated:
            return CommandResult(None, stdout, b"", truncated=True)
        completed = await process.wait()
        stderr, _ = await stderr_task
    finally:
        stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncssh.Error, OSError):
            await stderr_task
    signal = _signal_name(completed.exit_signal)
    # asyncssh reports -1 as the status of a command a signal ended; there was no status then.
    status = None if signal is not None else completed.exit_status
    return CommandResult(status, stdout, stderr, exit_signal=signal)


def _signal_name(exit_signal: tuple[str, bool, str, str] | None) -> str | None:
    return exit_signal[0] if exit_signal else None


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
