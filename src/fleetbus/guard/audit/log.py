"""The writer: appends records under a lock shared with other writing processes, resumes the chain after a crash,
rotates, keeps the head file current and mirrors each record to journald."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fleetbus.guard.audit.files import (
    CURRENT,
    HEAD,
    HEAD_BYTES,
    end_of_last_line,
    fsync_dir,
    last_record_and,
    read_head,
    rotated_files,
)
from fleetbus.guard.audit.keys import CHAIN_HMAC, head_mac
from fleetbus.guard.audit.records import GENESIS, RESERVED, AuditError, canonical, now_stamp, seal
from fleetbus.guard.audit.retention import CHECKPOINT, Retention, first_record
from fleetbus.guard.journald import JournalMirror, audit_datagram

RETAIN_EVERY = 3600.0
"""Seconds between retention checks when nothing rotates (age alone can retire a file)."""


class AuditLog:
    """Appends records to `directory`/audit.log. Several processes may write one log (a server and
    `fleetbus tool`, say): each append happens under an exclusive lock and continues from the record that
    is really last on disk, whoever wrote it.

    Opening resumes the chain. A crash can leave half a record at the end of audit.log; it is cut off (it was
    never acknowledged) and a `recovered` record says so. When the head names a record the files no longer end
    with, the chain continues from the head, so `verify` keeps reporting the gap instead of having it papered
    over by the next append.

    With a `key`, every record's hash is an HMAC under it and the head is signed: whoever can write the files but
    not read the key cannot add, change or cut records and have `verify` (given the key) pass.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        journal: Path | None = None,
        fsync: bool = True,
        sync_within: float = 1.0,
        key: bytes | None = None,
        retention: Retention | None = None,
        sync_file: Callable[[int], None] | None = None,
    ) -> None:
        """`fsync=False` never forces records to disk (tests). Otherwise a record appended with `durable=True`
        (or by `append_durable`) is on disk before the call returns, and any other record within `sync_within`
        seconds (group commit: a read's record need not cost two disk flushes, a change's record must be there
        before it runs). `sync_file` flushes one file descriptor (os.fsync when None; a test makes it slow)."""
        self.directory = directory
        self.key = key
        self.retention = retention or Retention()
        self._retained_at = 0.0
        self._retaining = False
        self._current_path = str(directory / CURRENT)
        self.max_bytes = max_bytes
        self.journal = journal
        self.fsync = fsync
        self.sync_within = sync_within
        self.sync_file = sync_file
        self._synced_at = time.monotonic()
        self._pending = False
        # Threads: the writer's state (seq, chain, descriptors) changes under _state, the disk flush of
        # append_durable runs outside it (in a worker thread) so the loop keeps writing while a disk flushes.
        self._state = threading.Lock()
        self._flushing = threading.Lock()
        self._durable_seq = 0
        """Every record up to this one is known to be on disk."""
        self._mirror: JournalMirror | None = None
        self._opened = False

    def open(self) -> None:
        """Make the directory and resume the chain. The first record does it too, so a command that ends up
        writing nothing (a usage error, a listing) leaves no state directory behind; a server opens the log at
        start, so a log it cannot continue stops it before its first call."""
        if self._opened:
            return
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._mirror = JournalMirror(self.journal) if self.journal is not None else None
        self._head_fd = os.open(directory / HEAD, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            with self._locked():
                notes = self._discard_partial_tail()
                self._seq, self._prev, resume_notes = self._resume()
                resume_notes += self._key_notes()
                self._fd = self._open_current()
                self._known = self._position()
                if notes or resume_notes:
                    note = {"event": "recovered", "client": "fleetbus", "note": "; ".join([*notes, *resume_notes])}
                    self._append_locked(note, self._known[1])
                self._retain()
        except BaseException:
            for fd in (self._head_fd, self._lock_fd):
                os.close(fd)
            if self._mirror is not None:
                self._mirror.close()
            raise
        self._opened = True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _position(self) -> tuple[int, int]:
        """(inode, size) of the current file as this writer left it; anything else means another writer."""
        info = os.fstat(self._fd)
        return info.st_ino, info.st_size

    def _catch_up(self) -> int:
        """Continue from what other writers appended (or rotated) since this one last wrote; the current file's
        size. One stat tells both: the file at audit.log is still ours (same inode) and how long it is now."""
        try:
            on_disk = os.stat(self._current_path)
        except FileNotFoundError:
            on_disk = None
        if on_disk is None or on_disk.st_ino != self._known[0]:
            old, self._fd = self._fd, self._open_current()
            os.close(old)
            position = self._position()
        else:
            position = (on_disk.st_ino, on_disk.st_size)
        if position != self._known:
            last, _ = last_record_and(self.directory, None)
            if last is not None:
                self._seq, self._prev = int(last["seq"]), str(last["hash"])
        return position[1]

    @property
    def seq(self) -> int:
        """Sequence number of the last record written (0 before the first)."""
        self.open()
        return self._seq

    def _discard_partial_tail(self) -> list[str]:
        current = self.directory / CURRENT
        try:
            with open(current, "rb") as handle:
                cut = end_of_last_line(handle)
                size = handle.seek(0, os.SEEK_END)
                if cut == size:
                    return []
                handle.seek(cut)
                tail = handle.read()
        except FileNotFoundError:
            return []
        os.truncate(current, cut)
        return [
            f"discarded {len(tail)} bytes (sha256 {hashlib.sha256(tail).hexdigest()}) of an incomplete record at "
            f"the end of {CURRENT}, left by a crash while it was written"
        ]

    def _resume(self) -> tuple[int, str, list[str]]:
        """Where the chain continues: normally the last record on disk, which the head names (or precedes)."""
        head = read_head(self.directory)
        try:
            last, at_head = last_record_and(self.directory, head[0] if head else None)
        except ValueError as exc:
            if head is None:
                raise AuditError(
                    f"cannot continue the audit log in {self.directory}: {exc}, and {HEAD} is missing or damaged; "
                    "run `fleetbus audit verify` and move the damaged log aside"
                ) from None
            return head[0], head[1], [f"the end of the log does not parse ({exc}); continuing from {HEAD}"]
        if head is None:
            if last is None:
                return 0, GENESIS, []
            return (
                int(last["seq"]),
                str(last["hash"]),
                [f"{HEAD} was missing or damaged; continuing from record {last['seq']} on disk"],
            )
        head_seq, head_hash = head.seq, head.hash
        if last is not None and at_head is not None and at_head.get("hash") == head_hash:
            # Records after the head chain from it (a crash between a record and its head).
            return int(last["seq"]), str(last["hash"]), []
        found = "no records" if last is None else f"record {last['seq']}"
        return (
            head_seq,
            head_hash,
            [
                f"{HEAD} names record {head_seq} but the log holds {found} that matches it; records were removed "
                "or replaced — the chain continues from the head so verification keeps showing the gap"
            ],
        )

    def _key_notes(self) -> list[str]:
        """What a `recovered` record must say about the key; refuses a keyed log without its key."""
        head = read_head(self.directory)
        if self.key is None:
            if head is not None and head.mac is not None:
                raise AuditError(
                    f"the audit log in {self.directory} is HMAC-chained (its head is signed), but no audit key is "
                    "configured: set audit_key_file (or the fleetbus-audit-key credential) to the key it was "
                    "written with, so it is not continued unauthenticated"
                )
            return []
        if head is None or head.seq == 0:
            return []
        if head.mac is None:
            return [f"records from here on are HMAC-chained under the audit key (records up to {head.seq} were not)"]
        if head.mac != head_mac(self.key, head.seq, head.hash):
            return [
                f"{HEAD}'s signature does not match the audit key (another key, or a head written without it); "
                "`fleetbus audit verify` shows what"
            ]
        return []

    def _open_current(self) -> int:
        path = self.directory / CURRENT
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def append(self, fields: Mapping[str, Any], *, durable: bool = False) -> dict[str, Any]:
        record, line = self._write(fields, durable)
        if self._mirror is not None:
            # A change's copy is in journald before the change runs, as its record is on disk; a read's never
            # waits for journald.
            self._mirror.send(record, line[:-1], wait=durable)
        return record

    async def append_durable(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """`append(fields, durable=True)` for an event loop: the record is written (and takes its place in the
        chain) at once, its disk flush runs in a worker thread, and this returns once the record is on disk — the
        loop serves other calls (and appends their records) meanwhile. Flushes overlapping in time share one."""
        record, line = self._write(fields, durable=False, sync_due=False)
        if self.fsync:
            await asyncio.to_thread(self.sync_through, int(record["seq"]))
        if self._mirror is not None:
            self._mirror.send(record, line[:-1], wait=True)
        return record

    def _write(
        self, fields: Mapping[str, Any], durable: bool, *, sync_due: bool = True
    ) -> tuple[dict[str, Any], bytes]:
        self.open()
        with self._state:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # as _locked(), without a generator on every call
            try:
                record, line = self._append_locked(fields, self._catch_up())
                self._pending = True
                # A read's group commit waits while a worker thread flushes: the next record (or that flush,
                # when it began later) takes it to disk, and the loop never queues behind a slow disk for a read.
                due = (
                    sync_due and not self._flushing.locked() and time.monotonic() - self._synced_at >= self.sync_within
                )
                if self.fsync and (durable or due):
                    self._sync_locked()
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        return record, line

    def sync_through(self, seq: int) -> None:
        """Make every record up to `seq` durable, from any thread, without holding up writers while the disk
        flushes: the descriptors are duplicated under the state lock (a rotation may close the originals; it
        flushes the file it rotates first, see _rotate) and flushed outside it."""
        with self._flushing:
            with self._state:
                if self._durable_seq >= seq:
                    return  # a flush that began after this record was written covered it
                upto = self._seq
                fds = [os.dup(self._fd), os.dup(self._head_fd)]
            try:
                # The log before the head, as in _sync_locked.
                for fd in fds:
                    self._flush_fd(fd)
            finally:
                for fd in fds:
                    os.close(fd)
            with self._state:
                self._durable_seq = max(self._durable_seq, upto)

    def _append_locked(self, fields: Mapping[str, Any], size: int) -> tuple[dict[str, Any], bytes]:
        """Write one record to the current file, `size` bytes long (we hold the lock: nobody else writes)."""
        if not RESERVED.isdisjoint(fields):
            raise AuditError(f"audit fields {sorted(RESERVED & set(fields))} are set by the audit log itself")
        record: dict[str, Any] = {"seq": self._seq + 1, "time": now_stamp(), **fields, "prev": self._prev}
        if self.key is not None:
            record["chain"] = CHAIN_HMAC
        record["hash"], sealed = seal(record, self.key)
        line = sealed + b"\n"
        # Never rotate an empty file: its name would be that of the file holding the last record.
        rotated = bool(size and size + len(line) > self.max_bytes)
        if rotated:
            self._rotate()
            size = 0
        self._write_line(line, size)
        self._known = (self._known[0], size + len(line))
        # The record is in the file now: the chain goes on from it even if fsync or the head fails below,
        # or the next record would repeat its number.
        self._seq, self._prev = record["seq"], record["hash"]
        self._write_head()
        if (
            self.retention.active
            and not self._retaining  # the checkpoint's own append may rotate: one removal at a time
            and (rotated or time.monotonic() - self._retained_at > RETAIN_EVERY)
        ):
            self._retain()
        return record, line

    def _retain(self) -> None:
        """Remove the rotated files retention no longer keeps — after a durable checkpoint record that names the
        record the remaining log starts with, so the chain is still proven from there (see read.verify)."""
        self._retained_at = time.monotonic()
        if not self.retention.active:
            return
        rotated = rotated_files(self.directory)
        doomed = self.retention.doomed(rotated, self._known[1], time.time())
        if not doomed:
            return
        kept = rotated[len(doomed) :]
        start = first_record(kept[0] if kept else self.directory / CURRENT)
        if start is None or not isinstance(start.get("seq"), int):
            # The file that would begin the log has no readable first record: removing less is safe, guessing not.
            return
        checkpoint = {
            "event": CHECKPOINT,
            "client": "fleetbus",
            "start_seq": start["seq"],
            "start_prev": start.get("prev"),
            "removed_files": [path.name for path in doomed],
            "removed_through": start["seq"] - 1,
            "note": f"retention removes records before {start['seq']}; the log starts there",
        }
        self._retaining = True
        try:
            self._append_locked(checkpoint, self._known[1])
        finally:
            self._retaining = False
        self._pending = True
        if self.fsync:
            self._sync_locked()  # the checkpoint is on disk before anything it speaks for is gone
        for path in doomed:
            path.unlink(missing_ok=True)
        fsync_dir(self.directory)

    def _write_line(self, line: bytes, size: int) -> None:
        """All of `line` or none of it: a short write (disk full, signal) is rolled back, not left half-written."""
        try:
            write_all(self._fd, line)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
            raise

    def sync(self) -> None:
        """Make every record written so far durable."""
        if not self._opened:
            return
        with self._state, self._locked():
            self._sync_locked()

    def _sync_locked(self) -> None:
        # The log before the head: after a power cut the head may lag the log (verify accepts records past
        # the head that chain) but never claim records the log lost.
        if self._pending:
            self._flush_fd(self._fd)
            self._flush_fd(self._head_fd)
        self._pending = False
        self._durable_seq = self._seq
        self._synced_at = time.monotonic()

    def _flush_fd(self, fd: int) -> None:
        (self.sync_file or os.fsync)(fd)  # looked up per call: os.fsync as it is now

    def _rotate(self) -> None:
        current = self.directory / CURRENT
        # Only the first record names the file: never read all 64 MiB.
        first = first_record(current)
        try:
            start = int(first["seq"]) if first is not None else self._seq
        except (ValueError, KeyError, TypeError):
            start = self._seq
        target = self.directory / f"audit-{start:012d}.log"
        while target.exists():
            # A damaged first line can point at an existing file's name; never overwrite one.
            start += 1
            target = self.directory / f"audit-{start:012d}.log"
        if self.fsync:
            # Records a flush in a worker thread still waits for are in this file, which it will not flush (it
            # takes the new one): flushed here, once per rotation.
            self._flush_fd(self._fd)
            self._durable_seq = self._seq
        # Rename before closing: if the rename fails, the writer still has its file.
        current.rename(target)
        old, self._fd = self._fd, self._open_current()
        os.close(old)
        self._known = self._position()
        fsync_dir(self.directory)

    def _write_head(self) -> None:
        # Rewritten in place at a fixed length, padded with JSON whitespace: one small pwrite per record,
        # no rename, and never a moment when the head file is missing or half-written at a new length.
        # json.dumps({"seq": …, "hash": …[, "mac": …]}) written out: an int and hex digests need no escaping, and
        # this runs for every record.
        mac = f', "mac": "{head_mac(self.key, self._seq, self._prev)}"' if self.key is not None else ""
        data = f'{{"seq": {int(self._seq)}, "hash": "{self._prev}"{mac}}}'.encode().ljust(HEAD_BYTES)
        if os.pwrite(self._head_fd, data, 0) != len(data):
            raise AuditError(f"short write to {self.directory / HEAD}")

    def close(self) -> None:
        if self.fsync:
            with contextlib.suppress(OSError):
                self.sync()
        if self._opened:
            for fd in (self._fd, self._head_fd, self._lock_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._opened = False
            if self._mirror is not None:
                self._mirror.close()  # journald is a copy: the file above is complete whatever it gets


def write_all(fd: int, data: bytes) -> None:
    """os.write may write less than asked (a signal, a full disk); keep going until all of it is written."""
    written = os.write(fd, data)
    if written == len(data):  # nearly always: a record is small
        return
    view = memoryview(data)[written:]
    while view:
        view = view[os.write(fd, view) :]


def journal_datagram(record: Mapping[str, Any]) -> bytes:
    """A record as the journal entry the mirror sends for it."""
    return audit_datagram(record, canonical(record))
