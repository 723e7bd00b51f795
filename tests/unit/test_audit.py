"""The audit log: the hash chain and its head catch edits, deletions, reordering and truncation; crashes (up to
kill -9 mid-append) leave a log that verifies; rotation keeps the chain; journald gets the native protocol."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import itertools
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbus.guard import audit
from fleetbus.guard.audit import (
    CURRENT,
    HEAD,
    AuditError,
    AuditLog,
    iter_records,
    journal_datagram,
    log_files,
    query,
    tail,
    verify,
)
from fleetbus.guard.audit import files as audit_files
from fleetbus.guard.journald import MESSAGE_ID, JournalMirror, native_fields

ROOT = Path(__file__).resolve().parents[2]


def entry(n: int, *, client: str = "stdio", event: str = "allowed", member: str = "RestartUnit") -> dict[str, Any]:
    """A record shaped like the gateway's."""
    return {
        "event": event,
        "client": client,
        "host": "local",
        "operation": {
            "kind": "dbus.call",
            "bus": "system",
            "destination": "org.freedesktop.systemd1",
            "path": "/org/freedesktop/systemd1",
            "interface": "org.freedesktop.systemd1.Manager",
            "member": member,
            "signature": "ss",
        },
        "args": [f"worker-{n}.service", "replace"],
        "decision": {"verdict": "allow", "rule": "admin:routine", "reason": "r", "risk": "routine"},
    }


def write_log(directory: Path, count: int, **options: Any) -> AuditLog:
    log = AuditLog(directory, fsync=False, **options)
    for n in range(1, count + 1):
        log.append(entry(n))
    return log


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "audit"
    write_log(directory, 10).close()
    return directory


def lines(directory: Path) -> list[bytes]:
    return (directory / CURRENT).read_bytes().splitlines(keepends=True)


def rewrite(directory: Path, new_lines: list[bytes]) -> None:
    (directory / CURRENT).write_bytes(b"".join(new_lines))


# ---- an intact log --------------------------------------------------------------------------------------------


def test_appended_records_verify(log_dir: Path) -> None:
    result = verify(log_dir)
    assert (result.ok, result.records, result.problem, result.note) == (True, 10, None, None)
    records = [record for _, _, record in iter_records(log_dir)]
    assert [r["seq"] for r in records] == list(range(1, 11))
    assert records[0]["prev"] == audit.GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(records))
    head = json.loads((log_dir / HEAD).read_text())
    assert head == {"seq": 10, "hash": records[-1]["hash"]}


def test_files_are_private(log_dir: Path) -> None:
    assert (log_dir / CURRENT).stat().st_mode & 0o777 == 0o600
    assert (log_dir / HEAD).stat().st_mode & 0o777 == 0o600
    assert log_dir.stat().st_mode & 0o077 == 0


def test_append_returns_the_record_with_time_and_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, fsync=True)
    record = log.append(entry(1))
    log.sync()
    assert (record["seq"], record["prev"]) == (1, audit.GENESIS)
    assert record["hash"] == audit.record_hash(record)
    assert record["time"].endswith("Z")
    assert log.seq == 1
    log.close()


@pytest.mark.parametrize("field", ["seq", "time", "prev", "hash"])
def test_callers_cannot_set_the_chain_fields(tmp_path: Path, field: str) -> None:
    log = AuditLog(tmp_path, fsync=False)
    with pytest.raises(AuditError, match=rf"audit fields \['{field}'\] are set by the audit log itself"):
        log.append({**entry(1), field: 99})
    assert verify(tmp_path).records == 0
    log.close()


def test_an_empty_directory_verifies_as_empty(tmp_path: Path) -> None:
    result = verify(tmp_path)
    assert (result.ok, result.records, result.note) == (True, 0, "the log is empty")


# ---- tampering ------------------------------------------------------------------------------------------------


def _flip_client(line: bytes) -> bytes:
    return line.replace(b'"client":"stdio"', b'"client":"stdiO"')


def _uppercase_escape(line: bytes) -> bytes:
    # Changes one byte and parses to the same record: only the byte-for-byte check sees it.
    assert b"\\u001b" in line
    return line.replace(b"\\u001b", b"\\u001B", 1)


def _break_json(line: bytes) -> bytes:
    return b"x" + line[1:]


