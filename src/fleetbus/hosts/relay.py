"""A remote bus as a local socket: every connection to a private unix socket is carried over an SSH channel
of its own to `systemd-stdio-bridge` on the host (what `busctl --host` runs), which logs into the host's bus.

dbus-fast dials only `unix:`/`tcp:` addresses and cannot be handed a stream, so this socket is how a link to a
remote bus becomes an ordinary link to a local address. It lives in a directory only this user may enter,
and a connection from any other uid is closed unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import socket
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path

import asyncssh

from fleetbus.hosts.channels import ChannelSlots
from fleetbus.hosts.remote_process import RemoteKiller, read_pid, reporting_pid

log = logging.getLogger(__name__)

BRIDGE = "systemd-stdio-bridge"
SOCKET_NAME = "bus"
CHUNK = 65_536
STDERR_KEPT = 2048


def bridge_argv(bus: str) -> list[str]:
    """The remote command for `bus`: "system", or "user" (the login user's own bus)."""
    if bus == "system":
        return [BRIDGE]
    if bus == "user":
        return [BRIDGE, "--user"]
    raise ValueError(f"unknown bus {bus!r}: 'system' or 'user'")


class BusRelay:
    def __init__(
        self,
        host: str,
        connection: asyncssh.SSHClientConnection,
        slots: ChannelSlots,
        killer: RemoteKiller,
        remote_argv: Sequence[str],
        *,
        setup_timeout: float,
        directory: Path | None = None,
    ) -> None:
        self.host = host
        self._connection = connection
        self._slots = slots
        self._killer = killer
        self._argv = list(remote_argv)
        self._setup_timeout = setup_timeout
        self._base = directory
        self._directory: Path | None = None
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    @property
    def path(self) -> Path:
        if self._directory is None:
            raise RuntimeError("the relay is not listening")
        return self._directory / SOCKET_NAME

    @property
    def address(self) -> str:
        return f"unix:path={self.path}"

    async def start(self) -> str:
        # mkdtemp makes the directory 0700: only this user (and root) can reach the socket inside.
        self._directory = Path(tempfile.mkdtemp(prefix="fleetbus-relay-", dir=self._base))
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.path))
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._pumps):
            task.cancel()
        for task in list(self._pumps):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._directory is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            with contextlib.suppress(OSError):
                self._directory.rmdir()
            self._directory = None

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._carry(reader, writer))
        self._pumps.add(task)
        task.add_done_callback(self._pumps.discard)

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        process: asyncssh.SSHClientProcess[bytes] | None = None
        pid: int | None = None
        try:
            if _peer_uid(writer) != os.geteuid():
                log.warning("%s: refused a relay connection from another user", self.host)
                return
            # A bus client gives up by its own deadline; this one only bounds the wait for a channel and
            # for sshd to start the bridge, so no half-open channel is left behind.
            async with self._slots.slot(self._setup_timeout):
                try:
                    async with asyncio.timeout(self._setup_timeout):
                        process = await self._connection.create_process(reporting_pid(self._argv), encoding=None)
                        pid = await read_pid(process)
                except (TimeoutError, asyncssh.Error, OSError) as exc:
                    log.warning("%s: cannot start %s: %s", self.host, shlex.join(self._argv), exc or "timeout")
                    return
                await _pump_both(reader, writer, process, self.host)
        except Exception as exc:  # one connection's failure must not reach the server's loop
            log.debug("%s: relay connection ended: %s", self.host, exc)
        finally:
            if process is not None:
                # A bridge stuck on a frozen bus would hold its sshd session for ~90 s after we hang up.
                if pid is not None and process.exit_status is None and process.exit_signal is None:
                    self._killer.kill(pid)
                process.close()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _pump_both(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, process: asyncssh.SSHClientProcess[bytes], host: str
) -> None:
    """Until either side ends: the bus client hangs up, or the bridge (or the whole connection) goes away."""
    upstream = asyncio.create_task(_local_to_remote(reader, process))
    downstream = asyncio.create_task(_remote_to_local(process, writer))
    stderr = asyncio.create_task(process.stderr.read(STDERR_KEPT))
    try:
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (upstream, downstream, stderr):
            task.cancel()
        for task in (upstream, downstream):
            with contextlib.suppress(asyncio.CancelledError, asyncssh.Error, OSError):
                await task
        with contextlib.suppress(asyncio.CancelledError, asyncssh.Error, OSError):
            said = await stderr
            if said:
                log.info("%s: %s said: %s", host, BRIDGE, said.decode(errors="replace").strip())


async def _local_to_remote(reader: asyncio.StreamReader, process: asyncssh.SSHClientProcess[bytes]) -> None:
    while data := await reader.read(CHUNK):
        process.stdin.write(data)
        await process.stdin.drain()


async def _remote_to_local(process: asyncssh.SSHClientProcess[bytes], writer: asyncio.StreamWriter) -> None:
    while data := await process.stdout.read(CHUNK):
        writer.write(data)
        await writer.drain()


def _peer_uid(writer: asyncio.StreamWriter) -> int:
    sock: socket.socket = writer.get_extra_info("socket")
    credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return int(uid)
