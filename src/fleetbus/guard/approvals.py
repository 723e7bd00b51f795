"""Approvals a model cannot forge: a request bound to the SHA-256 of one canonical operation (host included),
for one client, expiring, used once — decided by a person through `fleetbus approve|deny` or elicitation.

The store is a directory only the server's user may write (checked on open, and when it is first made — which
is when the first request is written, not before); each request is one JSON file replaced atomically, and state
changes happen under a lock so the server and the CLI cannot race.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shlex
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetbus.operation import Operation

ID_PATTERN = re.compile(r"[0-9a-f]{8}")
"""Matched with fullmatch: `$` would also accept a trailing newline."""
PENDING, APPROVED, DENIED, USED = "pending", "approved", "denied", "used"


class ApprovalError(Exception):
    pass


@dataclass(frozen=True)
class Approval:
    id: str
    digest: str
    client: str
    host: str
    operation: str
    """Human-readable form of the operation, for the person deciding."""
    arguments: list[Any]
    reason: str
    created: float
    expires: float
    status: str = PENDING
    decided_by: str | None = None
    decided_at: float | None = None
    used_at: float | None = None

    def expired(self, now: float) -> bool:
        return now >= self.expires

    def describe(self, now: float) -> str:
        remaining = max(0, int(self.expires - now))
        return (
            f"{self.id}  {self.status:<8}  {remaining:>4}s left  client={self.client}  host={self.host}\n"
            f"          {self.operation} {json.dumps(self.arguments, ensure_ascii=False)}\n"
            f"          why approval is needed: {self.reason}"
        )


def utc_time(stamp: float) -> str:
    """An epoch time as a person reads it in a message: ISO 8601 in UTC, to the second."""
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class DecisionCommands:
    """The shell commands a person runs to decide a request of one particular server, quoted to paste anywhere:
    the fleetbus executable by its absolute path and, where the server's store is not the default one, where
    it is — so they work from a plain shell, without the server's environment."""

    program: tuple[str, ...] = ("fleetbus",)
    location: tuple[str, ...] = ()
    """Options naming the store, e.g. ("--state-dir", "/tmp/fleetbus-sandbox-1a2b3c4d/state")."""

    def approve(self, approval_id: str) -> str:
        return shlex.join([*self.program, "approve", *self.location, approval_id])

    def deny(self, approval_id: str) -> str:
        return shlex.join([*self.program, "deny", *self.location, approval_id])