def _edit_hash(line: bytes) -> bytes:
    record = json.loads(line)
    digit = record["hash"][0]
    return line.replace(f'"hash":"{digit}'.encode(), f'"hash":"{"1" if digit == "0" else "0"}'.encode())


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (_flip_client, r"^audit\.log line 5 \(record 5\): its content does not match its hash — it was edited$"),
        (_uppercase_escape, r"^audit\.log line 5 \(record 5\): it is not byte-for-byte what was written"),
        (_break_json, r"^audit\.log line 5 is not a JSON record"),
        (_edit_hash, r"^audit\.log line 5 \(record 5\): its content does not match its hash"),
    ],
    ids=["value", "escape-case", "syntax", "hash"],
)
def test_editing_one_byte_in_the_middle_is_named(tmp_path: Path, edit: Any, problem: str) -> None:
    log = AuditLog(tmp_path, fsync=False)
    for n in range(1, 11):
        log.append({**entry(n), "error": "\x1b[31mred\x1b[0m"})
    log.close()
    original = lines(tmp_path)
    edited = edit(original[4])
    assert len(edited) == len(original[4])
    assert sum(a != b for a, b in zip(edited, original[4], strict=True)) == 1, "exactly one byte changes"
    rewrite(tmp_path, [*original[:4], edited, *original[5:]])
    result = verify(tmp_path)
    assert not result.ok
    assert result.records == 4
    assert result.problem is not None
    assert __import__("re").search(problem, result.problem), result.problem


def test_a_reformatted_line_that_parses_the_same_is_caught(log_dir: Path) -> None:
    original = lines(log_dir)
    record = json.loads(original[2])
    respaced = json.dumps(record, sort_keys=True, ensure_ascii=False).encode() + b"\n"
    rewrite(log_dir, [*original[:2], respaced, *original[3:]])
    result = verify(log_dir)
    assert not result.ok
    assert result.problem == "audit.log line 3 (record 3): it is not byte-for-byte what was written — it was edited"


def test_a_deleted_line_is_named(log_dir: Path) -> None:
    original = lines(log_dir)
    rewrite(log_dir, [*original[:3], *original[4:]])
    result = verify(log_dir)
    assert not result.ok
    assert result.records == 3
    assert result.problem == (
        "audit.log line 4 (record 5): does not follow record 3 — a record before it was deleted, reordered or edited"
    )


def test_swapped_lines_are_named(log_dir: Path) -> None:
    original = lines(log_dir)
    rewrite(log_dir, [*original[:5], original[6], original[5], *original[7:]])
    result = verify(log_dir)
    assert not result.ok
    assert result.problem is not None
    assert result.problem.startswith("audit.log line 6 (record 7): does not follow record 5")


def test_removing_the_last_record_is_caught_by_the_head(log_dir: Path) -> None:
    rewrite(log_dir, lines(log_dir)[:-1])
    result = verify(log_dir)
    assert not result.ok
    assert result.records == 9
    assert result.problem == (
        "the log ends at record 9 but audit.head says 10 were written — records were cut off the end"
    )


def test_cutting_the_file_mid_record_is_named_incomplete(log_dir: Path) -> None:
    data = (log_dir / CURRENT).read_bytes()
    (log_dir / CURRENT).write_bytes(data[: len(data) - 40])
    result = verify(log_dir)
    assert not result.ok
    assert result.records == 9
    assert result.problem is not None
    assert "records were cut off the end" in result.problem
    assert "audit.log line 10 is incomplete (cut mid-record)" in result.problem


def test_truncating_everything_is_caught_by_the_head(log_dir: Path) -> None:
    (log_dir / CURRENT).write_bytes(b"")
    result = verify(log_dir)
    assert (result.ok, result.records) == (False, 0)
    assert result.problem == (
        "the log ends at record 0 but audit.head says 10 were written — records were cut off the end"
    )


def test_a_missing_or_damaged_head_fails(log_dir: Path) -> None:
    (log_dir / HEAD).write_text("{")
    damaged = verify(log_dir)
    assert (damaged.ok, damaged.problem) == (False, "audit.head is damaged, so truncation cannot be ruled out")
    (log_dir / HEAD).unlink()
    missing = verify(log_dir)
    assert (missing.ok, missing.problem) == (False, "audit.head is missing, so truncation cannot be ruled out")


def test_a_replaced_last_record_is_caught_by_the_head(log_dir: Path) -> None:
    original = lines(log_dir)
    last = json.loads(original[-1])
    last["event"] = "denied"
    last["hash"] = audit.record_hash(last)
    rewrite(log_dir, [*original[:-1], audit.canonical(last) + b"\n"])
    result = verify(log_dir)
    assert not result.ok
    assert result.problem == "record 10 is not the record audit.head names — it was replaced"


def test_a_head_pointing_at_a_replaced_earlier_record_fails(log_dir: Path) -> None:
    # A head one behind must still name the record the log has at that place.
    (log_dir / HEAD).write_text(json.dumps({"seq": 9, "hash": "f" * 64}))
    result = verify(log_dir)
    assert not result.ok
    assert result.problem == "record 9 is not the record audit.head names — it was replaced"


# ---- crashes --------------------------------------------------------------------------------------------------


