"""Reading the audit log: records in chain order, queries, the tail, and verifying the whole chain and its head."""

from __future__ import annotations

import fnmatch
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fleetbus.guard.audit.files import HEAD, Head, LogFile, iter_file, parse_line, read_head, snapshot, stream_lines
from fleetbus.guard.audit.keys import CHAIN_HMAC, head_mac
from fleetbus.guard.audit.records import GENESIS, canonical, record_hash
from fleetbus.guard.audit.retention import CHECKPOINT


def iter_records(directory: Path, tolerate_partial: bool = False) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    with snapshot(directory) as files:
        for path, handle in files:
            for number, record in iter_file(path, tolerate_partial, handle):
                yield path, number, record


@dataclass(frozen=True)
class Verification:
    ok: bool
    records: int
    problem: str | None = None
    note: str | None = None


def verify(
    directory: Path, *, key: bytes | None = None, after_crash: bool = False, reread_head: bool = True
) -> Verification:
    """Walk the whole chain; the first broken link is named by file, line and sequence number.

    With `key`, every record from the first keyed one on must carry a valid HMAC and the head a valid signature.
    Records after the one the head names were not acknowledged by the writer: a failure, naming them, unless
    `after_crash` (the server died between writing a record and its head). Safe next to a live writer: the head
    is read before and after the files (one snapshot, see `snapshot`), and records the second head covers were
    acknowledged while they were read.
    """
    head_present = (directory / HEAD).exists()
    head = read_head(directory)
    with snapshot(directory) as files:
        walk = _Walk(key, head)
        problem = walk.files(files)
    if problem is not None:
        return Verification(False, walk.count, problem)
    later = read_head(directory) if reread_head else head
    if reread_head and head is not None and walk.seq > head.seq:
        # A live writer updates the head right after each record: give it that instant before calling the
        # records it just wrote unacknowledged (a forged or crashed tail stays unacknowledged however long).
        for _ in range(HEAD_GRACE_POLLS):
            if later is not None and later.seq >= walk.seq:
                break
            time.sleep(HEAD_GRACE_STEP)
            later = read_head(directory)
    return walk.conclude(head, later, head_present, after_crash)


HEAD_GRACE_POLLS = 10
HEAD_GRACE_STEP = 0.01


class _Walk:
    """One pass over the chain, remembering what the end checks need."""

    def __init__(self, key: bytes | None, head: Head | None) -> None:
        self.key = key
        self.head_seq = head.seq if head is not None else None
        self.hash_at_head: str | None = None
        self.prev, self.seq, self.count = GENESIS, 0, 0
        self.start: tuple[int, str] | None = None
        """(seq, prev) of the first record when the log does not begin at record 1 (retention removed files)."""
        self.checkpoints: set[tuple[int, str]] = set()
        self.first_keyed: int | None = None
        self.partial_at: str | None = None

    def files(self, files: list[LogFile]) -> str | None:
        try:
            for index, (path, handle) in enumerate(files):
                for number, raw, complete in stream_lines(path, handle):
                    if not complete:
                        self.partial_at = f"{path.name} line {number}"
                        if index != len(files) - 1:
                            return (
                                f"{self.partial_at} is incomplete (the file was cut mid-record) and more files follow"
                            )
                        break
                    problem = self.record(path, number, raw)
                    if problem is not None:
                        return problem
        except ValueError as exc:
            return str(exc)
        except FileNotFoundError as exc:
            return f"audit log missing: {exc.filename}"
        return None

    def record(self, path: Path, number: int, raw: bytes) -> str | None:
        record = parse_line(path, number, raw)
        where = f"{path.name} line {number} (record {record.get('seq')})"
        if self.count == 0 and record.get("seq") != 1 and isinstance(record.get("seq"), int):
            # Retention removed the files before this one; a checkpoint further on must say the log starts here.
            self.start = (record["seq"], str(record.get("prev")))
            self.prev, self.seq = self.start[1], self.start[0] - 1
        if record.get("prev") != self.prev:
            return f"{where}: does not follow record {self.seq} — a record before it was deleted, reordered or edited"
        if record.get("seq") != self.seq + 1:
            return f"{where}: expected record {self.seq + 1} — records are missing or reordered"
        chain = record.get("chain")
        if chain == CHAIN_HMAC:
            if self.first_keyed is None:
                self.first_keyed = record["seq"]
            if self.key is not None and record.get("hash") != record_hash(record, self.key):
                return (
                    f"{where}: its HMAC does not match under the audit key — it was edited or written without the key"
                )
        elif chain is not None:
            return f"{where}: unknown chain {chain!r}"
        elif self.first_keyed is not None:
            return (
                f"{where}: not HMAC-chained though records from {self.first_keyed} on are — it was written by someone "
                "without the audit key"
            )
        elif record.get("hash") != record_hash(record):
            return f"{where}: its content does not match its hash — it was edited"
        # The hash covers the parsed record; the bytes must be exactly its canonical form too, or an edit that
        # parses the same (an escape's case, a duplicate key, spacing) would go unnoticed.
        if raw != canonical(record):
            return f"{where}: it is not byte-for-byte what was written — it was edited"
        if record.get("event") == CHECKPOINT:
            self.checkpoints.add((record.get("start_seq"), record.get("start_prev")))  # type: ignore[arg-type]
        self.prev, self.seq, self.count = record["hash"], record["seq"], self.count + 1
        if self.seq == self.head_seq:
            self.hash_at_head = self.prev
        return None

    def conclude(self, head: Head | None, later: Head | None, head_present: bool, after_crash: bool) -> Verification:
        count, seq = self.count, self.seq
        incomplete = f"; {self.partial_at} is incomplete (cut mid-record)" if self.partial_at else ""
        if self.start is not None and self.start not in self.checkpoints:
            return Verification(
                False,
                count,
                f"the log starts at record {self.start[0]}: records before it are missing, and no checkpoint record "
                "says retention removed them — they were deleted",
            )
        if head is None:
            if count == 0 and not head_present:
                cut = f"; {self.partial_at} is an incomplete first record a crash cut off" if self.partial_at else ""
                return Verification(True, 0, note=f"the log is empty{cut}")
            state = "damaged" if head_present else "missing"
            return Verification(False, count, f"{HEAD} is {state}, so truncation cannot be ruled out{incomplete}")
        if self.key is not None:
            problem = self._signature(head)
            if problem is not None:
                return Verification(False, count, problem)
        if head.seq > seq:
            return Verification(
                False,
                count,
                f"the log ends at record {seq} but {HEAD} says {head.seq} were written — records were cut off the end"
                f"{incomplete}",
            )
        if head.seq > 0 and self.hash_at_head != head.hash:
            return Verification(False, count, f"record {head.seq} is not the record {HEAD} names — it was replaced")
        notes = []
        if seq > head.seq:
            acknowledged = (
                later is not None
                and later.seq >= seq
                and (self.key is None or later.mac == head_mac(self.key, later.seq, later.hash))
            )
            span = f"record {seq}" if seq == head.seq + 1 else f"records {head.seq + 1}–{seq}"
            if not acknowledged and not after_crash:
                return Verification(
                    False,
                    count,
                    f"{span} come{'s' if seq == head.seq + 1 else ''} after record {head.seq}, the last one {HEAD} "
                    "acknowledges: appended by someone other than the writer, or written just before a crash — if "
                    "the server crashed, check with `fleetbus audit verify --after-crash`",
                )
            if not acknowledged:
                notes.append(
                    f"{span} {'was' if seq == head.seq + 1 else 'were'} written after {HEAD} was last "
                    "updated (accepted: --after-crash); they chain correctly"
                )
        if self.partial_at:
            notes.append(
                f"{self.partial_at} is an incomplete record the writer was cut off in; it was never acknowledged"
            )
        if self.key is None and (self.first_keyed is not None or head.mac is not None):
            notes.append(
                "the log is HMAC-chained; without the audit key only its order and links were checked, not who wrote it"
            )
        return Verification(True, count, note="; ".join(notes) or None)

    def _signature(self, head: Head) -> str | None:
        assert self.key is not None
        if head.mac is None:
            if head.seq == 0 and self.count == 0:
                return None
            return f"{HEAD} is not signed although an audit key is given — it was written without the key"
        if head.mac != head_mac(self.key, head.seq, head.hash):
            return (
                f"{HEAD}'s signature does not match the audit key — it was rewritten without the key (or the key "
                "is another)"
            )
        return None


