"""A remote bus as a local socket: every connection to a private unix socket is carried over an SSH channel
of its own to the host's bus — forwarded straight to the bus socket (`direct-streamlocal`, no process on the
host) or through `systemd-stdio-bridge` (what `busctl --host` runs), which logs into the host's bus itself.

dbus-fast dials only `unix:`/`tcp:` addresses and cannot be handed a stream, so this socket is how a link to a
remote bus becomes an ordinary link to a local address. It lives in a directory only this user may enter,
and a connection from any other uid is closed unread.

Bytes are moved by protocol callbacks on both sides — the local socket's `data_received` writes to the channel,
the channel's to the socket — with each side's flow control pausing the other: no task, no stream buffer and no
event-loop turn between a message and its way on (a task per direction cost ~0.1 ms a round trip).
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
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import asyncssh
from asyncssh.channel import SSHChannel
from asyncssh.constants import EXTENDED_DATA_STDERR

from fleetbus.hosts.channels import ChannelSlots
from fleetbus.hosts.remote_process import PID_LINE_LIMIT, RemoteKiller, reporting_pid

log = logging.getLogger(__name__)

_Opened = TypeVar("_Opened")

BRIDGE = "systemd-stdio-bridge"
SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"
"""Where the system bus listens on every systemd host (D-Bus's default, and `/var/run` links to `/run`)."""
SOCKET_NAME = "bus"
STDERR_KEPT = 2048
SESSION_RETRY_FIRST = 0.02
SESSION_RETRY_MAX = 0.25


def bridge_argv(bus: str) -> list[str]:
    """The remote command for `bus`: "system", or "user" (the login user's own bus)."""
    if bus == "system":
        return [BRIDGE]
    if bus == "user":
        return [BRIDGE, "--user"]
    raise ValueError(f"unknown bus {bus!r}: 'system' or 'user'")


@dataclass(frozen=True)
class Forwarded:
    """Each connection is a stream-local forwarding to `path` on the host: sshd connects to the bus socket as
    the login user, and the bus takes that uid from the kernel (the client must not name its own)."""

    path: str = SYSTEM_BUS_SOCKET

    def describe(self) -> str:
        return f"forwarding to {self.path}"


@dataclass(frozen=True)
class Bridged:
    """Each connection runs `argv` (systemd-stdio-bridge) on the host, which reports its PID first so that a
    bridge left stuck on a frozen bus can be killed (sshd ignores signal requests for root's sessions)."""

    argv: tuple[str, ...]

    def describe(self) -> str:
        return shlex.join(self.argv)


Route = Forwarded | Bridged


async def can_forward(connection: asyncssh.SSHClientConnection, path: str, timeout: float) -> bool:
    """Whether the host's sshd forwards to `path`: one channel opened and closed at once. No when sshd forbids
    it (`DisableForwarding`, `AllowStreamLocalForwarding no`) or nothing listens there."""
    try:
        async with asyncio.timeout(timeout):
            channel, _session = await connection.create_unix_connection(asyncssh.SSHUNIXSession, path)
    except (TimeoutError, asyncssh.Error, OSError) as exc:
        log.info("forwarding to %s refused (%s): the bus is reached through %s", path, exc or "timeout", BRIDGE)
        return False
    channel.close()
    return True


class BusRelay:
    def __init__(
        self,
        host: str,
        connection: asyncssh.SSHClientConnection,
        slots: ChannelSlots,
        killer: RemoteKiller,
        route: Route,
        *,
        setup_timeout: float,
        directory: Path | None = None,
    ) -> None:
        self.host = host
        self._connection = connection
        self._slots = slots
        self._killer = killer
        self.route = route
        self._setup_timeout = setup_timeout
        self._base = directory
        self._directory: Path | None = None
        self._server: asyncio.AbstractServer | None = None
        self._closing = False
        self._pairs: set[_Pair] = set()

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
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _Pair(self), path=str(self.path))
        return self.address

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
            self._server = None
        pairs = list(self._pairs)
        for pair in pairs:
            pair.close()
        for pair in pairs:
            await pair.closed()
        if self._directory is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            with contextlib.suppress(OSError):
                self._directory.rmdir()
            self._directory = None

    async def _open_channel(self, pair: _Pair) -> None:
        """Opens the pair's channel; the channel's session hands it to the pair as soon as the host has opened it
        (`_Upstream.connection_made`), so that whatever happens after, closing the pair closes the channel."""
        route = self.route
        if isinstance(route, Forwarded):
            await pair.finishing(
                self._connection.create_unix_connection(lambda: _ForwardedUpstream(pair), route.path, encoding=None)
            )
            return
        retry = SESSION_RETRY_FIRST
        while True:
            try:
                await pair.finishing(
                    self._connection.create_session(
                        lambda: _BridgeUpstream(pair), reporting_pid(route.argv), encoding=None
                    )
                )
                break
            except asyncssh.ChannelOpenError as exc:
                if self._connection.is_closed():
                    raise
                pair.refused = exc.reason
                # sshd refuses a session ("open failed") past MaxSessions, and counts one until it has reaped its
                # process — a moment after it closed the channel of a link that just ended, and so after that
                # link's slot came free here. The setup deadline bounds the retries: a host that never has room
                # fails by it.
                log.debug("%s: sshd has no session free yet (%s); retrying", self.host, exc.reason)
                await asyncio.sleep(retry)
                retry = min(retry * 2, SESSION_RETRY_MAX)
        await pair.pid_reported


