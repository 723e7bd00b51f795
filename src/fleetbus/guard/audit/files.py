"""The audit log on disk: the current file, rotated files, the head file, and reading records from either end of a
file without loading all of it."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

CURRENT = "audit.log"
HEAD = "audit.head"
ROTATED = re.compile(r"^audit-(\d{12})\.log$")
HEAD_BYTES = 256
"""Fixed size of the head file: enough for the JSON of any sequence number, a SHA-256 and a signature."""


class Head(NamedTuple):
    """What the head file says: the last record acknowledged, and (with a key) the writer's signature of that."""

    seq: int
    hash: str
    mac: str | None = None


def read_head(directory: Path) -> Head | None:
    """The head file, or None when it is missing or damaged.

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
        mac = head.get("mac")
        return Head(int(head["seq"]), str(head["hash"]), str(mac) if mac is not None else None)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def last_record_and(directory: Path, seq: int | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The last record on disk and the record numbered `seq`, reading files newest first and each from its end,
    stopping early: opening (and catching up with another writer) costs the last records, not the whole log."""
    last: dict[str, Any] | None = None
    for path in reversed(log_files(directory)):
        with open(path, "rb") as handle:
            for offset, raw in lines_from_end(handle):
                if not raw.strip():
                    continue
                try:
                    record = parse_line(path, 0, raw)
                except ValueError:
                    # Name the line as a forward reader would: count the lines before it (only on this rare path).
                    handle.seek(0)
                    number = handle.read(offset).count(b"\n") + 1
                    raise ValueError(str(parse_error(path, number, raw))) from None
                if last is None:
                    last = record
                if seq is None or record.get("seq") == seq:
                    return last, (record if seq is not None else None)
                if isinstance(record.get("seq"), int) and record["seq"] < seq:
                    return last, None
    return last, None


TAIL_CHUNK = 64 * 1024


def end_of_last_line(handle: BinaryIO) -> int:
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


def lines_from_end(handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for each complete line, last first, reading backwards in chunks; the unterminated tail a cut
    leaves is skipped, as forward readers skip it."""
    end = end_of_last_line(handle)
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


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rotated_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("audit-*.log") if ROTATED.match(p.name))


def log_files(directory: Path) -> list[Path]:
    """Rotated files in chain order, then the current one."""
    current = directory / CURRENT
    return [*rotated_files(directory), *([current] if current.exists() else [])]


LogFile = tuple[Path, BinaryIO | None]
"""A log file and, for the current one, the handle it was opened with."""


@contextlib.contextmanager
def snapshot(directory: Path) -> Iterator[list[LogFile]]:
    """The log files in chain order, with audit.log already open.

    The writer rotates by renaming audit.log, and an open file keeps what it held: opening it first and then
    checking that no rotated file appeared meanwhile gives a reader one consistent chain while a server writes.
    """
    current_path = directory / CURRENT
    current: BinaryIO | None = None
    rotated: list[Path] = []
    for _ in range(100):
        rotated = rotated_files(directory)
        try:
            current = open(current_path, "rb")  # noqa: SIM115 — closed below, after the caller is done
        except FileNotFoundError:
            current = None
        if rotated_files(directory) == rotated:
            break
        if current is not None:
            current.close()
            current = None
    try:
        yield [*((path, None) for path in rotated), *([(current_path, current)] if current is not None else [])]
    finally:
        if current is not None:
            current.close()


def stream_lines(path: Path, handle: BinaryIO | None = None) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, raw line, complete) for every non-blank line, read a line at a time (a 64 MiB file is never
    held whole); the last may be incomplete — the unterminated tail a cut leaves."""
    with contextlib.ExitStack() as stack:
        source = handle if handle is not None else stack.enter_context(open(path, "rb"))
        for number, raw in enumerate(source, start=1):
            complete = raw.endswith(b"\n")
            line = raw[:-1] if complete else raw
            if line.strip():
                yield number, line, complete


def parse_line(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except ValueError:
        raise parse_error(path, number, raw) from None
    if not isinstance(record, dict):
        raise parse_error(path, number, raw)
    return record


def parse_error(path: Path, number: int, raw: bytes) -> ValueError:
    try:
        json.loads(raw)
    except ValueError as exc:
        return ValueError(f"{path.name} line {number} is not a JSON record ({exc})")
    return ValueError(f"{path.name} line {number} is not a JSON object")


def iter_file(
    path: Path, tolerate_partial: bool = False, handle: BinaryIO | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each line; raises ValueError naming the line that does not parse."""
    for number, raw, complete in stream_lines(path, handle):
        if not complete:
            if tolerate_partial:
                return
            raise ValueError(f"{path.name} line {number} is incomplete (the file was cut mid-record)")
        yield number, parse_line(path, number, raw)