def test_a_record_after_the_head_fails_unless_the_server_crashed(tmp_path: Path) -> None:
    # Records past the head were never acknowledged: a crash between record and head, or someone appending.
    log = write_log(tmp_path, 9)
    previous_head = (tmp_path / HEAD).read_bytes()
    log.append(entry(10))
    log.close()
    (tmp_path / HEAD).write_bytes(previous_head)
    result = verify(tmp_path)
    assert (result.ok, result.records) == (False, 10)
    assert result.problem is not None
    assert result.problem.startswith("record 10 comes after record 9, the last one audit.head acknowledges")
    assert "--after-crash" in result.problem
    crashed = verify(tmp_path, after_crash=True)
    assert (crashed.ok, crashed.records) == (True, 10)
    assert crashed.note == (
        "record 10 was written after audit.head was last updated (accepted: --after-crash); they chain correctly"
    )


def test_several_records_after_the_head_are_named(tmp_path: Path) -> None:
    log = write_log(tmp_path, 5)
    old_head = (tmp_path / HEAD).read_bytes()
    for n in range(6, 9):
        log.append(entry(n))
    log.close()
    (tmp_path / HEAD).write_bytes(old_head)
    result = verify(tmp_path)
    assert not result.ok
    assert result.problem is not None
    assert result.problem.startswith("records 6–8 come after record 5, the last one audit.head acknowledges")
    crashed = verify(tmp_path, after_crash=True)
    assert crashed.ok
    assert crashed.note is not None
    assert crashed.note.startswith("records 6–8 were written after audit.head was last updated")


def test_a_half_written_last_record_the_head_does_not_cover_verifies_with_a_note(tmp_path: Path) -> None:
    write_log(tmp_path, 5).close()
    with open(tmp_path / CURRENT, "ab") as handle:
        handle.write(b'{"seq":6,"client":"std')
    result = verify(tmp_path)
    assert (result.ok, result.records) == (True, 5)
    assert result.note == (
        "audit.log line 6 is an incomplete record the writer was cut off in; it was never acknowledged"
    )


def test_reopening_resumes_the_chain(tmp_path: Path) -> None:
    write_log(tmp_path, 3).close()
    reopened = AuditLog(tmp_path, fsync=False)
    assert reopened.seq == 3
    record = reopened.append(entry(4))
    reopened.close()
    assert record["seq"] == 4
    assert verify(tmp_path) == audit.Verification(True, 4)
    assert [r["event"] for r in tail(tmp_path, 10)] == ["allowed"] * 4, "a clean reopen adds no record"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "hash", "h", "hasi", "hasg", "z", "é", "", "seq", "Hash"]), JSON_VALUES))
def test_sealing_a_record_gives_its_hash_and_exactly_its_canonical_line(record: dict[str, Any]) -> None:
    record.pop("hash", None)
    digest, line = audit.seal(record)
    assert digest == audit.record_hash(record)
    assert line == audit.canonical({**record, "hash": digest})


def test_reopening_reads_only_the_end_of_a_long_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Start-up must not grow with the log's history: with 16,840 records, parsing the whole file cost 0.9 s and
    # 27 MiB at every start. A damaged early record is verify's to name; opening continues from the end.
    write_log(tmp_path, 300).close()
    damaged = lines(tmp_path)
    damaged[1] = b"garbage\n"
    rewrite(tmp_path, damaged)
    monkeypatch.setattr(audit_files, "TAIL_CHUNK", 4096)  # several chunks from the end, none reaching line 2
    reopened = AuditLog(tmp_path, fsync=False)
    assert reopened.seq == 300
    reopened.append(entry(301))
    reopened.close()
    last_two = [json.loads(line) for line in lines(tmp_path)[-2:]]
    assert [(r["seq"], r["event"]) for r in last_two] == [(300, "allowed"), (301, "allowed")], "no recovered record"
    result = verify(tmp_path)
    assert result.problem is not None
    assert result.problem.startswith("audit.log line 2 is not a JSON record")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")),
    st.integers(min_value=1, max_value=64),
)
def test_lines_read_backwards_are_the_lines_read_forwards(body: list[bytes], tail: bytes, chunk: int) -> None:
    data = b"".join(line + b"\n" for line in body) + tail  # `tail`: an unterminated record a crash cut
    forward = [(offset, line) for offset, line in _forward_lines(data)]
    original, audit_files.TAIL_CHUNK = audit_files.TAIL_CHUNK, chunk
    try:
        backward = list(audit_files.lines_from_end(io.BytesIO(data)))
        end = audit_files.end_of_last_line(io.BytesIO(data))
    finally:
        audit_files.TAIL_CHUNK = original
    assert backward == forward[::-1]
    assert end == len(data) - len(tail)


def _forward_lines(data: bytes) -> list[tuple[int, bytes]]:
    found, offset = [], 0
    *complete, _ = data.split(b"\n")
    for line in complete:
        found.append((offset, line))
        offset += len(line) + 1
    return found