class _Pair(asyncio.Protocol):
    """One bus client's connection to the relay socket and the SSH channel that carries it."""

    def __init__(self, relay: BusRelay) -> None:
        self.relay = relay
        self.local: asyncio.Transport | None = None
        self.channel: asyncssh.SSHClientChannel[bytes] | None = None
        self.pid: int | None = None
        self.pid_reported: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.exited = False
        self.stderr = bytearray()
        self._pid_line = bytearray()
        self._opening: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._slot_held = False
        self._channel_pending = False
        """An open of this pair's channel is still on its way (it may yet give a channel to close)."""
        self._channel_gone = False
        self.refused: str | None = None
        """Why sshd last refused this pair a session, while it waits for one."""
        self._closed = False

    # The local side (asyncio.Protocol).

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.local = cast(asyncio.Transport, transport)
        if _peer_uid(self.local) != os.geteuid():
            log.warning("%s: refused a relay connection from another user", self.relay.host)
            self.local.close()
            return
        if self.relay._closing:  # accepted just before the relay closed: nobody would ever close this pair
            self.local.close()
            return
        self.relay._pairs.add(self)
        # Nothing is read until the channel is open: the client's first bytes wait in the kernel, not here.
        self.local.pause_reading()
        self._opening = asyncio.get_running_loop().create_task(self._open())

    def data_received(self, data: bytes) -> None:
        if self.channel is not None:
            self.channel.write(data)

    def eof_received(self) -> bool:
        # A bus client that hangs up is done: no half-closed link waits for replies from a host (or a bridge
        # stuck on a frozen bus) that may never come.
        self.close()
        return False

    def pause_writing(self) -> None:
        if self.channel is not None:
            self.channel.pause_reading()

    def resume_writing(self) -> None:
        if self.channel is not None:
            self.channel.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    # Opening and closing.

    async def _open(self) -> None:
        relay = self.relay
        try:
            # A bus client gives up by its own deadline; this one only bounds the wait for a channel and for
            # the host to start carrying, so no half-open channel is left behind.
            async with asyncio.timeout(relay._setup_timeout):
                await relay._slots.acquire()
                self._slot_held = True
                await relay._open_channel(self)
        except (TimeoutError, asyncssh.Error, OSError) as exc:
            reason = str(exc) or ("timeout" if self.refused is None else f"timeout; sshd said: {self.refused}")
            log.warning("%s: cannot reach the bus (%s): %s", relay.host, relay.route.describe(), reason)
            self.close()
            return
        except asyncio.CancelledError:
            self.close()
            raise
        if self.local is not None and not self._closed:
            self.local.resume_reading()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._opening is not None and not self._opening.done() and self._opening is not asyncio.current_task():
            self._opening.cancel()
        if self.channel is not None:
            # A bridge stuck on a frozen bus would hold its sshd session for ~90 s after we hang up.
            if self.pid is not None and not self.exited:
                self.relay._killer.kill(self.pid)
            self.channel.close()
        if self.local is not None:
            self.local.close()
        if self.stderr:
            log.info("%s: %s said: %s", self.relay.host, BRIDGE, self.stderr.decode(errors="replace").strip())
        self._release_slot()
        self.relay._pairs.discard(self)
        if not self.pid_reported.done():
            self.pid_reported.cancel()
        self._done.set()

    async def finishing(self, opening: Coroutine[Any, Any, _Opened]) -> _Opened:
        """Awaits an asyncssh channel open, which runs on to its end even if this wait is cancelled (a client
        gone, the setup deadline): asyncssh abandons a cancelled open half way, and the host then holds the
        channel it opened — for a bridge, a session counted against sshd's MaxSessions — with nobody to close
        it. Run on, the open hands its channel to this pair (`adopt`), which closes it if it is closed."""
        task = asyncio.ensure_future(opening)
        self._channel_pending = True
        task.add_done_callback(self._open_ended)
        return await asyncio.shield(task)

    def _open_ended(self, task: asyncio.Future[Any]) -> None:
        self._channel_pending = False
        if not task.cancelled():
            task.exception()  # retrieved here: the pair's own wait may have been cancelled, and logs its failure
        self._release_slot()

    def adopt(self, channel: asyncssh.SSHClientChannel[bytes]) -> None:
        """The host opened this pair's channel (called by asyncssh before the open returns)."""
        self.channel = channel
        if self._closed:  # the client or the deadline went while it opened: nothing will use it
            channel.close()

    def channel_gone(self) -> None:
        self._channel_gone = True
        self.remote_ended()
        self._release_slot()

    def _release_slot(self) -> None:
        # The slot is the host's session: held until the pair is done, no open is on its way and its channel
        # (if any) is gone at the host too — sshd refuses a new session while the old one is still closing.
        if not self._slot_held or not self._closed or self._channel_pending:
            return
        if self.channel is not None and not self._channel_gone:
            return
        self._slot_held = False
        self.relay._slots.release()

    async def closed(self) -> None:
        await self._done.wait()
        if self._opening is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._opening

    # The remote side, through _Upstream.

    def from_remote(self, data: bytes) -> None:
        if self.local is None or self._closed:
            return
        if self.pid is None and isinstance(self.relay.route, Bridged):
            if self.pid_reported.done():  # no PID came: what the remote shell said instead is not the bus
                return
            data = self._take_pid_line(data)
            if not data:
                return
        self.local.write(data)

    def _take_pid_line(self, data: bytes) -> bytes:
        """The bridge's first line is its PID (reporting_pid); the bus conversation follows it."""
        self._pid_line += data
        line, newline, rest = bytes(self._pid_line).partition(b"\n")
        if not newline:
            if len(self._pid_line) > PID_LINE_LIMIT:
                self._fail_pid(bytes(self._pid_line))
            return b""
        text = line.strip()
        if not text.isdigit() or len(line) > PID_LINE_LIMIT:
            self._fail_pid(line)
            return b""
        self.pid = int(text)
        self.pid_reported.set_result(self.pid)
        self._pid_line.clear()
        return rest

    def _fail_pid(self, line: bytes) -> None:
        self.pid_reported.set_exception(
            asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, f"no PID from the remote shell: {line[:64]!r}")
        )

    def from_remote_stderr(self, data: bytes) -> None:
        room = STDERR_KEPT - len(self.stderr)
        if room > 0:
            self.stderr += data[:room]

    def remote_ended(self) -> None:
        self.exited = True
        if not self.pid_reported.done() and isinstance(self.relay.route, Bridged):
            self.pid_reported.set_exception(
                asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "the channel closed before the bus answered")
            )
        self.close()


