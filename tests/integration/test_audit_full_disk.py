"""A full audit disk (a tiny tmpfs holding the audit log, on the sandbox's real systemd): a change is refused
before it runs, naming the disk; a change whose outcome record no longer fits is reported as "ran; outcome not
recorded", never as a failure to retry. No unit changes state without its records."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetbus.gateway import Caller
from fleetbus.guard.audit import iter_records, verify
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.integration.effects_setup import active_state, fresh, guarded

pytestmark = pytest.mark.sandbox

RESERVE = 128 * 1024


@contextlib.contextmanager
def tiny_disk(base: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of `size` at base/fleetbus-audit-disk, unmounted again whatever happens."""
    mountpoint = base / "fleetbus-audit-disk"
    mountpoint.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "fleetbus-audit-test", str(mountpoint)], check=True
    )
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Fill the disk until at most `leave` bytes are free (as another writer on the host would)."""
    filler = disk / "filler"
    with open(filler, "ab") as handle, contextlib.suppress(OSError):  # ENOSPC: full, as asked
        while True:
            info = os.statvfs(disk)
            free = info.f_bfree * info.f_frsize
            if free <= leave:
                break
            handle.write(b"\0" * min(free - leave, 1 << 20))
            handle.flush()
    info = os.statvfs(disk)
    assert info.f_bfree * info.f_frsize <= leave
    return filler


def start_records(state_audit: Path, unit: str) -> list[dict[str, Any]]:
    return [
        r
        for _, _, r in iter_records(state_audit, tolerate_partial=True)
        if (r.get("operation") or {}).get("member") == "StartUnit" and unit in (r.get("args") or [])
    ]


async def start(runtime: Runtime, unit: str) -> Any:
    async with asyncio.timeout(60):
        return await runtime.registry.run(
            runtime.context(Caller("operator")), "unit_job", {"action": "start", "unit": unit, "wait": 30}
        )


async def test_a_change_is_refused_before_it_runs_when_the_audit_disk_is_full(sandbox: Sandbox, tmp_path: Path) -> None:
    unit = fresh("diskfull")
    sandbox.write_unit(unit, "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n")
    with tiny_disk(tmp_path) as disk:
        audit_dir = disk / "audit"
        async with guarded(sandbox, tmp_path / "state", audit_dir=audit_dir, audit_reserve_bytes=RESERVE) as runtime:
            runtime.gateway.audit_log.open()
            filler = fill(disk, leave=RESERVE // 2)
            refused = await start(runtime, unit)
            assert refused.is_error
            assert refused.text.startswith(
                f"the audit log cannot be written (disk full at {audit_dir}, on the filesystem mounted at {disk})"
            ), refused.text
            assert "nothing was run" in refused.text
            assert active_state(sandbox, unit) == "inactive", "the unit did not change state"
            assert start_records(audit_dir, unit) == [], "and nothing claims it did"
            filler.unlink()  # room again: the same change runs, with its records
            done = await start(runtime, unit)
            assert not done.is_error, done.text
        assert active_state(sandbox, unit) == "active"
        assert [r["event"] for r in start_records(audit_dir, unit)] == ["allowed", "succeeded"]
        assert verify(audit_dir).ok


async def test_a_change_whose_outcome_cannot_be_recorded_is_reported_as_ran(sandbox: Sandbox, tmp_path: Path) -> None:
    unit = fresh("fillsup")
    sandbox.write_unit(unit, "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sleep 1\n")
    with tiny_disk(tmp_path) as disk:
        audit_dir = disk / "audit"
        async with guarded(sandbox, tmp_path / "state", audit_dir=audit_dir, audit_reserve_bytes=RESERVE) as runtime:
            runtime.gateway.audit_log.open()
            job = asyncio.create_task(start(runtime, unit))
            # Once its "allowed" record is on disk (the change was admitted with room to spare), another writer
            # fills the disk while the job runs.
            for _ in range(2000):  # a 20 s deadline
                if start_records(audit_dir, unit) or job.done():
                    break
                await asyncio.sleep(0.01)
            filler = fill(disk, leave=0)
            # tmpfs allocates by page, and the log file's last page may still have room: another writer of the
            # same log (a `fleetbus tool` beside the server) takes it, until the log is full to the byte.
            with contextlib.suppress(OSError):
                for _ in range(100):
                    runtime.gateway.audit_log.append({"event": "note", "client": "another-writer", "note": "x" * 300})
            result = await job
            assert not result.is_error, result.text  # it ran: a failure would invite a retry that repeats it
            first = result.text.splitlines()[0]
            events = [r["event"] for r in start_records(audit_dir, unit)]
            full = f"the audit log cannot be written (disk full at {audit_dir}, on the filesystem mounted at {disk})"
            assert events == ["allowed"], "its outcome did not fit"
            assert first.startswith(f"ran; outcome not recorded: StartUnit ran (succeeded), but {full}"), first
            assert first.endswith("Do not repeat the call: it was made.")
            # The reads after it (the unit's new state, in the answer) ran too, unrecorded, under the same note.
            assert len(result.notes) == 1
            assert result.structured["unit"] == unit
            assert result.structured["state"]["active"] == "active"
            filler.unlink()
        # The unit changed state with its "allowed" record on disk, written before it ran.
        assert active_state(sandbox, unit) == "active"
        assert verify(audit_dir).ok


def hostname1_property(name: str) -> dict[str, str]:
    """get_property's arguments for one of hostname1's properties."""
    return {
        "service": "org.freedesktop.hostname1",
        "path": "/org/freedesktop/hostname1",
        "interface": "org.freedesktop.hostname1",
        "property": name,
    }


async def test_a_read_whose_record_cannot_be_written_discloses_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    """A read's one record is written once it ran and before its answer leaves: on a full disk the answer is
    withheld, so every answer a client got has its record."""
    arguments = hostname1_property("Hostname")
    with tiny_disk(tmp_path) as disk:
        audit_dir = disk / "audit"
        async with guarded(sandbox, tmp_path / "state", audit_dir=audit_dir) as runtime:
            runtime.gateway.audit_log.open()
            fill(disk, leave=0)
            answered, withheld = 0, None
            for _ in range(200):  # the last page of the log may hold a few more records
                result = await runtime.registry.run(runtime.context(Caller("reader")), "get_property", arguments)
                if result.is_error:
                    withheld = result.text
                    break
                answered += 1
            assert withheld is not None, "the full disk was never noticed"
            assert withheld.startswith(f"the audit log cannot be written (disk full at {audit_dir}"), withheld
            assert "withheld" in withheld
            assert "sandbox-" not in withheld, "the hostname was not disclosed"
        recorded = [
            r
            for _, _, r in iter_records(audit_dir, tolerate_partial=True)
            if r.get("client") == "reader" and r.get("event") == "succeeded"
        ]
        assert len(recorded) == answered, "every answer given has its record"


async def test_a_failed_read_whose_record_cannot_be_written_discloses_nothing_either(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A read's failure says something too (which names exist, what a service answers): its text is withheld as an
    answer is, when its record cannot be written."""
    arguments = hostname1_property("NoSuchPropertyAnywhere")
    with tiny_disk(tmp_path) as disk:
        audit_dir = disk / "audit"
        async with guarded(sandbox, tmp_path / "state", audit_dir=audit_dir) as runtime:
            runtime.gateway.audit_log.open()
            first = await runtime.registry.run(runtime.context(Caller("reader")), "get_property", arguments)
            assert first.is_error
            assert "NoSuchPropertyAnywhere" in first.text, "with room, the failure is told"
            fill(disk, leave=0)
            told, withheld = 0, None
            for _ in range(200):  # the last page of the log may hold a few more records
                result = await runtime.registry.run(runtime.context(Caller("reader")), "get_property", arguments)
                assert result.is_error
                if result.text.startswith("the audit log cannot be written"):
                    withheld = result.text
                    break
                told += 1
            assert withheld is not None, "the full disk was never noticed"
            assert "withheld" in withheld, withheld
            assert "NoSuchPropertyAnywhere" not in withheld
        recorded = [
            r
            for _, _, r in iter_records(audit_dir, tolerate_partial=True)
            if r.get("client") == "reader" and r.get("event") == "failed"
        ]
        assert len(recorded) == told + 1, "every failure told has its record"
