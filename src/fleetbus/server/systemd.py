"""systemd glue, natively: sockets passed by socket activation (LISTEN_FDS), sd_notify (READY, STOPPING,
WATCHDOG), and structured logging to journald when stderr is the journal. Each is a few lines of a documented
protocol (sd_listen_fds(3), sd_notify(3), systemd.exec(5) JOURNAL_STREAM, the journal's native protocol), so no
libsystemd binding is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import traceback
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from fleetbus.guard.journald import native_fields

LISTEN_FDS_START = 3
JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
MAX_JOURNAL_MESSAGE = 48 * 1024
"""A datagram to journald must fit its socket buffer; longer messages are cut (the audit log has the records)."""

log = logging.getLogger(__name__)


@dataclass
class PassedSocket:
    sock: socket.socket
    name: str
    listening: bool
    """True for a listening socket (Accept=no); False for one connection (Accept=yes)."""


def listen_fds(environ: MutableMapping[str, str] | None = None, *, unset: bool = True) -> list[PassedSocket]:
    """The sockets systemd passed this process (fd 3 onwards), or [] when none were passed to *this* process.

    The variables are removed (like sd_listen_fds(1)) so that nothing this process starts believes the sockets
    are its own; the descriptors are made close-on-exec for the same reason.
    """
    env = os.environ if environ is None else environ
    count, pid = env.get("LISTEN_FDS"), env.get("LISTEN_PID")
    names = env.get("LISTEN_FDNAMES", "").split(":")
    if unset:
        for key in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
            env.pop(key, None)
    if not count or not pid or not pid.isdigit() or int(pid) != os.getpid():
        return []
    passed = []
    for index in range(int(count)):
        fd = LISTEN_FDS_START + index
        os.set_inheritable(fd, False)
        sock = socket.socket(fileno=fd)  # family, type and protocol are read from the descriptor
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        passed.append(PassedSocket(sock, names[index] if index < len(names) and names[index] else "", listening))
    return passed


def notify(state: str, environ: MutableMapping[str, str] | None = None) -> bool:
    """Tell the service manager `state` (e.g. "READY=1"); False when not run by one that listens (no NOTIFY_SOCKET)."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        # Non-blocking: this runs on the event loop, which must never wait for a full notification queue.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except BlockingIOError:
        log.debug("the service manager's notification queue is full; dropped %s", state.split("=", 1)[0])
        return False
    except OSError as exc:
        log.warning("cannot notify the service manager (%s): %s", state.split("=", 1)[0], exc)
        return False
    return True


def watchdog_interval(environ: MutableMapping[str, str] | None = None) -> float | None:
    """How often to send WATCHDOG=1: half of WatchdogSec, as sd_watchdog_enabled(3) advises; None when off."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2


async def feed_watchdog(interval: float) -> None:
    """WATCHDOG=1 from the event loop itself: if the loop hangs, the pings stop and systemd restarts us."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


# ---- journald -------------------------------------------------------------------------------------

PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def stderr_is_journal(environ: MutableMapping[str, str] | None = None) -> bool:
    """JOURNAL_STREAM names the device and inode of the stream systemd connected to journald; if stderr is that
    stream, structured records are better sent over the native protocol (systemd.exec(5))."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not device.isdigit() or not inode.isdigit():
        return False
    try:
        info = os.fstat(2)
    except OSError:
        return False
    return info.st_dev == int(device) and info.st_ino == int(inode)


class JournalHandler(logging.Handler):
    """Log records as journal entries with PRIORITY, CODE_*, the logger's name, and any `journal` extra fields
    (`log.info("…", extra={"journal": {"FLEETBUS_CLIENT": "ci"}})`)."""

    def __init__(self, path: Path = JOURNAL_SOCKET, identifier: str = "fleetbus") -> None:
        super().__init__()
        self.path = path
        self.identifier = identifier
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            fields = {
                "MESSAGE": message[:MAX_JOURNAL_MESSAGE],
                "PRIORITY": str(PRIORITIES.get(record.levelno, 6)),
                "SYSLOG_IDENTIFIER": self.identifier,
                "CODE_FILE": record.pathname,
                "CODE_LINE": str(record.lineno),
                "CODE_FUNC": record.funcName,
                "FLEETBUS_LOGGER": record.name,
            }
            extra = getattr(record, "journal", None)
            if isinstance(extra, dict):
                fields.update({str(k).upper(): str(v) for k, v in extra.items()})
            self._sock.sendto(native_fields(fields), str(self.path))
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        super().close()


def log_to_journal_if_stderr_is_journal(path: Path = JOURNAL_SOCKET) -> bool:
    """Under systemd with stderr going to the journal, replace the root logger's handlers with a JournalHandler,
    and keep INFO too: every entry carries its PRIORITY, so `journalctl -p warning` filters as well as a level."""
    if not stderr_is_journal() or not path.exists():
        return False
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(JournalHandler(path))
    root.setLevel(min(root.level, logging.INFO))
    return True