class _Upstream:
    """The channel's side: what the host sends goes straight to the bus client's socket."""

    def __init__(self, pair: _Pair) -> None:
        self._pair = pair

    def connection_made(self, chan: SSHChannel[bytes]) -> None:
        # The same channel class underneath for both routes; asyncssh types a forwarded one apart.
        self._pair.adopt(cast("asyncssh.SSHClientChannel[bytes]", chan))

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype == EXTENDED_DATA_STDERR:
            self._pair.from_remote_stderr(data)
        else:
            self._pair.from_remote(data)

    def exit_status_received(self, status: int) -> None:
        self._pair.exited = True

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self._pair.exited = True

    def pause_writing(self) -> None:
        if self._pair.local is not None:
            self._pair.local.pause_reading()

    def resume_writing(self) -> None:
        pair = self._pair
        if pair.local is not None and pair.channel is not None and not pair._closed:
            pair.local.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.debug("%s: relay channel ended: %s", self._pair.relay.host, exc)
        self._pair.channel_gone()


class _ForwardedUpstream(_Upstream, asyncssh.SSHUNIXSession[bytes]):
    pass


class _BridgeUpstream(_Upstream, asyncssh.SSHClientSession[bytes]):
    pass


def _peer_uid(transport: asyncio.Transport) -> int:
    sock: socket.socket = transport.get_extra_info("socket")
    credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return int(uid)
