"""Approvals a model cannot forge: a request bound to the SHA-256 of one canonical operation (host included),
for one client, expiring, used once — decided by a person through `fleetbus approve|deny` or elicitation.

The store is a directory only the server's user may write (checked on open, and when it is first made — which
is when the first request is written, not before); each request is one JSON file replaced atomically, and state
changes happen under a lock so the server and the CLI cannot race.

Bounded: each client may have `max_pending` requests waiting at once, and requests that ended longer ago than
`keep_seconds` are pruned when a request is written (at most every `prune_interval`). Finding the requests for
one operation reads only those: the parsed requests are kept by file (re-read only when a file is replaced, which
gives it a new inode), so a store of 20,000 requests costs a directory scan, not 20,000 JSON parses, per call.
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
import threading
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


class TooManyPending(ApprovalError):
    """A client already has as many requests waiting for a person as it may."""


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
    def __init__(
        self,
        directory: Path,
        *,
        ttl: float = 900.0,
        clock: Callable[[], float] = time.time,
        max_pending: int = 16,
        keep_seconds: float = 7 * 24 * 3600,
        prune_interval: float = 600.0,
    ) -> None:
        self.directory = directory
        self.ttl = ttl
        self.clock = clock
        self.max_pending = max_pending
        self.keep_seconds = keep_seconds
        self.prune_interval = prune_interval
        self._pruned_at: float | None = None
        self._parsed: dict[str, tuple[int, Approval]] = {}
        """Per file name: its inode when read, and what it said."""
        self._parsing = threading.Lock()
        self._listed: list[Approval] = []
        self._listed_key: tuple[int, int] | None = None
        self._settled = False
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
        """Every request in the store, oldest first; a file is parsed again only when it changed on disk."""
        if not self.exists():
            return []
        with self._parsing:
            listing = os.stat(self.directory)
            directory_key = (listing.st_ino, listing.st_mtime_ns)
            # Every change is a rename into (or an unlink from) the directory, which moves its mtime; but two
            # changes within one timestamp tick share it, so the listing is trusted only once it is a second old.
            if directory_key == self._listed_key and self._settled:
                return list(self._listed)
            settled = time.time_ns() - listing.st_mtime_ns > 1_000_000_000
            seen: dict[str, tuple[int, Approval]] = {}
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    if not entry.name.endswith(".json") or not ID_PATTERN.fullmatch(entry.name[:-5]):
                        continue
                    # Every write replaces the file by renaming a new one over it, so a changed request is a new
                    # inode — which the directory entry carries without a stat (20,000 stats cost ~0.35 s here).
                    key = entry.inode()
                    known = self._parsed.get(entry.name)
                    if known is not None and known[0] == key:
                        seen[entry.name] = known
                        continue
                    with contextlib.suppress(ApprovalError):
                        seen[entry.name] = (key, self.get(entry.name[:-5]))
            self._parsed = seen
            self._listed = sorted((approval for _, approval in seen.values()), key=lambda a: (a.created, a.id))
            self._listed_key, self._settled = directory_key, settled
            return list(self._listed)

    def _matching(self, digest: str, client: str, status: str, now: float) -> list[Approval]:
        return [
            a
            for a in self.all()
            if a.digest == digest and a.client == client and a.status == status and not a.expired(now)
        ]

    def pending(self, client: str) -> int:
        now = self.clock()
        return sum(1 for a in self.all() if a.client == client and a.status == PENDING and not a.expired(now))

    def request(self, operation: Operation, client: str, reason: str) -> Approval:
        """A pending request for this exact operation and client, reusing one that is still open.

        Raises TooManyPending when the client has `max_pending` other requests waiting."""
        digest, now = operation.digest(), self.clock()
        self._create()
        with self._locked():
            for existing in self._matching(digest, client, PENDING, now):
                return existing
            if self.pending(client) >= self.max_pending:
                raise TooManyPending(
                    f"{client} already has {self.max_pending} requests waiting for a person to approve them, the "
                    "most one client may; wait until they are decided or expire "
                    f"({int(self.ttl)} s after they were made)"
                )
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
            if self._pruned_at is None or now - self._pruned_at >= self.prune_interval:
                self._prune_locked(self.keep_seconds)
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
            for approval in self._matching(digest, client, APPROVED, now):
                used = replace(approval, status=USED, used_at=now)
                self._write(used)
                return used
        return None

    def refused(self, operation: Operation, client: str) -> Approval | None:
        """A request for this operation a person denied (and not yet expired), so the model hears 'no'."""
        digest, now = operation.digest(), self.clock()
        denied = self._matching(digest, client, DENIED, now)
        return denied[0] if denied else None

    def prune(self, keep_seconds: float | None = None) -> int:
        """Forget requests that ended (used, denied, expired) longer ago than `keep_seconds` (default: the
        store's). An approved request that is not used yet has not ended: it stays until it is used or expires.
        """
        if not self.exists():
            return 0
        with self._locked():
            return self._prune_locked(self.keep_seconds if keep_seconds is None else keep_seconds)

    def _prune_locked(self, keep_seconds: float) -> int:
        now, removed = self.clock(), 0
        self._pruned_at = now
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