def test_reopening_after_a_crash_between_record_and_head(tmp_path: Path) -> None:
    log = write_log(tmp_path, 2)
    old_head = (tmp_path / HEAD).read_bytes()
    log.append(entry(3))
    log.close()
    (tmp_path / HEAD).write_bytes(old_head)
    reopened = AuditLog(tmp_path, fsync=False)
    assert reopened.seq == 3
    reopened.append(entry(4))
    reopened.close()
    assert verify(tmp_path) == audit.Verification(True, 4)


def test_reopening_after_a_cut_record_discards_it_and_says_so(tmp_path: Path) -> None:
    write_log(tmp_path, 4).close()
    with open(tmp_path / CURRENT, "ab") as handle:
        handle.write(b'{"seq":5,"cli')
    reopened = AuditLog(tmp_path, fsync=False)
    assert reopened.seq == 5, "the recovery itself is recorded"
    reopened.append(entry(6))
    reopened.close()
    result = verify(tmp_path)
    assert (result.ok, result.records, result.note) == (True, 6, None)
    recovered = query(tmp_path, event="recovered")
    assert len(recovered) == 1
    assert recovered[0]["seq"] == 5
    assert recovered[0]["note"].startswith("discarded 13 bytes (sha256 ")
    assert "of an incomplete record at the end of audit.log" in recovered[0]["note"]


def test_reopening_after_records_were_cut_off_keeps_the_gap_visible(log_dir: Path) -> None:
    rewrite(log_dir, lines(log_dir)[:-3])
    reopened = AuditLog(log_dir, fsync=False)
    assert reopened.seq == 11, "the chain continues from the head (10), with a recovered record"
    reopened.append(entry(12))
    reopened.close()
    result = verify(log_dir)
    assert not result.ok
    assert result.problem is not None
    assert result.problem.startswith("audit.log line 8 (record 11): does not follow record 7")
    note = query(log_dir, event="recovered")[0]["note"]
    assert "audit.head names record 10 but the log holds record 7 that matches it" in note


def test_reopening_without_a_head_records_that(log_dir: Path) -> None:
    (log_dir / HEAD).unlink()
    reopened = AuditLog(log_dir, fsync=False)
    reopened.open()
    reopened.close()
    recovered = query(log_dir, event="recovered")
    assert [r["note"] for r in recovered] == ["audit.head was missing or damaged; continuing from record 10 on disk"]
    assert verify(log_dir) == audit.Verification(True, 11)


def test_reopening_a_log_whose_end_does_not_parse_and_has_no_head_refuses(log_dir: Path) -> None:
    original = lines(log_dir)
    rewrite(log_dir, [*original[:-1], b"garbage\n"])
    (log_dir / HEAD).unlink()
    with pytest.raises(AuditError, match=r"cannot continue the audit log in .*audit\.log line 10 is not a JSON"):
        AuditLog(log_dir).open()


def test_a_failed_write_leaves_no_half_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = write_log(tmp_path, 2)
    real_write = os.write
    calls = {"n": 0}

    def short_then_fail(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[:10]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.write", short_then_fail)
    with pytest.raises(OSError, match="No space left"):
        log.append(entry(3))
    monkeypatch.setattr("os.write", real_write)
    assert verify(tmp_path) == audit.Verification(True, 2)
    log.append(entry(3))
    log.close()
    assert verify(tmp_path) == audit.Verification(True, 3)


def test_a_failed_fsync_does_not_make_the_next_record_repeat_a_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(tmp_path, fsync=True)
    log.append(entry(1))

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("os.fsync", failing)
    with pytest.raises(OSError, match="Input/output error"):
        log.append(entry(2), durable=True)
    monkeypatch.undo()
    assert log.append(entry(3))["seq"] == 3
    log.close()
    assert verify(tmp_path) == audit.Verification(True, 3)


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = write_log(tmp_path, 1)
    real_write = os.write

    def dribble(fd: int, data: bytes | memoryview) -> int:
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr("os.write", dribble)
    log.append(entry(2))
    monkeypatch.setattr("os.write", real_write)
    log.close()
    assert verify(tmp_path) == audit.Verification(True, 2)


WRITER = textwrap.dedent(
    """
    import itertools, sys
    from pathlib import Path
    from fleetbus.guard.audit import AuditLog

    log = AuditLog(Path(sys.argv[1]), max_bytes=int(sys.argv[2]))
    log.append({"event": "allowed", "client": "stdio", "n": 0})
    print("ready", flush=True)
    for n in itertools.count(1):
        # Varying sizes put record boundaries anywhere in a page.
        log.append({"event": "allowed", "client": "stdio", "n": n, "args": ["x" * (n * 37 % 3000)]})
    """
)


@pytest.mark.parametrize("max_bytes", [64 * 1024 * 1024, 16 * 1024], ids=["one-file", "rotating"])
def test_kill_9_while_appending_leaves_a_log_that_verifies(tmp_path: Path, max_bytes: int) -> None:
    directory = tmp_path / "audit"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory), str(max_bytes)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(0.3)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    result = verify(directory, after_crash=True)  # the kill may land between a record and its head
    assert result.ok, result.problem
    assert result.records > 1
    if max_bytes < 1024 * 1024:
        assert len(log_files(directory)) > 1, "the writer rotated while it was killed"
    # The server comes back and carries on the same chain.
    reopened = AuditLog(directory, max_bytes=max_bytes, fsync=False)
    record = reopened.append(entry(0))
    reopened.close()
    assert record["seq"] > result.records
    after = verify(directory)
    assert (after.ok, after.records, after.note) == (True, record["seq"], None)


