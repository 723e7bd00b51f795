"""Commands on this machine, as the remote runner runs them on a host: argv only, a deadline, a cap on output.

The local Host's runner, so an executor that runs a fixed argv does not care whether its host is `local`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from fleetbus.hosts.errors import RemoteCommandError, RemoteTimeout
from fleetbus.hosts.runner import STDERR_CAP, CommandResult, remote_command

READ_CHUNK = 65_536


class LocalRunner:
    """Runs argvs as child processes of fleetbus (never through a shell)."""

    def __init__(self, host: str = "local") -> None:
        self.host = host

    async def run(self, argv: Sequence[str], *, timeout: float, max_bytes: int) -> CommandResult:
        remote_command(argv)  # the same refusals as on a remote host: a list of strings, no NULs
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be at least 0, not {max_bytes}")
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            raise RemoteCommandError(self.host, f"cannot start {argv[0]}: {exc}") from exc
        assert process.stdout is not None
        assert process.stderr is not None
        stderr_task = asyncio.create_task(process.stderr.read(STDERR_CAP))
        try:
            async with asyncio.timeout(timeout):
                stdout, truncated = await _read_capped(process.stdout, max_bytes)
                if truncated:
                    return CommandResult(None, stdout, b"", truncated=True)
                status = await process.wait()
                stderr = await stderr_task
        except TimeoutError:
            raise RemoteTimeout(self.host, f"{argv[0]} did not finish within {timeout:g} s; it was stopped") from None
        finally:
            stderr_task.cancel()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                with contextlib.suppress(Exception):
                    await process.wait()
        if status < 0:
            return CommandResult(None, stdout, stderr, exit_signal=_signal_name(-status))
        return CommandResult(status, stdout, stderr)


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(READ_CHUNK):
        if size + len(chunk) > cap:
            chunks.append(chunk[: cap - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _signal_name(number: int) -> str:
    import signal  # noqa: PLC0415 - only for the rare command a signal ended

    with contextlib.suppress(ValueError):
        return signal.Signals(number).name.removeprefix("SIG")
    return str(number)
