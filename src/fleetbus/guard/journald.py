"""journald's native protocol (the one encoder, for audit records and log records alike) and the mirror that copies
audit records there without ever waiting for journald on a read.

journald reads datagrams from a unix socket whose queue is short (net.unix.max_dgram_qlen, 10 here): when journald
falls behind, a blocking `sendto` waits until it catches up — measured in a sandbox, 1.1 ms per record on the event
loop, more than the whole rest of a read. The file is the audit log's record of truth; journald holds its copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MESSAGE_ID = "6b1c0f8e3d2a4e7fb0c5d9a1e2f3a4b5"
"""journald MESSAGE_ID of every fleetbus audit record: `journalctl MESSAGE_ID=6b1c0f8e…` finds them all."""
BACKLOG = 10_000
"""Copies the mirror holds while journald is behind; beyond it the oldest are dropped and counted (never the file's)."""
BACKLOG_BYTES = 16 << 20
"""The same bound in bytes: a backlog of large records (long arguments) stops growing here too."""
CHANGE_WAIT = 0.2
"""Without an event loop (a CLI command), how long a change's copy may wait for room in journald's queue, so it is
there before the change runs. Under a loop (the server) nothing waits: a stalled journald would stall every client
(the copy follows when journald has room; the file already has the record)."""
CLOSE_WAIT = 2.0
READ_BATCH = 0.1
"""Under an event loop, reads' copies go to journald together, at most this late: every batch wakes journald (and the
server, for its timer), and on a busy host those wake-ups cost a read more than the rest of its audit work. Measured
with bench/bench_call_overhead.py --compare on this 2-core VM: a read 0.10-0.23 ms quicker at 0.1 s than at 0.01 s
(~2 copies per batch at one client's pace, ~25 in 0.1 s, sent in batches of at most READ_BATCH_COPIES), as quick
as with no copies at all. A change's copy goes at once, with the reads' before it; the file has every record before
its answer leaves either way."""
READ_BATCH_COPIES = 8
"""A batch goes at once when it holds this many copies, whatever its age: journald's socket queues 10 datagrams
(net.unix.max_dgram_qlen, per network namespace; systemd raises it only in the host's), so a batch of 8 and a
change's copy after it fit, and a change's copy is with journald before the change runs — a 0.1 s batch of ~25
left the change's copy and 13 reads waiting for journald to read (found by a hostile review)."""
RECONNECT_AFTER = 1.0
"""Without journald (not running, or restarting), try its socket again at most this often."""
LOG = logging.getLogger(__name__)


def native_fields(fields: Mapping[str, str]) -> bytes:
    """KEY=value lines, or KEY, a 64-bit little-endian length and the raw bytes when the value has a newline."""
    if not any("\n" in value for value in fields.values()):  # the usual case, encoded in one go
        return "".join(f"{key}={value}\n" for key, value in fields.items()).encode(errors="replace")
    out = bytearray()
    for key, value in fields.items():
        data = value.encode(errors="replace")  # a log message may carry a lone surrogate; the entry still goes
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def audit_datagram(record: Mapping[str, Any], canonical: bytes) -> bytes:
    """One audit record as a journal entry: searchable FLEETBUS_* fields and the record itself (its canonical JSON,
    exactly the line in the file) in FLEETBUS_RECORD."""
    operation = record.get("operation") or {}
    target = f"{operation.get('interface', '')}.{operation.get('member', '')}".strip(".") or operation.get("kind", "")
    decision = record.get("decision") or {}
    event, client, host = str(record.get("event")), str(record.get("client")), str(record.get("host"))
    verdict, rule = str(decision.get("verdict", "")), str(decision.get("rule", ""))
    approval, seq = str(record.get("approval") or ""), str(record.get("seq"))
    digest, prev = str(record.get("hash")), str(record.get("prev"))
    priority = "5" if event in ("denied", "failed", "rate-limited", "rejected") else "6"
    message = f"fleetbus {event}: {target} on {host} for {client}"
    if "\n" in "".join((message, target, verdict, rule, approval, seq, digest, prev)):
        return native_fields(
            {
                "MESSAGE": message,
                "MESSAGE_ID": MESSAGE_ID,
                "PRIORITY": priority,
                "SYSLOG_IDENTIFIER": "fleetbus",
                "FLEETBUS_SEQ": seq,
                "FLEETBUS_EVENT": event,
                "FLEETBUS_CLIENT": client,
                "FLEETBUS_HOST": host,
                "FLEETBUS_TARGET": target,
                "FLEETBUS_VERDICT": verdict,
                "FLEETBUS_RULE": rule,
                "FLEETBUS_APPROVAL": approval,
                "FLEETBUS_HASH": digest,
                "FLEETBUS_PREV": prev,
                "FLEETBUS_RECORD": canonical.decode(),
            }
        )
    # The usual case, as native_fields would frame it, in one go (every record takes one: it is on a read's path).
    # The canonical JSON never holds a raw newline; MESSAGE holds event, client and host.
    return (
        f"MESSAGE={message}\nMESSAGE_ID={MESSAGE_ID}\nPRIORITY={priority}\nSYSLOG_IDENTIFIER=fleetbus\n"
        f"FLEETBUS_SEQ={seq}\nFLEETBUS_EVENT={event}\nFLEETBUS_CLIENT={client}\nFLEETBUS_HOST={host}\n"
        f"FLEETBUS_TARGET={target}\nFLEETBUS_VERDICT={verdict}\nFLEETBUS_RULE={rule}\n"
        f"FLEETBUS_APPROVAL={approval}\nFLEETBUS_HASH={digest}\nFLEETBUS_PREV={prev}\n"
        f"FLEETBUS_RECORD={canonical.decode()}\n"
    ).encode(errors="replace")


class JournalMirror:
    """Copies of audit records, in order, on a non-blocking socket connected to journald's.

    Under a running event loop (the server), reads' copies are sent in batches, READ_BATCH after the first one
    waiting; a change's copy (`wait=True`) is sent at once, after those, so journald normally has it before the
    change runs — but the loop never waits for journald. Without a loop (a CLI command) every copy is sent at once,
    a change's waiting up to CHANGE_WAIT for room. A copy that journald has no room for waits in a backlog bounded
    by count and bytes and goes as soon as the socket is writable again (the loop watches it), with the next
    record, or at close. Copies dropped (backlog full, journald gone) are counted and logged (once per gap), and
    the count reaches journald with the next copy it takes.
    """

    def __init__(self, path: Path, *, backlog: int = BACKLOG, backlog_bytes: int = BACKLOG_BYTES) -> None:
        self.path = path
        self.backlog = backlog
        self.backlog_bytes = backlog_bytes
        self.dropped = 0
        self._reported = 0
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._sock: socket.socket | None = None
        self._connect_after = 0.0
        self._watching: asyncio.AbstractEventLoop | None = None
        self._batch: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        """Copies journald has not had room for yet."""
        return len(self._pending)

    def send(self, record: Mapping[str, Any], canonical: bytes, *, wait: bool = False) -> None:
        """Copy one record (`canonical`: its canonical JSON, the line in the file). `wait`: a change's copy, sent
        at once (and, without an event loop, waiting up to CHANGE_WAIT for room)."""
        datagram = audit_datagram(record, canonical)
        while self._pending and (
            len(self._pending) >= self.backlog or self._pending_bytes + len(datagram) > self.backlog_bytes
        ):
            self._drop_oldest()
        self._pending.append(datagram)
        self._pending_bytes += len(datagram)
        if wait:
            self._flush(0.0 if _loop_running() else CHANGE_WAIT)
        elif len(self._pending) >= READ_BATCH_COPIES or not self._batched():
            self._flush(0.0)

    def _drop_oldest(self) -> None:
        self._pending_bytes -= len(self._pending.popleft())
        self._count_drop()

    def _count_drop(self) -> None:
        if self.dropped == self._reported:  # the first copy of a gap: say so once, not per copy
            LOG.warning(
                "journald at %s is not taking fleetbus's audit copies; dropping them until it does (the audit log "
                "file keeps every record)",
                self.path,
            )
        self.dropped += 1

    def _popleft(self) -> None:
        self._pending_bytes -= len(self._pending.popleft())

    def _batched(self) -> bool:
        """True when the copy will go with a batch the running loop sends shortly."""
        if self._batch is not None:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._batch = loop.call_later(READ_BATCH, self._send_batch)
        return True

    def _send_batch(self) -> None:
        self._batch = None
        self._flush(0.0)

    def close(self) -> None:
        """Hand journald what is still waiting (for at most CLOSE_WAIT), then close the socket."""
        if self._batch is not None:
            self._batch.cancel()
            self._batch = None
        self._flush(CLOSE_WAIT)
        self._stop_watching()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _flush(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while self._pending:
            sock = self._connected()
            if sock is None:
                # No journald here (or not now): nothing to copy to, the file has it all.
                self._pending.clear()
                self._pending_bytes = 0
                return
            try:
                if self.dropped > self._reported:
                    dropped = self.dropped
                    sock.send(self._drop_note(dropped - self._reported))
                    LOG.warning("journald takes audit copies again; %d were dropped", dropped - self._reported)
                    self._reported = dropped
                sock.send(self._pending[0])
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left > 0 and _writable(sock, left):
                    continue
                self._watch(sock)
                return
            except OSError:
                self._disconnect()  # journald restarted or went away; the next copy reconnects
                self._drop_oldest()
                continue
            self._popleft()
        self._stop_watching()

    def _connected(self) -> socket.socket | None:
        if self._sock is None:
            now = time.monotonic()
            if now < self._connect_after:
                return None
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
            try:
                # Connected, so a full queue answers EAGAIN and poll says when there is room again.
                sock.connect(str(self.path))
            except OSError:
                sock.close()
                self._connect_after = now + RECONNECT_AFTER
                return None
            self._sock = sock
        return self._sock

    def _disconnect(self) -> None:
        self._stop_watching()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def _watch(self, sock: socket.socket) -> None:
        """Under a running event loop (the server), send the backlog when journald has room again, even if no
        further record comes; without one (a CLI command) it goes with the next record or at close."""
        if self._watching is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.add_writer(sock.fileno(), self._flush, 0.0)
        self._watching = loop

    def _stop_watching(self) -> None:
        if self._watching is not None and self._sock is not None:
            with contextlib.suppress(Exception):
                self._watching.remove_writer(self._sock.fileno())
        self._watching = None

    @staticmethod
    def _drop_note(missed: int) -> bytes:
        return native_fields(
            {
                "MESSAGE": f"fleetbus: {missed} audit record(s) could not be copied to journald (it was absent or "
                "too far behind); the audit log file holds every record — `fleetbus audit tail` shows them",
                "PRIORITY": "4",
                "SYSLOG_IDENTIFIER": "fleetbus",
                "FLEETBUS_EVENT": "journal-copies-dropped",
                "FLEETBUS_DROPPED": str(missed),
            }
        )


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _writable(sock: socket.socket, timeout: float) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(timeout * 1000))