def test_verifying_a_log_while_it_is_written_never_raises_a_false_alarm(tmp_path: Path) -> None:
    # `fleetbus audit verify` may run next to a live server that appends and rotates meanwhile.
    directory = tmp_path / "audit"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory), str(16 * 1024)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    results = []
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            results.append(verify(directory))
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    assert len(results) > 3
    assert [r.problem for r in results if not r.ok] == []
    assert results[-1].records > results[0].records


# ---- rotation -------------------------------------------------------------------------------------------------


def test_rotation_keeps_the_chain_across_files(tmp_path: Path) -> None:
    write_log(tmp_path, 30, max_bytes=2048).close()
    files = log_files(tmp_path)
    assert len(files) > 3
    assert files[-1].name == CURRENT
    assert all(f.stat().st_size <= 2048 for f in files)
    for path in files[:-1]:
        first = next(audit.iter_file(path))[1]
        assert path.name == f"audit-{first['seq']:012d}.log"
    assert verify(tmp_path) == audit.Verification(True, 30)
    assert [r["seq"] for r in tail(tmp_path, 3)] == [28, 29, 30]


@pytest.mark.parametrize("which", [0, 1], ids=["first-rotated", "middle-rotated"])
def test_a_deleted_rotated_file_is_detected(tmp_path: Path, which: int) -> None:
    write_log(tmp_path, 30, max_bytes=2048).close()
    victim, following = log_files(tmp_path)[which : which + 2]
    first_missing = next(audit.iter_file(victim))[1]["seq"]
    first_left = next(audit.iter_file(following))[1]["seq"]
    victim.unlink()
    result = verify(tmp_path)
    assert not result.ok
    assert result.problem is not None
    if which == 0:  # nothing before it to break with: only a checkpoint could say the log may start there
        assert result.problem.startswith(
            f"the log starts at record {first_left}: records before it are missing, and no checkpoint record"
        )
    else:
        assert f"does not follow record {first_missing - 1}" in result.problem


def test_a_record_larger_than_max_bytes_still_gets_written(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, max_bytes=100, fsync=False)
    for n in range(3):
        log.append(entry(n))
    log.close()
    assert len(log_files(tmp_path)) == 3
    assert verify(tmp_path) == audit.Verification(True, 3)


def test_reopening_after_a_crash_right_after_rotation_never_overwrites_a_file(tmp_path: Path) -> None:
    write_log(tmp_path, 3, max_bytes=100).close()
    # The crash: audit.log was renamed away and the next record never reached the new (empty) file.
    (tmp_path / CURRENT).rename(tmp_path / "audit-000000000003.log")
    (tmp_path / CURRENT).write_bytes(b"")
    reopened = AuditLog(tmp_path, max_bytes=100, fsync=False)
    reopened.append(entry(4))
    reopened.close()
    assert verify(tmp_path) == audit.Verification(True, 4)


# ---- reading --------------------------------------------------------------------------------------------------


@pytest.fixture
def mixed_log(tmp_path: Path) -> Path:
    log = AuditLog(tmp_path, fsync=False, max_bytes=4096)
    for n in range(1, 21):
        log.append(
            entry(
                n,
                client="alice" if n % 2 else "bob",
                event="denied" if n % 5 == 0 else "allowed",
                member="StopUnit" if n % 3 == 0 else "RestartUnit",
            )
        )
    log.append({"event": "recovered", "client": "fleetbus", "note": "no operation"})
    log.close()
    return tmp_path


def test_query_filters(mixed_log: Path) -> None:
    def seqs(**filters: Any) -> list[int]:
        return [int(r["seq"]) for r in query(mixed_log, **filters)]

    assert seqs(client="bob") == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert seqs(event="denied") == [5, 10, 15, 20]
    assert seqs(target="StopUnit") == [3, 6, 9, 12, 15, 18]
    assert seqs(target="org.freedesktop.systemd1.Manager.Stop*") == [3, 6, 9, 12, 15, 18]
    assert seqs(target="*.Manager.*") == list(range(1, 21))
    assert seqs(client="bob", event="denied") == [10, 20]
    assert seqs(client="alice", target="StopUnit", event="allowed") == [3, 9]
    assert seqs(after_seq=17) == [18, 19, 20, 21]
    assert seqs(limit=3) == [1, 2, 3]
    assert seqs(limit=3, after_seq=3) == [4, 5, 6]
    assert seqs(limit=0) == []
    assert seqs(client="nobody") == []
    assert seqs(since=time.time() + 3600) == []
    assert len(seqs(since=time.time() - 3600)) == 21


