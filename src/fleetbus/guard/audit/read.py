"""Reading the audit log: records in chain order, queries, the tail, and verifying the whole chain and its head."""

from __future__ import annotations

import fnmatch
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fleetbus.guard.audit.files import HEAD, LogFile, iter_file, parse_line, read_head, snapshot, split_lines
from fleetbus.guard.audit.records import GENESIS, canonical, record_hash


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


def verify(directory: Path) -> Verification:
    """Walk the whole chain; the first broken link is named by file, line and sequence number.

    Safe next to a live writer: the head is read first and the files as one snapshot (see `snapshot`), so
    records appended meanwhile only ever come after what the head covers.
    """
    # The head first: records appended while the files are read then come after it, which is allowed.
    head_present = (directory / HEAD).exists()
    head = read_head(directory)
    with snapshot(directory) as files:
        return _verify_files(files, head, head_present)


def _verify_files(files: list[LogFile], head: tuple[int, str] | None, head_present: bool) -> Verification:
    prev, seq, count = GENESIS, 0, 0
    hash_at_head: str | None = None
    partial_at: str | None = None
    try:
        for index, (path, handle) in enumerate(files):
            complete, partial = split_lines(path, handle)
            for number, raw in complete:
                record = parse_line(path, number, raw)
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
