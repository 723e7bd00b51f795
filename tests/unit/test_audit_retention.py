"""Retention: rotated files beyond the configured age or total size are removed after a checkpoint record that
carries the chain forward, so `verify` still proves what remains — and still catches a file deleted by hand.
Rotation reads only the first line of the file it renames; `audit stats` reports the volume per day."""

from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fleetbus.guard.audit import CURRENT, AuditLog, Retention, iter_records, log_files, verify, volume

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))


def entry(n: int) -> dict[str, Any]:
    return {"event": "allowed", "client": "stdio", "host": "local", "args": [f"worker-{n}.service", "x" * 100]}


def write(directory: Path, count: int, **options: Any) -> AuditLog:
    log = AuditLog(directory, fsync=False, max_bytes=4096, **options)
    for n in range(1, count + 1):
        log.append(entry(n))
    return log


def checkpoints(directory: Path) -> list[dict[str, Any]]:
    return [r for _, _, r in iter_records(directory) if r.get("event") == "checkpoint"]


def total_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in log_files(directory))


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "hmac"])
def test_the_log_stays_under_its_total_and_still_verifies(tmp_path: Path, key: bytes | None) -> None:
    write(tmp_path, 400, key=key, retention=Retention(max_total_bytes=16 * 1024)).close()
    assert total_bytes(tmp_path) <= 16 * 1024 + 4096  # the total, plus at most the record that rotated
    records = [r for _, _, r in iter_records(tmp_path)]
    assert records[0]["seq"] > 1, "old records are gone"
    assert records[-1]["seq"] >= 400
    marks = checkpoints(tmp_path)
    assert marks, "each removal follows a checkpoint"
    # The latest removal's checkpoint names exactly the record the log now starts with.
    assert (marks[-1]["start_seq"], marks[-1]["start_prev"]) == (records[0]["seq"], records[0]["prev"])
    result = verify(tmp_path, key=key)
    assert (result.ok, result.problem) == (True, None)
    assert result.records == len(records)


def test_files_older_than_the_retention_are_removed(tmp_path: Path) -> None:
    write(tmp_path, 200).close()
    rotated = log_files(tmp_path)[:-1]
    assert len(rotated) >= 4
    old = time.time() - 10 * 86_400
    for path in rotated[:3]:
        os.utime(path, (old, old))
    log = AuditLog(tmp_path, fsync=False, max_bytes=4096, retention=Retention(days=7))
    log.open()  # the server starts: retention runs at once, not only at the next rotation
    log.close()
    remaining = log_files(tmp_path)
    assert [p.name for p in rotated[:3] if p in remaining] == []
    assert set(rotated[3:]) <= set(remaining)
    (mark,) = checkpoints(tmp_path)
    assert mark["removed_files"] == [p.name for p in rotated[:3]]
    first = next(iter_records(tmp_path))[2]
    assert (mark["start_seq"], mark["start_prev"]) == (first["seq"], first["prev"])
    assert mark["removed_through"] == first["seq"] - 1
    assert verify(tmp_path).ok


def test_a_file_deleted_by_hand_after_retention_is_still_caught(tmp_path: Path) -> None:
    write(tmp_path, 400, retention=Retention(max_total_bytes=16 * 1024)).close()
    assert verify(tmp_path).ok
    log_files(tmp_path)[0].unlink()  # the oldest remaining file: no checkpoint says the log may start later
    result = verify(tmp_path)
    assert not result.ok
    assert result.problem is not None
    assert "records before it are missing, and no checkpoint record says retention removed them" in result.problem


def test_without_retention_nothing_is_removed(tmp_path: Path) -> None:
    write(tmp_path, 300).close()
    assert next(iter_records(tmp_path))[2]["seq"] == 1
    assert checkpoints(tmp_path) == []


def test_rotation_reads_only_the_first_line_of_the_file_it_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(tmp_path, fsync=False, max_bytes=1 << 20)
    for n in range(1, 5000):
        log.append(entry(n))
        if (tmp_path / CURRENT).stat().st_size > (1 << 20) - 1000:
            break
    read_bytes = []
    real_open = builtins.open

    def counting_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        if "r" in mode and "b" in mode:
            for name in ("read", "readline"):
                original = getattr(handle, name)

                def counted(*a: Any, _original: Any = original) -> bytes:
                    data: bytes = _original(*a)
                    read_bytes.append(len(data))
                    return data

                setattr(handle, name, counted)
        return handle

    monkeypatch.setattr(builtins, "open", counting_open)
    before = len(log_files(tmp_path))
    while len(log_files(tmp_path)) == before:
        log.append(entry(0))
    monkeypatch.undo()
    log.close()
    assert sum(read_bytes) < 64 * 1024, f"rotation read {sum(read_bytes)} bytes of a 1 MiB file"
    assert verify(tmp_path).ok


def test_volume_per_day(tmp_path: Path) -> None:
    log = write(tmp_path, 30)
    log.append({"event": "denied", "client": "flood", "count": 1})
    log.append({"event": "denied", "client": "flood", "count": 41, "repeats": 31})
    log.close()
    days = volume(tmp_path)
    assert len(days) == 1
    assert days[0].records == 32
    assert days[0].bytes == total_bytes(tmp_path)
    assert days[0].refusals == 42
    # Records of an earlier day (rewritten time, as an old log has) count for that day.
    lines = (tmp_path / CURRENT).read_bytes().splitlines(keepends=True)
    assert days[0].day == json.loads(lines[0])["time"][:10]


def test_audit_stats_command(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "audit"
    write(directory, 12).close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    env |= {"FLEETBUS_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "fleetbus", "audit", "stats"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["day", "records", "bytes", "refusals"]
    day = lines[1].split()
    assert (day[1], day[2]) == ("12", str(total_bytes(directory)))
    assert lines[2].split()[:2] == ["total", "12"]