def test_tail(mixed_log: Path) -> None:
    assert [r["seq"] for r in tail(mixed_log, 3)] == [19, 20, 21]
    assert len(tail(mixed_log, 100)) == 21
    assert tail(mixed_log, 0) == []


def test_readers_tolerate_a_half_written_record(mixed_log: Path) -> None:
    with open(mixed_log / CURRENT, "ab") as handle:
        handle.write(b'{"seq":22,')
    assert tail(mixed_log, 1)[0]["seq"] == 21
    assert query(mixed_log, after_seq=20)[0]["seq"] == 21


# ---- journald -------------------------------------------------------------------------------------------------


def parse_native(datagram: bytes) -> dict[str, bytes]:
    """journald's native protocol: `KEY=value\\n`, or `KEY\\n` + little-endian u64 length + bytes + `\\n`."""
    fields: dict[str, bytes] = {}
    index = 0
    while index < len(datagram):
        newline = datagram.index(b"\n", index)
        equals = datagram.find(b"=", index, newline)
        if equals != -1:
            key, value = datagram[index:equals], datagram[equals + 1 : newline]
            index = newline + 1
        else:
            key = datagram[index:newline]
            (size,) = struct.unpack("<Q", datagram[newline + 1 : newline + 9])
            value = datagram[newline + 9 : newline + 9 + size]
            assert datagram[newline + 9 + size : newline + 10 + size] == b"\n", "binary field must end in a newline"
            index = newline + 10 + size
        name = key.decode()
        assert name.isupper() or all(c.isupper() or c.isdigit() or c == "_" for c in name), name
        assert name not in fields, f"{name} appears twice"
        fields[name] = value
    return fields


def test_journal_datagram_uses_native_framing() -> None:
    record = {**entry(7), "seq": 7, "event": "denied", "approval": "3fa9c2d1", "hash": "a" * 64, "prev": "b" * 64}
    fields = parse_native(journal_datagram(record))
    assert fields["MESSAGE_ID"] == MESSAGE_ID.encode()
    assert fields["MESSAGE"] == b"fleetbus denied: org.freedesktop.systemd1.Manager.RestartUnit on local for stdio"
    assert fields["PRIORITY"] == b"5"
    assert fields["SYSLOG_IDENTIFIER"] == b"fleetbus"
    assert fields["FLEETBUS_SEQ"] == b"7"
    assert fields["FLEETBUS_RULE"] == b"admin:routine"
    assert fields["FLEETBUS_APPROVAL"] == b"3fa9c2d1"
    assert json.loads(fields["FLEETBUS_RECORD"]) == record


def test_journal_datagram_frames_multi_line_values_by_length() -> None:
    record = {**entry(1), "seq": 1, "client": "line one\nline two=3", "event": "allowed"}
    datagram = journal_datagram(record)
    assert b"FLEETBUS_CLIENT\n" + struct.pack("<Q", len(b"line one\nline two=3")) in datagram
    fields = parse_native(datagram)
    assert fields["FLEETBUS_CLIENT"] == b"line one\nline two=3"
    assert fields["MESSAGE"].endswith(b"for line one\nline two=3")
    assert fields["PRIORITY"] == b"6"


TEXT = st.text(alphabet=st.sampled_from("ab =\né\t."), max_size=8)


@given(TEXT, TEXT, TEXT, TEXT, st.none() | TEXT)
def test_journal_datagram_is_native_fields_of_its_fields(
    client: str, host: str, event: str, rule: str, approval: str | None
) -> None:
    # A read's copy is framed in one go; it must be byte for byte what the general encoder makes of its fields.
    record = {**entry(3), "seq": 3, "client": client, "host": host, "event": event, "approval": approval}
    record["decision"] = {**record["decision"], "rule": rule}
    line = audit.canonical(record)
    target = "org.freedesktop.systemd1.Manager.RestartUnit"
    expected = {
        "MESSAGE": f"fleetbus {event}: {target} on {host} for {client}",
        "MESSAGE_ID": MESSAGE_ID,
        "PRIORITY": "5" if event in ("denied", "failed", "rate-limited", "rejected") else "6",
        "SYSLOG_IDENTIFIER": "fleetbus",
        "FLEETBUS_SEQ": "3",
        "FLEETBUS_EVENT": event,
        "FLEETBUS_CLIENT": client,
        "FLEETBUS_HOST": host,
        "FLEETBUS_TARGET": target,
        "FLEETBUS_VERDICT": record["decision"]["verdict"],
        "FLEETBUS_RULE": rule,
        "FLEETBUS_APPROVAL": approval or "",
        "FLEETBUS_HASH": "None",
        "FLEETBUS_PREV": "None",
        "FLEETBUS_RECORD": line.decode(),
    }
    assert journal_datagram(record) == native_fields(expected)