class ApprovalStore:
    def __init__(self, directory: Path, *, ttl: float = 900.0, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.ttl = ttl
        self.clock = clock
        # An existing store is checked now; one that does not exist yet is made (and checked) by the first write.
        if directory.exists():
            self._check_ownership()

    def exists(self) -> bool:
        return self.directory.is_dir()

    def _create(self) -> None:
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._check_ownership()

    def _check_ownership(self) -> None:
        info = self.directory.stat()
        if info.st_uid != os.geteuid():
            raise ApprovalError(
                f"approval store {self.directory} belongs to uid {info.st_uid}, not to this user "
                f"(uid {os.geteuid()}); only the server's user may decide approvals"
            )
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ApprovalError(f"approval store {self.directory} is writable by others; chmod 700 it")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _path(self, approval_id: str) -> Path:
        if not ID_PATTERN.fullmatch(approval_id):
            raise ApprovalError(f"{approval_id!r} is not an approval id (8 lower-case hex digits, e.g. 3fa9c2d1)")
        return self.directory / f"{approval_id}.json"

    def _write(self, approval: Approval) -> None:
        path = self._path(approval.id)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(approval), handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        # Without this a power cut can undo the rename, and a used approval would be approved again.
        _fsync_directory(self.directory)

    def get(self, approval_id: str) -> Approval:
        path = self._path(approval_id)
        try:
            return Approval(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise ApprovalError(f"no approval {approval_id} in {self.directory}") from None
        except (ValueError, TypeError) as exc:
            raise ApprovalError(f"approval {approval_id} is damaged: {exc}") from None

    def contains(self, approval_id: str) -> bool:
        return self._path(approval_id).exists()

    def all(self) -> list[Approval]:
        approvals = []
        for path in sorted(self.directory.glob("*.json")):
            with contextlib.suppress(ApprovalError):
                approvals.append(self.get(path.stem))
        return sorted(approvals, key=lambda a: a.created)

    def request(self, operation: Operation, client: str, reason: str) -> Approval:
        """A pending request for this exact operation and client, reusing one that is still open."""
        digest, now = operation.digest(), self.clock()
        self._create()
        with self._locked():
            for existing in self.all():
                if (
                    existing.digest == digest
                    and existing.client == client
                    and existing.status == PENDING
                    and not existing.expired(now)
                ):
                    return existing
            approval = Approval(
                id=self._new_id(),
                digest=digest,
                client=client,
                host=operation.host,
                operation=operation.describe(),
                arguments=list(operation.args),
                reason=reason,
                created=now,
                expires=now + self.ttl,
            )
            self._write(approval)
        return approval

    def _new_id(self) -> str:
        # 32 random bits collide rarely, but a collision must never overwrite another request.
        while True:
            candidate = secrets.token_hex(4)
            if not self._path(candidate).exists():
                return candidate

    def decide(self, approval_id: str, approve: bool, by: str) -> Approval:
        """A person's answer. Only a pending, unexpired request can be decided, once."""
        self._path(approval_id)  # a malformed id is named as such, wherever the store is
        if not self.exists():
            raise ApprovalError(f"no approval {approval_id} in {self.directory} (no request was ever stored there)")
        with self._locked():
            approval = self.get(approval_id)
            now = self.clock()
            if approval.status != PENDING:
                raise ApprovalError(f"approval {approval_id} is already {approval.status}")
            if approval.expired(now):
                raise ApprovalError(f"approval {approval_id} expired; the call must be made again")
            decided = replace(approval, status=APPROVED if approve else DENIED, decided_by=by, decided_at=now)
            self._write(decided)
        return decided

    def consume(self, operation: Operation, client: str) -> Approval | None:
        """Use up an approved request for exactly this operation and client; None when there is none."""
        digest, now = operation.digest(), self.clock()
        if not self.exists():
            return None
        with self._locked():
            for approval in self.all():
                if (
                    approval.digest == digest
                    and approval.client == client
                    and approval.status == APPROVED
                    and not approval.expired(now)
                ):
                    used = replace(approval, status=USED, used_at=now)
                    self._write(used)
                    return used
        return None

    def refused(self, operation: Operation, client: str) -> Approval | None:
        """A request for this operation a person denied (and not yet expired), so the model hears 'no'."""
        digest, now = operation.digest(), self.clock()
        for approval in self.all():
            if (
                approval.digest == digest
                and approval.client == client
                and approval.status == DENIED
                and not approval.expired(now)
            ):
                return approval
        return None

    def prune(self, keep_seconds: float = 7 * 24 * 3600) -> int:
        """Forget requests that ended (used, denied, expired) longer ago than `keep_seconds`.

        An approved request that is not used yet has not ended: it stays until it is used or expires.
        """
        now, removed = self.clock(), 0
        if not self.exists():
            return 0
        with self._locked():
            for approval in self.all():
                ended = _ended_at(approval, now)
                if ended is not None and now - ended > keep_seconds:
                    self._path(approval.id).unlink(missing_ok=True)
                    removed += 1
        return removed


def _ended_at(approval: Approval, now: float) -> float | None:
    """When a request stopped mattering, or None while it still can be decided or used."""
    # Explicit None checks: a timestamp of 0.0 is a time, not a missing one.
    if approval.status == USED and approval.used_at is not None:
        return approval.used_at
    if approval.status == DENIED and approval.decided_at is not None:
        return approval.decided_at
    if approval.expired(now):
        return approval.expires
    return None


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
