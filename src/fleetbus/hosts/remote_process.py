"""Stopping what we started on a host. sshd ignores SSH `signal` requests in sessions it runs without
privilege separation — every root login ("session signalling requires privilege separation") — and a closed
channel whose command still runs keeps its session (and a MaxSessions slot) until the command ends by itself.

So every remote command first reports its PID (`sh -c 'echo $$; exec "$@"'`: the same process, then the
program) and is stopped, when we give up on it, by a `kill` of that PID over a channel of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from collections.abc import Sequence

import asyncssh

log = logging.getLogger(__name__)

REPORT_PID = 'echo "$$" && exec "$@"'
PID_LINE_LIMIT = 32
KILL_TIMEOUT = 3.0


def reporting_pid(argv: Sequence[str]) -> str:
    """The remote command line that prints its PID on a line of its own, then becomes `argv`."""
    return shlex.join(["sh", "-c", REPORT_PID, "fleetbus", *argv])


async def read_pid(process: asyncssh.SSHClientProcess[bytes]) -> int:
    """The PID line `reporting_pid` prints first; the caller bounds the wait."""
    line = await process.stdout.readline()
    text = line.strip()
    if not text.isdigit() or len(line) > PID_LINE_LIMIT:
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, f"no PID from the remote shell: {line!r}")
    return int(text)


class RemoteKiller:
    """Kills abandoned remote commands in the background, each with a short deadline of its own."""

    def __init__(self, host: str, connection: asyncssh.SSHClientConnection) -> None:
        self.host = host
        self._connection = connection
        self._tasks: set[asyncio.Task[None]] = set()

    def kill(self, pid: int) -> None:
        task = asyncio.get_running_loop().create_task(self._kill(pid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _kill(self, pid: int) -> None:
        try:
            async with asyncio.timeout(KILL_TIMEOUT):
                await self._connection.run(shlex.join(["kill", "-KILL", str(pid)]), stdin=asyncssh.DEVNULL)
        except (TimeoutError, asyncssh.Error, OSError) as exc:
            # The connection is gone or stuck: the command ends when sshd closes its pipes, or by itself.
            log.info("%s: could not kill abandoned remote process %d: %s", self.host, pid, exc or "timeout")

    async def drain(self) -> None:
        """Wait for the kills in flight (each is bounded by KILL_TIMEOUT)."""
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