def test_records_reach_a_journal_socket(tmp_path: Path) -> None:
    address = tmp_path / "j.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(address))
    receiver.settimeout(5)
    try:
        log = AuditLog(tmp_path / "audit", journal=address, fsync=False)
        first = log.append(entry(1))
        second = log.append({**entry(2), "client": "two\nlines"})
        log.close()
        received = [parse_native(receiver.recv(1 << 20)) for _ in range(2)]
    finally:
        receiver.close()
    assert [f["FLEETBUS_SEQ"] for f in received] == [b"1", b"2"]
    assert received[0]["FLEETBUS_HASH"] == first["hash"].encode()
    assert received[1]["FLEETBUS_CLIENT"] == b"two\nlines"
    assert json.loads(received[1]["FLEETBUS_RECORD"]) == second


def receive_all(receiver: socket.socket, until_quiet: float = 1.5) -> list[dict[str, bytes]]:
    """Every datagram that arrives until none has for `until_quiet` seconds, parsed."""
    receiver.settimeout(until_quiet)
    received = []
    with contextlib.suppress(TimeoutError):
        while True:
            received.append(parse_native(receiver.recv(1 << 20)))
    return received


def test_a_journald_that_does_not_read_never_holds_up_an_append(tmp_path: Path) -> None:
    # journald's socket queue is short (net.unix.max_dgram_qlen): when journald falls behind, a blocking sendto
    # waits. Copies journald has no room for wait in the mirror's backlog; appends (and the calls they record)
    # go on, and the copies follow, in order, once journald reads again.
    address = tmp_path / "j.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(address))
    log = AuditLog(tmp_path / "audit", journal=address, fsync=False)
    appended = threading.Event()

    def append_many() -> None:
        for n in range(1, 201):
            log.append(entry(n))
        appended.set()

    threading.Thread(target=append_many, daemon=True).start()
    try:
        assert appended.wait(30), "appends waited for a journald that does not read"
        reading = concurrent.futures.ThreadPoolExecutor(1).submit(receive_all, receiver)
        log.close()  # hands journald the backlog
        received = reading.result()
    finally:
        receiver.close()
    assert [f["FLEETBUS_SEQ"] for f in received] == [str(n).encode() for n in range(1, 201)]


def test_copies_beyond_the_backlog_are_counted_and_journald_is_told(tmp_path: Path) -> None:
    address = tmp_path / "j.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(address))
    mirror = JournalMirror(address, backlog=3)
    for n in range(1, 101):
        mirror.send({**entry(n), "seq": n}, b"{}")
    dropped = mirror.dropped
    assert dropped > 0
    try:
        reading = concurrent.futures.ThreadPoolExecutor(1).submit(receive_all, receiver)
        mirror.close()
        received = reading.result()
    finally:
        receiver.close()
    notes = [e for e in received if e.get("FLEETBUS_EVENT") == b"journal-copies-dropped"]
    assert [note["FLEETBUS_DROPPED"] for note in notes] == [str(dropped).encode()]
    assert b"the audit log file holds every record" in notes[0]["MESSAGE"]
    seqs = [int(e["FLEETBUS_SEQ"]) for e in received if "FLEETBUS_SEQ" in e]
    assert len(seqs) + dropped == 100
    assert seqs == sorted(seqs), "copies keep their order"
    assert seqs[-3:] == [98, 99, 100], "the newest copies are kept, the oldest waiting ones dropped"


async def test_under_an_event_loop_waiting_copies_go_as_soon_as_journald_has_room(tmp_path: Path) -> None:
    address = tmp_path / "j.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(address))
    mirror = JournalMirror(address)
    for n in range(1, 51):
        mirror.send({**entry(n), "seq": n}, b"{}")
    assert mirror.waiting > 0, "journald's queue is full: the rest wait"
    reading = concurrent.futures.ThreadPoolExecutor(1).submit(receive_all, receiver)
    for _ in range(1000):  # no further record, no close: the loop sends them when the socket is writable
        if mirror.waiting == 0:
            break
        await asyncio.sleep(0.01)
    assert mirror.waiting == 0
    received = reading.result()
    mirror.close()
    receiver.close()
    assert [int(e["FLEETBUS_SEQ"]) for e in received] == list(range(1, 51))


async def test_under_an_event_loop_reads_go_in_batches_and_a_change_goes_at_once(tmp_path: Path) -> None:
    address = tmp_path / "j.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(address))
    receiver.setblocking(False)
    log = AuditLog(tmp_path / "audit", journal=address, fsync=False)
    try:
        log.append(entry(1))
        log.append(entry(2))
        await asyncio.sleep(0.5)  # the batch went, without a further record
        assert [parse_native(receiver.recv(1 << 20))["FLEETBUS_SEQ"] for _ in range(2)] == [b"1", b"2"]
        log.append(entry(3))
        log.append(entry(4), durable=True)  # a change: journald has its copy (and those before it) at once
        assert [parse_native(receiver.recv(1 << 20))["FLEETBUS_SEQ"] for _ in range(2)] == [b"3", b"4"]
    finally:
        log.close()
        receiver.close()