def query(
    directory: Path,
    *,
    since: float | None = None,
    client: str | None = None,
    event: str | None = None,
    target: str | None = None,
    limit: int = 100,
    after_seq: int = 0,
    call_id: str | None = None,
    work_order: str | None = None,
) -> list[dict[str, Any]]:
    """Records matching every given filter, oldest first, at most `limit`; `after_seq` continues a page.
    `call_id` finds every record of one fan-out or rolling job, `work_order` every record a ticket caused."""
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
        if call_id is not None and not _tagged(record, "call_id", "call_ids", call_id):
            continue
        if work_order is not None and not _tagged(record, "work_order", "work_orders", work_order):
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


def _tagged(record: Mapping[str, Any], name: str, plural: str, value: str) -> bool:
    """The record's own call id (or work order), or one of the repeats a refusal count stands for."""
    listed = record.get(plural)
    return record.get(name) == value or (isinstance(listed, list) and value in listed)


def _epoch(stamp: str) -> float:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


@dataclass
class DayVolume:
    """What one day (UTC, by record time) added to the log."""

    day: str
    records: int = 0
    bytes: int = 0
    refusals: int = 0
    """Refused and rate-limited calls, coalesced ones counted by their `count`."""


REFUSALS = frozenset({"denied", "rate-limited", "rejected"})


def volume(directory: Path) -> list[DayVolume]:
    """Records and bytes per day, oldest day first, reading the log a line at a time."""
    days: dict[str, DayVolume] = {}
    with snapshot(directory) as files:
        for path, handle in files:
            for number, raw, complete in stream_lines(path, handle):
                if not complete:
                    break
                record = parse_line(path, number, raw)
                day = str(record.get("time", ""))[:10] or "unknown"
                entry = days.setdefault(day, DayVolume(day))
                entry.records += 1
                entry.bytes += len(raw) + 1
                if record.get("event") in REFUSALS:
                    count = record.get("count", 1)
                    entry.refusals += count if isinstance(count, int) else 1
    return [days[day] for day in sorted(days)]


def tail(directory: Path, count: int) -> list[dict[str, Any]]:
    """The last `count` records, oldest first."""
    if count <= 0:
        return []
    records: deque[dict[str, Any]] = deque(maxlen=count)
    for _, _, record in iter_records(directory, tolerate_partial=True):
        records.append(record)
    return list(records)
