"""The audit log: hash-chained JSONL records, fsynced, rotated without breaking the chain, mirrored to journald.

Each record carries `prev` (the previous record's hash) and `hash` (SHA-256 of its own canonical JSON without
`hash`), and each line is exactly that canonical JSON. A small head file names the last record acknowledged, so
cutting records off the end is detected too. A crash can leave the log ahead of the head (records written, head
not yet) or end it in half a record that was never acknowledged — `verify` accepts both with a note, because
everything the head covers still chains.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from fleetbus.guard.journald import JournalMirror, audit_datagram

GENESIS = "0" * 64
CURRENT = "audit.log"
HEAD = "audit.head"
ROTATED = re.compile(r"^audit-(\d{12})\.log$")
JOURNAL_SOCKET = Path("/run/systemd/journal/socket")


_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def canonical(record: Mapping[str, Any]) -> bytes:
    return _encode(record).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def seal(record: Mapping[str, Any]) -> tuple[str, bytes]:
    """`record_hash(record)` and the canonical JSON of the record with that hash, encoding its content once (the
    writer's hot path): with sorted keys, `hash` sits between the keys that sort before it and those after."""
    before = _encode({k: v for k, v in record.items() if k < "hash"})[:-1]  # "{…" — or "{" when none
    after = _encode({k: v for k, v in record.items() if k > "hash"})[1:]  # "…}" — or "}" when none
    opened, closes = len(before) > 1, len(after) > 1
    digest = hashlib.sha256((before + ("," if opened and closes else "") + after).encode()).hexdigest()
    line = before + ("," if opened else "") + f'"hash":"{digest}"' + ("," if closes else "") + after
    return digest, line.encode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditError(ValueError):
    """The audit log cannot be continued or written; nothing should run unrecorded."""


HEAD_BYTES = 128
"""Fixed size of the head file: enough for the JSON of any sequence number and a SHA-256."""

RESERVED = frozenset({"seq", "time", "prev", "hash"})
"""Fields the writer sets; a caller's value for them would break or disguise the chain."""


class AuditLog:
    """Appends records to `directory`/audit.log. Several processes may write one log (a server and
    `fleetbus tool`, say): each append happens under an exclusive lock and continues from the record that
    is really last on disk, whoever wrote it.

    Opening resumes the chain. A crash can leave half a record at the end of audit.log; it is cut off (it was
    never acknowledged) and a `recovered` record says so. When the head names a record the files no longer end
    with, the chain continues from the head, so `verify` keeps reporting the gap instead of having it papered
    over by the next append.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        journal: Path | None = None,
        fsync: bool = True,
        sync_within: float = 1.0,
    ) -> None:
        """`fsync=False` never forces records to disk (tests). Otherwise a record appended with `durable=True`
        is on disk before `append` returns, and any other record within `sync_within` seconds (group commit:
        a read's record need not cost two disk flushes, a change's record must be there before it runs)."""
        self.directory = directory
        self._current_path = str(directory / CURRENT)
        self.max_bytes = max_bytes
        self.journal = journal
        self.fsync = fsync
        self.sync_within = sync_within
        self._synced_at = time.monotonic()
        self._pending = False
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
                self._fd = self._open_current()
                self._known = self._position()
                if notes or resume_notes:
                    note = {"event": "recovered", "client": "fleetbus", "note": "; ".join([*notes, *resume_notes])}
                    self._append_locked(note, self._known[1])
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
            last, _ = _last_record_and(self.directory, None)
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
                cut = _end_of_last_line(handle)
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
            last, at_head = _last_record_and(self.directory, head[0] if head else None)
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
        head_seq, head_hash = head
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

    def _open_current(self) -> int:
        path = self.directory / CURRENT
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def append(self, fields: Mapping[str, Any], *, durable: bool = False) -> dict[str, Any]:
        self.open()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # as _locked(), without a generator on every call
        try:
            record, line = self._append_locked(fields, self._catch_up())
            self._pending = True
            if self.fsync and (durable or time.monotonic() - self._synced_at >= self.sync_within):
                self._sync_locked()
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        if self._mirror is not None:
            # A change's copy is in journald before the change runs, as its record is on disk; a read's never
            # waits for journald.
            self._mirror.send(record, line[:-1], wait=durable)
        return record

    def _append_locked(self, fields: Mapping[str, Any], size: int) -> tuple[dict[str, Any], bytes]:
        """Write one record to the current file, `size` bytes long (we hold the lock: nobody else writes)."""
        clash = RESERVED & set(fields)
        if clash:
            raise AuditError(f"audit fields {sorted(clash)} are set by the audit log itself")
        record: dict[str, Any] = {"seq": self._seq + 1, "time": _now(), **fields, "prev": self._prev}
        record["hash"], sealed = seal(record)
        line = sealed + b"\n"
        # Never rotate an empty file: its name would be that of the file holding the last record.
        if size and size + len(line) > self.max_bytes:
            self._rotate()
            size = 0
        self._write_line(line, size)
        self._known = (self._known[0], size + len(line))
        # The record is in the file now: the chain goes on from it even if fsync or the head fails below,
        # or the next record would repeat its number.
        self._seq, self._prev = record["seq"], record["hash"]
        self._write_head()
        return record, line

    def _write_line(self, line: bytes, size: int) -> None:
        """All of `line` or none of it: a short write (disk full, signal) is rolled back, not left half-written."""
        try:
            _write_all(self._fd, line)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
            raise

    def sync(self) -> None:
        """Make every record written so far durable."""
        if not self._opened:
            return
        with self._locked():
            self._sync_locked()

    def _sync_locked(self) -> None:
        # The log before the head: after a power cut the head may lag the log (verify accepts records past
        # the head that chain) but never claim records the log lost.
        if self._pending:
            os.fsync(self._fd)
            os.fsync(self._head_fd)
        self._pending = False
        self._synced_at = time.monotonic()

    def _rotate(self) -> None:
        current = self.directory / CURRENT
        try:
            with open(current, "rb") as handle:
                first = handle.readline()  # only the first record names the file: never read all 64 MiB
            start = int(json.loads(first)["seq"]) if first.endswith(b"\n") else self._seq + 1
        except (ValueError, KeyError, TypeError):
            start = self._seq
        target = self.directory / f"audit-{start:012d}.log"
        while target.exists():
            # A damaged first line can point at an existing file's name; never overwrite one.
            start += 1
            target = self.directory / f"audit-{start:012d}.log"
        # Rename before closing: if the rename fails, the writer still has its file.
        current.rename(target)
        old, self._fd = self._fd, self._open_current()
        os.close(old)
        self._known = self._position()
        _fsync_dir(self.directory)

    def _write_head(self) -> None:
        # Rewritten in place at a fixed length, padded with JSON whitespace: one small pwrite per record,
        # no rename, and never a moment when the head file is missing or half-written at a new length.
        data = json.dumps({"seq": self._seq, "hash": self._prev}).encode().ljust(HEAD_BYTES)
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


def _write_all(fd: int, data: bytes) -> None:
    """os.write may write less than asked (a signal, a full disk); keep going until all of it is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_head(directory: Path) -> tuple[int, str] | None:
    """(seq, hash) from the head file, or None when it is missing or damaged.

    A live writer rewrites the head in place, and a read racing that pwrite can see half of each (page-cache
    reads take no lock against writes): the number of one record with a hash spliced from two. Reading until
    two reads in a row agree gives the head as it was at one moment.
    """
    try:
        data = (directory / HEAD).read_bytes()
        for _ in range(50):
            again = (directory / HEAD).read_bytes()
            if again == data:
                break
            data = again
        head = json.loads(data)
        return int(head["seq"]), str(head["hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _last_record_and(directory: Path, seq: int | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The last record on disk and the record numbered `seq`, reading files newest first and each from its end,
    stopping early: opening (and catching up with another writer) costs the last records, not the whole log."""
    last: dict[str, Any] | None = None
    for path in reversed(log_files(directory)):
        with open(path, "rb") as handle:
            for offset, raw in _lines_from_end(handle):
                if not raw.strip():
                    continue
                try:
                    record = _parse(path, 0, raw)
                except ValueError:
                    # Name the line as a forward reader would: count the lines before it (only on this rare path).
                    handle.seek(0)
                    number = handle.read(offset).count(b"\n") + 1
                    raise ValueError(str(_parse_error(path, number, raw))) from None
                if last is None:
                    last = record
                if seq is None or record.get("seq") == seq:
                    return last, (record if seq is not None else None)
                if isinstance(record.get("seq"), int) and record["seq"] < seq:
                    return last, None
    return last, None


TAIL_CHUNK = 64 * 1024


def _end_of_last_line(handle: BinaryIO) -> int:
    """The offset just after the last newline (0 when there is none): what follows is a record a crash cut."""
    position = handle.seek(0, os.SEEK_END)
    while position > 0:
        size = min(TAIL_CHUNK, position)
        position -= size
        handle.seek(position)
        cut = handle.read(size).rfind(b"\n")
        if cut >= 0:
            return position + cut + 1
    return 0


def _lines_from_end(handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for each complete line, last first, reading backwards in chunks; the unterminated tail a cut
    leaves is skipped, as forward readers skip it."""
    end = _end_of_last_line(handle)
    position, buffer = end, b""
    while position > 0:
        size = min(TAIL_CHUNK, position)
        position -= size
        handle.seek(position)
        buffer = handle.read(size) + buffer
        # buffer ends with a newline; the bytes before its first newline may begin in an earlier chunk.
        start = 0 if position == 0 else buffer.find(b"\n") + 1
        lines = buffer[start:].split(b"\n")[:-1]
        offset = position + len(buffer)
        for line in reversed(lines):
            offset -= len(line) + 1
            yield offset, line
        buffer = buffer[:start]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def journal_datagram(record: Mapping[str, Any]) -> bytes:
    """A record as the journal entry the mirror sends for it."""
    return audit_datagram(record, canonical(record))


# ---- reading and verifying ----------------------------------------------------------------------


def _rotated_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("audit-*.log") if ROTATED.match(p.name))


def log_files(directory: Path) -> list[Path]:
    """Rotated files in chain order, then the current one."""
    current = directory / CURRENT
    return [*_rotated_files(directory), *([current] if current.exists() else [])]


LogFile = tuple[Path, BinaryIO | None]
"""A log file and, for the current one, the handle it was opened with."""


@contextlib.contextmanager
def _snapshot(directory: Path) -> Iterator[list[LogFile]]:
    """The log files in chain order, with audit.log already open.

    The writer rotates by renaming audit.log, and an open file keeps what it held: opening it first and then
    checking that no rotated file appeared meanwhile gives a reader one consistent chain while a server writes.
    """
    current_path = directory / CURRENT
    current: BinaryIO | None = None
    rotated: list[Path] = []
    for _ in range(100):
        rotated = _rotated_files(directory)
        try:
            current = open(current_path, "rb")  # noqa: SIM115 — closed below, after the caller is done
        except FileNotFoundError:
            current = None
        if _rotated_files(directory) == rotated:
            break
        if current is not None:
            current.close()
            current = None
    try:
        yield [*((path, None) for path in rotated), *([(current_path, current)] if current is not None else [])]
    finally:
        if current is not None:
            current.close()


def _split_lines(path: Path, handle: BinaryIO | None = None) -> tuple[list[tuple[int, bytes]], bytes]:
    """(line number, raw line) for every complete line, and the unterminated tail a cut leaves (or b"")."""
    if handle is None:
        with open(path, "rb") as opened:
            data = opened.read()
    else:
        data = handle.read()
    # The last element is empty after a final newline, else the unterminated tail of a cut record.
    *complete, partial = data.split(b"\n")
    return [(number, raw) for number, raw in enumerate(complete, start=1) if raw.strip()], partial


def _parse(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except ValueError:
        raise _parse_error(path, number, raw) from None
    if not isinstance(record, dict):
        raise _parse_error(path, number, raw)
    return record


def _parse_error(path: Path, number: int, raw: bytes) -> ValueError:
    try:
        json.loads(raw)
    except ValueError as exc:
        return ValueError(f"{path.name} line {number} is not a JSON record ({exc})")
    return ValueError(f"{path.name} line {number} is not a JSON object")


def iter_file(
    path: Path, tolerate_partial: bool = False, handle: BinaryIO | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each line; raises ValueError naming the line that does not parse."""
    complete, partial = _split_lines(path, handle)
    for number, raw in complete:
        yield number, _parse(path, number, raw)
    if partial.strip() and not tolerate_partial:
        raise ValueError(f"{path.name} line {len(complete) + 1} is incomplete (the file was cut mid-record)")


def iter_records(directory: Path, tolerate_partial: bool = False) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    with _snapshot(directory) as files:
        for path, handle in files:
            for number, record in iter_file(path, tolerate_partial, handle):
                yield path, number, record


@dataclass(frozen=True)
class Verification:
    ok: bool
    records: int
    problem: str | None = None
    note: str | None = None


def verify(directory: Path) -> Verification:
    """Walk the whole chain; the first broken link is named by file, line and sequence number.

    Safe next to a live writer: the head is read first and the files as one snapshot (see `_snapshot`), so
    records appended meanwhile only ever come after what the head covers.
    """
    # The head first: records appended while the files are read then come after it, which is allowed.
    head_present = (directory / HEAD).exists()
    head = read_head(directory)
    with _snapshot(directory) as files:
        return _verify_files(files, head, head_present)


def _verify_files(files: list[LogFile], head: tuple[int, str] | None, head_present: bool) -> Verification:
    prev, seq, count = GENESIS, 0, 0
    hash_at_head: str | None = None
    partial_at: str | None = None
    try:
        for index, (path, handle) in enumerate(files):
            complete, partial = _split_lines(path, handle)
            for number, raw in complete:
                record = _parse(path, number, raw)
                where = f"{path.name} line {number} (record {record.get('seq')})"
                if record.get("prev") != prev:
                    return Verification(
                        False,
                        count,
                        f"{where}: does not follow record {seq} — a record before it was deleted, reordered or edited",
                    )
                if record.get("seq") != seq + 1:
                    return Verification(
                        False, count, f"{where}: expected record {seq + 1} — records are missing or reordered"
                    )
                if record.get("hash") != record_hash(record):
                    return Verification(False, count, f"{where}: its content does not match its hash — it was edited")
                # The hash covers the parsed record; the bytes must be exactly its canonical form too, or an
                # edit that parses the same (an escape's case, a duplicate key, spacing) would go unnoticed.
                if raw != canonical(record):
                    return Verification(
                        False, count, f"{where}: it is not byte-for-byte what was written — it was edited"
                    )
                prev, seq, count = record["hash"], record["seq"], count + 1
                if head is not None and seq == head[0]:
                    hash_at_head = prev
            if partial.strip():
                partial_at = f"{path.name} line {len(complete) + 1}"
                if index != len(files) - 1:
                    return Verification(
                        False, count, f"{partial_at} is incomplete (the file was cut mid-record) and more files follow"
                    )
    except ValueError as exc:
        return Verification(False, count, str(exc))
    except FileNotFoundError as exc:
        return Verification(False, count, f"audit log missing: {exc.filename}")
    incomplete = f"; {partial_at} is incomplete (cut mid-record)" if partial_at else ""
    if head is None:
        if count == 0 and not head_present:
            cut = f"; {partial_at} is an incomplete first record a crash cut off" if partial_at else ""
            return Verification(True, 0, note=f"the log is empty{cut}")
        state = "damaged" if head_present else "missing"
        return Verification(False, count, f"{HEAD} is {state}, so truncation cannot be ruled out{incomplete}")
    head_seq, head_hash = head
    if head_seq > seq:
        return Verification(
            False,
            count,
            f"the log ends at record {seq} but {HEAD} says {head_seq} were written — records were cut off the end"
            f"{incomplete}",
        )
    if head_seq > 0 and hash_at_head != head_hash:
        return Verification(False, count, f"record {head_seq} is not the record {HEAD} names — it was replaced")
    notes = []
    if seq > head_seq:
        notes.append(
            f"record {seq} was written just before a crash (or while verifying); it chains correctly"
            if seq == head_seq + 1
            else f"records {head_seq + 1}–{seq} were written after {HEAD} was last updated (a crash, or a live "
            "writer); they chain correctly"
        )
    if partial_at:
        notes.append(f"{partial_at} is an incomplete record the writer was cut off in; it was never acknowledged")
    return Verification(True, count, note="; ".join(notes) or None)


def query(
    directory: Path,
    *,
    since: float | None = None,
    client: str | None = None,
    event: str | None = None,
    target: str | None = None,
    limit: int = 100,
    after_seq: int = 0,
) -> list[dict[str, Any]]:
    """Records matching every given filter, oldest first, at most `limit`; `after_seq` continues a page."""
    found: list[dict[str, Any]] = []
    if limit <= 0:
        return found
    for _, _, record in iter_records(directory, tolerate_partial=True):
        if int(record.get("seq", 0)) <= after_seq:
            continue
        if since is not None and _epoch(record.get("time", "")) < since:
            continue
        if client is not None and record.get("client") != client:
            continue
        if event is not None and record.get("event") != event:
            continue
        operation = record.get("operation") or {}
        name = f"{operation.get('interface', '')}.{operation.get('member', '')}"
        if (
            target is not None
            and not fnmatch.fnmatchcase(name, target)
            and not fnmatch.fnmatchcase(operation.get("member", ""), target)
        ):
            continue
        found.append(record)
        if len(found) >= limit:
            break
    return found


def _epoch(stamp: str) -> float:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def tail(directory: Path, count: int) -> list[dict[str, Any]]:
    """The last `count` records, oldest first."""
    if count <= 0:
        return []
    records: deque[dict[str, Any]] = deque(maxlen=count)
    for _, _, record in iter_records(directory, tolerate_partial=True):
        records.append(record)
    return list(records)


def monotonic_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