async def test_a_changes_copy_reaches_a_reading_journald_before_the_change_runs_after_many_reads(
    tmp_path: Path,
) -> None:
    """Reads' copies wait for their batch; a batch that outgrew journald's 10-datagram queue would make the change's
    copy behind it wait too. A batch goes once it holds READ_BATCH_COPIES, so with journald reading (as it does),
    nothing is left waiting when a change's copy has been sent."""
    address = tmp_path / "j.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(address))
    receiver.setblocking(False)
    received: list[dict[str, bytes]] = []

    def journald_reads() -> None:  # what journald has done by the next call: read what was sent
        with contextlib.suppress(BlockingIOError):
            while True:
                received.append(parse_native(receiver.recv(1 << 20)))

    log = AuditLog(tmp_path / "audit", journal=address, fsync=False)
    try:
        for n in range(1, 25):  # a 0.1 s batch's worth of reads, quicker than its timer
            log.append(entry(n, event="succeeded"))
            journald_reads()
        log.append(entry(25), durable=True)
        assert log._mirror is not None
        assert log._mirror.waiting == 0, "the change's copy (or reads before it) still waits for journald"
        journald_reads()
    finally:
        log.close()
        receiver.close()
    assert [int(e["FLEETBUS_SEQ"]) for e in received] == list(range(1, 26))


async def test_under_an_event_loop_a_changes_copy_never_waits_for_a_stalled_journald(tmp_path: Path) -> None:
    # Without a loop a change's copy may wait CHANGE_WAIT for room; under one, a stalled journald would stall
    # every client, so the copy waits in the backlog instead.
    address = tmp_path / "j.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(address))
    log = AuditLog(tmp_path / "audit", journal=address, fsync=False)
    try:
        slowest = 0.0
        for n in range(1, 101):  # journald's queue fills after a handful
            started = time.perf_counter()
            log.append(entry(n), durable=True)
            slowest = max(slowest, time.perf_counter() - started)
        assert slowest < 0.1, f"a change's append waited {slowest * 1000:.0f} ms for journald"
        assert log._mirror is not None
        assert log._mirror.waiting > 0
    finally:
        reading = concurrent.futures.ThreadPoolExecutor(1).submit(receive_all, receiver)
        log.close()
        received = reading.result()
        receiver.close()
    assert [int(e["FLEETBUS_SEQ"]) for e in received] == list(range(1, 101))


def test_the_backlog_is_bounded_in_bytes_too_and_a_gap_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    address = tmp_path / "j.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(address))
    mirror = JournalMirror(address, backlog_bytes=64 * 1024)
    big = json.dumps({"args": ["x" * 4000]}).encode()  # the record travels whole, in FLEETBUS_RECORD
    with caplog.at_level("WARNING", logger="fleetbus.guard.journald"):
        for n in range(1, 201):
            mirror.send({**entry(n), "seq": n}, big)
            assert mirror._pending_bytes <= 64 * 1024
    try:
        assert mirror.dropped > 0
        assert mirror.waiting <= 64 * 1024 // 4000
        gap = [r.getMessage() for r in caplog.records if "is not taking fleetbus's audit copies" in r.getMessage()]
        assert len(gap) == 1, "one line per gap, not one per copy"
        reading = concurrent.futures.ThreadPoolExecutor(1).submit(receive_all, receiver)
        mirror.close()
        received = reading.result()
    finally:
        receiver.close()
    assert any(e.get("FLEETBUS_DROPPED") == str(mirror.dropped).encode() for e in received)


def test_an_absent_or_dead_journal_never_stops_the_file_log(tmp_path: Path) -> None:
    address = tmp_path / "dead.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(address))
    dead.close()  # the path stays, nobody listens: sendto fails with ECONNREFUSED
    log = AuditLog(tmp_path / "audit", journal=address, fsync=False)
    log.append(entry(1))
    log.append(entry(2))
    log.close()
    absent = AuditLog(tmp_path / "audit", journal=tmp_path / "absent.sock", fsync=False)
    absent.append(entry(3))
    absent.close()
    assert verify(tmp_path / "audit") == audit.Verification(True, 3)


def test_durable_records_are_synced_at_once_and_others_within_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr("os.fsync", counting)
    log = AuditLog(tmp_path, fsync=True, sync_within=3600)
    synced.clear()
    log.append(entry(1))
    log.append(entry(2))
    assert synced == []  # reads: group commit, not a disk flush each
    log.append(entry(3), durable=True)
    assert len(synced) == 2  # the log, then the head
    log.append(entry(4))
    log.close()
    assert len(synced) == 4  # close makes the rest durable
    assert verify(tmp_path) == audit.Verification(True, 4)
